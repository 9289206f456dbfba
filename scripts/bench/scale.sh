#!/usr/bin/env bash
# scale.sh - `make bench-scale`: how far shopd scales out on one Redis,
# measured and projected.
#
#   scripts/bench/scale.sh            (SHOPD=./shopd; make bench-scale)
#
# For every round and wrk setting: a private redis-server (Debian's, on a
# unix socket in the run's directory, append-only file on with fsync every
# second as compose.yaml runs it) and one shopd on it (--store unix://...),
# a catalog with so much stock that nothing sells out, and wrk POSTing
# /buy (scripts/wrk/buy.lua). Then the same with two shopd instances on
# one Redis, wrk split across both (half the connections each), their
# figures summed. Everything is measured from outside, so it holds
# whatever store/redis.c and its Lua do:
#   - orders/s: wrk's 2xx/s (an order is a 2xx);
#   - shopd's CPU per order: utime + stime from /proc/PID/stat;
#   - Redis's CPU per order: INFO cpu used_cpu_user + used_cpu_sys (the
#     whole process), and its main thread's alone;
#   - Redis commands per order: INFO stats total_commands_processed (it
#     counts the commands a script runs too), and the commands with most
#     calls per order (INFO commandstats);
#   - round trips per order: INFO stats total_reads_processed, the reads
#     Redis did on its clients' sockets (a pipelined batch is one), next to
#     the round trips the instances count themselves (/stats, if given).
# The CPU and Redis figures run from just before wrk until the shop's belt
# is empty again (GET /stats), so the orders' processing counts too.
#
# Then the projection: N instances on one Redis core do at most
#   min(N x one instance's measured 2xx/s, 1 / Redis's CPU per order)
# for N = 1..16, printed and drawn with gnuplot, the knee (the N where
# Redis's core saturates) marked. It assumes each instance gets its own
# cores and the cost per order stays as measured: it is a projection from
# measured costs, not a measurement; the one- and two-instance points are
# measured (on this box they share its cores with wrk and Redis).
#
# Output in SCALE_OUT (default build/bench/scale/run-DATE, and
# build/bench/scale/latest pointing at the newest): results.tsv (one row a
# run), table.md, projection.tsv, scale-projection.svg and .png, and every
# run's logs and INFO snapshots.
#
# Environment (all optional):
#   SCALE_SECONDS=5            wrk duration per run (1-60)
#   SCALE_SETTINGS="1:64 2:256"  wrk threads:connections
#   SCALE_ROUNDS=1             rounds (1-9); the table shows medians
#   SCALE_PAIR=1               0: skip the two-instance runs
#   SCALE_SHOPD_ARGS=          extra shopd flags
#   SCALE_OUT=                 where everything goes
#   SHOPD=./shopd BENCH_DIR=build/bench   (the Makefile sets them)
#
# Bounded: every run stops by itself; every process started here is
# stopped by its PID, also on failure or Ctrl-C. Exits 0 whatever the
# numbers say; non-zero only if something could not be started or measured.
set -euo pipefail
cd "$(dirname "$0")/../.."

SHOPD=${SHOPD:-./shopd}
BENCH_DIR=${BENCH_DIR:-build/bench}
SECS=${SCALE_SECONDS:-5}
SETTINGS=${SCALE_SETTINGS:-"1:64 2:256"}
ROUNDS=${SCALE_ROUNDS:-1}
PAIR=${SCALE_PAIR:-1}
SHOPD_ARGS=${SCALE_SHOPD_ARGS:-}
OUT=${SCALE_OUT:-$BENCH_DIR/scale/run-$(date +%Y%m%d-%H%M%S)}
SCRIPT=scripts/wrk/buy.lua
STOCK=1000000000000
MAX_N=16

die() {
    echo "scale: $*" >&2
    exit 1
}

PIDS_WHO=scale
# shellcheck source=scripts/lib/pids.sh
. scripts/lib/pids.sh
# shellcheck source=scripts/lib/catalog.sh
. scripts/lib/catalog.sh
# shellcheck source=scripts/lib/redis.sh
. scripts/lib/redis.sh

# --- preconditions ----------------------------------------------------------
[ -x "$SHOPD" ] || die "$SHOPD not built (run make)"
for tool in wrk redis-server redis-cli curl python3; do
    command -v "$tool" >/dev/null || die "$tool not found (make bench-deps)"
done
if ! [[ $SECS =~ ^[0-9]+$ ]] || [ "$SECS" -lt 1 ] || [ "$SECS" -gt 60 ]; then
    die "SCALE_SECONDS must be 1-60, not '$SECS'"
fi
[[ $ROUNDS =~ ^[1-9]$ ]] || die "SCALE_ROUNDS must be 1-9, not '$ROUNDS'"
[[ $PAIR =~ ^[01]$ ]] || die "SCALE_PAIR must be 0 or 1, not '$PAIR'"
for s in $SETTINGS; do
    if ! [[ $s =~ ^([1-9][0-9]*):([0-9]+)$ ]] ||
        [ "${BASH_REMATCH[2]}" -lt $((2 * BASH_REMATCH[1])) ]; then
        die "SCALE_SETTINGS: '$s' is not THREADS:CONNECTIONS with at least two connections a thread"
    fi
done

mkdir -p "$OUT"
RESULTS=$OUT/results.tsv
: >"$RESULTS"
write_catalog "$OUT/catalog.json" "$STOCK"
TCK=$(getconf CLK_TCK)

# utime + stime, in clock ticks, of the PIDs given, together.
cpu_ticks() {
    local pid sum=0
    for pid in "$@"; do
        sum=$((sum + $(awk '{ print $14 + $15 }' "/proc/$pid/stat")))
    done
    echo "$sum"
}

# shop_stats MODE PORT...: with MODE "now", print the round trips every
# instance counted (/stats store.round_trips, summed; "-" if absent); with
# MODE "drained", first wait up to 30 s until the shop's belt is empty
# and every accepted order processed (the first instance's /stats "shop",
# or its "orders" and "queue" without one), and print "ROUND_TRIPS yes|no".
shop_stats() {
    python3 - "$@" <<'EOF'
import json, sys, time, urllib.request
mode, ports = sys.argv[1], sys.argv[2:]
def get(port):
    with urllib.request.urlopen("http://127.0.0.1:%s/stats" % port,
                                timeout=2) as r:
        return json.load(r)
def idle(s):
    shop = s.get("shop")
    if shop:
        return (shop["valid"] and shop["belt"] == 0 and
                shop["in_flight"] == 0 and shop["accepted"] == shop["processed"])
    o = s["orders"]
    return s["queue"]["depth"] == 0 and o["in_flight"] == 0 and \
        o["accepted"] == o["processed"]
drained = "-"
if mode == "drained":
    drained = "no"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if idle(get(ports[0])):
                drained = "yes"
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
try:
    rt = sum(get(p)["store"]["round_trips"] for p in ports)
except (OSError, ValueError, KeyError):
    rt = "-"
print(rt, drained) if mode == "drained" else print(rt)
EOF
}

# --- one run ----------------------------------------------------------------
# measure ROUND THREADS CONNECTIONS INSTANCES: one Redis, INSTANCES shopd on
# it, wrk split across them; appends one row to RESULTS.
measure() {
    local round=$1 t=$2 c=$3 k=$4 i pid port
    local dir=$OUT/r$round-t${t}c$c-x$k
    mkdir -p "$dir"
    start_redis "$dir/redis" || die "cannot start redis-server"
    local shopds=() ports=()
    for ((i = 1; i <= k; i++)); do
        : >"$dir/shopd$i.log" # there before listening_port reads it
        # shellcheck disable=SC2086 # SHOPD_ARGS is a list of flags
        "$SHOPD" --bind 127.0.0.1 --port 0 --catalog "$OUT/catalog.json" \
            --store "unix://$REDIS_SOCK" --instance "scale$i" $SHOPD_ARGS \
            2>"$dir/shopd$i.log" &
        pid=$!
        PIDS+=("$pid")
        shopds+=("$pid")
        port=$(listening_port "$pid" "$dir/shopd$i.log") ||
            die "shopd $i did not start"
        ports+=("$port")
    done

    local tw=$((t / k)) cw=$((c / k)) rt0 ticks0 wrks=()
    [ "$tw" -ge 1 ] || tw=1
    rt0=$(shop_stats now "${ports[@]}")
    redis_info "$REDIS_SOCK" >"$dir/info.before"
    ticks0=$(cpu_ticks "${shopds[@]}")
    for ((i = 1; i <= k; i++)); do
        wrk -t"$tw" -c"$cw" -d"${SECS}s" --timeout 5s -s "$SCRIPT" \
            "http://127.0.0.1:${ports[i - 1]}/buy" >"$dir/wrk$i.out" 2>&1 &
        PIDS+=("$!")
        wrks+=("$!")
    done
    for pid in "${wrks[@]}"; do
        wait "$pid" || echo "scale: wrk failed, see $dir/wrk*.out" >&2
        forget_pid "$pid"
    done
    local after ticks1
    after=$(shop_stats drained "${ports[@]}")
    ticks1=$(cpu_ticks "${shopds[@]}")
    redis_info "$REDIS_SOCK" >"$dir/info.after"
    for pid in "${shopds[@]}"; do
        stop_pid "$pid" 30 || echo "scale: a shopd exited non-zero, see $dir" >&2
    done
    stop_pid "$REDIS_PID" 30 || true

    python3 - "$round" "$t" "$c" "$k" "$((ticks1 - ticks0))" "$TCK" \
        "$rt0" "$after" "$dir" >>"$RESULTS" <<'EOF'
import glob, re, sys
rnd, t, c, k, ticks, tck, rt0, after, d = sys.argv[1:]
rt1, drained = after.split()
def info(path):
    return dict(l.rstrip("\n").split(":", 1) for l in open(path)
                if ":" in l and not l.startswith("#"))
b, a = info(d + "/info.before"), info(d + "/info.after")
delta = lambda f: float(a[f]) - float(b[f])
ok = rps = other = 0
for path in sorted(glob.glob(d + "/wrk*.out")):
    m = re.search(r"^BENCH .*", open(path).read(), re.M)
    if not m:
        sys.exit("scale: wrk printed no result in " + path)
    kv = dict(f.split("=", 1) for f in m.group(0).split()[1:])
    ok += int(kv["ok"])
    rps += float(kv["ok_rps"])
    other += int(kv["requests"]) - int(kv["ok"])
n = max(ok, 1)
calls = {}
for key, val in a.items():
    if key.startswith("cmdstat_"):
        was = re.search(r"calls=(\d+)", b.get(key, "calls=0")).group(1)
        calls[key[8:]] = int(re.search(r"calls=(\d+)", val).group(1)) - int(was)
top = sorted((x for x in calls if x not in ("info", "ping")),
             key=lambda x: -calls[x])[:4]
rt = "%.2f" % ((int(rt1) - int(rt0)) / n) if "-" not in (rt0, rt1) else "-"
print("\t".join(str(x) for x in (
    rnd, t, c, k, ok, "%.0f" % rps, other,
    "%.2f" % (int(ticks) / int(tck) * 1e6 / n),
    "%.2f" % ((delta("used_cpu_user") + delta("used_cpu_sys")) * 1e6 / n),
    "%.2f" % ((delta("used_cpu_user_main_thread") +
               delta("used_cpu_sys_main_thread")) * 1e6 / n),
    "%.2f" % (delta("total_commands_processed") / n),
    "%.2f" % (delta("total_reads_processed") / n), rt, drained,
    ", ".join("%s %.2f" % (x, calls[x] / n) for x in top) or "-")))
EOF
    tail -n 1 "$RESULTS" | awk -F'\t' '{
        printf "scale: round %s -t%s -c%s x%s: %s 2xx/s, shopd %s us/order, redis %s us/order, %s commands and %s round trips per order, drained %s\n",
            $1, $2, $3, $4, $6, $8, $9, $11, $12, $14 }' >&2
}

# --- the table, the projection, the chart -----------------------------------
# summarize: reads RESULTS; prints the tables (also to OUT/table.md) and
# writes OUT/projection.tsv and OUT/scale.gp.
summarize() {
    python3 - "$RESULTS" "$OUT" "$MAX_N" "$1" "$2" <<'EOF'
import math, statistics, sys
results, out, max_n, stamp, command = sys.argv[1:]
max_n = int(max_n)
runs = {}
for line in open(results):
    f = line.rstrip("\n").split("\t")
    runs.setdefault((int(f[1]), int(f[2]), int(f[3])), []).append(f)
def med(rows, i):
    vals = [float(r[i]) for r in rows if r[i] != "-"]
    return statistics.median(vals) if vals else None
def fmt(x, spec):
    return "-" if x is None else spec % x
lines = ["| wrk | instances | orders | 2xx/s | non-2xx | shopd µs CPU/order "
         "| Redis µs CPU/order | Redis main thread µs/order "
         "| Redis commands/order | Redis reads (round trips)/order "
         "| round trips/order counted by shopd | belt drained "
         "| most calls per order |",
         "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
for (t, c, k), rows in sorted(runs.items()):
    lines.append("| -t%d -c%d | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
        t, c, k, fmt(med(rows, 4), "%.0f"), fmt(med(rows, 5), "%.0f"),
        fmt(med(rows, 6), "%.0f"), fmt(med(rows, 7), "%.1f"),
        fmt(med(rows, 8), "%.1f"), fmt(med(rows, 9), "%.1f"),
        fmt(med(rows, 10), "%.2f"), fmt(med(rows, 11), "%.2f"),
        fmt(med(rows, 12), "%.2f"), ",".join(r[13] for r in rows), rows[-1][14]))
settings = sorted({(t, c) for (t, c, k) in runs})
proj, knees = [], []
for t, c in settings:
    one = runs[(t, c, 1)]
    rate, us = med(one, 5), med(one, 8)
    ceiling = 1e6 / us if us else float("inf")
    knee = ceiling / rate if rate else float("inf")
    pair = med(runs[(t, c, 2)], 5) if (t, c, 2) in runs else None
    proj.append([min(n * (rate or 0), ceiling) for n in range(1, max_n + 1)])
    knees.append((t, c, rate, us, ceiling, knee, pair))
lines += ["", "Projected fleet throughput on one Redis core (a projection from "
          "measured costs: min(N × one instance's 2xx/s, 1 ÷ Redis CPU per order))", "",
          "| N | " + " | ".join("-t%d -c%d, orders/s" % s for s in settings) + " |",
          "|---:|" + "---:|" * len(settings)]
for n in range(1, max_n + 1):
    lines.append("| %d | " % n + " | ".join("%.0f" % p[n - 1] for p in proj) + " |")
lines.append("")
for t, c, rate, us, ceiling, knee, pair in knees:
    where = ("N = %d (N × rate reaches the limit at N ≈ %.1f)" % (math.ceil(knee), knee)
             if knee <= max_n else "beyond N = %d (at N ≈ %.1f)" % (max_n, knee))
    lines.append("-t%d -c%d: one instance %.0f 2xx/s; Redis %.1f µs CPU/order, so one "
                 "Redis core caps the fleet at %.0f orders/s; knee %s; two instances "
                 "measured on this box: %s 2xx/s" % (t, c, rate, us, ceiling, where,
                                                       fmt(pair, "%.0f")))
open(out + "/table.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
with open(out + "/projection.tsv", "w") as f:
    f.write("# N\t" + "\t".join("-t%d -c%d" % s for s in settings) + "\n")
    for n in range(1, max_n + 1):
        f.write("%d\t" % n + "\t".join("%.0f" % p[n - 1] for p in proj) + "\n")
# The chart: one projected line per wrk setting, its Redis-core limit
# dashed, its knee a dotted vertical line, the measured 1 and 2 instances
# as open points.
colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
top = max(max(p) for p in proj) * 1.35
gp = ["set grid lc rgb '#dddddd'",
      "set key inside right bottom opaque box samplen 2", "set xrange [0.5:%d.5]" % max_n,
      "set xtics 1", "set yrange [0:%.0f]" % top, "set format y '%.0f'",
      "set xlabel 'shopd instances N on one Redis (each on its own cores)'",
      "set ylabel 'orders per second (POST /buy answered 2xx)'",
      "set title \"Projected fleet throughput on one Redis core: a projection from "
      "measured costs, not a measurement\\nprojected: min(N × one instance's measured "
      "2xx/s, 1 ÷ Redis CPU per order); open points: measured on this box\\n"
      "%s\\n%s\"" % (stamp.replace('"', ""), command.replace('"', ""))]
plots = []
for i, (t, c, rate, us, ceiling, knee, pair) in enumerate(knees):
    col, s = colors[i % len(colors)], "-t%d -c%d" % (t, c)
    if knee <= max_n:
        gp.append("set arrow %d from %.3f, graph 0 to %.3f, graph 1 nohead dt 3 lw 1.5 "
                  "lc rgb '%s'" % (i + 1, knee, knee, col))
        gp.append("set label %d \"knee %s: N = %.1f, Redis's core saturated\" at %.3f, "
                  "graph %.2f offset 0.5,0 tc rgb '%s'" % (
                      i + 1, s, knee, knee, 0.96 - 0.05 * i, col))
    plots.append("'%s/projection.tsv' using 1:%d with linespoints lw 2 pt 7 "
                 "lc rgb '%s' title '%s, projected'" % (out, i + 2, col, s))
    plots.append("%.0f with lines dt 2 lc rgb '%s' title '%s, 1 Redis core: "
                 "%.0f/s (%.1f µs CPU/order)'" % (ceiling, col, s, ceiling, us))
    pts = "1\\t%.0f" % rate + ("\\n2\\t%.0f" % pair if pair is not None else "")
    plots.append("'< printf \"%s\\n\"' using 1:2 with points pt 6 ps 2 lw 2 "
                 "lc rgb '%s' title '%s, measured here'" % (pts, col, s))
for ext, term in (("svg", "svg size 1100,650 dynamic font 'Sans,13' background '#ffffff' noenhanced"),
                  ("png", "pngcairo size 1100,650 font 'Sans,10' background '#ffffff' noenhanced")):
    gp += ["set terminal " + term, "set output '%s/scale-projection.%s'" % (out, ext),
           "plot " + ", \\\n    ".join(plots), "set output"]
open(out + "/scale.gp", "w").write("\n".join(gp) + "\n")
EOF
}

# The command for the chart's title: make bench-scale and the SCALE_*
# variables that were set.
scale_command() {
    local cmd="make bench-scale" v
    for v in SCALE_SECONDS SCALE_SETTINGS SCALE_ROUNDS SCALE_PAIR SCALE_SHOPD_ARGS; do
        [ -z "${!v:-}" ] || cmd="$cmd $v='${!v}'"
    done
    echo "$cmd"
}

# --- main -------------------------------------------------------------------
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
echo "scale: $ROUNDS round(s) x [$SETTINGS] x instances [1$([ "$PAIR" = 0 ] || echo ' 2')]," \
    "${SECS}s each; logs in $OUT" >&2
for ((round = 1; round <= ROUNDS; round++)); do
    for s in $SETTINGS; do
        measure "$round" "${s%%:*}" "${s##*:}" 1
        [ "$PAIR" = 0 ] || measure "$round" "${s%%:*}" "${s##*:}" 2
    done
done
STAMP="$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, load average $LOAD0 before, $(cut -d' ' -f1-3 /proc/loadavg) after"
echo
echo "shopd on one Redis (unix socket, appendfsync everysec), wrk ${SECS}s per run, $ROUNDS round(s), $STAMP"
echo "(medians over the rounds; per order = per 2xx, from just before wrk until the belt is empty)"
echo
summarize "$STAMP" "$(scale_command)"
if command -v gnuplot >/dev/null; then
    if gnuplot "$OUT/scale.gp" >&2; then
        echo "scale: chart $OUT/scale-projection.svg (and .png)" >&2
    else
        echo "scale: gnuplot failed; figures in $OUT/projection.tsv" >&2
    fi
else
    echo "scale: gnuplot not found, no chart (apt-get install gnuplot-nox)" >&2
fi
ln -sfn "$(basename "$OUT")" "$(dirname "$OUT")/latest" 2>/dev/null || true
