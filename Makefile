# vectord build. Every module's sources are picked up by wildcard, so adding a file needs no
# edit here. Variants: `make SAN=asan` (ASan+UBSan) builds into build-asan/, `make SAN=tsan`
# into build-tsan/. PORTABLE=1 drops -march=native (SIMDe then picks the baseline ISA).
#
#   make deps    install missing Debian packages (sudo when not root; nothing when present)
#   make         build/vectord, the libraries, tests and benchmarks, and the embedded Python
#                module client/python/vectord/_engine*.so (PYTHONPATH=client/python imports it)
#   make run     build and start the daemon on ./vectord-data (SERVE_ARGS="--listen ..." adds
#                flags; a later flag overrides an earlier one, --data included)
#   make test    build and run every test: C unit (plain, ASan+UBSan, TSan), fuzz smoke, pytest
#   make bench   benchmarks over every set in ../shared/data
#   make fuzz    longer fuzzing runs
#   make soak    a long mixed load with backups and restarts (SOAK_MINUTES, default 30)

SHELL := /bin/bash
PYTHON ?= /usr/bin/python3
DATA_SETS ?= $(wildcard ../shared/data/*/base.fvecs)
SAN ?=
PORTABLE ?= 0
FUZZ_SECONDS ?= 20
JOBS ?= $(shell nproc)

# O=dir overrides the output folder (parallel work trees, experiments).
ifeq ($(SAN),asan)
  B := build-asan
  OPT := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
  LDSAN := -fsanitize=address,undefined
else ifeq ($(SAN),tsan)
  B := build-tsan
  OPT := -O1 -fno-omit-frame-pointer -fsanitize=thread
  LDSAN := -fsanitize=thread
else
  B := build
  OPT := -O3
  LDSAN :=
endif
ifneq ($(O),)
  B := $(O)
endif
ifeq ($(PORTABLE),1)
  ARCH :=
else
  ARCH := -march=native
endif

CC ?= cc
CXX ?= c++
WARN := -Wall -Wextra -Wshadow -Wno-unused-parameter
CPPFLAGS += -I. -I$(B)/gen -D_GNU_SOURCE -DSIMDE_ENABLE_NATIVE_ALIASES_DISABLED
CFLAGS ?=
CFLAGS += -std=c11 -g $(OPT) $(ARCH) $(WARN) -pthread -MMD -MP
CXXFLAGS += -std=c++17 -g $(OPT) $(ARCH) -pthread -MMD -MP
LDFLAGS += $(LDSAN) -pthread
LIBS_EXT := -luv -llmdb -lprotobuf-c -ljansson -lroaring -lmicrohttpd -lssl -lcrypto -lm
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lrt -lm)

# ---- sources ----------------------------------------------------------------------------
COMMON_SRC  := $(wildcard common/*.c)
INDEX_SRC   := $(wildcard index/*.c)
STORAGE_SRC := $(wildcard storage/*.c)
INGEST_SRC  := $(wildcard ingest/*.c)
ENGINE_SRC  := $(wildcard engine/*.c)
PROTO_SRC   := $(filter-out proto/vectord.pb-c.c,$(wildcard proto/*.c))
DAEMON_SRC  := $(filter-out daemon/main.c,$(wildcard daemon/*.c))
UNIT_SRC    := $(wildcard tests/unit/test_*.c)
UNIT_HELP   := $(filter-out $(UNIT_SRC),$(wildcard tests/unit/*.c))
BENCH_C     := $(wildcard bench/*.c)

GEN_PB_C := $(B)/gen/proto/vectord.pb-c.c
GEN_PB_H := $(B)/gen/proto/vectord.pb-c.h
PY_PB    := client/python/vectord/vectord_pb2.py

obj = $(patsubst %.c,$(B)/obj/%.o,$(1))
LIB_OBJ := $(call obj,$(COMMON_SRC) $(INDEX_SRC) $(STORAGE_SRC) $(INGEST_SRC) $(ENGINE_SRC) \
                     $(PROTO_SRC) $(DAEMON_SRC)) \
           $(B)/obj/gen/vectord.pb-c.o
LIB := $(B)/libvectord.a

.PHONY: all deps run test test-unit test-layout test-asan test-tsan test-fuzz test-e2e bench fuzz clean \
        python-proto format soak
.DEFAULT_GOAL := all

all: $(B)/vectord $(B)/test-unit $(PY_PB) $(if $(SAN),,bench-bins python-ext)

# ---- dependencies -----------------------------------------------------------------------
DEB_PKGS := build-essential pkg-config libuv1-dev liblmdb-dev lmdb-utils libsimde-dev \
            libprotobuf-c-dev protobuf-c-compiler protobuf-compiler check libsubunit-dev \
            libhnswlib-dev python3 python3-dev python3-numpy python3-protobuf python3-pytest \
            python3-tqdm python3-lmdb python3-pip python3-venv clang libclang-rt-14-dev valgrind \
            libmicrohttpd-dev libssl-dev openssl python3-prometheus-client \
            libroaring-dev libjansson-dev libfaiss-dev zlib1g-dev
deps:
	@missing=$$(for p in $(DEB_PKGS); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "install ok installed" || echo $$p; \
	  done); \
	if [ -n "$$missing" ]; then \
	  echo "make deps: installing" $$missing; \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

# ---- generated protobuf code ------------------------------------------------------------
$(GEN_PB_C) $(GEN_PB_H): proto/vectord.proto
	@mkdir -p $(B)/gen/proto
	protoc-c --c_out=$(B)/gen/proto -Iproto proto/vectord.proto

$(PY_PB): proto/vectord.proto
	@mkdir -p client/python/vectord
	protoc --python_out=client/python/vectord -Iproto proto/vectord.proto

python-proto: $(PY_PB)

# Every object may include the generated header.
$(B)/obj/%.o: %.c | $(GEN_PB_H)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(B)/obj/gen/vectord.pb-c.o: $(GEN_PB_C)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -w -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/vectord: $(call obj,daemon/main.c) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS_EXT)

# ---- unit tests (Check): one runner, suites found by scanning the test files ------------
$(B)/gen/suites.h: $(UNIT_SRC)
	@mkdir -p $(dir $@)
	@{ for f in $(UNIT_SRC); do \
	     sed -n 's/^Suite \*\([a-z0-9_]*_suite\)(void).*/VD_SUITE(\1)/p' $$f; \
	   done; } > $@.tmp && mv $@.tmp $@

$(B)/obj/tests/unit/runner.o: $(B)/gen/suites.h

# The embedded module's thread pool is plain C: its concurrent suite runs here, under TSan too.
$(B)/test-unit: $(call obj,$(UNIT_SRC) $(UNIT_HELP) bench/bench_common.c client/python/ext/pool.c) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS_EXT) $(CHECK_LIBS)

# ---- benchmarks -------------------------------------------------------------------------
# bench/bench_<name>.c (each with a main) -> build/bench-<name>, linked with bench_common.c
# and the hnswlib peer (bench/hnswlib_peer.cc, compiled with the same flags as vectord).
BENCH_MAINS := $(filter-out bench/bench_common.c,$(wildcard bench/bench_*.c))
BENCH_BINS := $(patsubst bench/bench_%.c,$(B)/bench-%,$(BENCH_MAINS))
bench-bins: $(BENCH_BINS)
.PHONY: bench-bins
# The flags the benchmarks record in their JSON lines ("cflags").
$(B)/obj/bench/bench_common.o: CPPFLAGS += -DVD_BENCH_CFLAGS='"$(strip $(OPT) $(ARCH))"'
$(B)/obj/bench/hnswlib_peer.o: bench/hnswlib_peer.cc
	@mkdir -p $(dir $@)
	$(CXX) $(CPPFLAGS) $(CXXFLAGS) -w -c $< -o $@
$(B)/bench-%: $(B)/obj/bench/bench_%.o $(B)/obj/bench/bench_common.o $(B)/obj/bench/hnswlib_peer.o $(LIB)
	$(CXX) $(LDFLAGS) -o $@ $^ $(LIBS_EXT)
# bench-embed runs searches on the embedded module's pool, as vectord.open does.
$(B)/bench-embed: $(B)/obj/client/python/ext/pool.o
# bench-net drives the daemon through the tests' blocking client.
$(B)/bench-net: $(B)/obj/tests/unit/vd_test_client.o
# bench-filter measures FAISS HNSW with an IDSelector next to vectord (Debian's libfaiss-dev).
$(B)/obj/bench/faiss_peer.o: bench/faiss_peer.cc
	@mkdir -p $(dir $@)
	$(CXX) $(CPPFLAGS) $(CXXFLAGS) -fopenmp -w -c $< -o $@
$(B)/bench-filter: $(B)/obj/bench/faiss_peer.o
$(B)/bench-filter: LIBS_EXT += -lfaiss -lblas -llapack -lz -fopenmp

# ---- the embedded Python module ---------------------------------------------------------
# vectord._engine: the daemon's engine in process (vectord.open), built from the same sources
# (common, index, storage, engine, and proto/ for the status codes and the filter decoder,
# with the generated protobuf-c code) compiled again as
# position-independent code, hidden but for PyInit__engine, against $(PYTHON)'s headers. It
# lands next to the package in the source tree, so PYTHONPATH=client/python imports it;
# client/python/setup.py runs this rule for pip (PYTHON=its interpreter). Only the plain
# build makes it: a sanitizer build would put an instrumented module in the same place.
PY_EXT_SUFFIX := $(shell $(PYTHON) -c "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))" 2>/dev/null)
PY_INCLUDE := $(shell $(PYTHON) -c "import sysconfig; print(sysconfig.get_paths()['include'])" 2>/dev/null)
PY_EXT := client/python/vectord/_engine$(PY_EXT_SUFFIX)
EXT_SRC := $(wildcard client/python/ext/*.c)
EMBED_SRC := $(COMMON_SRC) $(INDEX_SRC) $(STORAGE_SRC) $(ENGINE_SRC) $(PROTO_SRC) $(EXT_SRC)
pic = $(patsubst %.c,$(B)/pic/%.o,$(1))
$(B)/pic/%.o: %.c | $(GEN_PB_H)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -I$(PY_INCLUDE) $(CFLAGS) -fPIC -fvisibility=hidden -c $< -o $@
$(B)/pic/gen/vectord.pb-c.o: $(GEN_PB_C)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -w -fPIC -fvisibility=hidden -c $< -o $@
$(PY_EXT): $(call pic,$(EMBED_SRC)) $(B)/pic/gen/vectord.pb-c.o
	$(CC) $(LDFLAGS) -shared -o $@ $^ -lprotobuf-c -llmdb -ljansson -lroaring -lm
python-ext: $(PY_EXT) $(PY_PB)
.PHONY: python-ext

# ---- running ----------------------------------------------------------------------------
# The Python wire and engine modules too, so `PYTHONPATH=client/python` imports the client
# (and vectord.open) right away.
SERVE_ARGS ?=
run: deps
	@$(MAKE) --no-print-directory $(B)/vectord $(PY_PB) $(if $(SAN),,python-ext)
	./$(B)/vectord serve --data ./vectord-data $(SERVE_ARGS)

# ---- tests ------------------------------------------------------------------------------
test: deps
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory -j$(JOBS) all && \
	$(MAKE) --no-print-directory test-unit && \
	$(MAKE) --no-print-directory test-layout && \
	$(MAKE) --no-print-directory -j$(JOBS) SAN=asan build-asan/test-unit build-asan/vectord && \
	$(MAKE) --no-print-directory SAN=asan test-unit && \
	$(MAKE) --no-print-directory -j$(JOBS) SAN=tsan build-tsan/test-unit build-tsan/vectord && \
	$(MAKE) --no-print-directory SAN=tsan test-tsan && \
	$(MAKE) --no-print-directory test-fuzz && \
	$(MAKE) --no-print-directory test-e2e && \
	echo "make test: everything passed in $$(( $$(date +%s) - start )) s"

test-unit: $(B)/test-unit
	@echo "== unit tests ($(B))"
	VD_TEST_BUILD=$(B) ./$(B)/test-unit

# The module layout docs/architecture.md promises: no cycles between the files of a module,
# dependencies one way, generated protobuf types only in proto/ (read from the objects).
test-layout: $(B)/vectord
	@echo "== layout"
	$(PYTHON) tests/layout/check_layout.py --build $(B)

# Under TSan only the suites that race threads (files named test_*_concurrent*.c).
TSAN_SUITES := $(shell sed -n 's/^Suite \*\([a-z0-9_]*_suite\)(void).*/\1/p' $(wildcard tests/unit/test_*concurrent*.c) /dev/null)
test-tsan: $(B)/test-unit
	@echo "== TSan: $(TSAN_SUITES)"
	$(if $(TSAN_SUITES),TSAN_OPTIONS=halt_on_error=1 VD_TEST_BUILD=$(B) ./$(B)/test-unit $(TSAN_SUITES),@echo "no concurrent suites yet")

FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(patsubst tests/fuzz/%.c,build-fuzz/%,$(FUZZ_SRC))
# storage's record codec is pure (no LMDB): fuzz targets link it without an environment.
STORAGE_CODEC_SRC := storage/records.c storage/names.c storage/json.c storage/jsonmerge.c \
                     storage/filter.c storage/pindex.c
# engine/cursor.c is pure too: the frame target decodes scroll cursors with it.
FUZZ_LINK_SRC := $(COMMON_SRC) $(INDEX_SRC) $(STORAGE_CODEC_SRC) engine/cursor.c $(PROTO_SRC) \
                 $(GEN_PB_C)
build-fuzz/%: tests/fuzz/%.c $(FUZZ_LINK_SRC)
	@mkdir -p build-fuzz
	clang $(CPPFLAGS) -I$(B)/gen -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -pthread \
	  -o $@ $< $(FUZZ_LINK_SRC) -lprotobuf-c -ljansson -lroaring -lm
test-fuzz: $(FUZZ_BINS)
	@for f in $(FUZZ_BINS); do \
	  echo "== fuzz $$f ($(FUZZ_SECONDS) s)"; mkdir -p $$f.corpus; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=0 $$f.corpus tests/fuzz/seeds 2>&1 \
	    | grep -E "^(INFO: Done|==|SUMMARY|Done)|ERROR" ; \
	  test $${PIPESTATUS[0]} -eq 0 || exit 1; \
	done
fuzz:
	$(MAKE) test-fuzz FUZZ_SECONDS=600

test-e2e: $(B)/vectord $(PY_PB) $(if $(SAN),,python-ext)
	@echo "== Python end-to-end tests"
	@if ls tests/e2e/test_*.py >/dev/null 2>&1; then \
	  VECTORD_BIN=$(CURDIR)/$(B)/vectord PYTHONPATH=$(CURDIR)/client/python \
	    $(PYTHON) -m pytest -q tests/e2e; \
	else echo "no e2e tests yet"; fi

# Not part of `make test`: upserts, deletes, searches and gets from many connections, backups
# and restarts (clean and kill -9) for SOAK_MINUTES; asserts nothing acknowledged is lost,
# no unexpected errors, RSS and fds that stop growing, and prints a summary table.
SOAK_MINUTES ?= 30
soak: deps
	@$(MAKE) --no-print-directory -j$(JOBS) build/vectord $(PY_PB)
	$(PYTHON) tests/soak/soak.py --minutes $(SOAK_MINUTES) --bin build/vectord

# Every benchmark, peers measured in the same run: tables on the terminal, JSON lines into
# build/bench-results.jsonl. About 50 minutes on 2 cores; bench/README.md lists each command.
BENCH_TMP ?= /tmp
BENCH_OUT := build/bench-results.jsonl
bench: deps
	@$(MAKE) --no-print-directory -j$(JOBS) all
	@: > $(BENCH_OUT)
	@for d in $(dir $(DATA_SETS)); do \
	  ./build/bench-index --data $$d --builds 3 --json >> $(BENCH_OUT) || exit 1; done
	./build/bench-index --synthetic 100000x128 --builds 3 --json >> $(BENCH_OUT)
	./build/bench-churn --synthetic 20000x300 --generator random --metric cosine --ef 100 \
	  --json >> $(BENCH_OUT)
	./build/bench-churn --synthetic 40000x128 --generator clustered --ef 12 --json >> $(BENCH_OUT)
	@for d in $(filter %glove6b-100-cosine/,$(dir $(DATA_SETS))); do \
	  ./build/bench-churn --data $$d --max-base 100000 --ef 100 --json >> $(BENCH_OUT) || exit 1; \
	done
	@for d in $(dir $(DATA_SETS)); do \
	  ./build/bench-build --data $$d --tmp $(BENCH_TMP) --json >> $(BENCH_OUT) || exit 1; done
	./build/bench-build --synthetic 1000000x128 --tmp $(BENCH_TMP) --json >> $(BENCH_OUT)
	rm -rf $(BENCH_TMP)/vd-bench-storage
	./build/bench-storage all $(BENCH_TMP)/vd-bench-storage 1000000 128 | tee -a $(BENCH_OUT).txt
	./build/bench-net --json >> $(BENCH_OUT)
	@for d in $(dir $(DATA_SETS)); do \
	  PYTHONPATH=client/python $(PYTHON) bench/bench_client.py --data $$d --ef 10,32,64,128,256 \
	    --tmp $(BENCH_TMP) --json >> $(BENCH_OUT) || exit 1; done
	./build/bench-filter --tmp $(BENCH_TMP) --subset-index --json >> $(BENCH_OUT)
	PYTHONPATH=client/python $(PYTHON) bench/bench_client.py --synthetic 100000x128 \
	  --ef 10,32,64,128,256 --tmp $(BENCH_TMP) --json >> $(BENCH_OUT)
	PYTHONPATH=client/python $(PYTHON) bench/bench_ids.py --synthetic 100000x128 \
	  --scroll-n 1000000 --tmp $(BENCH_TMP) --json >> $(BENCH_OUT)
	@echo "make bench: results in $(BENCH_OUT)"

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan build-tsan build-fuzz $(PY_PB) client/python/vectord/_engine*.so

-include $(shell find $(B)/obj $(B)/pic -name '*.d' 2>/dev/null)
