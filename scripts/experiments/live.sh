#!/usr/bin/env bash
# live.sh - the shop floor, live (SPEC §11; `make experiment-live`): one
# shopd, an offered load above one elf's capacity, and the floor changed
# while it runs, drawn over time.
#
#   scripts/experiments/live.sh            # about 50 s; output in build/live/
#
# One elf at 10 ms per order serves 100 orders/s; wrk (paced by
# scripts/experiments/paced.lua) offers LIVE_RATE (default 250) per second,
# so the belt fills (Little's law: it grows by 150 orders a second until it
# is full, then 503 queue_full turns the rest away). live.py then PATCHes
# /admin/floor: 8 elves at 8 s (800/s of capacity: the belt drains), pause
# at 16 s (it fills again, 503s start), go on at 22 s, drop_rate 0.2 for 10 s
# at 26 s while a keyed client retries every dropped answer with its
# Idempotency-Key, faults end at 36 s. It samples /metrics every 0.25 s and
# checks at the end that every keyed order counts once and the invariants
# hold. gnuplot draws build/live/live.png (and .svg): belt depth, processed
# and 503 per second, replays, and the moment of each PATCH.
#
# Environment: SHOPD (default ./shopd), LIVE_RATE, LIVE_OUT (build/live).
# Only 127.0.0.1; every process this script starts is stopped by its PID.
set -euo pipefail
cd "$(dirname "$0")/../.."

SHOPD=${SHOPD:-./shopd}
RATE=${LIVE_RATE:-250}
OUT=${LIVE_OUT:-build/live}
CONNS=16
SECONDS_LOAD=44

die() { echo "experiment-live: $*" >&2; exit 1; }
command -v wrk >/dev/null || die "wrk not found (apt-get install wrk)"
command -v python3 >/dev/null || die "python3 not found"
command -v gnuplot >/dev/null || die "gnuplot not found (apt-get install gnuplot-nox)"
[ -x "$SHOPD" ] || die "$SHOPD not built (run make)"

PIDS_WHO=experiment-live
PIDS_TERM_TWICE=1
# shellcheck source=scripts/lib/pids.sh
. scripts/lib/pids.sh
# shellcheck source=scripts/lib/catalog.sh
. scripts/lib/catalog.sh

mkdir -p "$OUT"
write_catalog "$OUT/catalog.json" 100000000
token_file=$OUT/admin-token
# A fresh token each run, in a file only this user reads; never printed.
(umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$token_file")

log=$OUT/shopd.log
"$SHOPD" --bind 127.0.0.1 --port 0 --workers 1 --work-ms 10 \
    --queue-capacity 1024 --catalog "$OUT/catalog.json" \
    --admin-token-file "$token_file" >"$log" 2>&1 &
pid=$!
PIDS+=("$pid")
port=$(listening_port "$pid" "$log") || die "shopd did not start"

PACED_RATE=$RATE PACED_CONNECTIONS=$CONNS wrk -t1 -c$CONNS \
    -d${SECONDS_LOAD}s --timeout 5s -s scripts/experiments/paced.lua \
    "http://127.0.0.1:$port/buy" >"$OUT/wrk.txt" 2>&1 &
wrk_pid=$!
PIDS+=("$wrk_pid")

rc=0
python3 scripts/experiments/live.py "$port" "$token_file" "$OUT" |
    tee "$OUT/result.txt" || rc=$?
wait "$wrk_pid" 2>/dev/null || true
forget_pid "$wrk_pid"
stop_pid "$pid" 10 2 || true

events=$(awk -F'\t' '{printf "%s%s:%s", (NR>1?",":""), $1, $2}' "$OUT/events.tsv")
for ext in png svg; do
    gnuplot -e "dir='$OUT'" -e "ext='$ext'" -e "events='$events'" \
        -e "rate=$RATE" scripts/experiments/live.gp
done
echo "experiment-live: chart $OUT/live.png, data $OUT/timeline.tsv"
exit "$rc"
