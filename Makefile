# shopd - one non-recursive Makefile. `make help` lists every target.
#
#   make            build ./shopd
#   make run        install missing packages, build, serve the demo catalog
#   make test       install missing packages, build, run unit + e2e tests
#
# User CFLAGS/LDFLAGS add to the required flags, they do not replace them.
# WERROR=1 (set by CI) turns every warning into an error.

CC      ?= cc
CFLAGS  ?= -O2 -g
LDFLAGS ?=
PREFIX  ?= /usr/local
DESTDIR ?=
BUILD   ?= build
# Extra flags for sanitizer builds (set by the asan/ubsan/tsan targets).
SANFLAGS ?=

PKGS      := libmicrohttpd libcjson sqlite3 hiredis
TEST_PKGS := check

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
        -Wformat=2 -Wvla -Wundef
ifeq ($(WERROR),1)
WARN += -Werror
endif
REQ_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -I. -pthread -MMD -MP \
              $(WARN) $(SANFLAGS)
PKG_CFLAGS  = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS    = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_CFLAGS = $(shell pkg-config --cflags $(TEST_PKGS) 2>/dev/null)
CHECK_LIBS   = $(shell pkg-config --libs $(TEST_PKGS) 2>/dev/null)
LIBS := -pthread -lm

ALL_CFLAGS = $(REQ_CFLAGS) $(PKG_CFLAGS) $(CFLAGS)

LIB_SRC := $(wildcard common/*.c queue/*.c worker/*.c store/*.c shop/*.c \
             config/*.c server/api/*.c server/http/*.c) \
           $(filter-out server/cmd/main.c,$(wildcard server/cmd/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o) $(BUILD)/server/api/dashboard_blob.o \
           $(BUILD)/server/api/openapi_blob.o $(BUILD)/store/redis_blob.o
MAIN_OBJ := $(BUILD)/server/cmd/main.o
# Test programs: their own sources plus the shared helpers of tests/lib/
# (the unit suites need only the Redis one).
TESTLIB_SRC := $(wildcard tests/lib/*.c)
TESTLIB_OBJ := $(TESTLIB_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC := $(wildcard tests/check_*.c) tests/run_unit.c tests/lib/redis_harness.c
UNIT_OBJ := $(UNIT_SRC:%.c=$(BUILD)/%.o)
E2E_SRC  := $(wildcard tests/e2e/*.c) $(TESTLIB_SRC)
E2E_OBJ  := $(E2E_SRC:%.c=$(BUILD)/%.o)

ALL_OBJ  := $(LIB_OBJ) $(MAIN_OBJ) $(UNIT_OBJ) $(E2E_OBJ)

# One link command for every program: objects, then libraries.
LINK = $(CC) $(CFLAGS) $(SANFLAGS) $(LDFLAGS) -o $@ $^

BIN      := shopd
UNIT_BIN := $(BUILD)/tests/unit
E2E_BIN  := $(BUILD)/tests/e2e/e2e

.PHONY: all help run test unit e2e e2e-redis-heavy deps clean install uninstall \
        format \
        format-check tidy tidy-check asan ubsan tsan sanitizers valgrind \
        load test-ui api-lint api-contract
.DELETE_ON_ERROR:

all: $(BIN)

# The binary for the default build lives at ./shopd; other builds (the
# sanitizer ones) keep theirs under their build directory.
ifeq ($(BUILD),build)
SHOPD := ./$(BIN)
$(BIN): $(MAIN_OBJ) $(LIB_OBJ)
	$(LINK) $(PKG_LIBS) $(LIBS)
else
SHOPD := $(BUILD)/$(BIN)
all: $(SHOPD)
$(SHOPD): $(MAIN_OBJ) $(LIB_OBJ)
	$(LINK) $(PKG_LIBS) $(LIBS)
endif

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# The dashboard page is embedded with the assembler's .incbin.
$(BUILD)/server/api/dashboard_blob.o: server/api/dashboard_blob.S server/api/dashboard.html
	@mkdir -p $(@D)
	$(CC) $(SANFLAGS) -c -o $@ $<

# The OpenAPI document (GET /openapi.json), the same way.
$(BUILD)/server/api/openapi_blob.o: server/api/openapi_blob.S server/api/openapi.json
	@mkdir -p $(@D)
	$(CC) $(SANFLAGS) -c -o $@ $<

# The Redis Functions library, the same way.
$(BUILD)/store/redis_blob.o: store/redis_blob.S store/redis_lib.lua
	@mkdir -p $(@D)
	$(CC) $(SANFLAGS) -c -o $@ $<

$(BUILD)/tests/%.o: tests/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -c -o $@ $<

$(UNIT_BIN): $(UNIT_OBJ) $(LIB_OBJ)
	$(LINK) $(PKG_LIBS) $(CHECK_LIBS) $(LIBS)

$(E2E_BIN): $(E2E_OBJ)
	$(LINK) $(PKG_LIBS) $(CHECK_LIBS) $(LIBS)

# Install the Debian packages that are missing (fresh machines): each
# argument is COMMAND-OR-pkgconfig-NAME:DEBIAN-PACKAGE.
deps:
	@scripts/deps.sh pkg-config:pkg-config libmicrohttpd:libmicrohttpd-dev \
	    libcjson:libcjson-dev sqlite3:libsqlite3-dev hiredis:libhiredis-dev \
	    redis-server:redis-server check:check curl:curl promtool:prometheus \
	    cc:gcc make:make

run: deps
	$(MAKE) all
	@echo "shopd: the dashboard is at http://localhost:$${SHOPD_PORT:-8080}/ -" \
	    "Ctrl-C stops it (the belt drains first)"
	$(SHOPD)

unit: $(UNIT_BIN)
	CK_DEFAULT_TIMEOUT=60 $(UNIT_BIN)

e2e: $(SHOPD) $(E2E_BIN)
	SHOPD_BIN=$(SHOPD) $(E2E_BIN)

test: deps
	$(MAKE) unit
	$(MAKE) e2e
	tests/docs/check.sh $(SHOPD)

# The Redis store's slow end-to-end checks (an unreachable Redis is retried
# for 10 s at start; a Redis that comes up meanwhile is used), on top of
# the e2e_redis suite that `make e2e` runs; then every request answered
# within 5 s while stress-ng starves the CPUs (~20 s). .ci/run runs it.
e2e-redis-heavy: $(SHOPD) $(E2E_BIN)
	@scripts/deps.sh stress-ng:stress-ng
	SHOPD_E2E_HEAVY=1 CK_RUN_SUITE=e2e_redis SHOPD_BIN=$(SHOPD) $(E2E_BIN)
	SHOPD_E2E_STARVED=1 CK_RUN_SUITE=e2e_outage CK_RUN_CASE=starved \
	    SHOPD_BIN=$(SHOPD) $(E2E_BIN)

# --- sanitizers: each in its own build directory -------------------------
# Each builds shopd and the tests with one sanitizer, runs the unit suites,
# the end-to-end suite and a short wrk load against the sanitized binary.
# Any report aborts (-fno-sanitize-recover=all), which fails the target.
SAN_COMMON := -fno-sanitize-recover=all -fno-omit-frame-pointer -O1 -g
ASAN_FLAGS := -fsanitize=address,undefined,float-cast-overflow $(SAN_COMMON)
UBSAN_FLAGS := -fsanitize=undefined,float-cast-overflow $(SAN_COMMON)
TSAN_FLAGS := -fsanitize=thread $(SAN_COMMON)
SAN_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
           UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
           TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
           CK_TIMEOUT_MULTIPLIER=4 E2E_SLOW=4

sanitizers: asan ubsan tsan

asan ubsan tsan: deps
	$(SAN_ENV) $(MAKE) BUILD=build/$@ CFLAGS="-O1 -g" \
	    SANFLAGS="$($(shell echo $@ | tr a-z A-Z)_FLAGS)" \
	    unit e2e load hostile drain

# A bounded wrk load against $(SHOPD); fails on a non-zero exit or any
# sanitizer report in its log.
load: $(SHOPD)
	scripts/load-check.sh $(SHOPD)

# The end-to-end suite with every shopd under valgrind (leaks and errors
# fail it).
valgrind: deps all $(E2E_BIN)
	scripts/deps.sh valgrind:valgrind
	CK_TIMEOUT_MULTIPLIER=8 E2E_SLOW=8 E2E_VALGRIND=1 \
	    SHOPD_BIN=scripts/valgrind-shopd.sh \
	    $(E2E_BIN)

install: $(BIN)
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/$(BIN)

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/$(BIN)

clean:
	rm -rf build $(BIN)

FORMAT_SRC = $(shell git ls-files '*.c' '*.h' 2>/dev/null)
format:
	clang-format -i $(FORMAT_SRC)

format-check:
	clang-format --dry-run --Werror $(FORMAT_SRC)

tidy:
	clang-tidy $(LIB_SRC) server/cmd/main.c -- $(REQ_CFLAGS) $(PKG_CFLAGS)

# As CI runs it: any bugprone or concurrency finding fails, and so does a
# function over 80 lines (.clang-tidy).
tidy-check:
	@scripts/deps.sh clang-tidy:clang-tidy
	clang-tidy --quiet \
	    --warnings-as-errors='bugprone-*,concurrency-*,readability-function-size' \
	    $(LIB_SRC) server/cmd/main.c -- $(REQ_CFLAGS) $(PKG_CFLAGS)

help:
	@echo 'shopd make targets:'
	@echo '  all (default)  build ./shopd'
	@echo '  run            install missing packages, build, serve the demo catalog on :8080'
	@echo '  test           install missing packages, run unit + end-to-end tests'
	@echo '  unit           the Check unit suites only'
	@echo '  e2e            the end-to-end suite against the real binary only'
	@echo '  deps           install missing Debian packages (apt-get)'
	@echo '  asan ubsan tsan  unit, e2e, load, hostile and drain under one sanitizer'
	@echo '  sanitizers     all three sanitizer runs'
	@echo '  valgrind       the end-to-end suite with every shopd under memcheck'
	@echo '  load           a bounded wrk load against ./shopd'
	@echo '  hostile        hostile clients against ./shopd'
	@echo '  drain          no accepted order lost on SIGTERM'
	@echo '  soak           1,000,000 orders, then leaks and invariants'
	@echo '  fuzz           libFuzzer over the request path (FUZZ_SECONDS=60)'
	@echo '  fuzz-ci        replay seeds and regressions, then a short fuzz run'
	@echo '  test-ui        the dashboard in headless Chromium'
	@echo '  api-lint       spectral lint of the OpenAPI document (npm, under build/)'
	@echo '  api-contract   every route through the prism contract proxy (npm, under build/)'
	@echo '  bench          wrk: shopd vs bare libmicrohttpd vs nginx, a table and charts'
	@echo '  experiment     workers x work_ms under a fixed load: Little'"'"'s law, charts'
	@echo '  bench-queue    the channel alone vs Go'"'"'s buffered channel'
	@echo '  bench-scale    1 and 2 shopd on one Redis: CPU per order, fleet projected to 16'
	@echo '  format         clang-format every C file'
	@echo '  format-check   fail if any C file is not formatted'
	@echo '  tidy           clang-tidy report'
	@echo '  tidy-check     clang-tidy, bugprone and concurrency findings fail'
	@echo '  install        install shopd under $$(DESTDIR)$$(PREFIX)/bin'
	@echo '  uninstall      remove it'
	@echo '  clean          remove build/ and ./shopd'
	@echo 'Variables: CC CFLAGS LDFLAGS PREFIX DESTDIR WERROR=1 (warnings fail)'

# --- the API's contract: server/api/openapi.json (GET /openapi.json) -----
# The Node tools, pinned, are installed under build/npm (never globally),
# npm's cache too; one directory per version, so a new pin reinstalls.
# prism-cli 5.14.2 is the last release that runs on Node 20.
NPM_DIR      := build/npm
SPECTRAL_VER := 6.16.3
PRISM_VER    := 5.14.2
SPECTRAL     := $(NPM_DIR)/spectral-$(SPECTRAL_VER)/node_modules/.bin/spectral
PRISM        := $(NPM_DIR)/prism-$(PRISM_VER)/node_modules/.bin/prism
NPM_INSTALL   = npm install --no-audit --no-fund --loglevel=error \
                --cache $(NPM_DIR)/cache --prefix

$(SPECTRAL):
	@scripts/deps.sh node:nodejs npm:npm
	$(NPM_INSTALL) $(NPM_DIR)/spectral-$(SPECTRAL_VER) \
	    @stoplight/spectral-cli@$(SPECTRAL_VER)

$(PRISM):
	@scripts/deps.sh node:nodejs npm:npm
	$(NPM_INSTALL) $(NPM_DIR)/prism-$(PRISM_VER) @stoplight/prism-cli@$(PRISM_VER)

# spectral lint with the spectral:oas ruleset (.spectral.yaml): any error
# fails; warnings are printed.
api-lint: $(SPECTRAL)
	$(SPECTRAL) lint --ruleset .spectral.yaml --fail-severity error \
	    server/api/openapi.json

# Requests covering every route through prism's contract-testing proxy in
# front of a real ./shopd (memory, then sqlite): any violation fails.
api-contract: deps $(PRISM)
	$(MAKE) all
	PRISM=$(PRISM) scripts/api-contract.sh $(SHOPD)

# The dashboard in a real browser (headless Chromium via playwright-core);
# installs chromium, node and playwright-core if missing. Not in `make test`:
# the C build and its tests never need node.
test-ui: deps
	$(MAKE) all
	SHOPD_BIN=$(SHOPD) tests/ui/run.sh

include mk/reliability.mk
include mk/bench.mk

-include $(ALL_OBJ:.o=.d) $(REL_OBJ:.o=.d) $(FUZZ_OBJ:.o=.d)
