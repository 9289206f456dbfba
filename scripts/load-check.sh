#!/usr/bin/env bash
# load-check.sh SHOPD - a bounded wrk load against a fresh SHOPD (typically
# a sanitizer build), then SIGTERM. Fails if shopd does not exit 0 after a
# clean drain, or if its log holds any sanitizer report.
# LOAD_SECONDS (default 10) bounds the load.
set -euo pipefail
shopd=${1:?usage: load-check.sh SHOPD}
seconds=${LOAD_SECONDS:-10}
here=$(cd "$(dirname "$0")" && pwd)
"$here/deps.sh" wrk:wrk

log=$(mktemp)
pid=""
cleanup() {
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
    rm -f "$log"
}
trap cleanup EXIT

"$shopd" --bind 127.0.0.1 --port 0 --workers 2 --http-threads 2 \
    2>"$log" &
pid=$!
port=""
for _ in $(seq 1 300); do
    port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log")
    [ -n "$port" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$port" ]; then
    echo "load-check: shopd did not start"; cat "$log"; exit 1
fi

wrk -t2 -c64 -d"${seconds}s" -s "$here/wrk/buy.lua" \
    "http://127.0.0.1:$port/buy" | sed 's/^/load-check: /'
curl -fsS "http://127.0.0.1:$port/stats" >/dev/null

kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=""
if grep -Eq 'Sanitizer|runtime error:|WARNING: ThreadSanitizer' "$log"; then
    echo "load-check: FAIL: sanitizer report"; cat "$log"; exit 1
fi
if [ "$status" -ne 0 ] || ! grep -q 'drained .*left=0' "$log"; then
    echo "load-check: FAIL: exit status $status"; tail -20 "$log"; exit 1
fi
grep 'drained' "$log" | sed 's/^/load-check: /'
echo "load-check: 1 passed, 0 failed"
