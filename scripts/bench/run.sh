#!/usr/bin/env bash
# run.sh - `make bench`: POST /buy throughput of shopd side by side with
# its two ceilings, on this machine, in one run.
#
#   shopd     the real server, default settings, a catalog with huge stock
#   idem      the same shopd, but every POST /buy carries a fresh
#             Idempotency-Key (buy.lua with BUY_IDEMPOTENCY=1): the cost of
#             the key table; the "÷ memory" column compares it with the
#             keyless shopd run of the same round
#   baseline  bare libmicrohttpd in shopd's daemon mode answering a fixed 202
#             (scripts/bench/baseline.c: the library's ceiling)
#   nginx     Debian's nginx from a private prefix answering the same fixed
#             202 (the HTTP limit of this box); skipped if nginx is missing
#   sqlite_normal, sqlite_full
#             shopd with --store sqlite:FILE (a fresh file in the run's
#             directory) and --sync normal / full: the price of a durable
#             202 against shopd in memory (column "÷ memory"); their orders
#             per commit and commit latency are listed under the table
#   redis1, redis2
#             shopd with --store unix://SOCK on a private redis-server
#             (Debian's, started fresh for each run in the run's directory,
#             appendonly yes, appendfsync everysec, on the same cores): one
#             instance, and two instances with wrk spread over both (two
#             wrk processes of half the connections each, their figures
#             summed; latencies are the worse of the two). Redis round
#             trips per order are listed under the table
#
# For every round and every wrk setting, the servers are run one after the
# other (A B C, then the next round starts one further along: B C A, ...),
# each started fresh on a free loopback port and stopped after its run. The
# machine is shared and noisy, so the table shows medians over the rounds,
# and the ratios are the medians of the per-round ratios (each pair measured
# back to back), never one absolute figure.
#
# During each run GET /stats is timed with curl (one process, one kept-alive
# connection, spread over the run) - on the baselines the same request gets
# their fixed answer, so the column compares like with like. After each
# shopd run the script waits for the belt to drain (depth 0, nothing in
# flight) and checks the invariants of SPEC.md section 1 from /stats. Peak
# RSS is VmHWM from /proc (for nginx: master plus workers).
#
# Environment (all optional):
#   BENCH_SECONDS=5        wrk duration per run
#   BENCH_ROUNDS=3         rounds (0: skip the table)
#   BENCH_SETTINGS="1:64 1:127 1:128 1:129 2:128 2:256 2:1024"
#                          wrk threads:connections. wrk gives each thread
#                          connections/threads (integer division), so odd
#                          counts use one thread to open exactly that many.
#   BENCH_SERVERS="shopd idem sqlite_normal sqlite_full redis1 redis2 baseline nginx"
#   BENCH_SCRIPT=scripts/wrk/buy.lua
#   BENCH_STOCK=1000000000000   stock of every product in the bench catalog
#   BENCH_SHOPD_ARGS=      extra shopd flags (e.g. --queue-capacity 65536)
#   BENCH_BASELINE_ARGS=   extra baseline flags (e.g. --shared-response)
#   BENCH_PROBES=30        /stats requests timed per run (0: none)
#   BENCH_MILLION=0        1: also check peak RSS after 1,000,000 orders
#   BENCH_MILLION_SERVERS="shopd sqlite_normal"  servers of that check
#   BENCH_OUT=             where raw logs, summary.tsv and the charts go
#                          (default BENCH_DIR/run-DATE; BENCH_DIR/latest
#                          points at the newest)
#   BENCH_COMMAND=         the command shown in the chart titles (default:
#                          "make bench" and the BENCH_* variables set)
#   BENCH_ALT=             a second shopd binary (say, before a change):
#                          adds the server "alt" to BENCH_SERVERS, run and
#                          checked like shopd, for before/after figures
#   SHOPD=./shopd BENCH_DIR=build/bench  binaries (the Makefile sets them)
#
# Exits 0 when every run completed, whatever the numbers say; non-zero only
# if something could not be started or measured.
set -euo pipefail

SHOPD=${SHOPD:-./shopd}
BENCH_DIR=${BENCH_DIR:-build/bench}
BASELINE=${BASELINE:-$BENCH_DIR/baseline}
STATCHECK=${STATCHECK:-$BENCH_DIR/statcheck}
SECONDS_PER_RUN=${BENCH_SECONDS:-5}
ROUNDS=${BENCH_ROUNDS:-3}
SETTINGS=${BENCH_SETTINGS:-"1:64 1:127 1:128 1:129 2:128 2:256 2:1024"}
SERVERS=${BENCH_SERVERS:-"shopd idem sqlite_normal sqlite_full redis1 redis2 baseline nginx"}
ALT=${BENCH_ALT:-}
if [ -n "$ALT" ] && [[ " $SERVERS " != *" alt "* ]]; then
    SERVERS="$SERVERS alt"
fi
SCRIPT=${BENCH_SCRIPT:-scripts/wrk/buy.lua}
STOCK=${BENCH_STOCK:-1000000000000}
SHOPD_ARGS=${BENCH_SHOPD_ARGS:-}
BASELINE_ARGS=${BENCH_BASELINE_ARGS:-}
PROBES=${BENCH_PROBES:-30}
MILLION=${BENCH_MILLION:-0}
MILLION_SERVERS=${BENCH_MILLION_SERVERS:-"shopd sqlite_normal"}
OUT=${BENCH_OUT:-$BENCH_DIR/run-$(date +%Y%m%d-%H%M%S)}
NCPU=$(nproc 2>/dev/null || echo 1)

die() {
    echo "bench: $*" >&2
    exit 1
}

# --- processes we started, stopped by PID only --------------------------
PIDS_WHO=bench
# shellcheck source=scripts/lib/pids.sh
. "$(dirname "$0")/../lib/pids.sh"
# shellcheck source=scripts/lib/catalog.sh
. "$(dirname "$0")/../lib/catalog.sh"

# --- preconditions --------------------------------------------------------
command -v wrk >/dev/null || die "wrk not found (apt-get install wrk)"
command -v curl >/dev/null || die "curl not found (apt-get install curl)"
[ -x "$SHOPD" ] || die "$SHOPD not built (run make)"
[ -x "$BASELINE" ] || die "$BASELINE not built (make bench builds it)"
[ -x "$STATCHECK" ] || die "$STATCHECK not built (make bench builds it)"
[ -f "$SCRIPT" ] || die "$SCRIPT not found (run from the project root)"
[ "$SECONDS_PER_RUN" -ge 1 ] 2>/dev/null || die "BENCH_SECONDS must be >= 1"
if [[ " $SERVERS " == *" nginx "* ]] && ! command -v nginx >/dev/null &&
    [ ! -x /usr/sbin/nginx ]; then
    echo "bench: nginx not found, skipping it (apt-get install nginx-light" \
        "adds the column; its service is not used)" >&2
    SERVERS=$(echo " $SERVERS " | sed 's/ nginx / /; s/^ *//; s/ *$//')
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd) # nginx wants absolute paths
RESULTS=$OUT/results.tsv
: >"$RESULTS"

# The bench catalog: the demo SKUs (buy.lua rotates over them), each with
# stock large enough that no order is ever out of stock.
CATALOG=$OUT/catalog.json
write_catalog "$CATALOG" "$STOCK"

# --- starting servers -------------------------------------------------------
# Each start_* sets SRV_PID and SRV_PORT (redis2 also SRV_PID2, SRV_PORT2;
# the Redis ones SRV_EXTRA, the PIDs to stop after the servers).
SRV_PID=
SRV_PORT=
SRV_PID2=
SRV_PORT2=
SRV_EXTRA=
REDIS_SOCK=

# Wait until PID listens (its port from its log); sets SRV_PORT.
wait_listening() {
    SRV_PORT=$(listening_port "$1" "$2")
}

start_shopd() {
    start_shopd_bin "$SHOPD" "$1"
}

start_idem() {
    start_shopd_bin "$SHOPD" "$1"
}

start_alt() {
    [ -x "$ALT" ] || die "BENCH_ALT=$ALT is not an executable"
    start_shopd_bin "$ALT" "$1"
}

start_shopd_bin() {
    local bin=$1 log=$2
    # shellcheck disable=SC2086 # SHOPD_ARGS is a list of flags
    "$bin" --bind 127.0.0.1 --port 0 --catalog "$CATALOG" $SHOPD_ARGS \
        2>"$log" &
    SRV_PID=$!
    PIDS+=("$SRV_PID")
    wait_listening "$SRV_PID" "$log"
}

# shopd over a fresh SQLite file; `$1` is the log, `$2` the --sync value.
start_sqlite() {
    local log=$1 sync=$2 db=$OUT/shop-$2.db
    rm -f "$db" "$db-wal" "$db-shm"
    # shellcheck disable=SC2086 # SHOPD_ARGS is a list of flags
    "$SHOPD" --bind 127.0.0.1 --port 0 --catalog "$CATALOG" \
        --store "sqlite:$db" --sync "$sync" $SHOPD_ARGS 2>"$log" &
    SRV_PID=$!
    PIDS+=("$SRV_PID")
    wait_listening "$SRV_PID" "$log"
}

# A private redis-server on a unix socket in the run's directory; sets
# REDIS_SOCK and adds its PID to SRV_EXTRA (stopped after the run).
start_redis_server() {
    local dir=$OUT/redis i
    rm -rf "$dir"
    mkdir -p "$dir"
    REDIS_SOCK=$dir/redis.sock
    redis-server --port 0 --unixsocket "$REDIS_SOCK" --unixsocketperm 700 \
        --save '' --appendonly yes --appendfsync everysec --dir "$dir" \
        --logfile "$dir/redis.log" &
    local rpid=$!
    PIDS+=("$rpid")
    SRV_EXTRA="$rpid"
    for ((i = 0; i < 200; i++)); do
        [ "$(redis-cli -s "$REDIS_SOCK" ping 2>/dev/null)" = PONG ] && return 0
        sleep 0.05
    done
    echo "bench: redis-server did not start" >&2
    return 1
}

# shopd instance `$2` on the Redis of start_redis_server; `$1` is the log.
start_redis_shopd() {
    # shellcheck disable=SC2086 # SHOPD_ARGS is a list of flags
    "$SHOPD" --bind 127.0.0.1 --port 0 --catalog "$CATALOG" \
        --store "unix://$REDIS_SOCK" --instance "$2" $SHOPD_ARGS 2>"$1" &
    SRV_PID=$!
    PIDS+=("$SRV_PID")
    wait_listening "$SRV_PID" "$1"
}

start_redis1() {
    start_redis_server || return 1
    start_redis_shopd "$1" bench1
}

# Two instances: SRV_PID/SRV_PORT is the first, SRV_PID2/SRV_PORT2 the
# second (wrk is spread over both).
start_redis2() {
    start_redis_server || return 1
    start_redis_shopd "$1.2" bench2 || return 1
    SRV_PID2=$SRV_PID
    SRV_PORT2=$SRV_PORT
    start_redis_shopd "$1" bench1
}

start_sqlite_normal() {
    start_sqlite "$1" normal
}

start_sqlite_full() {
    start_sqlite "$1" full
}

is_shopd() {
    case $1 in shopd | alt | idem | sqlite_normal | sqlite_full) return 0 ;; esac
    return 1
}

start_baseline() {
    local log=$1
    # shellcheck disable=SC2086
    "$BASELINE" --bind 127.0.0.1 --port 0 --threads "$NCPU" $BASELINE_ARGS \
        2>"$log" &
    SRV_PID=$!
    PIDS+=("$SRV_PID")
    wait_listening "$SRV_PID" "$log"
}

write_nginx_conf() {
    local prefix=$1 port=$2
    cat >"$prefix/nginx.conf" <<EOF
# Written by scripts/bench/run.sh: a private nginx answering what shopd
# answers to POST /buy, with a fixed body. No system service is involved.
worker_processes $NCPU;
pid $prefix/nginx.pid;
error_log $prefix/logs/error.log warn;
events {
    worker_connections 16384;
}
http {
    access_log off;
    server_tokens off;
    # Keep connections alive as long as libmicrohttpd does (nginx closes
    # after 1000 requests by default).
    keepalive_requests 1000000000;
    keepalive_timeout 30s;
    client_body_temp_path $prefix/tmp/body;
    proxy_temp_path $prefix/tmp/proxy;
    fastcgi_temp_path $prefix/tmp/fastcgi;
    uwsgi_temp_path $prefix/tmp/uwsgi;
    scgi_temp_path $prefix/tmp/scgi;
    default_type application/json;
    server {
        listen 127.0.0.1:$port backlog=4096;
        location = /buy {
            # The body is read off the socket (into memory, never to a
            # temp file) and dropped, as the return below does not use it.
            client_body_buffer_size 16k;
            client_max_body_size 4k;
            add_header Location /orders/1 always;
            return 202 '{"order_id":1,"status":"queued"}';
        }
        location = /stats {
            return 200 '{"queue":{"depth":0}}';
        }
        location / {
            return 404 '{"error":"not_found","message":"no such route"}';
        }
    }
}
EOF
}

start_nginx() {
    local log=$1 prefix=$OUT/nginx attempt port i
    mkdir -p "$prefix/logs" "$prefix/tmp"
    for ((attempt = 0; attempt < 20; attempt++)); do
        port=$((20000 + RANDOM % 40000))
        if [ -n "$(ss -Htln "sport = :$port" 2>/dev/null)" ]; then
            continue
        fi
        write_nginx_conf "$prefix" "$port"
        "$NGINX" -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/logs/error.log" \
            -g 'daemon off;' 2>"$log" &
        SRV_PID=$!
        PIDS+=("$SRV_PID")
        for ((i = 0; i < 100; i++)); do
            if curl -s -o /dev/null "http://127.0.0.1:$port/stats"; then
                SRV_PORT=$port
                return 0
            fi
            kill -0 "$SRV_PID" 2>/dev/null || break
            sleep 0.05
        done
        stop_pid "$SRV_PID" || true
    done
    echo "bench: nginx did not start; its log:" >&2
    cat "$log" "$prefix/logs/error.log" >&2 2>/dev/null || true
    return 1
}

# Peak RSS in kB of PID and its children (nginx workers).
peak_rss_kb() {
    local pid=$1 total=0 kb child
    kb=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    total=$((total + ${kb:-0}))
    for child in $(cat "/proc/$pid/task/$pid/children" 2>/dev/null || true); do
        kb=$(awk '/^VmHWM:/ {print $2}' "/proc/$child/status" 2>/dev/null ||
            true)
        total=$((total + ${kb:-0}))
    done
    echo "$total"
}

# Poll shopd's /stats until the belt is empty and nothing is in flight
# (at most 30 s), then print statcheck's line.
shopd_settle() {
    local port=$1 i line=
    for ((i = 0; i < 300; i++)); do
        line=$(curl -s --max-time 2 "http://127.0.0.1:$port/stats" |
            "$STATCHECK" --initial "$STOCK" || true)
        case $line in *idle=yes*) break ;; esac
        sleep 0.1
    done
    echo "$line"
}

# Poll a Redis-backed shopd until the shop-wide belt is empty (at most
# 30 s); print "idle=yes|no invariants=OK|BAD accepted=N round_trips=N
# rt_per_order=X" from its /stats (round trips: every instance's).
redis_settle() {
    local i out=""
    for ((i = 0; i < 300; i++)); do
        out=$(python3 - "$STOCK" "$@" <<'PYEOF' 2>/dev/null || true
import json, sys, urllib.request
stock = int(sys.argv[1])
rt = 0
snap = None
for port in sys.argv[2:]:
    if not port:
        continue
    s = json.load(urllib.request.urlopen(
        "http://127.0.0.1:%s/stats" % port, timeout=2))
    rt += s["store"]["round_trips"]
    snap = snap or s
shop = snap["shop"]
idle = shop["belt"] == 0 and shop["accepted"] == shop["processed"]
inv = shop["processed"] == shop["fulfilled"] + shop["out_of_stock"]
for sku, p in snap["inventory"].items():
    inv = inv and p["stock"] + p["sold"] == stock and p["stock"] >= 0
acc = max(shop["accepted"], 1)
print("idle=%s invariants=%s accepted=%d round_trips=%d rt_per_order=%.3f"
      % ("yes" if idle else "no", "OK" if inv else "BAD", shop["accepted"],
         rt, rt / acc))
PYEOF
)
        case $out in *idle=yes*) break ;; esac
        sleep 0.1
    done
    echo "$out"
}

# Value of key=value in a line.
kv() {
    sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2" | head -n 1
}

# Median of the numbers on stdin (one a line); "-" if none.
median() {
    sort -g | awk '{ a[NR] = $1 }
        END {
            if (NR == 0) { print "-"; exit }
            if (NR % 2) print a[(NR + 1) / 2];
            else printf "%.6g\n", (a[NR / 2] + a[NR / 2 + 1]) / 2
        }'
}

# --- one measurement --------------------------------------------------------
# measure ROUND SERVER THREADS CONNECTIONS: appends one line to RESULTS.
measure() {
    local round=$1 server=$2 t=$3 c=$4
    local tag="r${round}-${server}-t${t}c${c}"
    local log=$OUT/$tag.server.log wout=$OUT/$tag.wrk.out
    local probe=$OUT/$tag.probe.txt

    SRV_PID2= SRV_PORT2= SRV_EXTRA=
    "start_$server" "$log" || die "cannot start $server"
    local pid=$SRV_PID port=$SRV_PORT pid2=$SRV_PID2 port2=$SRV_PORT2
    local extra=$SRV_EXTRA
    local url=http://127.0.0.1:$port

    # /stats probes: one curl, one connection, spread over the middle of
    # the run (starting after 1 s, done 1 s before wrk ends).
    local probe_pid=
    : >"$probe"
    if [ "$PROBES" -gt 0 ] && [ "$SECONDS_PER_RUN" -ge 3 ]; then
        local per_min=$((PROBES * 60 / (SECONDS_PER_RUN - 2)))
        local args=() i
        for ((i = 0; i < PROBES; i++)); do
            args+=(-o /dev/null "$url/stats")
        done
        (sleep 1 && curl -s --max-time $((SECONDS_PER_RUN + 5)) \
            --rate "${per_min}/m" -w '%{time_total}\n' "${args[@]}" \
            >"$probe" 2>/dev/null) &
        probe_pid=$!
        PIDS+=("$probe_pid")
    fi

    if [ -n "$port2" ]; then
        # Two instances: half the connections each, at once; the BENCH
        # line is the sum (rates) and the worse (latencies) of the two.
        local half=$((c / 2)) t2=$(((t + 1) / 2))
        [ "$half" -ge "$t2" ] || t2=$half
        wrk -t"$t2" -c"$half" -d"${SECONDS_PER_RUN}s" --timeout 5s \
            -s "$SCRIPT" "$url/buy" >"$wout.1" 2>&1 &
        local w1=$!
        wrk -t"$t2" -c"$half" -d"${SECONDS_PER_RUN}s" --timeout 5s \
            -s "$SCRIPT" "http://127.0.0.1:$port2/buy" >"$wout.2" 2>&1 || true
        wait "$w1" || true
        {
            cat "$wout.1" "$wout.2" | grep -v '^BENCH '
            cat "$wout.1" "$wout.2" | grep '^BENCH ' | awk '
            { for (i = 2; i <= NF; i++) { split($i, kv, "="); k = kv[1];
                if (!(k in v)) keys[++n] = k;
                if (k ~ /_us$/) { if (kv[2] > v[k]) v[k] = kv[2] }
                else v[k] += kv[2] } }
            END { if (n == 0) exit; line = "BENCH";
                for (i = 1; i <= n; i++) line = line " " keys[i] "=" v[keys[i]];
                print line }'
        } >"$wout"
    else
        local keyed=0
        [ "$server" = idem ] && keyed=1
        BUY_IDEMPOTENCY=$keyed wrk -t"$t" -c"$c" -d"${SECONDS_PER_RUN}s" \
            --timeout 5s -s "$SCRIPT" "$url/buy" >"$wout" 2>&1 || true
    fi
    if [ -n "$probe_pid" ]; then
        wait "$probe_pid" 2>/dev/null || true
        forget_pid "$probe_pid"
    fi

    local line inv="-" settle=""
    line=$(grep '^BENCH ' "$wout" || true)
    if [ -z "$line" ]; then
        echo "bench: wrk printed no result for $tag:" >&2
        cat "$wout" >&2
    fi
    if is_shopd "$server"; then
        settle=$(shopd_settle "$port")
        echo "$settle" >"$OUT/$tag.stats.txt"
        case $settle in
        *"idle=yes invariants=OK"*) inv=OK ;;
        *) inv=BAD ;;
        esac
    elif [ -n "$extra" ]; then
        # A shared store: the shop's invariants from the shop-wide figures.
        settle=$(redis_settle "$port" "$port2")
        echo "$settle" >"$OUT/$tag.stats.txt"
        case $settle in
        *"idle=yes invariants=OK"*) inv=OK ;;
        *) inv=BAD ;;
        esac
    fi
    local rss
    rss=$(peak_rss_kb "$pid")
    local stop_rc=0
    if [ -n "$pid2" ]; then
        local rss2
        rss2=$(peak_rss_kb "$pid2")
        [ "$rss2" -le "$rss" ] || rss=$rss2
        stop_pid "$pid2" || stop_rc=$?
    fi
    stop_pid "$pid" || stop_rc=$?
    local p
    for p in $extra; do
        stop_pid "$p" || true
    done
    if [ "$inv" != "-" ] && [ "$stop_rc" -ne 0 ]; then
        echo "bench: shopd exited $stop_rc after $tag" >&2
        inv=BAD
    fi

    local non2xx errs stats_ms
    non2xx=$(grep -o 'status_[0-9]*=[0-9]*' <<<"$line" |
        grep -v '^status_2' | sed 's/^status_//; s/=/:/' | paste -sd, - || true)
    local e1 e2 e3 e4
    e1=$(kv err_connect "$line") e2=$(kv err_read "$line")
    e3=$(kv err_write "$line") e4=$(kv err_timeout "$line")
    errs=$((${e1:-0} + ${e2:-0} + ${e3:-0} + ${e4:-0}))
    stats_ms=$(awk '{ printf "%.3f\n", $1 * 1000 }' "$probe" | median)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$round" "$server" "$t" "$c" "$(kv ok_rps "$line")" \
        "$(kv p50_us "$line")" "$(kv p99_us "$line")" "$(kv max_us "$line")" \
        "${non2xx:-0}" "$errs" "$rss" "$inv" "$stats_ms" \
        "$(kv rps "$line")" >>"$RESULTS"
    printf 'bench: round %s %-8s -t%s -c%-4s %10s 2xx/s  p99 %6s us  ' \
        "$round" "$server" "$t" "$c" "$(kv ok_rps "$line")" \
        "$(kv p99_us "$line")" >&2
    printf 'non-2xx %s  rss %s kB  /stats %s ms  %s\n' "${non2xx:-0}" \
        "$rss" "$stats_ms" "$inv" >&2
}

# --- the table --------------------------------------------------------------
print_table() {
    echo
    echo "POST /buy, wrk ${SECONDS_PER_RUN}s per run, $ROUNDS rounds, $NCPU CPUs," \
        "$(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "medians over rounds (min–max: the lowest and the highest round);" \
        "ratios = median over rounds of (this row's 2xx/s / that server's" \
        "2xx/s in the same round)"
    echo
    echo "| setting | server | 2xx/s | 2xx/s min–max | p50 ms | p99 ms | p99 ms min–max | max ms | non-2xx | sock err | peak RSS MB | /stats p50 ms | invariants | ÷ memory | ÷ baseline | ÷ nginx |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|---:|---:|---:|"
    local setting t c server
    for setting in $SETTINGS; do
        t=${setting%%:*}
        c=${setting##*:}
        local shown="-t$t -c$c"
        [ $((c / t * t)) -eq "$c" ] || shown="$shown (wrk opens $((c / t * t)))"
        for server in $SERVERS; do
            awk -F'\t' -v s="$server" -v t="$t" -v c="$c" -v shown="$shown" \
                -v servers="$SERVERS" '
            function med(arr, n,    i, j, x, b) {
                if (n == 0) return "";
                for (i = 1; i <= n; i++) b[i] = arr[i];
                for (i = 2; i <= n; i++) {
                    x = b[i];
                    for (j = i - 1; j >= 1 && b[j] > x; j--) b[j + 1] = b[j];
                    b[j + 1] = x;
                }
                if (n % 2) return b[(n + 1) / 2];
                return (b[n / 2] + b[n / 2 + 1]) / 2;
            }
            function lo(arr, n,    i, m) {
                m = arr[1];
                for (i = 2; i <= n; i++) if (arr[i] < m) m = arr[i];
                return m;
            }
            function hi(arr, n,    i, m) {
                m = arr[1];
                for (i = 2; i <= n; i++) if (arr[i] > m) m = arr[i];
                return m;
            }
            $3 == t && $4 == c { rps[$2, $1] = $5 }
            $2 == s && $3 == t && $4 == c && $5 != "" {
                n++; r[n] = $5; p50[n] = $6; p99[n] = $7; mx[n] = $8;
                if ($11 > rss) rss = $11;
                if ($13 != "-") { ns++; st[ns] = $13 }
                if ($12 == "BAD") bad = 1; else if ($12 == "OK") ok = 1;
                errs += $10;
                k = split($9, parts, ",");
                for (i = 1; i <= k; i++) {
                    if (split(parts[i], kvp, ":") == 2) {
                        if (!(kvp[1] in codes)) order[++ncodes] = kvp[1];
                        codes[kvp[1]] += kvp[2];
                    }
                }
                rounds[n] = $1;
            }
            END {
                if (n == 0) { printf "| %s | %s | no data | | | | | | | | | | | | | |\n", shown, s; exit }
                nx = "";
                for (i = 1; i <= ncodes; i++)
                    nx = nx (nx == "" ? "" : ", ") order[i] ": " codes[order[i]];
                if (nx == "") nx = "0";
                inv = bad ? "BAD" : (ok ? "OK" : "—");
                vb = "—"; vn = "—"; vm = "—";
                if (s != "nginx") {
                    for (other = 1; other <= 3; other++) {
                        o = other == 1 ? "baseline" : other == 2 ? "nginx" : "shopd";
                        if (o == s || index(" " servers " ", " " o " ") == 0) continue;
                        m = 0;
                        for (i = 1; i <= n; i++)
                            if (((o, rounds[i]) in rps) && rps[o, rounds[i]] > 0)
                                ratio[++m] = r[i] / rps[o, rounds[i]];
                        if (m > 0) {
                            v = sprintf("%.2f", med(ratio, m));
                            if (o == "baseline") vb = v;
                            else if (o == "nginx") vn = v;
                            else vm = v;
                        }
                    }
                }
                printf "| %s | %s | %.0f | %.0f–%.0f | %.2f | %.2f | %.2f–%.2f | %.1f | %s | %d | %.1f | %s | %s | %s | %s | %s |\n",
                    shown, s, med(r, n), lo(r, n), hi(r, n), med(p50, n) / 1000,
                    med(p99, n) / 1000, lo(p99, n) / 1000, hi(p99, n) / 1000,
                    med(mx, n) / 1000, nx, errs, rss / 1024,
                    ns ? sprintf("%.3f", med(st, ns)) : "—", inv, vm, vb, vn;
            }' "$RESULTS"
        done
    done
    local f
    if ls "$OUT"/*sqlite_*.stats.txt >/dev/null 2>&1; then
        echo
        echo "store cost (median over rounds): orders (accepts + results) per commit,"
        echo "commit latency p50 / p99 ms"
        echo
        for setting in $SETTINGS; do
            t=${setting%%:*}
            c=${setting##*:}
            for server in sqlite_normal sqlite_full; do
                local opc=() c50=() c99=()
                for f in "$OUT"/r*-"$server"-t"${t}"c"${c}".stats.txt; do
                    [ -f "$f" ] || continue
                    opc+=("$(kv orders_per_commit "$(cat "$f")")")
                    c50+=("$(kv commit_p50_ms "$(cat "$f")")")
                    c99+=("$(kv commit_p99_ms "$(cat "$f")")")
                done
                [ "${#opc[@]}" -gt 0 ] || continue
                printf -- '- -t%s -c%s %s: %s orders/commit, commit p50 %s ms, p99 %s ms\n' \
                    "$t" "$c" "$server" \
                    "$(printf '%s\n' "${opc[@]}" | grep -v '^$' | median)" \
                    "$(printf '%s\n' "${c50[@]}" | grep -v '^$' | median)" \
                    "$(printf '%s\n' "${c99[@]}" | grep -v '^$' | median)"
            done
        done
    fi
    if ls "$OUT"/*redis*.stats.txt >/dev/null 2>&1; then
        echo
        echo "Redis round trips per order (every round trip of every instance -"
        echo "accepts, takes, results, reads, /stats refreshes - over the orders"
        echo "accepted; median over rounds)"
        echo
        for setting in $SETTINGS; do
            t=${setting%%:*}
            c=${setting##*:}
            for server in redis1 redis2; do
                local rpo=()
                for f in "$OUT"/r*-"$server"-t"${t}"c"${c}".stats.txt; do
                    [ -f "$f" ] || continue
                    rpo+=("$(kv rt_per_order "$(cat "$f")")")
                done
                [ "${#rpo[@]}" -gt 0 ] || continue
                printf -- '- -t%s -c%s %s: %s round trips per order\n' \
                    "$t" "$c" "$server" \
                    "$(printf '%s\n' "${rpo[@]}" | grep -v '^$' | median)"
            done
        done
    fi
    echo
    echo "2xx/s: answers with status 2xx per second (a 503 is fast but not a sale);"
    echo "non-2xx and sock err: totals over all rounds; peak RSS: the largest VmHWM"
    echo "over the rounds (nginx: master + workers)."
    echo "raw results: $RESULTS (round server threads conns 2xx/s p50_us p99_us"
    echo "  max_us non2xx errs rss_kb invariants stats_ms all_responses/s)"
}

# --- the charts -------------------------------------------------------------
# summary.tsv: one row per server and wrk setting (servers in BENCH_SERVERS
# order, settings in BENCH_SETTINGS order), the figures over the rounds:
# median, lowest and highest round. scripts/bench/plot.gp draws it.
write_summary() {
    local idx=0 setting t c server
    printf '# setting_index\tsetting\tserver\tthreads\tconnections\trounds'
    printf '\tok_rps_median\tok_rps_min\tok_rps_max'
    printf '\tp99_ms_median\tp99_ms_min\tp99_ms_max\tp50_ms_median\n'
    for server in $SERVERS; do
        idx=0
        for setting in $SETTINGS; do
            idx=$((idx + 1))
            t=${setting%%:*}
            c=${setting##*:}
            awk -F'\t' -v s="$server" -v t="$t" -v c="$c" -v i="$idx" '
            function sorted(arr, n,    i, j, x) {
                for (i = 2; i <= n; i++) {
                    x = arr[i];
                    for (j = i - 1; j >= 1 && arr[j] > x; j--) arr[j + 1] = arr[j];
                    arr[j + 1] = x;
                }
            }
            function med(arr, n) {
                return n % 2 ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2;
            }
            $2 == s && $3 == t && $4 == c && $5 != "" {
                n++; r[n] = $5; p99[n] = $7 / 1000; p50[n] = $6 / 1000;
            }
            END {
                if (n == 0) exit;
                sorted(r, n); sorted(p99, n); sorted(p50, n);
                printf "%d\t-t%d -c%d\t%s\t%d\t%d\t%d\t%.0f\t%.0f\t%.0f\t%.3f\t%.3f\t%.3f\t%.3f\n",
                    i, t, c, s, t, c, n, med(r, n), r[1], r[n],
                    med(p99, n), p99[1], p99[n], med(p50, n);
            }' "$RESULTS"
        done
    done
}

# The command for the chart titles: BENCH_COMMAND, or `make bench` with the
# BENCH_* variables that were set (BENCH_DIR is the Makefile's own).
bench_command() {
    if [ -n "${BENCH_COMMAND:-}" ]; then
        echo "$BENCH_COMMAND"
        return
    fi
    local cmd="make bench" kv
    while IFS= read -r kv; do
        # NAME="a b" for a value with spaces, as a person would type it.
        [[ $kv != *" "* ]] || kv="${kv%%=*}=\"${kv#*=}\""
        cmd="$cmd $kv"
    done < <(env | grep '^BENCH_' | grep -v -e '^BENCH_DIR=' -e '^BENCH_OUT=' |
        sort || true)
    echo "$cmd"
}

# Draw OUT/summary.tsv into OUT/bench-ok-rps.{svg,png} and
# OUT/bench-p99.{svg,png}; without gnuplot, say so and go on.
plot_charts() {
    local here stamp cmd
    here=$(cd "$(dirname "$0")" && pwd)
    if ! command -v gnuplot >/dev/null; then
        echo "bench: gnuplot not found, no charts (apt-get install" \
            "gnuplot-nox); figures in $OUT/summary.tsv" >&2
        return 0
    fi
    stamp="$(date -u '+%Y-%m-%d %H:%M UTC'), $NCPU CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    cmd=$(bench_command)
    {
        echo "command: $cmd"
        echo "date: $stamp"
    } >"$OUT/README"
    if gnuplot -e "dir='$OUT'" -e "stamp='${stamp//\'/}'" \
        -e "command='${cmd//\'/}'" -e "servers='$SERVERS'" \
        -e "rounds=$ROUNDS" -e "secs=$SECONDS_PER_RUN" \
        "$here/plot.gp" >&2; then
        echo "bench: charts $OUT/bench-ok-rps.svg, $OUT/bench-p99.svg (and .png)" >&2
    else
        echo "bench: gnuplot failed; figures in $OUT/summary.tsv" >&2
    fi
}

# --- 1,000,000 orders at default settings -----------------------------------
million_check() {
    local server=$1
    local log=$OUT/million-$server.server.log wout=$OUT/million-$server.wrk.out
    echo >&2
    echo "bench: peak RSS of $server after 1,000,000 orders (default" \
        "settings, wrk -t2 -c64, at most 300 s)" >&2
    "start_$server" "$log" || die "cannot start $server"
    local pid=$SRV_PID port=$SRV_PORT
    wrk -t2 -c64 -d300s --timeout 5s -s "$SCRIPT" \
        "http://127.0.0.1:$port/buy" >"$wout" 2>&1 &
    local wrk_pid=$!
    PIDS+=("$wrk_pid")
    local accepted=0 t0=$SECONDS line
    while kill -0 "$wrk_pid" 2>/dev/null; do
        line=$(curl -s --max-time 2 "http://127.0.0.1:$port/stats" |
            "$STATCHECK" || true)
        accepted=$(kv accepted "$line")
        [ "${accepted:-0}" -ge 1000000 ] && break
        sleep 0.5
    done
    # wrk prints its summary on SIGINT.
    kill -INT "$wrk_pid" 2>/dev/null || true
    wait "$wrk_pid" 2>/dev/null || true
    forget_pid "$wrk_pid"
    local settle rss
    settle=$(shopd_settle "$port")
    rss=$(peak_rss_kb "$pid")
    stop_pid "$pid" || echo "bench: shopd exited non-zero" >&2
    accepted=$(kv accepted "$settle")
    local verdict=OK
    [ "$rss" -le $((32 * 1024)) ] || verdict=OVER
    [ "${accepted:-0}" -ge 1000000 ] || verdict="INCOMPLETE (only ${accepted:-0} orders)"
    echo
    echo "1,000,000-order check, $server: $(kv accepted "$settle") orders accepted in" \
        "$((SECONDS - t0)) s, peak RSS $((rss / 1024)) MB (VmHWM $rss kB," \
        "limit 32 MB): $verdict; invariants: $(sed 's/.*invariants=//' <<<"$settle")"
}

# --- main -------------------------------------------------------------------
echo "bench: $ROUNDS rounds x settings [$SETTINGS] x servers [$SERVERS]," \
    "${SECONDS_PER_RUN}s each; logs in $OUT" >&2
read -r -a server_list <<<"$SERVERS"
nserv=${#server_list[@]}
for ((round = 1; round <= ROUNDS; round++)); do
    for setting in $SETTINGS; do
        t=${setting%%:*}
        c=${setting##*:}
        # Rotate the order every round so no server always goes first.
        for ((k = 0; k < nserv; k++)); do
            measure "$round" "${server_list[$(((k + round - 1) % nserv))]}" \
                "$t" "$c"
        done
    done
done
if [ "$ROUNDS" -gt 0 ]; then
    print_table | tee "$OUT/table.md"
    write_summary >"$OUT/summary.tsv"
    plot_charts
    ln -sfn "$(basename "$OUT")" "$(dirname "$OUT")/latest" 2>/dev/null || true
fi
if [ "$MILLION" = 1 ]; then
    # Not in a pipeline: a subshell would not run the cleanup trap.
    for server in $MILLION_SERVERS; do
        million_check "$server" >"$OUT/million-$server.txt"
        cat "$OUT/million-$server.txt"
    done
fi
