# dispatch — one non-recursive Makefile that sees the whole module graph.
#
# Modules are directories: pkg/<m>/ and internal/<m>/, each built into one static
# library $(BUILD)/lib/lib<m>.a.  pkg/ is compiled with -Ipkg only, so an include of
# internal/ from pkg/ fails to build.  Binaries are cmd/<bin>/; unit tests are
# tests/unit/<m>/ (one cmocka binary per module); integration tests are
# tests/integration/<name>.c (one binary each, run against the harness).

VERSION   := 0.1.0
BUILD     ?= build
PREFIX    ?= /usr/local
DESTDIR   ?=
CC        ?= cc

WARN      := -Wall -Wextra -Wpedantic -Werror -Wshadow -Wstrict-prototypes \
             -Wmissing-prototypes -Wformat=2 -Wvla
OPT       ?= -O2 -g
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
# Hardening: stack protector, fortified libc calls (they need an optimised build),
# position-independent executables, full RELRO (-z now: the GOT is read-only once
# the program runs).  tests/e2e/test_protection_edge.py checks every binary.
FORTIFY   := $(if $(filter -O1 -O2 -O3 -Os -Og,$(OPT)),-U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=2)
HARDEN_CFLAGS  := -fstack-protector-strong $(FORTIFY)
HARDEN_LDFLAGS := -pie -Wl,-z,relro,-z,now
BASE_CFLAGS := -std=c17 $(WARN) $(OPT) -D_GNU_SOURCE -DDISPATCH_VERSION=\"$(VERSION)\" \
               -fPIC -pthread -MMD -MP $(HARDEN_CFLAGS) $(EXTRA_CFLAGS)
MARIADB_CFLAGS := $(shell pkg-config --cflags libmariadb 2>/dev/null || echo -I/usr/include/mariadb)
LDLIBS    := -lmicrohttpd -lrdkafka -lmariadb -lhiredis -lcjson -lsodium -lcurl -pthread -lm
LDFLAGS   += $(HARDEN_LDFLAGS) $(EXTRA_LDFLAGS)

dirs_of    = $(patsubst %/,%,$(dir $(wildcard $(1)/*/*.c)))
PKG_MODS  := $(sort $(notdir $(call dirs_of,pkg)))
INT_MODS  := $(sort $(notdir $(call dirs_of,internal)))
BINS      := dispatch-producer dispatch-worker dispatchctl
bin_dir    = $(patsubst dispatch-%,%,$(1))

lib_of     = $(BUILD)/lib/lib$(1).a
PKG_LIBS  := $(foreach m,$(PKG_MODS),$(call lib_of,$(m)))
INT_LIBS  := $(foreach m,$(INT_MODS),$(call lib_of,$(m)))
ALL_LIBS  := $(INT_LIBS) $(PKG_LIBS)
LINK_LIBS := -Wl,--start-group $(ALL_LIBS) -Wl,--end-group

UNIT_MODS := $(sort $(notdir $(call dirs_of,tests/unit)))
UNIT_BINS := $(foreach m,$(UNIT_MODS),$(BUILD)/tests/unit/test_$(m))
INTEG_SRCS := $(wildcard tests/integration/*.c)
INTEG_BINS := $(patsubst tests/integration/%.c,$(BUILD)/tests/integration/%,$(INTEG_SRCS))
BENCH_SRCS := $(wildcard tests/bench/*.c)
BENCH_BINS := $(patsubst tests/bench/%.c,$(BUILD)/tests/bench/%,$(BENCH_SRCS))
TEST_SUPPORT := $(wildcard tests/support/*.c)
BIN_PATHS := $(BUILD)/bin/dispatch-producer $(BUILD)/bin/dispatch-worker $(BUILD)/bin/dispatchctl

.SECONDEXPANSION:

.PHONY: all build-all deps test sanitize lint format up down install clean bench
.DEFAULT_GOAL := all

all: $(BIN_PATHS)
build-all: $(BIN_PATHS) $(UNIT_BINS) $(INTEG_BINS) $(BENCH_BINS)

# --- objects ---------------------------------------------------------------
$(BUILD)/obj/pkg/%.o: pkg/%.c
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) -Ipkg -c $< -o $@

$(BUILD)/obj/internal/%.o: internal/%.c
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(MARIADB_CFLAGS) -Iinternal -Ipkg -c $< -o $@

$(BUILD)/obj/cmd/%.o: cmd/%.c
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(MARIADB_CFLAGS) -Iinternal -Ipkg -c $< -o $@

$(BUILD)/obj/tests/%.o: tests/%.c
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(MARIADB_CFLAGS) -Iinternal -Ipkg -Itests -c $< -o $@

# --- one static library per module ----------------------------------------
define module_lib
$(call lib_of,$(1)): $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard $(2)/$(1)/*.c))
	@mkdir -p $$(@D)
	$(AR) rcs $$@ $$^
endef
$(foreach m,$(PKG_MODS),$(eval $(call module_lib,$(m),pkg)))
$(foreach m,$(INT_MODS),$(eval $(call module_lib,$(m),internal)))

# --- binaries ---------------------------------------------------------------
define binary
$(BUILD)/bin/$(1): $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard cmd/$(call bin_dir,$(1))/*.c)) $(ALL_LIBS)
	@mkdir -p $$(@D)
	$(CC) $(BASE_CFLAGS) $(LDFLAGS) -o $$@ $$(filter %.o,$$^) $(LINK_LIBS) $(LDLIBS)
endef
$(foreach b,$(BINS),$(eval $(call binary,$(b))))

# --- tests ------------------------------------------------------------------
SUPPORT_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(TEST_SUPPORT))

$(BUILD)/tests/unit/test_%: $$(addprefix $(BUILD)/obj/,$$(subst .c,.o,$$(wildcard tests/unit/$$*/*.c))) $(SUPPORT_OBJS) $(ALL_LIBS)
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LINK_LIBS) -lcmocka $(LDLIBS)

$(BUILD)/tests/integration/%: $(BUILD)/obj/tests/integration/%.o $(SUPPORT_OBJS) $(ALL_LIBS)
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LINK_LIBS) -lcmocka $(LDLIBS)


$(BUILD)/tests/bench/%: $(BUILD)/obj/tests/bench/%.o $(SUPPORT_OBJS) $(ALL_LIBS)
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LINK_LIBS) $(LDLIBS)

# --- the commands -----------------------------------------------------------
deps:
	@scripts/deps.sh

test: deps
	@$(MAKE) --no-print-directory build-all
	@BUILD=$(BUILD) tests/run.sh

sanitize: deps
	@$(MAKE) --no-print-directory BUILD=build-san EXTRA_CFLAGS="$(SAN_FLAGS)" \
		EXTRA_LDFLAGS="$(SAN_FLAGS)" OPT="-O1 -g" build-all
	@BUILD=build-san SANITIZE=1 tests/run.sh

lint: deps
	@scripts/lint.sh

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

up: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) scripts/up.sh

down:
	@scripts/down.sh

bench: deps
	@$(MAKE) --no-print-directory all $(BENCH_BINS)
	@BUILD=$(BUILD) tests/bench/bench.sh

install: $(BIN_PATHS)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/dispatch/migrations
	install -m 0755 $(BIN_PATHS) $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 migrations/*.sql $(DESTDIR)$(PREFIX)/share/dispatch/migrations/

clean:
	rm -rf build build-san

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
