#!/usr/bin/env bash
# queue.sh - `make bench-queue`: the channel (queue/queue.h) against Go's
# buffered channel, same cases, same element size and capacity, same run.
#
# Runs build/bench/queue_bench (C) and, when it was built (Go is optional,
# bench only), build/bench/chan_go, alternating C and Go for every case and
# round, and prints a table of medians with the ratio C/Go of ns/op (below
# 1.0 means the C channel is faster). Prints numbers; never fails on them.
#
# Environment (optional): QUEUE_ROUNDS=5, QUEUE_ITEMS=2000000,
# QUEUE_CASES="1x1 4x4 8x2", QUEUE_CAP=1024, QUEUE_ELEM=184 (bytes; 184 is
# sizeof(struct shop_item), what shopd's belt carries), BENCH_DIR=build/bench,
# QUEUE_ALT=path to a second queue_bench binary (built against a changed
# queue.c) to measure a change before/after in the same run.
set -euo pipefail

BENCH_DIR=${BENCH_DIR:-build/bench}
C_BIN=$BENCH_DIR/queue_bench
GO_BIN=$BENCH_DIR/chan_go
ROUNDS=${QUEUE_ROUNDS:-5}
ITEMS=${QUEUE_ITEMS:-2000000}
CASES=${QUEUE_CASES:-"1x1 4x4 8x2"}
CAP=${QUEUE_CAP:-1024}
ELEM=${QUEUE_ELEM:-184}
ALT=${QUEUE_ALT:-}

[ -x "$C_BIN" ] || {
    echo "bench-queue: $C_BIN not built" >&2
    exit 1
}
have_go=0
if [ -x "$GO_BIN" ]; then
    have_go=1
else
    echo "bench-queue: Go not available, C only (apt-get install golang-go" \
        "to add the reference)" >&2
fi

raw=$(mktemp)
trap 'rm -f "$raw"' EXIT

for ((r = 1; r <= ROUNDS; r++)); do
    for cs in $CASES; do
        # Alternate which one goes first, so neither always runs warm.
        order="c alt go"
        [ $((r % 2)) -eq 0 ] && order="go alt c"
        for impl in $order; do
            if [ "$impl" = c ]; then
                "$C_BIN" --case "$cs" --items "$ITEMS" --cap "$CAP" \
                    --elem "$ELEM" >>"$raw"
            elif [ "$impl" = alt ]; then
                [ -z "$ALT" ] || "$ALT" --case "$cs" --items "$ITEMS" \
                    --cap "$CAP" --elem "$ELEM" | sed 's/impl=c /impl=alt /' \
                    >>"$raw"
            elif [ "$have_go" = 1 ]; then
                "$GO_BIN" -case "$cs" -items "$ITEMS" -cap "$CAP" \
                    -elem "$ELEM" >>"$raw"
            fi
        done
    done
    echo "bench-queue: round $r of $ROUNDS done" >&2
done

echo
echo "channel microbenchmark: $ITEMS items per run, capacity $CAP," \
    "$ELEM-byte elements, $ROUNDS rounds, $(nproc) CPUs," \
    "$(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "ns/op = wall time per element moved; medians over rounds;" \
    "C/Go = median of per-round ratios (< 1: C faster)"
echo
if [ -n "$ALT" ]; then
    echo "| producers x consumers | C ns/op | C items/s | Go ns/op | Go items/s | C/Go | alt ns/op | alt/Go |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
else
    echo "| producers x consumers | C ns/op | C items/s | Go ns/op | Go items/s | C/Go |"
    echo "|---|---:|---:|---:|---:|---:|"
fi
for cs in $CASES; do
    awk -v cs="$cs" -v alt="$ALT" '
    function med(arr, n,    i, j, x, b) {
        if (n == 0) return -1;
        for (i = 1; i <= n; i++) b[i] = arr[i];
        for (i = 2; i <= n; i++) {
            x = b[i];
            for (j = i - 1; j >= 1 && b[j] > x; j--) b[j + 1] = b[j];
            b[j + 1] = x;
        }
        if (n % 2) return b[(n + 1) / 2];
        return (b[n / 2] + b[n / 2 + 1]) / 2;
    }
    {
        impl = ""; c = ""; ns = "";
        for (i = 1; i <= NF; i++) {
            split($i, kv, "=");
            if (kv[1] == "impl") impl = kv[2];
            else if (kv[1] == "case") c = kv[2];
            else if (kv[1] == "ns_per_op") ns = kv[2];
        }
        if (c != cs) next;
        if (impl == "c") { nc++; cv[nc] = ns }
        else if (impl == "go") { ng++; gv[ng] = ns }
        else if (impl == "alt") { na++; av[na] = ns }
    }
    END {
        m = nc < ng ? nc : ng;
        for (i = 1; i <= m; i++) ratio[i] = cv[i] / gv[i];
        cm = med(cv, nc); gm = med(gv, ng);
        line = sprintf("| %s | %.1f | %.2fM | %s | %s | %s |", cs, cm,
            1000 / cm, ng ? sprintf("%.1f", gm) : "—",
            ng ? sprintf("%.2fM", 1000 / gm) : "—",
            m ? sprintf("%.2f", med(ratio, m)) : "—");
        if (alt != "") {
            ma = na < ng ? na : ng;
            for (i = 1; i <= ma; i++) aratio[i] = av[i] / gv[i];
            line = line sprintf(" %s | %s |",
                na ? sprintf("%.1f", med(av, na)) : "—",
                ma ? sprintf("%.2f", med(aratio, ma)) : "—");
        }
        print line;
    }' "$raw"
done
