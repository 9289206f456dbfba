# plot.gp - the charts of `make bench` (scripts/bench/run.sh calls it;
# gnuplot 5, Debian's gnuplot-nox):
#
#   gnuplot -e "dir='build/bench/latest'" -e "servers='shopd baseline'" \
#           -e "stamp='2026-...'" -e "command='make bench'" \
#           -e "rounds=3" -e "secs=5" scripts/bench/plot.gp
#
# Reads dir/summary.tsv (run.sh's write_summary: one row per server and wrk
# setting, median / lowest / highest round) and writes, each as .svg (for
# docs/performance.md, which shows docs/bench/*.svg) and .png (a quick
# look):
#   bench-ok-rps  POST /buy answered 2xx per second against the wrk setting
#   bench-p99     wrk's p99 latency against the wrk setting (log scale)
# One line per server (and per store: sqlite_*, redis*), the point at the
# median over the rounds, the bar from the lowest to the highest round.
# The x axis lists the settings in the order of BENCH_SETTINGS (evenly
# spaced: -c127, -c128 and -c129 would sit on top of each other on a true
# connections axis); the servers are nudged apart so their bars do not hide
# each other.

if (!exists("dir")) dir = "build/bench/latest"
if (!exists("servers")) servers = "shopd idem sqlite_normal sqlite_full redis1 redis2 baseline nginx"
if (!exists("stamp")) stamp = ""
if (!exists("command")) command = "make bench"
if (!exists("rounds")) rounds = 0
if (!exists("secs")) secs = 0

# Columns of summary.tsv (1-based).
IDX = 1; SETTING = 2; SERVER = 3; RPS = 7; RPS_MIN = 8; RPS_MAX = 9
P99 = 10; P99_MIN = 11; P99_MAX = 12

data = dir . "/summary.tsv"
term(ext) = ext eq "svg" \
    ? "set terminal svg size 1000,620 dynamic font 'Sans,13' background '#ffffff' noenhanced" \
    : "set terminal pngcairo size 1000,620 font 'Sans,10' background '#ffffff' noenhanced"
how = rounds > 0 ? sprintf("median of %d rounds x %d s, bars: lowest to highest round", rounds, secs) \
                 : "median over the rounds, bars: lowest to highest round"
subtitle = "\n" . stamp . "\n" . command

set datafile separator "\t"
# Colours that stay apart on white (no yellow), one per line type.
set linetype 1 lc rgb "#1f77b4" pt 7
set linetype 2 lc rgb "#d62728" pt 7
set linetype 3 lc rgb "#2ca02c" pt 7
set linetype 4 lc rgb "#9467bd" pt 7
set linetype 5 lc rgb "#ff7f0e" pt 7
set linetype 6 lc rgb "#17becf" pt 7
set linetype 7 lc rgb "#8c564b" pt 7
set linetype 8 lc rgb "#000000" pt 7
set linetype 9 lc rgb "#e377c2" pt 7
set datafile commentschars "#"
set grid lc rgb "#dddddd"
set key outside right top samplen 2
set xtics rotate by -30 nomirror
set bars small

stats data using IDX nooutput
nset = STATS_max
n = words(servers)
nudge(k) = (k - (n + 1) / 2.0) * 0.5 / n
pick(k, col) = strcol(SERVER) eq word(servers, k) ? column(col) : NaN
set xrange [0.5 : nset + 0.5]
# The settings as x tics, once each: ("-t1 -c64" 1, "-t2 -c256" 2, ...).
eval "set xtics (" . system("awk -F'\t' '!/^#/ && !($1 in s) { s[$1]; printf \"%s\\\"%s\\\" %s\", sep, $2, $1; sep = \", \" }' '" . data . "'") . ")"
set xlabel "wrk setting: threads and connections (every connection keeps one POST /buy in flight)"

# --- 2xx/s ------------------------------------------------------------------
set ylabel "POST /buy answered 2xx per second"
set yrange [0 : *]
set format y "%.0f"
set title "Throughput, " . how . subtitle
do for [ext in "svg png"] {
    eval term(ext)
    set output dir . "/bench-ok-rps." . ext
    plot for [k = 1 : n] data \
        using (column(IDX) + nudge(k)):(pick(k, RPS)):(pick(k, RPS_MIN)):(pick(k, RPS_MAX))  \
        with yerrorlines lc k pt 7 ps 0.9 lw 1.5 title word(servers, k)
    set output
}

# --- p99 --------------------------------------------------------------------
set ylabel "p99 latency of POST /buy, ms (wrk; log scale)"
set logscale y
set yrange [* : *]
set format y "%g"
set title "Tail latency, " . how . subtitle
do for [ext in "svg png"] {
    eval term(ext)
    set output dir . "/bench-p99." . ext
    plot for [k = 1 : n] data \
        using (column(IDX) + nudge(k)):(pick(k, P99)):(pick(k, P99_MIN)):(pick(k, P99_MAX))  \
        with yerrorlines lc k pt 7 ps 0.9 lw 1.5 title word(servers, k)
    set output
}
