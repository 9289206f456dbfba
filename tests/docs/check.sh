#!/usr/bin/env bash
# check.sh [SHOPD] - the README, the guides and the examples, checked as a
# newcomer would meet them. Run by `make test` (SHOPD defaults to ./shopd).
#
#   - README.md is at most 300 lines; every relative link and image in
#     README.md and docs/*.md names a file that exists;
#   - no guide cites what a clone cannot follow (a SPEC section, an issue
#     number, the team's workspace), and docs/ holds no generated data;
#     every chart under docs/ is shown by a guide;
#   - the facts that once contradicted each other agree: the README's
#     dependency list is what `make deps` installs, the Docker guide names
#     the runtime packages the Dockerfile installs, Redis 7.0 is the
#     minimum in --help and the guides;
#   - "Try it" gives the long commands their time, says how to get wrk,
#     shows the restock, says 0.0.0.0 and SHOPD_BIND=127.0.0.1 once, and
#     puts the Compose v2 requirement next to the compose commands;
#   - `make run` prints the dashboard's URL and how to stop it;
#   - examples/catalog.json and examples/shopd.json load, and the command
#     line of examples/shopd.service starts a shop (systemd-analyze verify
#     checks the unit itself when it is installed);
#   - the README's first durable example works as written, a missing
#     directory is named, and a restart with one unfinished order says
#     "1 unfinished order".
#
# Every shopd it starts listens on a free loopback port and is stopped by
# its PID.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
SHOPD=${1:-./shopd}
case $SHOPD in /*) ;; *) SHOPD=$root/${SHOPD#./} ;; esac
PIDS_WHO=docs-check
# shellcheck source=scripts/lib/pids.sh
. scripts/lib/pids.sh

tmp=$(mktemp -d)
trap 'pids_cleanup; rm -rf "$tmp"' EXIT
pass=0 fail=0
ok() {
    pass=$((pass + 1))
}
bad() {
    echo "docs-check: FAIL: $*" >&2
    fail=$((fail + 1))
}
check() { # check DESCRIPTION COMMAND...: COMMAND must succeed
    local what=$1
    shift
    if "$@"; then ok; else bad "$what"; fi
}

guides=(README.md docs/*.md)

# --- the README and the guides -------------------------------------------
lines=$(wc -l <README.md)
check "README.md has $lines lines (at most 300)" test "$lines" -le 300

# Relative links: [text](target) and ![alt](target), outside code blocks.
links() {
    awk '/^```/ { code = !code; next } !code' "$1" |
        grep -o '!\?\[[^]]*\]([^)]*)' | sed 's/.*](\([^)]*\))/\1/' |
        sed 's/[[:space:]].*//' || true
}
# The anchors of a Markdown file: its headings as GitHub spells them
# (lower case, punctuation dropped, spaces as '-'), and <a id="...">.
anchors() {
    awk '/^```/ { code = !code; next } !code && /^#+ /' "$1" |
        sed -e 's/^#* //' | tr '[:upper:]' '[:lower:]' |
        LC_ALL=C sed -e 's/[^a-z0-9 _-]//g' -e 's/ /-/g'
    grep -o '<a id="[^"]*"' "$1" | sed 's/<a id="//; s/"$//' || true
}
for f in "${guides[@]}"; do
    dir=$(dirname "$f")
    while IFS= read -r target; do
        [ -n "$target" ] || continue
        case $target in
        http://* | https://* | mailto:*) continue ;;
        esac
        path=${target%%#*}
        [ -n "$path" ] || path=$(basename "$f")
        if [ ! -e "$dir/$path" ]; then
            bad "$f: link to '$target' does not resolve"
            continue
        fi
        ok
        case $target in
        *'#'*)
            if anchors "$dir/$path" | grep -q -x -F "${target#*#}"; then ok; else
                bad "$f: link to '$target': no such heading in $path"
            fi
            ;;
        esac
    done < <(links "$f")
done

for f in "${guides[@]}"; do
    if grep -n -E 'SPEC §|SPEC\.md|[Ii]ssue [0-9]+|team.s workspace|\.\./shared/' "$f"; then
        bad "$f cites something a clone cannot follow (above)"
    else ok; fi
    first=$(grep -v '^#' "$f" | grep -m1 -v '^[[:space:]]*$' || true)
    [ "$f" = README.md ] || [ -n "$first" ] || bad "$f has no opening text"
done

# The busy-shop map and every guide name real files.
for f in "${guides[@]}"; do
    # shellcheck disable=SC2016 # the backquotes are literal
    for path in $(grep -o -E '`[a-z_/.-]+/[a-z_.-]+\.(c|h|lua|sh|html|gp|py|mk)`' "$f" |
        tr -d '`' | sort -u); do
        if [ -e "$path" ]; then ok; else bad "$f names $path, which does not exist"; fi
    done
done

if command -v git >/dev/null && git rev-parse --git-dir >/dev/null 2>&1; then
    tracked=$(git ls-files docs)
else
    tracked=$(find docs -type f)
fi
generated=$(echo "$tracked" | grep -E '\.(tsv|csv|log|txt)$|/table\.md$' || true)
check "docs/ holds generated data: $generated" test -z "$generated"
for chart in $(echo "$tracked" | grep -E '\.(svg|png)$' || true); do
    name=${chart#docs/}
    if grep -q -F "($name)" docs/*.md || grep -q -F "($chart)" README.md; then
        ok
    else bad "$chart is not shown by any guide"; fi
done

# --- facts that must agree -------------------------------------------------
# Every package `make deps` installs is named in the README.
deps=$(sed -n '/^deps:/,/^$/p' Makefile | grep -o '[a-z0-9.-]*:[a-z0-9.-]*' |
    sed 's/.*://' | sort -u)
for p in $deps; do
    if grep -q -w -F "$p" README.md; then ok; else bad "README.md does not name '$p', which make deps installs"; fi
done
# The runtime packages of the image are the ones docs/docker.md names.
runtime=$(sed -n '/AS runtime/,/ENTRYPOINT/p' Dockerfile |
    sed -n '/apt-get install/,/rm -rf/p' | grep -o -E 'lib[a-z0-9.-]+' | sort -u)
check "the Dockerfile's runtime packages were not found" test -n "$runtime"
for p in $runtime; do
    if grep -q -F "$p" docs/docker.md; then ok; else bad "docs/docker.md does not name '$p' (Dockerfile runtime)"; fi
done
check "shopd --help names Redis >= 7.0" grep -q 'Redis >= 7.0' <("$SHOPD" --help)
check "shopd --help does not say when --header-timeout's clock starts" \
    grep -q 'after the connection opened' <("$SHOPD" --help)
if grep -n -E 'Redis[^.]{0,20}6\.2|6\.2 or later' "${guides[@]}"; then
    bad "a guide names Redis 6.2 (above)"
else ok; fi

# A product as shopd shows it has "restocked" since restocks exist.
if grep -n '"price_cents":[0-9]*,"stock":[0-9]*,"sold":[0-9]*}' "${guides[@]}"; then
    bad "a product shown without \"restocked\" (above)"
else ok; fi

# --- Try it ---------------------------------------------------------------
near() { # near FILE PATTERN1 PATTERN2 N: PATTERN2 within N lines of PATTERN1
    grep -n -E -A"$4" -B"$4" "$2" "$1" | grep -q -E "$3"
}
check "README: make test without its time" near README.md '^make test' '~? ?[0-9]+ ?min' 0
check "README: make bench without its time" grep -q -E 'make bench.*~? ?[0-9]+ min' README.md
check "README: make experiment without its time" grep -q -E 'make experiment.*~? ?[0-9]+ min' README.md
check "README: the wrk line does not say how to get wrk" near README.md '^(\$ )?wrk ' 'apt-get install wrk|deps\.sh wrk' 6
check "README: selling out and the restock are not shown" near README.md 'sells? out' '/restock' 25
check "README: the restock's output (restocked) is not shown" grep -q '"restocked":' README.md
check "README: 0.0.0.0 and SHOPD_BIND=127.0.0.1 not said" near README.md '0\.0\.0\.0' 'SHOPD_BIND=127\.0\.0\.1' 3
check "README: Compose v2 is not next to the compose commands" near README.md 'docker compose up' 'Compose v2' 4

# `make run` says where the dashboard is and how to stop it. SHOPD=true
# stands in for the server, so nothing is started.
runmsg=$(MAKEFLAGS='' make -s --no-print-directory run SHOPD=true 2>&1 </dev/null || true)
check "make run does not print 'Ctrl-C stops it (the belt drains first)': $runmsg" \
    grep -q -F 'Ctrl-C stops it (the belt drains first)' <<<"$runmsg"
check "make run does not print the dashboard's URL: $runmsg" \
    grep -q -E 'http://localhost:[0-9]+/' <<<"$runmsg"

# --- examples that load ------------------------------------------------------
# start LOG ARGS...: start shopd; its PID goes to $pid, its port to $port.
start() {
    local log=$1
    shift
    : >"$log" # exists before listening_port reads it
    "$SHOPD" "$@" >"$log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    port=$(listening_port "$pid" "$log")
}
stop_ok() { # stop_ok WHAT: SIGTERM $pid, which must drain and exit 0
    local rc=0
    stop_pid "$pid" 30 || rc=$?
    check "$1 exited $rc after SIGTERM" test "$rc" -eq 0
}

start "$tmp/examples.log" --config examples/shopd.json \
    --catalog examples/catalog.json --bind 127.0.0.1 --port 0
products=$(curl -fsS "http://127.0.0.1:$port/products")
check "examples/catalog.json: /products lacks espresso: $products" \
    grep -q '"sku":"espresso"' <<<"$products"
check "examples/shopd.json: workers is not 4" \
    grep -q '"workers":4' <(curl -fsS "http://127.0.0.1:$port/stats")
stop_ok "shopd with examples/shopd.json"

unit=examples/shopd.service
if command -v systemd-analyze >/dev/null 2>&1; then
    sed "s#/usr/local/bin/shopd#$SHOPD#" "$unit" >"$tmp/shopd.service"
    if out=$(systemd-analyze verify "$tmp/shopd.service" 2>&1) && [ -z "$out" ]; then
        ok
    else bad "systemd-analyze verify $unit: $out"; fi
else
    echo "docs-check: systemd-analyze not installed: $unit checked by its command line only"
fi
# The unit's own command line, with the installed paths pointed here.
exec_line=$(sed -n 's/^ExecStart=//p' "$unit")
check "$unit has no ExecStart" test -n "$exec_line"
mkdir -p "$tmp/state"
read -r -a argv <<<"$(sed -e "s#/etc/shopd/#$root/examples/#g" \
    -e "s#/var/lib/shopd#$tmp/state#g" <<<"$exec_line")"
check "$unit does not start /usr/local/bin/shopd" test "${argv[0]}" = /usr/local/bin/shopd
start "$tmp/unit.log" "${argv[@]:1}" --bind 127.0.0.1 --port 0
answer=$(curl -sS -XPOST "http://127.0.0.1:$port/buy" -d '{"product":"croissant","quantity":1}')
check "$unit's shop did not take an order: $answer" grep -q '"status":"queued"' <<<"$answer"
stop_ok "shopd with $unit's command line"
check "$unit's store file was not made" test -s "$tmp/state/shop.db"

# --- Try it, as written ----------------------------------------------------
# Every "$ command" of the README's "Try it" runs against a fresh shopd (its
# port in place of 8080) in a directory holding the admin token made as the
# README makes it, and must print what the README shows (times and worker
# numbers aside). The wrk run is replaced by one order that sells out the
# apples, which is what the README's next lines rely on.
normalize() {
    sed -E -e 's/"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z"/"T"/g' \
        -e 's/"worker":[0-9]+/"worker":W/g'
}
wait_idle() { # the belt empty and every order processed
    local i stats
    for ((i = 0; i < 200; i++)); do
        stats=$(curl -fsS "http://127.0.0.1:$port/stats") || return 1
        grep -q '"depth":0,' <<<"$stats" && grep -q '"in_flight":0' <<<"$stats" &&
            return 0
        sleep 0.05
    done
    return 1
}
mkdir -p "$tmp/try"
token_line=$(sed -n '/^## Try it/,/^## /p' README.md | grep -m1 '> admin.token$')
check "README: Try it does not make admin.token" test -n "$token_line"
(cd "$tmp/try" && bash -c "$token_line")
SHOPD_ADMIN_TOKEN=$(cat "$tmp/try/admin.token") \
    start "$tmp/try.log" --bind 127.0.0.1 --port 0
ntry=0
run_try() { # run_try COMMAND EXPECTED
    local cmd=$1 want=$2 got
    case $cmd in
    wrk\ *) cmd="curl -s -o /dev/null -XPOST localhost:8080/buy -d '{\"product\":\"apple\",\"quantity\":998}'" ;;
    esac
    wait_idle || bad "Try it: shopd did not become idle before: $cmd"
    got=$(cd "$tmp/try" && bash -c "${cmd//localhost:8080/127.0.0.1:$port}" 2>&1 |
        sed "s/127.0.0.1:$port/localhost:8080/g") || true
    ntry=$((ntry + 1))
    [ -n "$want" ] || return 0
    if [ "$(normalize <<<"$got")" = "$(normalize <<<"$want")" ]; then ok; else
        bad "Try it: \$ $cmd
  README: $want
  got:    $got"
    fi
}
cmd='' want='' incmd=0
while IFS= read -r line; do
    if [ "$incmd" = 1 ]; then
        cmd="$cmd ${line%\\}"
        [[ $line == *\\ ]] || incmd=0
        continue
    fi
    case $line in
    '$ '*)
        [ -n "$cmd" ] && run_try "$cmd" "$want"
        line=${line#\$ }
        line=${line%%    #*}
        cmd=${line%\\} want=''
        [[ $line == *\\ ]] && incmd=1
        ;;
    '' | '```'*)
        [ -n "$cmd" ] && run_try "$cmd" "$want"
        cmd='' want=''
        ;;
    *) [ -n "$cmd" ] && want=${want:+$want$'\n'}$line ;;
    esac
done < <(sed -n '/^## Try it/,/^## /p' README.md)
check "README: Try it ran $ntry commands, fewer than 8" test "$ntry" -ge 8
stop_ok "the shopd of Try it"

# --- the durable shop as the README starts it ---------------------------------
# The README: mkdir -p data && ./shopd --store sqlite:data/shop.db
check "README: the first durable example is not 'mkdir -p data' then sqlite:data/shop.db" \
    near README.md 'mkdir -p data' 'sqlite:data/shop\.db' 1
pushd "$tmp" >/dev/null
mkdir -p data
start "$tmp/durable.log" --store sqlite:data/shop.db --bind 127.0.0.1 --port 0
popd >/dev/null
check "sqlite:data/shop.db did not serve" curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz"
stop_ok "shopd --store sqlite:data/shop.db"

rc=0
"$SHOPD" --store "sqlite:$tmp/missing/shop.db" --bind 127.0.0.1 --port 0 \
    2>"$tmp/missing.log" || rc=$?
check "a missing directory: exit $rc, not 1" test "$rc" -eq 1
check "a missing directory is not named: $(cat "$tmp/missing.log")" \
    grep -q -F "directory $tmp/missing does not exist" "$tmp/missing.log"

# One order on the belt at kill -9: the restart says "1 unfinished order".
db=$tmp/one.db
start "$tmp/one.log" --store "sqlite:$db" --sync normal --workers 1 \
    --work-ms 5000 --bind 127.0.0.1 --port 0
answer=$(curl -sS -XPOST "http://127.0.0.1:$port/buy" -d '{"product":"apple","quantity":1}')
check "no 202 before the kill: $answer" grep -q '"order_id":1' <<<"$answer"
{
    kill -KILL "$pid"
    wait "$pid" || true
} 2>/dev/null
forget_pid "$pid"
start "$tmp/one-again.log" --store "sqlite:$db" --bind 127.0.0.1 --port 0
check "the restart does not say '1 unfinished order goes back': $(cat "$tmp/one-again.log")" \
    grep -q '1 unfinished order goes back on the belt' "$tmp/one-again.log"
stop_ok "the restarted shopd"

echo "docs-check: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
