#!/usr/bin/env bash
# api-contract.sh SHOPD - every route of shopd through a contract-testing
# proxy: prism (npm @stoplight/prism-cli, `make api-contract` installs it
# under build/ and sets PRISM) in proxy mode in front of a real SHOPD,
# validating each request and each answer against server/api/openapi.json.
#
# prism 5.14.2 reports what does not conform in the `sl-violations` header
# of the answer it relays (a JSON list; each item's "location" starts with
# "request" or "response"). It runs without --errors, so that a request
# the document itself calls invalid (quantity 0, a malformed id) still
# reaches shopd and its 400 is checked too; for such a request (marked
# `bad` below) only violations of the answer count, for every other one any
# violation fails. The status must also be one of those the request
# expects.
#
# shopd runs in turn on one port behind one proxy, each run with its own
# settings: the memory store, the sqlite store, the Redis store (then
# Redis goes away: 503 store_unavailable), a slow belt of one slot
# (503 queue_full, then a drain: 503 shutting_down), and no admin token
# (403 admin_disabled). /admin/floor is exercised only once shopd routes
# it. What prism 5.14.2 cannot relay is checked directly against shopd:
# HEAD (prism parses the empty body of a JSON HEAD answer and fails), the
# /events stream (it waits for the body to end), and a path outside the
# document (404 not_found: prism reports "route not found").
#
# Every process it starts is stopped by its PID. Exit status 0 when every
# check passed.
set -euo pipefail
cd "$(dirname "$0")/.."

SHOPD=${1:-./shopd}
PRISM=${PRISM:?set PRISM to the prism binary (make api-contract does)}
PIDS_WHO=api-contract
# shellcheck source=scripts/lib/pids.sh
. scripts/lib/pids.sh

mkdir -p build
WORK=$(mktemp -d "$PWD/build/api-contract.XXXXXX")
TOKEN=api-contract-token-0123456789
AUTH="Authorization: Bearer $TOKEN"
JSON="Content-Type: application/json"
TEXT="Content-Type: text/plain"
FAILS=0
CHECKS=0
(umask 077 && echo "$TOKEN" >"$WORK/token")
SHOPD_PID=''
PORT=0

fail() {
    echo "FAIL: $*" >&2
    FAILS=$((FAILS + 1))
}

# A free TCP port on 127.0.0.1 (node is there: prism runs on it).
free_port() {
    node -e 'const s = require("net").createServer();
             s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}

# start_shopd NAME ARGS...: shopd on PORT (a free one the first time).
start_shopd() {
    local name=$1
    shift
    local log="$WORK/shopd-$name.log"
    : >"$log"
    "$SHOPD" --bind 127.0.0.1 --port "$PORT" --http-threads 2 "$@" \
        >"$log" 2>&1 &
    SHOPD_PID=$!
    PIDS+=("$SHOPD_PID")
    PORT=$(listening_port "$SHOPD_PID" "$log")
    DIRECT="http://127.0.0.1:$PORT"
    echo "--- $name: shopd $* (pid $SHOPD_PID, port $PORT)"
}

stop_shopd() {
    stop_pid "$SHOPD_PID" 30 || fail "shopd exited with status $?"
}

start_prism() {
    local pport
    pport=$(free_port)
    "$PRISM" proxy --host 127.0.0.1 --port "$pport" \
        server/api/openapi.json "$DIRECT" >"$WORK/prism.log" 2>&1 &
    PRISM_PID=$!
    PIDS+=("$PRISM_PID")
    PROXY="http://127.0.0.1:$pport"
    local i
    for ((i = 0; i < 300; i++)); do
        curl -s -o /dev/null "$PROXY/healthz" && return 0
        kill -0 "$PRISM_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "api-contract: prism did not start; its log:" >&2
    cat "$WORK/prism.log" >&2
    return 1
}

# check KIND STATUSES METHOD PATH [CURL ARGS...]: one request through the
# proxy. KIND is ok (the request conforms: any violation fails) or bad
# (the document calls the request invalid: violations of the answer fail).
# STATUSES: the statuses it may get, "202" or "202|503". The answer's
# headers and body are left in $WORK/h and $WORK/b.
check() {
    send "$@"
    judge "$@"
}

# send/judge: check in two halves, so that requests can be sent at once
# (AT names their files: $WORK/h$AT, $WORK/b$AT, $WORK/s$AT).
send() {
    local method=$3 path=$4
    shift 4
    curl -s -o "$WORK/b${AT:-}" -D "$WORK/h${AT:-}" -w '%{http_code}' \
        --max-time 15 -X "$method" "$PROXY$path" "$@" >"$WORK/s${AT:-}" || true
}

judge() {
    local kind=$1 want=$2 method=$3 path=$4
    CHECKS=$((CHECKS + 1))
    local code
    code=$(cat "$WORK/s${AT:-}")
    local what="$method $path"
    if ! [[ "|$want|" == *"|$code|"* ]]; then
        fail "$what: status $code, expected $want; body: $(head -c 300 "$WORK/b${AT:-}")"
    fi
    local v
    v=$(sed -n 's/^sl-violations: *//Ip' "$WORK/h${AT:-}" | tr -d '\r')
    [ -z "$v" ] && return 0
    if [ "$kind" = ok ] || [[ "$v" == *'"location":["response"'* ]]; then
        fail "$what ($code): $v"
    fi
}

# header NAME: the value of header NAME in the last answer.
header() {
    sed -n "s/^$1: *//Ip" "$WORK/h" | tr -d '\r' | head -n 1
}

expect_header() {
    local got
    got=$(header "$1")
    [ "$got" = "$2" ] || fail "after the last request: $1 is '$got', expected '$2'"
}

# direct STATUS METHOD PATH [CURL ARGS]: straight to shopd (what prism
# cannot relay); checks the status only.
direct() {
    local want=$1 method=$2 path=$3
    shift 3
    CHECKS=$((CHECKS + 1))
    local code
    if [ "$method" = HEAD ]; then
        code=$(curl -s -o "$WORK/b" -D "$WORK/h" -w '%{http_code}' \
            --max-time 5 -I "$DIRECT$path" "$@") || true
    else
        code=$(curl -s -o "$WORK/b" -D "$WORK/h" -w '%{http_code}' \
            --max-time 5 -X "$method" "$DIRECT$path" "$@") || true
    fi
    [ "$code" = "$want" ] || fail "direct $method $path: status $code, expected $want"
}

# Wait until every accepted order is processed (the belt and the workers
# are idle), read from /stats.
wait_idle() {
    local i
    for ((i = 0; i < 200; i++)); do
        curl -s "$DIRECT/stats" | grep -q '"depth":0,' &&
            curl -s "$DIRECT/stats" | grep -q '"in_flight":0}' && return 0
        sleep 0.05
    done
    fail "the belt did not empty"
}

floor_routed() {
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "$AUTH" \
        "$DIRECT/admin/floor") || true
    [ "$code" != 404 ]
}

# --- the requests ---------------------------------------------------------

reads() {
    check ok 200 GET /healthz
    check ok 200 GET /readyz
    check ok 200 GET /stats
    check ok 200 GET /metrics
    check ok 200 GET /
    check ok 200 GET /openapi.json
    check ok 200 GET /products
    check ok 200 GET /products/apple
    check ok 404 GET /products/no-such-sku
    check bad 404 GET '/products/bad!sku'
    check ok 404 GET /orders/999999
    check bad 400 GET /orders/abc
    check bad 404 GET /orders/0
}

buys() {
    check ok 202 POST /buy -H "$JSON" -d '{"product":"apple","quantity":2}'
    expect_header Location /orders/1
    # curl -d sends application/x-www-form-urlencoded: read as JSON.
    check ok 202 POST /buy -d '{"product":"banana","quantity":1,"customer":"ada"}'
    check ok 202 POST /buy -H 'Content-Type: text/plain' \
        -d '{"product":"fig","quantity":1,"customer":null,"extra":[1]}'
    wait_idle
    check ok 200 GET /orders/1
    check ok 200 GET /orders/2
    check bad 400 POST /buy -H "$JSON" -d 'nope'
    check bad 400 POST /buy -H "$JSON" -d '{"product":"apple","quantity":0}'
    check bad 400 POST /buy -H "$JSON" -d '{"product":"apple","quantity":1.5}'
    check bad 400 POST /buy -H "$JSON" -d '{"product":"apple"}'
    # prism parses a JSON body and sends it on re-encoded: what must reach
    # shopd byte for byte goes as text/plain (the document's */*).
    check ok 400 POST /buy -H "$TEXT" -d '{"product":"apple","product":"fig","quantity":1}'
    check ok 404 POST /buy -H "$JSON" -d '{"product":"no-such-sku","quantity":1}'
    # A body over --max-body (1024 here): valid JSON, padded.
    local pad
    pad=$(printf '%*s' 2000 '')
    check ok 413 POST /buy -H "$TEXT" -d "{\"product\":\"apple\",\"quantity\":1}$pad"
    # Connection is hop-by-hop: prism does not relay it; shopd sends it.
    direct 413 POST /buy -d "{\"product\":\"apple\",\"quantity\":1}$pad"
    expect_header Connection close
    # Out of stock is a final status, not an error: the order is taken.
    check ok 202 POST /buy -H "$JSON" -d '{"product":"truffle","quantity":1000}'
}

keys() {
    local k="contract-$1"
    check ok 202 POST /buy -H "$JSON" -H "Idempotency-Key: $k" \
        -d '{"product":"kiwi","quantity":1}'
    check ok 202 POST /buy -H "$JSON" -H "Idempotency-Key: \"$k\"" \
        -d '{"quantity":1, "product":"kiwi"}'
    expect_header Idempotent-Replayed true
    check ok 422 POST /buy -H "$JSON" -H "Idempotency-Key: $k" \
        -d '{"product":"kiwi","quantity":2}'
    check bad 400 POST /buy -H "$JSON" -H 'Idempotency-Key: two words' \
        -d '{"product":"kiwi","quantity":1}'
    # Two requests with one key at once: the second may find the first
    # still being answered (409, Retry-After: 1) or answered (a replay).
    local k2="contract-race-$1" a senders=()
    for a in 1 2; do
        AT=$a send ok '202|409' POST /buy -H "$JSON" -H "Idempotency-Key: $k2" \
            -d '{"product":"lemon","quantity":1}' &
        senders+=($!)
    done
    wait "${senders[@]}"
    for a in 1 2; do
        AT=$a judge ok '202|409' POST /buy
    done
}

restocks() {
    local k="restock-$1"
    check ok 200 POST /products/apple/restock -H "$AUTH" -H "$JSON" -d '{"quantity":5}'
    check ok 200 POST /products/apple/restock -H "$AUTH" -d '{"quantity":5}' \
        -H "Idempotency-Key: $k"
    check ok 200 POST /products/apple/restock -H "$AUTH" -d '{"quantity":5}' \
        -H "Idempotency-Key: $k"
    expect_header Idempotent-Replayed true
    check ok 422 POST /products/apple/restock -H "$AUTH" -d '{"quantity":6}' \
        -H "Idempotency-Key: $k"
    check bad 401 POST /products/apple/restock -H "$JSON" -d '{"quantity":5}'
    expect_header WWW-Authenticate Bearer
    check ok 401 POST /products/apple/restock -H 'Authorization: Bearer wrong-token-0123456789' \
        -H "$JSON" -d '{"quantity":5}'
    check ok 404 POST /products/no-such-sku/restock -H "$AUTH" -H "$JSON" \
        -d '{"quantity":5}'
    check bad 400 POST /products/apple/restock -H "$AUTH" -H "$JSON" -d '{"quantity":0}'
    check bad 400 POST /products/apple/restock -H "$AUTH" -H "$JSON" -d '[]'
    check bad 400 POST /products/apple/restock -H "$AUTH" -H "$JSON" \
        -H 'Idempotency-Key: two words' -d '{"quantity":1}'
}

not_allowed() {
    check ok 405 GET /buy
    expect_header Allow POST
    check ok 405 PUT /buy
    check ok 405 DELETE /buy
    check ok 405 GET /products/apple/restock
    expect_header Allow POST
    check ok 405 PATCH /products/apple/restock
    local p
    for p in /stats /metrics /healthz /readyz / /events /openapi.json \
        /products /products/apple /orders/1; do
        check ok 405 POST "$p"
        expect_header Allow 'GET, HEAD'
        check ok 405 PUT "$p"
        check ok 405 PATCH "$p"
        check ok 405 DELETE "$p"
    done
}

floor() {
    floor_routed || {
        echo "    (GET /admin/floor answers 404: not routed here, skipped)"
        return 0
    }
    check ok 200 GET /admin/floor -H "$AUTH"
    check bad 401 GET /admin/floor
    expect_header WWW-Authenticate Bearer
    check ok 200 PATCH /admin/floor -H "$AUTH" -H "$JSON" -d '{"workers":3}'
    check ok 200 PATCH /admin/floor -H "$AUTH" -d '{"work_ms":0,"paused":false}'
    check bad 400 PATCH /admin/floor -H "$AUTH" -H "$JSON" -d '{"workers":0}'
    check bad 400 PATCH /admin/floor -H "$AUTH" -H "$JSON" -d 'nope'
    check ok 405 PUT /admin/floor -H "$AUTH"
    expect_header Allow 'GET, PATCH'
    check ok 405 POST /admin/floor -H "$AUTH"
    check ok 405 DELETE /admin/floor -H "$AUTH"
    # Every order an injected fault: 503 injected_fault, then none.
    check ok 200 PATCH /admin/floor -H "$AUTH" -H "$JSON" \
        -d '{"faults":{"error_rate":1,"for_s":60}}'
    check ok 503 POST /buy -H "$JSON" -d '{"product":"apple","quantity":1}'
    expect_header Retry-After 1
    check ok 200 PATCH /admin/floor -H "$AUTH" -H "$JSON" \
        -d '{"faults":{"error_rate":0}}'
    # Paused elves: the belt fills, then 503 queue_full.
    check ok 200 PATCH /admin/floor -H "$AUTH" -H "$JSON" -d '{"paused":true}'
    local i
    for ((i = 0; i < 4; i++)); do
        check ok '202|503' POST /buy -H "$JSON" -d '{"product":"apple","quantity":1}'
    done
    [[ "$(cat "$WORK/b")" == *queue_full* ]] || fail "a paused belt of 2 slots did not fill"
    check ok 200 PATCH /admin/floor -H "$AUTH" -H "$JSON" -d '{"paused":false}'
    check ok 200 GET /stats
}

outside() {
    direct 404 GET /no-such-path
    grep -q '"error":"not_found"' "$WORK/b" || fail "GET /no-such-path: not not_found"
    local p
    for p in /stats /metrics /healthz /readyz / /events /openapi.json \
        /products /products/apple /orders/1; do
        direct 200 HEAD "$p"
    done
    direct 404 HEAD /orders/999999
    direct 405 HEAD /buy
    # The event stream: a few ticks, then the client hangs up.
    CHECKS=$((CHECKS + 1))
    curl -s -N --max-time 1 -D "$WORK/eh" "$DIRECT/events" >"$WORK/events" || true
    grep -qi '^content-type: text/event-stream' "$WORK/eh" ||
        fail "GET /events: not text/event-stream"
    grep -q '^data: {"uptime_s":' "$WORK/events" || fail "GET /events: no stats event"
}

# The general run, against each store.
general() {
    reads
    buys
    keys "$1"
    restocks "$1"
    not_allowed
    floor
    outside
}

# --- the runs -----------------------------------------------------------

start_shopd memory --store memory --workers 2 --queue-capacity 2 \
    --max-body 1024 --admin-token-file "$WORK/token"
start_prism
general memory
stop_shopd

rm -f "$WORK/shop.db"
start_shopd sqlite --store "sqlite:$WORK/shop.db" --sync normal --workers 2 \
    --queue-capacity 2 --max-body 1024 --admin-token-file "$WORK/token"
general sqlite
check ok 200 GET /stats
stop_shopd

# Redis (when redis-server is installed; `make deps` installs it): the
# general run, then Redis goes away: writes answer 503 store_unavailable
# (or 504 outcome_unknown), /readyz 503, /healthz and /stats 200.
if command -v redis-server >/dev/null 2>&1; then
    mkdir -p "$WORK/redis"
    redis-server --port 0 --unixsocket "$WORK/redis/sock" --unixsocketperm 700 \
        --save '' --appendonly no --dir "$WORK/redis" --daemonize no \
        --logfile "$WORK/redis/log" &
    REDIS_PID=$!
    PIDS+=("$REDIS_PID")
    for ((i = 0; i < 100; i++)); do
        [ -S "$WORK/redis/sock" ] && break
        sleep 0.05
    done
    start_shopd redis --store "unix://$WORK/redis/sock" --workers 2 \
        --queue-capacity 2 --max-body 1024 --admin-token-file "$WORK/token"
    general redis
    stop_pid "$REDIS_PID" 10 || true
    for ((i = 0; i < 100; i++)); do
        curl -s "$DIRECT/readyz" | grep -q store_unavailable && break
        sleep 0.05
    done
    check ok '503|504' POST /buy -H "$JSON" -d '{"product":"apple","quantity":1}'
    check ok '503|504' POST /products/apple/restock -H "$AUTH" -H "$JSON" \
        -d '{"quantity":1}'
    check ok 503 GET /readyz
    check ok 200 GET /healthz
    check ok 200 GET /stats
    check ok '200|503' GET /orders/1
    check ok '200|503' GET /products
    check ok '200|503' GET /products/apple
    # It cannot hand its belt to a store that is gone: any exit status.
    stop_pid "$SHOPD_PID" 30 || true
else
    echo "--- redis: redis-server is not installed, skipped"
fi

# A belt of one slot and one slow worker: the third order finds it full.
# Then SIGTERM: while the belt drains, new work answers 503 shutting_down.
start_shopd belt --workers 1 --queue-capacity 1 --work-ms 3000 \
    --admin-token-file "$WORK/token"
for i in 1 2 3 4; do
    check ok '202|503' POST /buy -H "$JSON" -d '{"product":"apple","quantity":1}'
    [[ "$(cat "$WORK/b")" == *queue_full* ]] && break
done
[[ "$(cat "$WORK/b")" == *queue_full* ]] || fail "a belt of one slot did not fill"
expect_header Retry-After 1
kill -TERM "$SHOPD_PID"
for ((i = 0; i < 50; i++)); do
    curl -s "$DIRECT/readyz" | grep -q shutting_down && break
    sleep 0.02
done
check ok 503 POST /buy -H "$JSON" -d '{"product":"apple","quantity":1}'
# A restock is not an order: the memory store still takes it.
check ok '200|503' POST /products/apple/restock -H "$AUTH" -H "$JSON" -d '{"quantity":1}'
check ok 503 GET /readyz
check ok 200 GET /healthz
check ok 200 GET /stats
wait "$SHOPD_PID" || fail "the drained shopd exited with status $?"
forget_pid "$SHOPD_PID"

# No admin token: the admin routes are off.
start_shopd noadmin
check ok 403 POST /products/apple/restock -H "$AUTH" -H "$JSON" -d '{"quantity":1}'
if floor_routed; then
    check ok 403 GET /admin/floor -H "$AUTH"
    check ok 403 PATCH /admin/floor -H "$AUTH" -H "$JSON" -d '{"workers":2}'
fi
stop_shopd
stop_pid "$PRISM_PID" 10 || true

if [ "$FAILS" -ne 0 ]; then
    echo "api-contract: $CHECKS checks, $FAILS failed (logs in $WORK)" >&2
    exit 1
fi
echo "api-contract: $CHECKS checks, every request and answer conforms to server/api/openapi.json"
rm -rf "$WORK"
