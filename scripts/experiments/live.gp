# live.gp - the chart of `make experiment-live` (scripts/experiments/live.sh):
#
#   gnuplot -e "dir='build/live'" -e "ext='png'" \
#           -e "events='8.0:8 elves,16.0:pause'" -e "rate=250" \
#           scripts/experiments/live.gp
#
# Reads dir/timeline.tsv (t_s depth accepted processed rejected drops
# replays, cumulative counters) and draws, over time: the belt depth (left
# axis), and per second processed orders, 503 queue_full and idempotent
# replays (right axis), with a dashed line at each PATCH of /admin/floor.
if (!exists("dir")) dir = "build/live"
if (!exists("ext")) ext = "png"
if (!exists("events")) events = ""
if (!exists("rate")) rate = 0
if (ext eq "svg") {
    set terminal svg size 1000,560 dynamic font 'Sans,13' background '#ffffff' noenhanced
} else {
    set terminal pngcairo size 1000,600 font 'Sans,10' background '#ffffff' noenhanced
}
set output dir . "/live." . ext
set title sprintf("shopd, the floor live: 1 elf x 10 ms, %d orders/s offered; PATCH /admin/floor at the dashed lines", rate)
set xlabel "seconds"
set ylabel "belt depth (orders)"
set y2label "per second"
set ytics nomirror
set y2tics
set grid lc rgb "#dddddd"
set key outside bottom center horizontal
set datafile separator "\t"
# Moments of the PATCHes: "t:label,t:label".
nev = int(system("echo '" . events . "' | awk -F, '{print (length($0) ? NF : 0)}'"))
do for [i=1:nev] {
    ev = system("echo '" . events . "' | cut -d, -f" . i)
    t = real(system("echo '" . ev . "' | cut -d: -f1"))
    lab = system("echo '" . ev . "' | cut -d: -f2-")
    set arrow from t, graph 0 to t, graph 1 nohead dt 2 lc rgb "#555555"
    set label lab at t, graph 0.97 offset 0.3,0 font ",9" tc rgb "#333333"
}
# Rates from successive cumulative samples.
rate_of(col) = (dt = column(1) - t0, d = column(col) - v0, t0 = column(1), v0 = column(col), dt > 0 ? d / dt : NaN)
t0 = 0; v0 = 0
plot dir . "/timeline.tsv" skip 1 using 1:2 with filledcurves x1 lc rgb "#c98a00" fs transparent solid 0.25 title "belt depth", \
     "" skip 1 using 1:(t0p = (exists("tp") ? tp : 0), p = ($1 > t0p ? ($4 - (exists("vp") ? vp : 0)) / ($1 - t0p) : NaN), tp = $1, vp = $4, p) axes x1y2 with lines lw 2 lc rgb "#17703a" title "processed/s", \
     "" skip 1 using 1:(t0r = (exists("tr") ? tr : 0), r = ($1 > t0r ? ($5 - (exists("vr") ? vr : 0)) / ($1 - t0r) : NaN), tr = $1, vr = $5, r) axes x1y2 with lines lw 2 lc rgb "#b3261e" title "503 queue_full/s", \
     "" skip 1 using 1:(t0q = (exists("tq") ? tq : 0), q = ($1 > t0q ? ($7 - (exists("vq") ? vq : 0)) / ($1 - t0q) : NaN), tq = $1, vq = $7, q) axes x1y2 with lines lw 2 lc rgb "#6f42c1" title "replays/s (keyed retries after a drop)"
