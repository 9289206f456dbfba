# --- benchmarks (issue 3) -------------------------------------------------
# bench.mk - included by the root Makefile; uses CC, CFLAGS, BUILD, SHOPD
# and the `deps` target from it.
# Never part of `make test`; never fails on a number.
#
#   make bench        wrk: shopd (keyless, and with a fresh Idempotency-Key
#                     per order) vs bare libmicrohttpd vs nginx, one table
#                     and two charts (gnuplot: 2xx/s and p99 per wrk
#                     setting, .svg and .png, in build/bench/latest/)
#                     (env: BENCH_SECONDS, BENCH_ROUNDS, BENCH_SETTINGS,
#                     BENCH_SERVERS, BENCH_MILLION=1, ... see run.sh)
#   make experiment   workers x work_ms x belt size on a real shopd under a
#                     fixed offered load: Little's law, measured and drawn
#                     (build/experiment/latest/; env: EXP_RATE,
#                     EXP_SECONDS, ... see scripts/experiments/run.sh)
#   make bench-queue  the channel alone vs Go's buffered channel (if `go`)
#   make bench-scale  one and two shopd on one private Redis: orders/s,
#                     shopd's and Redis's CPU per order, Redis commands and
#                     round trips per order; the fleet throughput projected
#                     for 1-16 instances on one Redis core, with its knee
#                     (build/bench/scale/latest/; env: SCALE_SECONDS,
#                     SCALE_SETTINGS, ... see scripts/bench/scale.sh)

BENCH_DIR := $(BUILD)/bench
BENCH_REQ := -std=c11 -D_POSIX_C_SOURCE=200809L -I. -pthread $(WARN)
BENCH_MHD_CFLAGS = $(shell pkg-config --cflags libmicrohttpd 2>/dev/null)
BENCH_MHD_LIBS   = $(shell pkg-config --libs libmicrohttpd 2>/dev/null)
BENCH_JSON_CFLAGS = $(shell pkg-config --cflags libcjson 2>/dev/null)
BENCH_JSON_LIBS   = $(shell pkg-config --libs libcjson 2>/dev/null)

.PHONY: bench bench-run bench-queue bench-deps experiment experiment-run \
        experiment-deps experiment-live bench-scale bench-scale-run

$(BENCH_DIR)/baseline: scripts/bench/baseline.c
	@mkdir -p $(@D)
	$(CC) $(BENCH_REQ) $(BENCH_MHD_CFLAGS) $(CFLAGS) -o $@ $< \
	    $(BENCH_MHD_LIBS) -pthread

$(BENCH_DIR)/statcheck: scripts/bench/statcheck.c
	@mkdir -p $(@D)
	$(CC) $(BENCH_REQ) $(BENCH_JSON_CFLAGS) $(CFLAGS) -o $@ $< \
	    $(BENCH_JSON_LIBS)

# Built from the sources, not from $(BUILD)/queue/queue.o, so the
# microbenchmark never picks up sanitizer objects.
$(BENCH_DIR)/queue_bench: scripts/bench/queue_bench.c queue/queue.c \
                          queue/queue.h
	@mkdir -p $(@D)
	$(CC) $(BENCH_REQ) $(CFLAGS) -o $@ scripts/bench/queue_bench.c \
	    queue/queue.c -pthread

# wrk is the load generator; nginx is optional (run.sh skips it if absent);
# gnuplot draws the charts.
bench-deps:
	@scripts/deps.sh wrk:wrk redis-server:redis-server redis-cli:redis-tools \
	    gnuplot:gnuplot-nox

bench: deps bench-deps
	$(MAKE) bench-run

bench-run: $(SHOPD) $(BENCH_DIR)/baseline $(BENCH_DIR)/statcheck
	SHOPD=$(SHOPD) BENCH_DIR=$(BENCH_DIR) scripts/bench/run.sh

# python3 reads INFO and /stats and does the sums; gnuplot draws.
bench-scale: deps bench-deps
	@scripts/deps.sh python3:python3
	$(MAKE) bench-scale-run

bench-scale-run: $(SHOPD)
	SHOPD=$(SHOPD) BENCH_DIR=$(BENCH_DIR) scripts/bench/scale.sh

# Go is optional and only for this reference: without it the C numbers
# are printed alone.
bench-queue: $(BENCH_DIR)/queue_bench
	@if command -v go >/dev/null 2>&1; then \
	    go build -o $(BENCH_DIR)/chan_go scripts/bench/chan_go/main.go; \
	else \
	    rm -f $(BENCH_DIR)/chan_go; \
	fi
	BENCH_DIR=$(BENCH_DIR) scripts/bench/queue.sh

# --- the experiment (issue 14): elves, a belt and Little's law ------------
# wrk paced by scripts/experiments/paced.lua offers the load, sample.py
# (python3) reads /metrics, gnuplot draws. About 3 minutes by default.
experiment-deps:
	@scripts/deps.sh wrk:wrk python3:python3 gnuplot:gnuplot-nox

experiment: deps experiment-deps
	$(MAKE) experiment-run

experiment-run: $(SHOPD)
	SHOPD=$(SHOPD) scripts/experiments/run.sh

# --- the floor, live (issue 20): resize, pause and faults under load ------
# One elf under an offered load above its capacity, then PATCH
# /admin/floor: 8 elves, pause, go on, drop_rate 0.2 with a keyed client
# retrying; build/live/live.png draws it. About 50 s.
experiment-live: deps experiment-deps $(SHOPD)
	SHOPD=$(SHOPD) scripts/experiments/live.sh
