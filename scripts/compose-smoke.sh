#!/usr/bin/env bash
# compose-smoke.sh - the scaled-out shop of compose.yaml, for real: Redis,
# three shopd replicas, the haproxy balancer.
#
# Needs `docker compose` (or DOCKER_COMPOSE="docker-compose"), curl and
# python3. On a machine with no Docker engine, the shared helper provides
# one, with local stand-ins for redis:7 and haproxy:2.6:
#
#   STANDINS="redis nginx haproxy" \
#       ../shared/docker/verify-dockerfile.sh --exec scripts/compose-smoke.sh
#
# What it checks:
#   1. `up -d --build --scale shopd=3`: three shopd containers run;
#   2. the balancer answers /readyz and reaches all three (each /stats
#      names its instance);
#   3. orders through the balancer land on all three instances
#      (accepted_by of the orders names three instances);
#   4. a hot product (the demo's truffles, 20 in stock) bought 60 times at
#      once is sold exactly 20 times and never oversold;
#   5. `docker kill` (SIGKILL) of one replica while its workers hold
#      orders (200 ms each) loses no 202'd order: every one reaches a final
#      status through the others (at least one was reclaimed from the dead
#      one) within reclaim_ms plus a margin;
#   6. `down -v` removes everything.
#
# Environment (optional): DOCKER (docker), DOCKER_COMPOSE ("docker
# compose"), READY_TIMEOUT (90 s), SMOKE_KEEP=0 (1: leave it running),
# SMOKE_LOG (a file to keep the containers' logs in).
# Exit status 0 when every check passed; the last line reads
# "compose-smoke: N passed, N failed".
set -euo pipefail

DOCKER=${DOCKER:-docker}
DOCKER_COMPOSE=${DOCKER_COMPOSE:-"$DOCKER compose"}
READY_TIMEOUT=${READY_TIMEOUT:-90}
SMOKE_KEEP=${SMOKE_KEEP:-0}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PROJECT=shopdsmoke$$
TMP=$(mktemp -d "${TMPDIR:-/tmp}/compose-smoke.XXXXXX")
PASS=0
FAIL=0

# A free port for the balancer, so a busy 8080 does not matter.
SHOPD_PORT_PUBLISHED=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export SHOPD_PORT_PUBLISHED
# Slow clerks (200 ms an order) and a short claim time, so the kill finds
# orders pending and the check does not wait long; appendfsync always, so
# a 202 is on disk.
export SHOPD_WORK_MS=200 SHOPD_RECLAIM_MS=1500 SHOPD_WORKERS=2
export REDIS_APPENDFSYNC=always
LB=http://127.0.0.1:$SHOPD_PORT_PUBLISHED

dc() { $DOCKER_COMPOSE -p "$PROJECT" "$@"; }
log() { printf 'compose-smoke: %s\n' "$*"; }
pass() { PASS=$((PASS + 1)); log "ok   $*"; }
fail() { FAIL=$((FAIL + 1)); log "FAIL $*"; }

cleanup() {
    if [ "$SMOKE_KEEP" != 1 ]; then
        if [ -n "$(dc ps -q 2>/dev/null)" ]; then
            dc logs --no-color -t >"$TMP/logs.txt" 2>&1 || true
            [ -z "${SMOKE_LOG:-}" ] || cp "$TMP/logs.txt" "$SMOKE_LOG" || true
        fi
        if [ "$FAIL" -gt 0 ]; then
            log "last lines of the logs:"
            tail -n 60 "$TMP/logs.txt" || true
        fi
        dc down -v --remove-orphans >/dev/null 2>&1 || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

# JSON field of stdin, e.g. jget accepted_by
jget() { python3 -c 'import json,sys; v=json.load(sys.stdin).get(sys.argv[1]); print("" if v is None else v)' "$1"; }

# POST /buy through the balancer; prints the order id of a 202, else "".
buy() {
    local out code try
    # A 503 says "retry in a second" (Retry-After: 1; the balancer also
    # answers 503 while its health checks catch up on a loaded machine), so
    # do what a client should: retry, a few times.
    for try in 1 2 3 4 5; do
        out=$(curl -s -m 10 -w '\n%{http_code}' -XPOST "$LB/buy" -d "$1") ||
            true
        code=${out##*$'\n'}
        [ "$code" = 503 ] || [ "$code" = 000 ] || break
        echo "compose-smoke: try $try of POST /buy got $code; retrying" >&2
        sleep 1
    done
    if [ "$code" = 202 ]; then
        printf '%s\n' "${out%$'\n'*}" | jget order_id
    else
        echo "compose-smoke: POST /buy got $code: ${out%$'\n'*}" >&2
        echo ""
    fi
}

# ---- 1. up --scale shopd=3 ------------------------------------------------
log "building and starting (project $PROJECT, balancer on $LB)"
if ! dc up -d --build --scale shopd=3 >"$TMP/up.txt" 2>&1; then
    cat "$TMP/up.txt"
    fail "docker compose up -d --build --scale shopd=3"
    exit 1
fi
n=$(dc ps -q shopd | wc -l)
[ "$n" -eq 3 ] && pass "up --scale shopd=3: 3 shopd containers" ||
    fail "up --scale shopd=3: $n shopd containers"

# ---- 2. the balancer reaches all three -------------------------------------
deadline=$(($(date +%s) + READY_TIMEOUT))
seen=""
while :; do
    inst=$(curl -s -m 2 "$LB/stats" | jget instance 2>/dev/null || true)
    if [ -n "$inst" ] && ! grep -qxF "$inst" <<<"$seen"; then
        seen=$(printf '%s\n%s' "$seen" "$inst" | sed '/^$/d')
    fi
    [ "$(grep -c . <<<"$seen")" -ge 3 ] && break
    if [ "$(date +%s)" -ge "$deadline" ]; then
        break
    fi
    sleep 0.2
done
count=$(grep -c . <<<"$seen" || true)
[ "$count" -ge 3 ] && pass "the balancer reaches 3 instances: $(tr '\n' ' ' <<<"$seen")" ||
    fail "the balancer reaches $count instances within ${READY_TIMEOUT}s"

# ---- 3. orders land on all three -------------------------------------------
: >"$TMP/ids"
for _ in $(seq 1 30); do
    id=$(buy '{"product":"banana","quantity":1}')
    [ -n "$id" ] && echo "$id" >>"$TMP/ids"
done
got=$(wc -l <"$TMP/ids")
by=$(while read -r id; do curl -s -m 5 "$LB/orders/$id" | jget accepted_by || true; done <"$TMP/ids" | sort -u | grep -c . || true)
[ "$got" -eq 30 ] && [ "$by" -ge 3 ] &&
    pass "30 orders through the balancer, accepted by $by instances" ||
    fail "$got of 30 orders got a 202, accepted by $by instances"

# ---- 4. a hot product is never oversold ------------------------------------
# The shop-wide figures in /stats are each instance's copy, refreshed every
# 250 ms: "the belt is empty" counts only in a copy that already holds
# every order accepted so far (the burst's included).
shop_figure() {
    curl -s -m 5 "$LB/stats" |
        python3 -c 'import json,sys; s=json.load(sys.stdin)["shop"]; print(s["accepted"], s["belt"])' 2>/dev/null ||
        echo "x x"
}
acc_before=$(shop_figure | cut -d' ' -f1)
seq 1 60 | xargs -P 8 -I{} curl -s -m 10 -o /dev/null -w '%{http_code}\n' \
    -XPOST "$LB/buy" -d '{"product":"truffle","quantity":1}' >"$TMP/hot" ||
    true
n202=$(grep -c '^202$' "$TMP/hot" || true)
deadline=$(($(date +%s) + 30))
while :; do
    read -r acc belt <<<"$(shop_figure)"
    [ "$acc" != x ] && [ "$acc_before" != x ] &&
        [ "$acc" -ge $((acc_before + n202)) ] && [ "$belt" = 0 ] && break
    [ "$(date +%s)" -lt "$deadline" ] || break
    sleep 0.2
done
prod=$(curl -s -m 5 "$LB/products/truffle")
stock=$(jget stock <<<"$prod" 2>/dev/null || echo "?")
sold=$(jget sold <<<"$prod" 2>/dev/null || echo "?")
[ "$n202" -eq 60 ] && [ "$stock" = 0 ] && [ "$sold" = 20 ] &&
    pass "60 concurrent truffle orders: 20 sold, stock 0, never oversold" ||
    fail "truffles: $n202 of 60 got 202, stock $stock, sold $sold (want 0 and 20)"

# ---- 5. kill -9 of one replica loses no 202 --------------------------------
victim=$(dc ps -q shopd | head -n 1 || true)
seq 1 60 | xargs -P 6 -I{} sh -c "curl -s -m 10 -XPOST '$LB/buy' -d '{\"product\":\"banana\",\"quantity\":1}'; echo" >"$TMP/burst" ||
    true &
burst=$!
# 60 orders of 200 ms on 3 x 2 workers: about 2 s of work; kill halfway.
sleep 1
$DOCKER kill --signal KILL "$victim" >/dev/null || fail "docker kill $victim"
killed=$(date +%s.%N)
wait "$burst" || true
python3 -c '
import json,sys
for line in open(sys.argv[1]):
    line=line.strip()
    try:
        d=json.loads(line)
    except ValueError:
        continue
    if "order_id" in d:
        print(d["order_id"])' "$TMP/burst" >"$TMP/burst_ids"
nb=$(wc -l <"$TMP/burst_ids")
log "burst done; checking $nb orders"
# One process polls every order until all are final (at most 60 s), and
# says how long after the kill the last one became final.
verdict=$(python3 - "$LB" "$killed" "$TMP/burst_ids" <<'PYEOF'
import json, sys, time, urllib.request
lb, killed, path = sys.argv[1], float(sys.argv[2]), sys.argv[3]
left = [l.strip() for l in open(path) if l.strip()]
deadline = time.time() + 60
while left and time.time() < deadline:
    still = []
    for oid in left:
        try:
            with urllib.request.urlopen("%s/orders/%s" % (lb, oid),
                                        timeout=5) as r:
                st = json.load(r).get("status")
        except Exception:
            st = None
        if st not in ("fulfilled", "out_of_stock"):
            still.append(oid)
    left = still
    if left:
        time.sleep(0.1)
print("%d %.1f" % (len(left), time.time() - killed))
PYEOF
) || verdict="? ?"
lost=${verdict%% *}
took=${verdict##* }
reclaimed=$(curl -s -m 5 "$LB/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["shop"]["reclaimed"])' 2>/dev/null || echo "?")
[ "$nb" -gt 0 ] && [ "$lost" = 0 ] && [ "$reclaimed" != "?" ] &&
    [ "$reclaimed" -ge 1 ] &&
    pass "docker kill of one replica: all $nb 202'd orders final ${took}s after the kill (reclaim_ms 1.5 s; reclaimed shop-wide: $reclaimed)" ||
    fail "docker kill of one replica: $lost of $nb 202'd orders not final after 60 s, reclaimed $reclaimed (want >= 1: the dead one's)"

# ---- 6. down -v --------------------------------------------------------------
if [ "$SMOKE_KEEP" != 1 ]; then
    dc logs --no-color -t >"$TMP/logs.txt" 2>&1 || true
    [ -z "${SMOKE_LOG:-}" ] || cp "$TMP/logs.txt" "$SMOKE_LOG" || true
    if dc down -v --remove-orphans >"$TMP/down.txt" 2>&1 &&
        [ -z "$(dc ps -q 2>/dev/null)" ]; then
        pass "down -v"
    else
        cat "$TMP/down.txt"
        fail "down -v"
    fi
fi

log "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
