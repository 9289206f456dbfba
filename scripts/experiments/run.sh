#!/usr/bin/env bash
# run.sh - `make experiment`: elves, a belt and Little's law, measured on a
# real shopd (memory store) on this machine, then drawn with gnuplot.
#
# Every point starts a fresh shopd on a free loopback port with the point's
# --workers, --work-ms and --queue-capacity, offers it a fixed load of POST
# /buy with wrk pacing each connection (scripts/experiments/paced.lua: wrk
# has no fixed-rate mode and wrk2 is not in Debian; POST /buy answers 202
# or 503 at once, so pacing the connections fixes the offered load whatever
# the workers do), watches /metrics with sample.py, and stops the server by
# its PID (SIGTERM, then a second SIGTERM so a full belt is not drained).
# Four parts:
#
#   sweep  workers (EXP_WORKERS) x work_ms (EXP_WORK_MS) at EXP_RATE
#          orders/s: fulfilled orders per second against the ceiling of
#          Little's law, workers x 1000 / work_ms (each worker holds an
#          order for work_ms, so at most that many leave the belt per
#          second). work_ms 0 has no such ceiling: its points are drawn at
#          the HTTP limit, measured by part "http".
#   http   one unpaced run (wrk -t1 -c64 as fast as answers come back) at
#          work_ms 0: the most orders per second this box sells when the
#          workers cost nothing, i.e. the HTTP server and the locks.
#   belt   workers:work_ms pairs (EXP_BELT_CONFIGS) at EXP_RATE, above their
#          ceiling so the belt stays full, for several belt sizes
#          (EXP_BELT_CAPACITIES): mean queue wait W against mean belt depth
#          L. Little's law says L = lambda W, a straight line of slope
#          1/lambda, lambda being the orders leaving the belt per second.
#   fill   one workers:work_ms pair (EXP_FILL_CONFIG) with a small belt
#          (EXP_FILL_CAPACITY), offered EXP_FILL_LOADS times its ceiling:
#          the 503 share and the belt depth as the offered load passes the
#          ceiling. Above it the belt fills and 1 - ceiling/offered of the
#          orders must be turned away.
#
# Output (EXP_OUT, default build/experiment/run-DATE): sweep.tsv, http.tsv,
# belt.tsv, fill.tsv (one row per point, a '#' header naming the columns),
# a timeline per point (*.timeline.tsv: depth and counters every
# EXP_INTERVAL s), the raw logs, and the charts throughput.{svg,png},
# queue_wait.{svg,png}, rejections.{svg,png} drawn by plot.gp.
#
# Environment (all optional):
#   EXP_RATE=2000          offered orders/s in sweep and belt (0: unpaced,
#                          as fast as wrk -t1 -c64 gets answers)
#   EXP_SECONDS=3          measured window per point
#   EXP_WARMUP=1           seconds before the window (belt and fill add the
#                          time a belt of that size needs to fill and turn
#                          over, at most EXP_MAX_SETTLE=4 s more)
#   EXP_WORKERS="1 2 4 8"  EXP_WORK_MS="0 1 5 20"
#   EXP_BELT_CONFIGS="2:5 8:5"  EXP_BELT_CAPACITIES="16 64 256 1024"
#   EXP_FILL_CONFIG=2:5  EXP_FILL_CAPACITY=64
#   EXP_FILL_LOADS="0.5 0.8 1.1 1.25 1.5 2 3 5"
#   EXP_PARTS="sweep http belt fill"
#   EXP_PAUSE_MS=50        target pause per connection between requests;
#                          connections = rate x pause (wrk's timer is in
#                          whole ms and fires late, so a longer pause
#                          needs less of paced.lua's once-a-second
#                          correction)
#   EXP_INTERVAL=0.05      /metrics sampling period
#   EXP_HTTP_THREADS=      --http-threads for every shopd (default: shopd's)
#   EXP_COMMAND            the command shown in the chart titles
#   SHOPD=./shopd
#
# Default settings take about 3 minutes. Never part of `make test`; exits 0
# whatever the numbers say, non-zero only if a server could not be started
# or read. Load goes to 127.0.0.1 only.
set -euo pipefail

SHOPD=${SHOPD:-./shopd}
HERE=$(cd "$(dirname "$0")" && pwd)
RATE=${EXP_RATE:-2000}
WINDOW=${EXP_SECONDS:-3}
WARMUP=${EXP_WARMUP:-1}
MAX_SETTLE=${EXP_MAX_SETTLE:-4}
WORKERS=${EXP_WORKERS:-"1 2 4 8"}
WORK_MS=${EXP_WORK_MS:-"0 1 5 20"}
BELT_CONFIGS=${EXP_BELT_CONFIGS:-"2:5 8:5"}
BELT_CAPACITIES=${EXP_BELT_CAPACITIES:-"16 64 256 1024"}
FILL_CONFIG=${EXP_FILL_CONFIG:-2:5}
FILL_CAPACITY=${EXP_FILL_CAPACITY:-64}
FILL_LOADS=${EXP_FILL_LOADS:-"0.5 0.8 1.1 1.25 1.5 2 3 5"}
PARTS=${EXP_PARTS:-"sweep http belt fill"}
PAUSE_MS=${EXP_PAUSE_MS:-50}
INTERVAL=${EXP_INTERVAL:-0.05}
HTTP_THREADS=${EXP_HTTP_THREADS:-}
OUT=${EXP_OUT:-build/experiment/run-$(date +%Y%m%d-%H%M%S)}
STOCK=1000000000000
NCPU=$(nproc 2>/dev/null || echo 1)

die() {
    echo "experiment: $*" >&2
    exit 1
}

# The command for the chart titles: the given one, or `make experiment`
# with the EXP_* variables that were set.
if [ -z "${EXP_COMMAND:-}" ]; then
    EXP_COMMAND="make experiment"
    while IFS= read -r kv; do
        # NAME="a b" for a value with spaces, as a person would type it.
        [[ $kv != *" "* ]] || kv="${kv%%=*}=\"${kv#*=}\""
        EXP_COMMAND="$EXP_COMMAND $kv"
    done < <(env | grep '^EXP_' | grep -v '^EXP_OUT=' | sort || true)
fi

command -v wrk >/dev/null || die "wrk not found (apt-get install wrk)"
command -v python3 >/dev/null || die "python3 not found (apt-get install python3)"
[ -x "$SHOPD" ] || die "$SHOPD not built (run make)"
[ -f scripts/wrk/buy.lua ] || die "run from the project root"
[ "$WINDOW" -ge 1 ] 2>/dev/null || die "EXP_SECONDS must be a whole number >= 1"

# --- processes we started, stopped by PID only ------------------------------
# SIGTERM starts a drain; a full belt of 20 ms orders would take minutes,
# and these orders are only an experiment's, so a second SIGTERM (SPEC.md
# section 3: exit at once) follows after 0.2 s (stop_pid PID 10 2), SIGKILL
# after 10 s; on exit every server gets both.
PIDS_WHO=experiment
PIDS_TERM_TWICE=1
# shellcheck source=scripts/lib/pids.sh
. "$(dirname "$0")/../lib/pids.sh"
# shellcheck source=scripts/lib/catalog.sh
. "$(dirname "$0")/../lib/catalog.sh"

mkdir -p "$OUT"
CATALOG=$OUT/catalog.json
write_catalog "$CATALOG" "$STOCK"

# Ceiling of Little's law in orders/s for WORKERS WORK_MS; 0 = none.
ceiling() {
    if [ "$2" -eq 0 ]; then
        echo 0
    else
        echo $(($1 * 1000 / $2))
    fi
}

COLUMNS_HEADER="# workers	work_ms	capacity	ceiling_per_s	target_per_s	connections	warmup_s	window_s	offered_per_s	accepted_per_s	fulfilled_per_s	processed_per_s	rejected_per_s	reject_share	depth_mean	depth_max	wait_mean_ms	little_depth	wait_p50_ms	wait_p99_ms	out_of_stock"

# point PART WORKERS WORK_MS CAPACITY RATE SETTLE: one measurement, one row
# appended to OUT/PART.tsv. RATE 0 is unpaced. SETTLE=1 lengthens the
# warm-up by the time the belt needs to fill and turn over once.
point() {
    local part=$1 w=$2 ms=$3 cap=$4 rate=$5 settle=$6 t0
    t0=$(date +%s.%N)
    local tag="$part-w${w}-ms${ms}-q${cap}-r${rate}"
    local log=$OUT/$tag.server.log wout=$OUT/$tag.wrk.out
    local ceil warm conns
    ceil=$(ceiling "$w" "$ms")
    warm=$WARMUP
    if [ "$settle" = 1 ] && [ "$ceil" -gt 0 ]; then
        warm=$(awk -v w="$WARMUP" -v q="$cap" -v r="$rate" -v c="$ceil" \
            -v m="$MAX_SETTLE" 'BEGIN {
                s = 0;
                if (r == 0 || r > c) s = q / c + (r > c ? q / (r - c) : 0);
                if (s > m) s = m;
                printf "%.2f", w + s }')
    fi
    if [ "$rate" = 0 ]; then
        conns=64
    else
        conns=$(awk -v r="$rate" -v p="$PAUSE_MS" 'BEGIN {
            c = int(r * p / 1000 + 0.5); if (c < 1) c = 1;
            if (c > 2000) c = 2000; print c }')
    fi

    local extra=()
    [ -z "$HTTP_THREADS" ] || extra=(--http-threads "$HTTP_THREADS")
    "$SHOPD" --bind 127.0.0.1 --port 0 --catalog "$CATALOG" --workers "$w" \
        --work-ms "$ms" --queue-capacity "$cap" --max-connections 4096 \
        "${extra[@]+"${extra[@]}"}" 2>"$log" &
    local pid=$!
    PIDS+=("$pid")
    local port
    port=$(listening_port "$pid" "$log") || die "shopd did not start for $tag"

    # wrk runs well past the window (Python's start-up can take a second on
    # a busy machine) and is stopped as soon as sample.py is done.
    local dur started
    started=$(date +%s.%N)
    dur=$(awk -v a="$warm" -v b="$WINDOW" 'BEGIN { printf "%d", a + b + 10.999 }')
    if [ "$rate" = 0 ]; then
        wrk -t1 -c"$conns" -d"${dur}s" --timeout 5s -s scripts/wrk/buy.lua \
            "http://127.0.0.1:$port/buy" >"$wout" 2>&1 &
    else
        PACED_RATE=$rate PACED_CONNECTIONS=$conns wrk -t1 -c"$conns" \
            -d"${dur}s" --timeout 5s -s "$HERE/paced.lua" \
            "http://127.0.0.1:$port/buy" >"$wout" 2>&1 &
    fi
    local wrk_pid=$!
    PIDS+=("$wrk_pid")
    local fig rc=0
    fig=$(python3 "$HERE/sample.py" "$port" "$warm" "$WINDOW" "$INTERVAL" \
        "$OUT/$tag.timeline.tsv" "$started") || rc=$?
    # wrk prints its summary on SIGINT; its figures are not used.
    kill -INT "$wrk_pid" 2>/dev/null || true
    wait "$wrk_pid" 2>/dev/null || true
    forget_pid "$wrk_pid"
    stop_pid "$pid" 10 2 || true
    [ "$rc" -eq 0 ] || die "could not read shopd's /metrics for $tag"

    local f=$OUT/$part.tsv
    [ -s "$f" ] || echo "$COLUMNS_HEADER" >"$f"
    # One awk: the row for the file (stdout) and the progress line (stderr).
    awk -v fig="$fig" -v head="$w	$ms	$cap	$ceil	$rate	$conns	$warm" \
        -v part="$part" -v t0="$t0" -v t1="$(date +%s.%N)" 'BEGIN {
        n = split(fig, kvs, " ");
        for (i = 1; i <= n; i++) { split(kvs[i], p, "="); v[p[1]] = p[2] }
        k = split("window_s offered_per_s accepted_per_s fulfilled_per_s " \
            "processed_per_s rejected_per_s reject_share depth_mean " \
            "depth_max wait_mean_ms little_depth wait_p50_ms wait_p99_ms " \
            "out_of_stock", keys, " ");
        row = head;
        for (i = 1; i <= k; i++) row = row "\t" v[keys[i]];
        print row;
        split(head, h, "\t");
        printf "experiment: %-5s workers %-2s work_ms %-2s belt %-5s " \
            "offered %7s/s  fulfilled %7s/s  503 %5.1f%%  depth %6s  " \
            "wait %8s ms  (%.1f s)\n", part, h[1], h[2], h[3],
            v["offered_per_s"], v["fulfilled_per_s"], v["reject_share"] * 100,
            v["depth_mean"], v["wait_mean_ms"], t1 - t0 > "/dev/stderr";
    }' >>"$f"
}

has_part() {
    [[ " $PARTS " == *" $1 "* ]]
}

shown_rate="$RATE/s"
[ "$RATE" != 0 ] || shown_rate="as fast as answers come (unpaced)"
echo "experiment: parts [$PARTS], ${WINDOW}s windows, offered $shown_rate," \
    "$NCPU CPUs; output in $OUT" >&2
for part in sweep http belt fill; do
    rm -f "$OUT/$part.tsv"
done
if has_part sweep; then
    for w in $WORKERS; do
        for ms in $WORK_MS; do
            point sweep "$w" "$ms" 1024 "$RATE" 0
        done
    done
fi
if has_part http; then
    point http "$NCPU" 0 1024 0 0
fi
if has_part belt; then
    for cfg in $BELT_CONFIGS; do
        for cap in $BELT_CAPACITIES; do
            point belt "${cfg%%:*}" "${cfg##*:}" "$cap" "$RATE" 1
        done
    done
fi
if has_part fill; then
    fw=${FILL_CONFIG%%:*}
    fms=${FILL_CONFIG##*:}
    fceil=$(ceiling "$fw" "$fms")
    [ "$fceil" -gt 0 ] || die "EXP_FILL_CONFIG needs work_ms > 0"
    for load in $FILL_LOADS; do
        point fill "$fw" "$fms" "$FILL_CAPACITY" \
            "$(awk -v l="$load" -v c="$fceil" 'BEGIN { printf "%d", l * c + 0.5 }')" 1
    done
fi

STAMP="$(date -u '+%Y-%m-%d %H:%M UTC'), $NCPU CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
{
    echo "command: $EXP_COMMAND"
    echo "date: $STAMP"
} >"$OUT/README"
if command -v gnuplot >/dev/null; then
    gnuplot -e "dir='$OUT'" -e "stamp='$STAMP'" \
        -e "command='${EXP_COMMAND//\'/}'" -e "rate=$RATE" \
        "$HERE/plot.gp" || die "gnuplot failed"
    echo "experiment: charts in $OUT: throughput, queue_wait, rejections" \
        "(.svg and .png)" >&2
else
    echo "experiment: gnuplot not found, no charts (apt-get install" \
        "gnuplot-nox); data in $OUT/*.tsv" >&2
fi
ln -sfn "$(basename "$OUT")" "$(dirname "$OUT")/latest" 2>/dev/null || true
