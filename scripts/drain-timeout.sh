#!/usr/bin/env bash
# drain-timeout.sh SHOPD - GNU timeout around a loaded shopd loses no order.
#
# `timeout -s TERM` sends SIGTERM to shopd, then once more to its whole
# process group, microseconds apart: shopd must take the two as one
# request and drain (a second, different request would exit at once and
# lose what is on the belt). Here shopd's belt is full when the signal
# comes (2 workers x 1 ms against wrk's load), so a skipped drain would
# show as left > 0. Fails unless shopd exits 0 with its final line saying
# accepted == processed and left=0, and its log holds no sanitizer report.
# DRAIN_TIMEOUT_S (default 4) is when timeout fires.
set -euo pipefail
shopd=${1:?usage: drain-timeout.sh SHOPD}
after=${DRAIN_TIMEOUT_S:-4}
here=$(cd "$(dirname "$0")" && pwd)
"$here/deps.sh" wrk:wrk
# shellcheck source=scripts/lib/pids.sh
. "$here/lib/pids.sh"
PIDS_WHO=drain-timeout

dir=$(mktemp -d)
pid=""
cleanup() {
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

# setsid: timeout and shopd get a process group of their own, so the
# group-wide SIGTERM reaches them and not this script.
setsid timeout --preserve-status -s TERM "$after" "$shopd" --bind 127.0.0.1 \
    --port 0 --workers 2 --work-ms 1 --queue-capacity 4096 \
    --http-threads 2 2>"$dir/log" &
pid=$!
port=$(listening_port "$pid" "$dir/log")

wrk -t2 -c32 -d"$((after + 3))s" -s "$here/wrk/buy.lua" \
    "http://127.0.0.1:$port/buy" >"$dir/wrk" 2>&1 || true
status=0
wait "$pid" || status=$?
pid=""

log=$(cat "$dir/log")
fail() {
    echo "drain-timeout: FAIL: $*"
    tail -n 20 "$dir/log"
    exit 1
}
if grep -qE 'Sanitizer|runtime error' "$dir/log"; then
    fail "sanitizer report"
fi
[ "$status" -eq 0 ] || fail "shopd under timeout exited $status, not 0"
line=$(grep -E 'drained accepted=' <<<"$log" | tail -n 1) ||
    fail "no final 'drained accepted=...' line"
acc=$(sed -n 's/.* accepted=\([0-9]*\).*/\1/p' <<<"$line")
proc=$(sed -n 's/.* processed=\([0-9]*\).*/\1/p' <<<"$line")
left=$(sed -n 's/.* left=\([0-9]*\).*/\1/p' <<<"$line")
draining=$(sed -n 's/.*SIGTERM: draining \([0-9]*\) order.*/\1/p' <<<"$log" |
    head -n 1)
[ -n "$acc" ] && [ "$acc" -gt 0 ] || fail "no order was accepted"
[ "$acc" = "$proc" ] || fail "accepted=$acc but processed=$proc"
[ "$left" = 0 ] || fail "left=$left orders that got a 202"
echo "drain-timeout: timeout -s TERM $after: exit 0, drained" \
    "${draining:-?} orders on the belt; accepted=$acc processed=$proc" \
    "left=0 (0 lost)"
