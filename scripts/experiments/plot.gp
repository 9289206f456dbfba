# plot.gp - the charts of `make experiment` (scripts/experiments/run.sh
# calls it; gnuplot 5, Debian's gnuplot-nox):
#
#   gnuplot -e "dir='build/experiment/latest'" -e "stamp='2026-...'" \
#           -e "command='make experiment'" -e "rate=2000" \
#           scripts/experiments/plot.gp
#
# Reads dir/{sweep,http,belt,fill}.tsv (columns: see run.sh's header line)
# and writes, each as .svg (for docs/experiment.md, which shows
# docs/experiment/*.svg) and .png (a quick look):
#   throughput  fulfilled orders/s against Little's-law ceiling
#   queue_wait  mean queue wait against mean belt depth, with L = lambda W
#   rejections  503 share and belt depth against the offered load
# A part whose file is missing or empty is skipped.

if (!exists("dir")) dir = "build/experiment/latest"
if (!exists("stamp")) stamp = ""
if (!exists("command")) command = "make experiment"
if (!exists("rate")) rate = 0

# Columns of every .tsv (1-based).
W = 1; MS = 2; CAP = 3; CEIL = 4; OFFERED = 9; FULFILLED = 11
PROCESSED = 12; SHARE = 14; DEPTH = 15; WAIT = 17; P99 = 20

has(f) = system("test -s '" . f . "' && echo 1 || echo 0") eq "1"
term(ext) = ext eq "svg" \
    ? "set terminal svg size 960,620 dynamic font 'Sans,13' background '#ffffff' noenhanced" \
    : "set terminal pngcairo size 960,620 font 'Sans,10' background '#ffffff' noenhanced"
subtitle = "\n" . stamp . "\n" . command

set grid lc rgb "#dddddd"
set key top left box opaque samplen 2
# Point labels: "4w" is 4 workers (work_ms 20 labelled up-left, the others
# down-right, as 8 x 20 ms and 2 x 5 ms share a ceiling).
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

sweep = dir . "/sweep.tsv"
http = dir . "/http.tsv"
belt = dir . "/belt.tsv"
fill = dir . "/fill.tsv"

# --- 1. throughput against the ceiling ------------------------------------
if (has(sweep)) {
    # The HTTP limit: where work_ms 0 (no ceiling from the law) is drawn.
    hlimit = 0
    if (has(http)) {
        stats http using FULFILLED nooutput
        hlimit = STATS_max
    }
    stats sweep using OFFERED nooutput
    offered = STATS_mean
    # Rows with a ceiling (work_ms > 0); stats fails if it excludes them all.
    nceil = int(system("awk -F'\t' '!/^#/ && $4 > 0' '" . sweep . "' | wc -l"))
    cmax = offered
    cmin = offered / 4
    if (nceil > 0) {
        stats sweep using (column(CEIL) > 0 ? column(CEIL) : NaN) nooutput
        cmax = STATS_max
        cmin = STATS_min
    }
    stats sweep using FULFILLED nooutput
    fmax = STATS_max
    hlabel = sprintf("HTTP limit %.0f/s\n(unpaced wrk -t1 -c64,\nwork_ms 0)", hlimit)
    if (hlimit <= 0) {
        # No "http" part in this run: work_ms 0 goes right of every ceiling.
        hlimit = cmax * 4 > fmax * 1.5 ? cmax * 4 : fmax * 1.5
        hlabel = "work_ms 0: no ceiling\n(no http part in this run)"
    }
    top = hlimit > fmax ? hlimit : fmax
    zero_x(x) = x > 0 ? x : hlimit
    mslist = system("awk -F'\t' '!/^#/ && !($2 in s) { s[$2]; printf \"%s \", $2 }' '" . sweep . "'")

    set logscale xy
    set xrange [cmin / 2 : hlimit * 2]
    set yrange [cmin / 2 : top * 2]
    set format x "%.0f"
    set format y "%.0f"
    set xlabel "ceiling of Little's law: workers x 1000 / work_ms (orders/s); work_ms 0 is drawn at the HTTP limit"
    set ylabel "measured: fulfilled orders/s (from /metrics)"
    set title "More elves help until the offered load or the HTTP server is the limit" . subtitle
    set arrow 1 from hlimit, graph 0 to hlimit, graph 1 nohead dt 3 lc rgb "#888888"
    set label 1 hlabel \
        at hlimit, graph 0.2 right offset -0.5, 0 tc rgb "#555555"
    # Labels sit beside their point (the axes are logarithmic, so the
    # nudges are factors); a "with labels" plot whose every point is
    # undefined crashes gnuplot 5.4, hence the nceil test.
    lx(ms, x) = ms >= 20 ? x / 1.2 : x * 1.2
    ly(ms, y) = ms >= 20 ? y * 1.2 : y / 1.2
    do for [ext in "svg png"] {
        eval term(ext)
        set output dir . "/throughput." . ext
        if (nceil > 0) {
            plot x title "ceiling: workers x 1000 / work_ms" dt 2 lc rgb "#999999", \
                 offered title sprintf("offered load (%.0f/s measured)", offered) dt 4 lc rgb "#cc6600", \
                 for [m in mslist] sweep \
                    using (column(MS) == m + 0 ? zero_x(column(CEIL)) : NaN):(column(FULFILLED)) \
                    with points pt 7 ps 1.4 \
                    title sprintf(m + 0 == 0 ? "work_ms %s (every worker count)" : "work_ms %s", m), \
                 sweep using (column(CEIL) > 0 ? lx(column(MS), column(CEIL)) : NaN):(ly(column(MS), column(FULFILLED))):(sprintf("%dw", column(W))) \
                    with labels font ",9" notitle
        } else {
            plot offered title sprintf("offered load (%.0f/s measured)", offered) dt 4 lc rgb "#cc6600", \
                 sweep using (zero_x(column(CEIL))):(column(FULFILLED)) \
                    with points pt 7 ps 1.4 title "work_ms 0 (every worker count)"
        }
        set output
    }
    unset arrow 1
    unset label 1
    unset logscale
    set format x
    set format y
    set autoscale
}

# --- 2. queue wait against belt depth ---------------------------------------
if (has(belt)) {
    # One series per workers:work_ms pair found in the file.
    configs = system("awk -F'\t' '!/^#/ { k = $1 \":\" $2; if (!(k in s)) { s[k]; printf \"%s \", k } }' '" . belt . "'")
    cw(c) = int(c[1:strstrt(c, ":") - 1])
    cm(c) = int(c[strstrt(c, ":") + 1:])
    set logscale xy
    set format x "%.0f"
    set format y "%g"
    set xlabel "belt depth L: mean orders waiting on the belt over the window (samples of /metrics)"
    set ylabel "queue wait W (ms): accepted -> taken by a worker"
    set title "Little's law on the belt: L = lambda x W (belt kept full, one belt size per point)" . subtitle
    set key top left
    do for [c in configs] {
        stats belt using ((column(W) == cw(c) && column(MS) == cm(c)) ? column(PROCESSED) : NaN) nooutput
        eval sprintf("lam_%d_%d = STATS_mean", cw(c), cm(c))
    }
    lam(c) = value(sprintf("lam_%d_%d", cw(c), cm(c)))
    do for [ext in "svg png"] {
        eval term(ext)
        set output dir . "/queue_wait." . ext
        plot for [i = 1 : words(configs)] belt \
                using ((column(W) == cw(word(configs, i)) && column(MS) == cm(word(configs, i))) ? column(DEPTH) : NaN):(column(WAIT)) \
                with points pt 7 ps 1.4 lc i \
                title sprintf("%d workers, work_ms %d: mean wait", cw(word(configs, i)), cm(word(configs, i))), \
             for [i = 1 : words(configs)] belt \
                using ((column(W) == cw(word(configs, i)) && column(MS) == cm(word(configs, i))) ? column(DEPTH) : NaN):(column(P99)) \
                with points pt 6 ps 1.2 lc i \
                title "  p99 wait (since the server started)", \
             for [i = 1 : words(configs)] x * 1000 / lam(word(configs, i)) \
                dt 2 lc i title sprintf("  W = L / lambda, lambda = %.0f orders/s taken (mean)", lam(word(configs, i))), \
             belt using (column(DEPTH)):(column(PROCESSED) > 0 ? 1000 * column(DEPTH) / column(PROCESSED) : NaN) \
                with points pt 2 ps 1.6 lc rgb "#333333" title "L / lambda of each point (Little's law)"
        set output
    }
    unset logscale
    set format x
    set format y
    set autoscale
}

# --- 3. the 503 rate as the belt fills --------------------------------------
if (has(fill)) {
    stats fill using CEIL nooutput
    fceil = STATS_max
    stats fill using CAP nooutput
    fcap = STATS_max
    stats fill using W nooutput
    fw = STATS_max
    stats fill using MS nooutput
    fms = STATS_max
    stats fill using OFFERED nooutput
    set xrange [0 : STATS_max * 1.05]
    set yrange [0 : 105]
    set y2range [0 : 105]
    set ytics nomirror
    set y2tics
    set xlabel "offered load (orders/s, measured: 202s + 503s per second)"
    set ylabel "503 queue_full: share of the orders offered (%)"
    set y2label "belt depth: mean, % of the belt's capacity"
    set title sprintf("The belt fills and the 503s start at the ceiling (%d workers, work_ms %d, belt %d)", fw, fms, fcap) . subtitle
    set key bottom right
    set arrow 1 from fceil, graph 0 to fceil, graph 1 nohead dt 3 lc rgb "#888888"
    set label 1 sprintf("ceiling %.0f/s", fceil) at fceil, graph 0.95 left offset 0.5, 0 tc rgb "#555555"
    set samples 400
    do for [ext in "svg png"] {
        eval term(ext)
        set output dir . "/rejections." . ext
        plot (x > fceil ? 100 * (1 - fceil / x) : 0) title "1 - ceiling / offered (all above the ceiling is turned away)" dt 2 lc rgb "#999999", \
             fill using OFFERED:(100 * column(SHARE)) with linespoints pt 7 ps 1.3 lc rgb "#cc2222" title "503 share (measured)", \
             fill using OFFERED:(100 * column(DEPTH) / column(CAP)) axes x1y2 with linespoints pt 5 ps 1.1 lc rgb "#2255cc" title "belt depth, % full (right axis)"
        set output
    }
}
