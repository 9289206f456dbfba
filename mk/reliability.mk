# reliability.mk - reliability targets, included by the root Makefile after
# SHOPD, LIB_OBJ, the pattern rules and the variables below are defined:
#
#   make fuzz [FUZZ_SECONDS=60]   libFuzzer + ASan + UBSan over the request path
#   make fuzz-ci                  replay seeds + regressions, then a short run
#   make hostile                  hostile clients against $(SHOPD)
#   make drain                    no accepted order lost on SIGTERM (also
#                                 under GNU timeout: scripts/drain-timeout.sh)
#   make soak [SOAK_ORDERS=N]     1,000,000 orders, then leaks and invariants
#
# The three test programs are built like the e2e suite (same CC, CFLAGS,
# SANFLAGS), so "make BUILD=build/asan SANFLAGS=... hostile drain" runs them
# against the sanitized binary. The fuzzer always needs clang: it compiles
# the library sources itself into build/fuzz (never reusing gcc objects).
#
# Uses from the root Makefile: CC CFLAGS LDFLAGS SANFLAGS BUILD SHOPD
# REQ_CFLAGS PKG_CFLAGS PKG_LIBS CHECK_CFLAGS CHECK_LIBS WARN TESTLIB_OBJ
# (the helpers of tests/lib/), and the rule $(BUILD)/tests/%.o: tests/%.c.

.PHONY: fuzz fuzz-ci fuzz-build fuzz-deps hostile drain soak reliability

# ---- libFuzzer ------------------------------------------------------------
FUZZ_CC         ?= clang
FUZZ_SECONDS    ?= 60
FUZZ_CI_SECONDS ?= 30
FUZZ_BUILD      := build/fuzz
FUZZ_SAN        := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS     := -std=c11 -D_POSIX_C_SOURCE=200809L -I. -pthread -MMD -MP \
                   $(WARN) -O1 -g -fno-omit-frame-pointer $(FUZZ_SAN) \
                   -fsanitize=fuzzer-no-link
FUZZ_LIB_SRC    := $(LIB_SRC)
FUZZ_OBJ        := $(FUZZ_LIB_SRC:%.c=$(FUZZ_BUILD)/%.o) \
                   $(FUZZ_BUILD)/server/api/dashboard_blob.o \
                   $(FUZZ_BUILD)/server/api/openapi_blob.o \
                   $(FUZZ_BUILD)/store/redis_blob.o \
                   $(FUZZ_BUILD)/tests/fuzz/fuzz_request.o
FUZZ_BIN        := $(FUZZ_BUILD)/fuzz_request
# New inputs go to the first directory (not in git); the seeds stay as they
# are. Crash reproducers land in $(FUZZ_BUILD)/artifacts/.
FUZZ_ARGS       := -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
                   -dict=tests/fuzz/request.dict \
                   -artifact_prefix=$(FUZZ_BUILD)/artifacts/ \
                   -print_final_stats=1
FUZZ_ENV        := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
                   UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

$(FUZZ_BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(PKG_CFLAGS) -c -o $@ $<

$(FUZZ_BUILD)/server/api/dashboard_blob.o: server/api/dashboard_blob.S \
                                       server/api/dashboard.html
	@mkdir -p $(@D)
	$(FUZZ_CC) -c -o $@ $<

$(FUZZ_BUILD)/server/api/openapi_blob.o: server/api/openapi_blob.S \
                                     server/api/openapi.json
	@mkdir -p $(@D)
	$(FUZZ_CC) -c -o $@ $<

$(FUZZ_BUILD)/store/redis_blob.o: store/redis_blob.S store/redis_lib.lua
	@mkdir -p $(@D)
	$(FUZZ_CC) -c -o $@ $<

$(FUZZ_BIN): $(FUZZ_OBJ)
	$(FUZZ_CC) -fsanitize=fuzzer $(FUZZ_SAN) -o $@ $^ $(PKG_LIBS) -pthread -lm

fuzz-deps:
	@scripts/deps.sh clang:clang libclang-rt-14-dev:libclang-rt-14-dev

fuzz-build: fuzz-deps
	$(MAKE) $(FUZZ_BIN)

fuzz: fuzz-build
	@mkdir -p $(FUZZ_BUILD)/corpus $(FUZZ_BUILD)/artifacts
	$(FUZZ_ENV) $(FUZZ_BIN) $(FUZZ_ARGS) -max_total_time=$(FUZZ_SECONDS) \
	    $(FUZZ_BUILD)/corpus tests/fuzz/corpus

# CI: every seed and every past crash must pass, then a short bounded run.
fuzz-ci: fuzz-build
	@mkdir -p $(FUZZ_BUILD)/corpus $(FUZZ_BUILD)/artifacts
	$(FUZZ_ENV) $(FUZZ_BIN) $(FUZZ_ARGS) -runs=0 tests/fuzz/corpus \
	    tests/fuzz/regress
	$(FUZZ_ENV) $(FUZZ_BIN) $(FUZZ_ARGS) -seed=1 \
	    -max_total_time=$(FUZZ_CI_SECONDS) $(FUZZ_BUILD)/corpus \
	    tests/fuzz/corpus

# ---- hostile clients, drain, soak -------------------------------------------
REL_COMMON_OBJ := $(TESTLIB_OBJ)
REL_OBJ        := $(REL_COMMON_OBJ) $(BUILD)/tests/hostile/hostile.o \
                  $(BUILD)/tests/hostile/slow_clients.o \
                  $(BUILD)/tests/drain/drain.o $(BUILD)/tests/soak/soak.o
HOSTILE_BIN    := $(BUILD)/tests/hostile/hostile
DRAIN_BIN      := $(BUILD)/tests/drain/drain
SOAK_BIN       := $(BUILD)/tests/soak/soak
SOAK_ORDERS    ?= 1000000

$(HOSTILE_BIN): $(BUILD)/tests/hostile/hostile.o \
                $(BUILD)/tests/hostile/slow_clients.o $(REL_COMMON_OBJ)
	$(LINK) $(PKG_LIBS) $(CHECK_LIBS) $(LIBS)

$(DRAIN_BIN): $(BUILD)/tests/drain/drain.o $(REL_COMMON_OBJ)
	$(LINK) $(PKG_LIBS) $(CHECK_LIBS) $(LIBS)

$(SOAK_BIN): $(BUILD)/tests/soak/soak.o $(REL_COMMON_OBJ)
	$(LINK) $(PKG_LIBS) $(CHECK_LIBS) $(LIBS)

hostile: $(SHOPD) $(HOSTILE_BIN)
	SHOPD_BIN=$(SHOPD) $(HOSTILE_BIN)

drain: $(SHOPD) $(DRAIN_BIN)
	SHOPD_BIN=$(SHOPD) $(DRAIN_BIN)
	scripts/drain-timeout.sh $(SHOPD)

soak: $(SHOPD) $(SOAK_BIN)
	SHOPD_BIN=$(SHOPD) SOAK_ORDERS=$(SOAK_ORDERS) $(SOAK_BIN)

# Everything this fragment adds, as CI runs it.
reliability: fuzz-ci hostile drain soak
