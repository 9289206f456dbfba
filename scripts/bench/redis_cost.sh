#!/usr/bin/env bash
# redis_cost.sh - what one order costs Redis, per shopd binary, side by side.
#
#   scripts/bench/redis_cost.sh [SHOPD ...]      (default: ./shopd)
#
# For every round, every wrk setting and every binary (run alternately, so
# the binaries share the machine's weather): a private redis-server on a
# unix socket (appendonly yes, appendfsync everysec, as make bench runs it)
# and one shopd on it; wrk POSTs /buy, then the script waits for the belt
# to drain and prints one line:
#   - orders accepted and 2xx/s;
#   - CPU per order of redis-server and of shopd (utime + stime from /proc,
#     from just before wrk until the belt is empty);
#   - from INFO commandstats: the microseconds per order spent in FCALL
#     (the Functions of store/redis_lib.lua, with the commands they run)
#     and in the three costliest commands inside them;
#   - Redis commands per order (INFO commandstats calls, those a Function
#     runs included) and shopd's round trips to Redis per order (/stats).
#
# Environment (all optional):
#   COST_SETTINGS="1:64 2:256"   wrk threads:connections
#   COST_SECONDS=8               wrk duration per run
#   COST_ROUNDS=2
#
# Bounded: each run stops by itself; every process started here is stopped
# by its PID. Never fails on a number.
set -euo pipefail
cd "$(dirname "$0")/../.."

SETTINGS=${COST_SETTINGS:-"1:64 2:256"}
SECONDS_PER_RUN=${COST_SECONDS:-8}
ROUNDS=${COST_ROUNDS:-2}
BINS=("$@")
[ ${#BINS[@]} -gt 0 ] || BINS=(./shopd)

PIDS_WHO=redis_cost
# shellcheck source=scripts/lib/pids.sh
. scripts/lib/pids.sh
# shellcheck source=scripts/lib/catalog.sh
. scripts/lib/catalog.sh

for b in "${BINS[@]}"; do
    [ -x "$b" ] || { echo "redis_cost: $b is not an executable" >&2; exit 1; }
done
for t in wrk redis-server redis-cli curl python3; do
    command -v "$t" >/dev/null || {
        echo "redis_cost: $t not found (make bench-deps)" >&2
        exit 1
    }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/shopd-redis-cost.XXXXXX")
trap 'pids_cleanup; rm -rf "$WORK"' EXIT
write_catalog "$WORK/catalog.json" 1000000000000
TCK=$(getconf CLK_TCK)

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# One field of GET /stats's "orders" object (or of another object: $3).
orders_field() {
    curl -fsS "http://127.0.0.1:$1/stats" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[2]][sys.argv[1]])' "$2" "${3:-orders}"
}

run_one() {
    local bin=$1 threads=$2 conns=$3 dir=$WORK/run i port
    rm -rf "$dir"
    mkdir -p "$dir"
    redis-server --port 0 --unixsocket "$dir/redis.sock" --unixsocketperm 700 \
        --save '' --appendonly yes --appendfsync everysec --dir "$dir" \
        --logfile "$dir/redis.log" &
    local rpid=$!
    PIDS+=("$rpid")
    for ((i = 0; i < 200; i++)); do
        [ "$(redis-cli -s "$dir/redis.sock" ping 2>/dev/null)" = PONG ] && break
        sleep 0.05
    done
    "$bin" --bind 127.0.0.1 --port 0 --catalog "$WORK/catalog.json" \
        --store "unix://$dir/redis.sock" --instance cost 2>"$dir/shopd.log" &
    local spid=$!
    PIDS+=("$spid")
    port=$(listening_port "$spid" "$dir/shopd.log") || return 1

    local r0 s0 a0 r1 s1 a1 t0 t1
    r0=$(cpu_ticks "$rpid")
    s0=$(cpu_ticks "$spid")
    a0=$(orders_field "$port" accepted)
    t0=$(orders_field "$port" round_trips store)
    redis-cli -s "$dir/redis.sock" config resetstat >/dev/null
    wrk -t"$threads" -c"$conns" -d"${SECONDS_PER_RUN}s" \
        -s scripts/wrk/buy.lua "http://127.0.0.1:$port/buy" >"$dir/wrk.log" 2>&1
    for ((i = 0; i < 600; i++)); do
        [ "$(orders_field "$port" accepted)" = "$(orders_field "$port" processed)" ] && break
        sleep 0.05
    done
    r1=$(cpu_ticks "$rpid")
    s1=$(cpu_ticks "$spid")
    a1=$(orders_field "$port" accepted)
    t1=$(orders_field "$port" round_trips store)
    redis-cli -s "$dir/redis.sock" info commandstats >"$dir/commandstats"
    stop_pid "$spid" 30 >/dev/null || true
    stop_pid "$rpid" 30 >/dev/null || true

    python3 - "$bin" "$threads:$conns" "$((a1 - a0))" "$((r1 - r0))" \
        "$((s1 - s0))" "$TCK" "$dir/commandstats" "$dir/wrk.log" \
        "$((t1 - t0))" <<'EOF'
import re, sys
bin_, setting, n, rt, st, tck, stats, wrk, trips = sys.argv[1:]
n, rt, st, tck, trips = int(n), int(rt), int(st), int(tck), int(trips)
usec, calls = {}, {}
for line in open(stats):
    m = re.match(r'cmdstat_([^:]+):calls=(\d+),usec=(\d+)', line)
    if m:
        calls[m.group(1)] = int(m.group(2))
        usec[m.group(1)] = int(m.group(3))
m = re.search(r'ok_rps=([0-9.]+)', open(wrk).read())
per = lambda us: us / n if n else 0.0
inner = sorted((k for k in usec if k not in ('fcall', 'exec', 'multi',
                                              'xreadgroup', 'xautoclaim')),
               key=lambda k: -usec[k])[:3]
print(f"| {bin_} | -t{setting.replace(':', ' -c')} | {n} | "
      f"{float(m.group(1)) if m else 0:.0f} | "
      f"{per(rt / tck * 1e6):.1f} | {per(st / tck * 1e6):.1f} | "
      f"{per(usec.get('fcall', 0)):.1f} | "
      f"{per(sum(calls.values())):.1f} | {per(trips):.2f} | "
      + ", ".join(f"{k} {per(usec[k]):.1f}" for k in inner) + " |")
EOF
}

echo "Redis cost per order, wrk ${SECONDS_PER_RUN}s per run, $ROUNDS rounds, $(nproc) CPUs, $(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| shopd | wrk | orders | 2xx/s | redis-server µs CPU/order | shopd µs CPU/order | FCALL µs/order | Redis commands/order (in Lua too) | round trips/order | costliest commands inside, µs/order |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
for ((round = 1; round <= ROUNDS; round++)); do
    for s in $SETTINGS; do
        for b in "${BINS[@]}"; do
            run_one "$b" "${s%%:*}" "${s##*:}"
        done
    done
done
