#!/usr/bin/env bash
# profile.sh - where shopd's time goes on POST /buy.
#
#   scripts/bench/profile.sh [SERVER_BINARY [ARGS...]]
#
# Starts the server (default: ./shopd with a huge-stock catalog) on a free
# loopback port, loads it with wrk (buy.lua), and reports:
#   1. per thread: CPU microseconds and context switches (voluntary = went
#      to sleep, involuntary = preempted) per 1000 requests, from /proc;
#      works everywhere, and is the quickest way to see wake-up storms;
#   2. with perf (apt-get install linux-perf): a call-graph profile of the
#      server during the load - share per library, the top symbols, and the
#      HTTP threads' call tree from the access handler down. perf falls back
#      to the cpu-clock software event where the CPU has no PMU (VMs).
# Works with scripts/bench/baseline too, for comparison:
#   scripts/bench/profile.sh build/bench/baseline --port 0
#
# Environment: PROFILE_SECONDS=6 (wrk duration), PROFILE_WRK="-t1 -c64",
# PROFILE_OUT (default build/bench/profile-DATE).
set -euo pipefail

SECS=${PROFILE_SECONDS:-6}
WRK_ARGS=${PROFILE_WRK:-"-t1 -c64"}
OUT=${PROFILE_OUT:-build/bench/profile-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

if [ $# -eq 0 ]; then
    cat="$OUT/catalog.json"
    # shellcheck source=scripts/lib/catalog.sh
    . "$(dirname "$0")/../lib/catalog.sh"
    write_catalog "$cat" 1000000000000
    set -- ./shopd --bind 127.0.0.1 --port 0 --catalog "$cat"
fi

PIDS_WHO=profile
# shellcheck source=scripts/lib/pids.sh
. "$(dirname "$0")/../lib/pids.sh"

"$@" 2>"$OUT/server.log" &
pid=$!
PIDS+=("$pid")
port=$(listening_port "$pid" "$OUT/server.log")

# tid comm cpu_ticks voluntary involuntary, for every thread of pid.
snap() {
    local t
    for t in /proc/"$pid"/task/*; do
        printf '%s %s %s %s\n' "${t##*/}" "$(tr ' ' _ <"$t/comm")" \
            "$(awk '{ print $14 + $15 }' "$t/stat")" \
            "$(awk '/^voluntary_ctxt/ { v = $2 } /^nonvoluntary_ctxt/ { n = $2 }
                    END { print v, n }' "$t/status")"
    done | sort
}

HZ=$(getconf CLK_TCK)
have_perf=0
if command -v perf >/dev/null 2>&1; then
    have_perf=1
fi
snap >"$OUT/before.txt"
# shellcheck disable=SC2086 # WRK_ARGS is a list of flags
wrk $WRK_ARGS -d"${SECS}s" -s scripts/wrk/buy.lua \
    "http://127.0.0.1:$port/buy" >"$OUT/wrk.out" 2>&1 &
wrk_pid=$!
PIDS+=("$wrk_pid")
if [ "$have_perf" = 1 ]; then
    # Skip the first second (connection set-up); stop a second early.
    sleep 1
    event=cycles
    if ! perf stat -e cycles true >"$OUT/perf-probe.txt" 2>&1 ||
        grep -q 'not supported' "$OUT/perf-probe.txt"; then
        event=cpu-clock # no PMU (a VM): sample on the software clock
    fi
    perf record -q -e "$event" -F 999 --call-graph dwarf,16384 -p "$pid" \
        -o "$OUT/perf.data" -- sleep $((SECS > 3 ? SECS - 2 : 1)) \
        >/dev/null 2>&1 || have_perf=0
fi
wait "$wrk_pid" || true
snap >"$OUT/after.txt"

req=$(sed -n 's/.*BENCH requests=\([0-9]*\).*/\1/p' "$OUT/wrk.out")
rps=$(sed -n 's/.* rps=\([0-9.]*\).*/\1/p' "$OUT/wrk.out")
echo "server: $*"
echo "load: wrk $WRK_ARGS -d${SECS}s buy.lua: $req requests, $rps req/s"
echo
echo "per thread (per 1000 requests): CPU us, sleeps (voluntary switches)," \
    "preemptions (involuntary)"
join "$OUT/before.txt" "$OUT/after.txt" | awk -v r="$req" -v hz="$HZ" '
    # joined: tid comm ticks vol invol comm ticks vol invol
    { cpu = ($7 - $3) * 1e6 / hz * 1000 / r;
      vol = ($8 - $4) * 1000 / r; inv = ($9 - $5) * 1000 / r;
      if (cpu == 0 && vol == 0 && inv == 0) next;
      printf "  %-12s cpu %8.0f us   sleeps %6.0f   preempted %6.0f\n",
          $2, cpu, vol, inv;
      tc += cpu; tv += vol; ti += inv }
    END { printf "  %-12s cpu %8.0f us   sleeps %6.0f   preempted %6.0f\n",
          "total", tc, tv, ti }'

if [ "$have_perf" = 1 ]; then
    echo
    echo "perf: share of samples per library"
    perf report -i "$OUT/perf.data" --no-children --sort dso --stdio -g none \
        2>/dev/null | grep '%' | head -8 || true
    echo
    echo "perf: top symbols (self)"
    perf report -i "$OUT/perf.data" --no-children --sort sym --stdio -g none \
        2>/dev/null | grep '%' | head -25 || true
    echo
    echo "perf: share per thread name, and what they spend it in (children)"
    perf report -i "$OUT/perf.data" --no-children --sort comm --stdio -g none \
        2>/dev/null | grep '%' | head -5 || true
    for fn in access_handler api_handle handle_buy buy_parse shop_submit \
        queue_try_send queue_recv worker_main shop_handle inventory_take \
        orderbook_put latency_hist_record MHD_create_response_from_buffer \
        __libc_sendmsg __libc_recv pthread_cond_signal pthread_cond_wait \
        __x64_sys_futex; do
        perf report -i "$OUT/perf.data" --children --sort sym --stdio \
            -g none 2>/dev/null |
            awk -v f="$fn" '$NF == f || $NF == f "@@GLIBC_2.3.2" ||
                $NF ~ "^" f "@" { printf "  %-32s %s total\n", f, $1; exit }' ||
            true
    done
    echo
    echo "full report: perf report -i $OUT/perf.data"
else
    echo
    echo "perf not available (apt-get install linux-perf for the profile);" \
        "for instructions counts: valgrind --tool=callgrind $*"
fi
