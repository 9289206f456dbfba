#!/usr/bin/env bash
# docker-smoke.sh - build the shopd image and check what a Docker user relies on.
#
# Needs a working `docker` command (or DOCKER=podman) and curl. From the
# project root (any working directory works; the script finds the root):
#
#   scripts/docker-smoke.sh
#
# On a machine with no Docker engine but podman, let the shared helper provide
# a Docker-compatible engine for the duration of the run:
#
#   ../shared/docker/verify-dockerfile.sh --exec scripts/docker-smoke.sh
#
# What it does:
#   1. docker build -t shopd-smoke:<pid> .   (runs the unit tests inside)
#   2. checks the image: non-root USER, EXPOSE 8080, a HEALTHCHECK, no compiler
#   3. run A, defaults: -p 127.0.0.1:<free port>:8080; waits for /healthz;
#      POSTs orders (each must get 202); reads /stats; runs the image's
#      HEALTHCHECK command with `docker exec`; `docker stop -t 10` (Docker's
#      default grace, given explicitly - see stop_and_check);
#      exit code 0; the log's "drained" line says left=0 and
#      processed == accepted == the number of 202s.
#   4. run B, configured: -e SHOPD_WORKERS=1 -e SHOPD_WORK_MS=20 and a catalog
#      mounted with -v ... -e SHOPD_CATALOG=...; checks /stats and /products
#      show the settings; POSTs a burst from 4 concurrent clients so the
#      belt still holds orders when `docker stop` arrives; the drain must
#      finish them all and exit 0.
#   5. run C, durable: a named volume on /data and
#      -e SHOPD_STORE=sqlite:/data/shop.db -e SHOPD_SYNC=full; buys, then
#      `docker stop` + `docker start`: the stock and the orders are still
#      there. Then a burst with a slow worker (SHOPD_WORK_MS) so the belt
#      holds orders, `docker kill` (SIGKILL) and `docker start`: every order
#      id that got a 202 is found and reaches a final status, and stock +
#      sold still equals the initial stock.
#   Containers, the volume, the image tag and temporary files are removed
#   on exit. The
#   build stage stays as shopd-smoke-build:cache (about 360 MB) so the next
#   run builds warm; `docker rmi shopd-smoke-build:cache` removes it.
#
# Environment (optional):
#   DOCKER=docker          the CLI to use
#   SMOKE_BUILD_ARGS=""    extra `docker build` arguments (word-split), e.g.
#                          "--build-arg SHOPD_TEST=test"
#   SMOKE_KEEP_IMAGE=0     1: keep the image tag after the run
#   SMOKE_ORDERS=20        orders POSTed in run A
#   SMOKE_BURST=60         orders POSTed in run B
#   READY_TIMEOUT=30       seconds to wait for /healthz
#   STOP_GRACE=10          docker stop -t (Docker's default grace period)
#
# Exit status 0 when every check passed. The last line reads
# "docker-smoke: N passed, N failed".
set -euo pipefail

DOCKER=${DOCKER:-docker}
SMOKE_BUILD_ARGS=${SMOKE_BUILD_ARGS:-}
SMOKE_KEEP_IMAGE=${SMOKE_KEEP_IMAGE:-0}
SMOKE_ORDERS=${SMOKE_ORDERS:-20}
SMOKE_BURST=${SMOKE_BURST:-60}
READY_TIMEOUT=${READY_TIMEOUT:-30}
STOP_GRACE=${STOP_GRACE:-10}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TAG=shopd-smoke:$$
CACHE_TAG=shopd-smoke-build:cache
NAME_A=shopd-smoke-$$-a
NAME_B=shopd-smoke-$$-b
NAME_C=shopd-smoke-$$-c
VOLUME=shopd-smoke-$$-data
TMP=$(mktemp -d "${TMPDIR:-/tmp}/shopd-smoke.XXXXXX")
T0=$(date +%s)

passed=0
failed=0
failures=()

say() { printf 'docker-smoke: %s\n' "$*"; }
pass() { passed=$((passed + 1)); printf 'docker-smoke: PASS %s\n' "$*"; }
fail() {
    failed=$((failed + 1))
    failures+=("$*")
    printf 'docker-smoke: FAIL %s\n' "$*"
}
# check NAME CONDITION...: PASS or FAIL NAME by the condition's status.
check() {
    local what=$1
    shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}

summary() {
    say "---- summary ($(($(date +%s) - T0)) s) ----"
    local f
    for f in "${failures[@]+"${failures[@]}"}"; do say "  failed: $f"; done
    if [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]; then
        say "PASS"
    else
        say "FAIL"
    fi
    say "$passed passed, $failed failed"
}

cleanup() {
    local rc=$?
    set +e
    "$DOCKER" rm -f "$NAME_A" "$NAME_B" "$NAME_C" >/dev/null 2>&1
    "$DOCKER" volume rm -f "$VOLUME" >/dev/null 2>&1
    if [ "$SMOKE_KEEP_IMAGE" != 1 ]; then
        "$DOCKER" rmi -f "$TAG" >/dev/null 2>&1
    fi
    # Earlier runs' build stages, now untagged (the current one keeps
    # $CACHE_TAG): only dangling images with the build-stage label go.
    "$DOCKER" image prune -f --filter label=shopd.stage=build >/dev/null 2>&1
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Stop here: the remaining checks cannot run.
fatal() {
    fail "$*"
    summary
    exit 1
}

# ------------------------------------------------------------ helpers
# A TCP port on 127.0.0.1 that nothing listens on (the caller retries if
# another process takes it before docker does).
free_port() {
    local p _
    for _ in $(seq 200); do
        p=$((20000 + (RANDOM % 20000)))
        if command -v ss >/dev/null 2>&1; then
            ss -ltnH "( sport = :$p )" 2>/dev/null | grep -q . && continue
        fi
        # Nothing answers a connect: take it.
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

# run_container NAME ARGS...: docker run -d with a fresh free port (retried
# when the port was taken meanwhile); sets PORT and URL.
run_container() {
    local name=$1 try
    shift
    for try in 1 2 3 4 5; do
        PORT=$(free_port) || return 1
        "$DOCKER" rm -f "$name" >/dev/null 2>&1 || true
        if "$DOCKER" run -d --name "$name" -p "127.0.0.1:$PORT:8080" \
            "$@" "$TAG" >"$TMP/run.out" 2>&1; then
            URL=http://127.0.0.1:$PORT
            return 0
        fi
        say "docker run on port $PORT failed (try $try): $(tail -1 "$TMP/run.out")"
    done
    return 1
}

state_of() { "$DOCKER" inspect -f '{{.State.Status}}' "$1" 2>/dev/null || echo gone; }

show_logs() {
    say "last log lines of $1:"
    "$DOCKER" logs "$1" 2>&1 | tail -20 | sed 's/^/    /'
}

# wait_ready NAME: until /healthz answers 2xx, bounded by READY_TIMEOUT.
wait_ready() {
    local name=$1 deadline=$(($(date +%s) + READY_TIMEOUT)) t0
    t0=$(date +%s.%N)
    while [ "$(date +%s)" -lt "$deadline" ]; do
        if [ "$(state_of "$name")" != running ]; then
            show_logs "$name"
            return 1
        fi
        if curl -fsS -m 2 -o /dev/null "$URL/healthz" 2>/dev/null; then
            READY_S=$(awk -v a="$t0" -v b="$(date +%s.%N)" \
                'BEGIN{printf "%.1f", b-a}')
            return 0
        fi
        sleep 0.2
    done
    show_logs "$name"
    return 1
}

# post_orders N SKU: POST N orders of quantity 1, sequentially; sets CODES
# to the number of 202 answers and OTHER to the other status codes seen.
post_orders() {
    local n=$1 sku=$2 i code
    CODES=0
    OTHER=
    for ((i = 1; i <= n; i++)); do
        code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' -X POST \
            "$URL/buy" -d "{\"product\":\"$sku\",\"quantity\":1,\"customer\":\"smoke-$i\"}") ||
            code=curl-failed
        if [ "$code" = 202 ]; then CODES=$((CODES + 1)); else OTHER+=" $code"; fi
    done
}

# post_burst N SKU: POST N orders from 4 concurrent clients, so orders
# arrive faster than one slow worker takes them; sets CODES and OTHER.
post_burst() {
    local n=$1 sku=$2 k i
    for k in 1 2 3 4; do
        (
            for ((i = k; i <= n; i += 4)); do
                curl -s -m 5 -o /dev/null -w '%{http_code}\n' -X POST "$URL/buy" \
                    -d "{\"product\":\"$sku\",\"quantity\":1}" || echo curl-failed
            done >"$TMP/burst.$k"
        ) &
    done
    wait
    CODES=$(cat "$TMP"/burst.* | grep -c '^202$' || true)
    OTHER=$(cat "$TMP"/burst.* | grep -v '^202$' | sort | uniq -c | tr -s ' \n' ' ' || true)
}

# json_num KEY FILE: the first number after "KEY": in FILE.
json_num() {
    grep -o "\"$1\": *[0-9.]*" "$2" | head -1 | sed 's/.*: *//'
}

# stop_and_check NAME EXPECT_ACCEPTED: docker stop, then the exit code, the
# stop time and the final "drained" log line. The grace period is given
# explicitly as Docker's default, 10 s: podman's Docker API (4.3) creates
# containers with a stop timeout of 0, so a bare `docker stop` there sends
# SIGKILL right after SIGTERM and no program could drain.
stop_and_check() {
    local name=$1 want=$2 t0 stop_s rc line acc proc left
    t0=$(date +%s.%N)
    "$DOCKER" stop -t "$STOP_GRACE" "$name" >/dev/null
    stop_s=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
    rc=$("$DOCKER" inspect -f '{{.State.ExitCode}}' "$name")
    "$DOCKER" logs "$name" >"$TMP/$name.log" 2>&1 || true
    check "$name: docker stop took ${stop_s}s, exit code $rc (want 0)" \
        [ "$rc" = 0 ]
    if [ "$rc" != 0 ]; then show_logs "$name"; fi
    awk -v s="$stop_s" -v g="$STOP_GRACE" 'BEGIN{exit !(s < g)}' ||
        fail "$name: stop took ${stop_s}s - SIGTERM not handled within the grace period"
    line=$(grep -E ' drained accepted=' "$TMP/$name.log" | tail -1 || true)
    if [ -z "$line" ]; then
        fail "$name: no 'drained' line in the log"
        show_logs "$name"
        return
    fi
    say "$name log: $(grep -m1 -E 'draining' "$TMP/$name.log" || true)"
    say "$name log: ${line}"
    acc=$(sed -n 's/.* accepted=\([0-9]*\).*/\1/p' <<<"$line")
    proc=$(sed -n 's/.* processed=\([0-9]*\).*/\1/p' <<<"$line")
    left=$(sed -n 's/.* left=\([0-9]*\).*/\1/p' <<<"$line")
    check "$name: drained with left=$left (want 0)" [ "$left" = 0 ]
    check "$name: processed=$proc == accepted=$acc == 202s sent=$want" \
        test "$proc" = "$acc" -a "$acc" = "$want"
}

# ------------------------------------------------------------ 0. tools
command -v curl >/dev/null || fatal "curl is not installed"
"$DOCKER" version >"$TMP/version.out" 2>&1 ||
    fatal "'$DOCKER version' failed - no engine? ($(tail -1 "$TMP/version.out"))"
say "engine: $("$DOCKER" version -f '{{.Server.Version}}' 2>/dev/null || echo '?')" \
    "(client $("$DOCKER" version -f '{{.Client.Version}}' 2>/dev/null || echo '?'))"

# ------------------------------------------------------------ 1. build
say "building $TAG from $ROOT ..."
tb=$(date +%s)
# The build stage first, under a fixed tag: the classic builder (and podman)
# keep each build's stage as an unnamed image; with a tag, the next run
# reuses it and the stale ones can be pruned (see cleanup). The second
# build then takes the build stage from the cache.
# shellcheck disable=SC2086
if ! "$DOCKER" build --target build -t "$CACHE_TAG" $SMOKE_BUILD_ARGS "$ROOT" \
    >"$TMP/build.log" 2>&1 ||
    ! "$DOCKER" build -t "$TAG" ${SMOKE_BUILD_ARGS//--no-cache/} "$ROOT" \
        >>"$TMP/build.log" 2>&1; then
    tail -40 "$TMP/build.log"
    fatal "docker build"
fi
size=$("$DOCKER" image inspect -f '{{.Size}}' "$TAG" | awk '{printf "%.1f MB", $1/1e6}')
pass "docker build ($(($(date +%s) - tb)) s, image $size)"
if grep -E '^[0-9]+ passed, [0-9]+ failed|^[0-9]+%: Checks' "$TMP/build.log" >"$TMP/tests.out"; then
    sed 's/^/docker-smoke:   tests in the build stage: /' "$TMP/tests.out"
else
    say "  tests in the build stage: not run this time (build stage cached from an earlier passing build, or SHOPD_TEST=none)"
fi

# ------------------------------------------------------------ 2. image
user=$("$DOCKER" image inspect -f '{{.Config.User}}' "$TAG")
# shellcheck disable=SC2016 # a Go template, not a shell expansion
ports=$("$DOCKER" image inspect -f '{{range $p, $v := .Config.ExposedPorts}}{{$p}} {{end}}' "$TAG")
hc=$("$DOCKER" image inspect -f '{{if .Config.Healthcheck}}{{json .Config.Healthcheck.Test}}{{end}}' "$TAG" 2>/dev/null || true)
entry=$("$DOCKER" image inspect -f '{{json .Config.Entrypoint}}' "$TAG")
check "image runs as non-root (USER=$user)" \
    test -n "$user" -a "${user%%:*}" != root -a "${user%%:*}" != 0
check "image exposes 8080/tcp (EXPOSE=$ports)" grep -q '8080/tcp' <<<"$ports"
check "exec-form ENTRYPOINT $entry" grep -q '^\["/usr/local/bin/shopd"' <<<"$entry"
# shellcheck disable=SC2016 # expanded by the container's shell
if "$DOCKER" run --rm --entrypoint /bin/sh "$TAG" -c \
    'for c in cc gcc clang make curl; do command -v $c && exit 1; done; exit 0' \
    >"$TMP/tools.out" 2>&1; then
    pass "no compiler, make or curl in the runtime image"
else
    fail "runtime image contains build tools: $(tr '\n' ' ' <"$TMP/tools.out")"
fi

# ------------------------------------------------------------ 3. run A: defaults
run_container "$NAME_A" || fatal "docker run $NAME_A"
say "$NAME_A: docker run -d -p 127.0.0.1:$PORT:8080 $TAG"
wait_ready "$NAME_A" || fatal "$NAME_A: /healthz did not answer 2xx within ${READY_TIMEOUT}s"
pass "$NAME_A: GET /healthz 200 after ${READY_S}s"
say "$NAME_A log: $("$DOCKER" logs "$NAME_A" 2>&1 | grep -m1 listening || true)"

curl -fsS -m 5 "$URL/products" >"$TMP/products.json" || fail "$NAME_A: GET /products"
sku=$(grep -o '"sku": *"[^"]*"' "$TMP/products.json" | head -1 | sed 's/.*"\([^"]*\)"$/\1/')
sku=${sku:-apple}
post_orders "$SMOKE_ORDERS" "$sku"
check "$NAME_A: $SMOKE_ORDERS x POST /buy {\"product\":\"$sku\"} -> $CODES x 202${OTHER:+ (others:$OTHER)}" \
    [ "$CODES" = "$SMOKE_ORDERS" ]
ACCEPTED_A=$CODES

curl -fsS -m 5 "$URL/orders/1" >"$TMP/order1.json" || true
say "$NAME_A: GET /orders/1 -> $(head -c 300 "$TMP/order1.json")"
if curl -fsS -m 5 "$URL/stats" >"$TMP/stats-a.json"; then
    pass "$NAME_A: GET /stats accepted=$(json_num accepted "$TMP/stats-a.json") processed=$(json_num processed "$TMP/stats-a.json") workers=$(json_num workers "$TMP/stats-a.json")"
else
    fail "$NAME_A: GET /stats"
fi

# The image's HEALTHCHECK. podman's Docker API (4.3) leaves it out of
# `image inspect` but reports it on the container made from the image.
hc_from=image
if [ -z "$hc" ] || [ "$hc" = null ]; then
    hc=$("$DOCKER" inspect -f '{{if .Config.Healthcheck}}{{json .Config.Healthcheck.Test}}{{end}}' "$NAME_A" 2>/dev/null || true)
    hc_from=container
fi
if [ -n "$hc" ] && [ "$hc" != null ]; then
    pass "image has a HEALTHCHECK $hc (read from the $hc_from)"
else
    fail "image has no HEALTHCHECK (an OCI-format build drops it; build in Docker format)"
fi
# Run that command in the container the way the engine runs it.
hc_cmd=(/usr/local/bin/shopd --probe)
if [ -n "$hc" ] && [ "$hc" != null ]; then
    mapfile -t hc_cmd < <(sed 's/^\[//; s/\]$//' <<<"$hc" | tr ',' '\n' |
        sed 's/^ *"//; s/"$//' | grep -v '^CMD$')
fi
if "$DOCKER" exec "$NAME_A" "${hc_cmd[@]}" >"$TMP/probe.out" 2>&1; then
    pass "$NAME_A: HEALTHCHECK command '${hc_cmd[*]}' exits 0"
else
    fail "$NAME_A: HEALTHCHECK command '${hc_cmd[*]}' failed: $(cat "$TMP/probe.out")"
fi
# And it must fail, with a reason, when nothing healthy answers.
if "$DOCKER" exec "$NAME_A" /usr/local/bin/shopd --probe \
    http://127.0.0.1:1/healthz >"$TMP/probe-bad.out" 2>&1; then
    fail "$NAME_A: shopd --probe of a closed port exited 0"
else
    pass "$NAME_A: shopd --probe of a closed port fails: $(head -1 "$TMP/probe-bad.out")"
fi
# Engines that run health checks on a timer (Docker) report the status;
# podman without systemd never does, so "starting" is not a failure.
health=$("$DOCKER" inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$NAME_A" 2>/dev/null || true)
if [ "$health" = unhealthy ]; then
    fail "$NAME_A: engine reports health '$health'"
else
    say "$NAME_A: engine health status: ${health:-n/a}"
fi

stop_and_check "$NAME_A" "$ACCEPTED_A"

# ------------------------------------------------------------ 4. run B: -e and -v
cat >"$TMP/catalog.json" <<'EOF'
{"products": [
  {"sku": "smoke-widget", "name": "Smoke test widget", "price_cents": 199, "stock": 1000},
  {"sku": "smoke-gadget", "name": "Smoke test gadget", "price_cents": 2500, "stock": 3}
]}
EOF
# The container runs as uid 10001: the file must be readable by others.
chmod 0755 "$TMP"
chmod 0644 "$TMP/catalog.json"
run_container "$NAME_B" -e SHOPD_WORKERS=1 -e SHOPD_WORK_MS=20 \
    -v "$TMP/catalog.json:/etc/shopd/catalog.json:ro" \
    -e SHOPD_CATALOG=/etc/shopd/catalog.json || fatal "docker run $NAME_B"
say "$NAME_B: docker run -d -p 127.0.0.1:$PORT:8080 -e SHOPD_WORKERS=1 -e SHOPD_WORK_MS=20 -v catalog.json:/etc/shopd/catalog.json:ro -e SHOPD_CATALOG=/etc/shopd/catalog.json $TAG"
wait_ready "$NAME_B" || fatal "$NAME_B: /healthz did not answer 2xx within ${READY_TIMEOUT}s"
pass "$NAME_B: GET /healthz 200 after ${READY_S}s"

curl -fsS -m 5 "$URL/products" >"$TMP/products-b.json" || true
check "$NAME_B: mounted catalog served (GET /products lists smoke-widget, smoke-gadget only)" \
    grep -q '"smoke-widget"' "$TMP/products-b.json"
grep -q '"apple"' "$TMP/products-b.json" && fail "$NAME_B: demo catalog still served"
curl -fsS -m 5 "$URL/stats" >"$TMP/stats-b0.json" || true
check "$NAME_B: SHOPD_WORKERS=1 took effect (/stats workers=$(json_num workers "$TMP/stats-b0.json"))" \
    [ "$(json_num workers "$TMP/stats-b0.json")" = 1 ]

post_burst "$SMOKE_BURST" smoke-widget
check "$NAME_B: $SMOKE_BURST x POST /buy (4 clients) -> $CODES x 202${OTHER:+ (others:$OTHER)}" \
    [ "$CODES" = "$SMOKE_BURST" ]
ACCEPTED_B=$CODES
curl -fsS -m 5 "$URL/stats" >"$TMP/stats-b.json" || true
say "$NAME_B: /stats right before docker stop: queue depth=$(json_num depth "$TMP/stats-b.json") processed=$(json_num processed "$TMP/stats-b.json") of accepted=$(json_num accepted "$TMP/stats-b.json")"
stop_and_check "$NAME_B" "$ACCEPTED_B"

# ------------------------------------------------------------ 5. run C: a durable shop
# post_burst_ids N SKU: as post_burst, but keeps the order ids of the 202s
# in $TMP/ids (one a line).
post_burst_ids() {
    local n=$1 sku=$2 k i
    for k in 1 2 3 4; do
        (
            for ((i = k; i <= n; i += 4)); do
                curl -s -m 5 -X POST "$URL/buy" \
                    -d "{\"product\":\"$sku\",\"quantity\":1}" || true
                echo
            done >"$TMP/ids.$k"
        ) &
    done
    wait
    cat "$TMP"/ids.* | sed -n 's/.*"order_id":\([0-9]*\).*/\1/p' >"$TMP/ids"
    CODES=$(wc -l <"$TMP/ids" | tr -d ' ')
}

# product_num SKU KEY: the number KEY of GET /products/SKU.
product_num() {
    curl -fsS -m 5 "$URL/products/$1" >"$TMP/product.json" 2>/dev/null || true
    json_num "$2" "$TMP/product.json"
}

# order_status ID: the status of GET /orders/ID ("" if none).
order_status() {
    curl -s -m 5 "$URL/orders/$1" | sed -n 's/.*"status":"\([a-z_]*\)".*/\1/p'
}

"$DOCKER" volume create "$VOLUME" >/dev/null || fatal "docker volume create"
run_container "$NAME_C" -v "$VOLUME:/data" -e SHOPD_STORE=sqlite:/data/shop.db \
    -e SHOPD_SYNC=full -e SHOPD_WORKERS=1 -e SHOPD_WORK_MS=400 ||
    fatal "docker run $NAME_C"
say "$NAME_C: docker run -d -p 127.0.0.1:$PORT:8080 -v $VOLUME:/data -e SHOPD_STORE=sqlite:/data/shop.db -e SHOPD_SYNC=full -e SHOPD_WORKERS=1 -e SHOPD_WORK_MS=400 $TAG"
wait_ready "$NAME_C" || fatal "$NAME_C: /healthz did not answer 2xx within ${READY_TIMEOUT}s"
say "$NAME_C log: $("$DOCKER" logs "$NAME_C" 2>&1 | grep -m1 'store ' || true)"
initial=$(product_num fig stock)
post_orders 10 fig
check "$NAME_C: 10 x POST /buy fig -> $CODES x 202${OTHER:+ (others:$OTHER)}" [ "$CODES" = 10 ]
for _ in $(seq 300); do
    [ "$(order_status 10)" = fulfilled ] && break
    sleep 0.1
done
stock_before=$(product_num fig stock)
check "$NAME_C: fig stock $initial -> $stock_before after 10 sales" \
    [ "$stock_before" = $((initial - 10)) ]
"$DOCKER" stop -t "$STOP_GRACE" "$NAME_C" >/dev/null
"$DOCKER" start "$NAME_C" >/dev/null || fatal "docker start $NAME_C"
wait_ready "$NAME_C" || fatal "$NAME_C: not ready after docker start"
stock_after=$(product_num fig stock)
check "$NAME_C: docker stop + start keeps the stock (fig $stock_after, want $stock_before)" \
    [ "$stock_after" = "$stock_before" ]
check "$NAME_C: order 1 still there after the restart ($(order_status 1))" \
    [ "$(order_status 1)" = fulfilled ]

# The slow worker (400 ms an order) is still busy with these at the kill.
post_burst_ids "$SMOKE_BURST" fig
check "$NAME_C: $SMOKE_BURST x POST /buy (4 clients) -> $CODES x 202" \
    [ "$CODES" = "$SMOKE_BURST" ]
curl -fsS -m 5 "$URL/stats" >"$TMP/stats-c.json" || true
say "$NAME_C: /stats right before docker kill: queue depth=$(json_num depth "$TMP/stats-c.json") of accepted=$(json_num accepted "$TMP/stats-c.json")"
"$DOCKER" kill "$NAME_C" >/dev/null || fail "$NAME_C: docker kill"
rc=$("$DOCKER" inspect -f '{{.State.ExitCode}}' "$NAME_C")
check "$NAME_C: docker kill ended it with SIGKILL (exit code $rc, want 137)" [ "$rc" = 137 ]
"$DOCKER" start "$NAME_C" >/dev/null || fatal "docker start $NAME_C after the kill"
wait_ready "$NAME_C" || fatal "$NAME_C: not ready after docker kill + start"
restored=$("$DOCKER" logs "$NAME_C" 2>&1 | grep 'unfinished orders' | tail -1 |
    sed -n 's/.* \([0-9]*\) unfinished orders.*/\1/p')
check "$NAME_C: the restart put ${restored:-no} unfinished orders back on the belt (want > 0)" \
    [ "${restored:-0}" -gt 0 ]
missing=0
notfinal=0
# At 400 ms an order, the restored ones take up to half a minute. Four
# clients wrote the ids, so the file is not in order: wait for the highest,
# which the one worker takes last.
last=$(sort -n "$TMP/ids" | tail -1)
for _ in $(seq 600); do
    case $(order_status "$last") in fulfilled | out_of_stock) break ;; esac
    sleep 0.1
done
while read -r id; do
    case $(order_status "$id") in
    fulfilled | out_of_stock) ;;
    queued) notfinal=$((notfinal + 1)) ;;
    *) missing=$((missing + 1)) ;;
    esac
done <"$TMP/ids"
check "$NAME_C: after docker kill + start every 202'd order is there ($missing missing)" \
    [ "$missing" = 0 ]
check "$NAME_C: ... and final ($notfinal still queued)" [ "$notfinal" = 0 ]
stock=$(product_num fig stock)
sold=$(product_num fig sold)
check "$NAME_C: fig stock $stock + sold $sold == initial $initial" \
    [ $((stock + sold)) = "$initial" ]
stop_and_check_store() {
    "$DOCKER" stop -t "$STOP_GRACE" "$1" >/dev/null
    rc=$("$DOCKER" inspect -f '{{.State.ExitCode}}' "$1")
    check "$1: docker stop, exit code $rc (want 0)" [ "$rc" = 0 ]
}
stop_and_check_store "$NAME_C"

summary
[ "$failed" -eq 0 ]
