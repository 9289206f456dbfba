# shopd - one non-recursive Makefile.
#
#   make            build ./shopd
#   make run        install missing packages, build, serve the demo catalog
#   make test       install missing packages, build, run unit + e2e tests
#
# User CFLAGS/LDFLAGS add to the required flags, they do not replace them.

CC      ?= cc
CFLAGS  ?= -O2 -g
LDFLAGS ?=
PREFIX  ?= /usr/local
DESTDIR ?=
BUILD   ?= build
# Extra flags for sanitizer builds (set by the asan/ubsan/tsan targets).
SANFLAGS ?=

PKGS      := libmicrohttpd libcjson
TEST_PKGS := check
# Debian packages providing the above (and what the tests use).
DEBS      := libmicrohttpd-dev libcjson-dev check pkg-config curl

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
        -Wformat=2 -Wvla -Wundef -Werror
REQ_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -I. -pthread -MMD -MP \
              $(WARN) $(SANFLAGS)
PKG_CFLAGS  = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS    = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_CFLAGS = $(shell pkg-config --cflags $(TEST_PKGS) 2>/dev/null)
CHECK_LIBS   = $(shell pkg-config --libs $(TEST_PKGS) 2>/dev/null)
LIBS := -pthread -lm

ALL_CFLAGS = $(REQ_CFLAGS) $(PKG_CFLAGS) $(CFLAGS)

LIB_SRC := $(wildcard queue/*.c worker/*.c shop/*.c config/*.c) \
           $(filter-out server/main.c,$(wildcard server/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o) $(BUILD)/server/dashboard_blob.o
MAIN_OBJ := $(BUILD)/server/main.o
UNIT_SRC := $(wildcard tests/check_*.c) tests/run_unit.c
UNIT_OBJ := $(UNIT_SRC:%.c=$(BUILD)/%.o)
E2E_SRC  := $(wildcard tests/e2e/*.c)
E2E_OBJ  := $(E2E_SRC:%.c=$(BUILD)/%.o)

BIN      := shopd
UNIT_BIN := $(BUILD)/tests/unit
E2E_BIN  := $(BUILD)/tests/e2e/e2e

.PHONY: all run test unit e2e deps clean install uninstall format \
        format-check tidy
.DELETE_ON_ERROR:

all: $(BIN)

# The binary for the default build lives at ./shopd; other builds (the
# sanitizer ones) keep theirs under their build directory.
ifeq ($(BUILD),build)
SHOPD := ./$(BIN)
$(BIN): $(MAIN_OBJ) $(LIB_OBJ)
	$(CC) $(CFLAGS) $(SANFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(LIBS)
else
SHOPD := $(BUILD)/$(BIN)
all: $(SHOPD)
$(SHOPD): $(MAIN_OBJ) $(LIB_OBJ)
	$(CC) $(CFLAGS) $(SANFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(LIBS)
endif

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# The dashboard page is embedded with the assembler's .incbin.
$(BUILD)/server/dashboard_blob.o: server/dashboard_blob.S server/dashboard.html
	@mkdir -p $(@D)
	$(CC) $(SANFLAGS) -c -o $@ $<

$(BUILD)/tests/%.o: tests/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -c -o $@ $<

$(UNIT_BIN): $(UNIT_OBJ) $(LIB_OBJ)
	$(CC) $(CFLAGS) $(SANFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) \
	    $(CHECK_LIBS) $(LIBS)

$(E2E_BIN): $(E2E_OBJ)
	$(CC) $(CFLAGS) $(SANFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) \
	    $(CHECK_LIBS) $(LIBS)

# Install the Debian packages that pkg-config cannot find (fresh machines).
deps:
	@if ! command -v pkg-config >/dev/null 2>&1 || \
	    ! pkg-config --exists $(PKGS) $(TEST_PKGS) || \
	    ! command -v curl >/dev/null 2>&1; then \
	    echo "installing build dependencies: $(DEBS)"; \
	    SUDO=; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
	    $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	        $(DEBS) >/dev/null; \
	fi

run: deps
	$(MAKE) all
	$(SHOPD)

unit: $(UNIT_BIN)
	CK_DEFAULT_TIMEOUT=60 $(UNIT_BIN)

e2e: $(SHOPD) $(E2E_BIN)
	SHOPD_BIN=$(SHOPD) $(E2E_BIN)

test: deps
	$(MAKE) unit
	$(MAKE) e2e

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
	clang-tidy $(LIB_SRC) server/main.c -- $(REQ_CFLAGS) $(PKG_CFLAGS)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
