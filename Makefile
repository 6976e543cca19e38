# respcache: the two commands a fresh Debian 12 machine needs are `make run` and `make test`.

SHELL := /bin/bash
JOBS ?= $(shell nproc)
BUILD ?= build
ASAN_BUILD ?= build-asan
PYTHON := /usr/bin/python3
PORT ?= 8001
REDIS_PORT ?= 6379
# Extra arguments for respcache in `make run`, e.g. make run ARGS="--ttl 30s".
ARGS ?=
# pytest selection for the end-to-end suite, e.g. make e2e E2E_ARGS="-k pipelin".
E2E_ARGS ?=
# Options for bench/run.py, e.g. make bench BENCH_ARGS="--rounds 5" or BENCH_ARGS="--only set,get_hits".
BENCH_ARGS ?=

DEBIAN_PACKAGES := build-essential cmake pkg-config libboost1.81-dev libboost-program-options1.81-dev \
	libhiredis-dev libspdlog-dev catch2 redis-server redis-tools python3-redis python3-pytest \
	python3-pytest-timeout nutcracker libbenchmark-dev libssl-dev openssl

.PHONY: all deps build test unit e2e asan run bench microbench soak clean

all: build

# Installs the Debian packages that are missing (nothing when all are there), and the Node.js client
# used by the end-to-end tests.
deps:
	@missing=""; for p in $(DEBIAN_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@# Node.js may come from elsewhere than Debian (its npm then ships inside it): only install when absent.
	@if ! command -v npm >/dev/null 2>&1; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq nodejs npm; \
	fi
	@# Installed again whenever the lock file changed since the last install (npm ci records it there).
	@if [ -f e2e/node/package-lock.json ] && { [ ! -f e2e/node/node_modules/.package-lock.json ] || \
	    [ e2e/node/package-lock.json -nt e2e/node/node_modules/.package-lock.json ]; }; then \
	  (cd e2e/node && npm ci --no-audit --no-fund --loglevel=error); \
	fi

build:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BUILD) -j $(JOBS)

unit: build
	cd $(BUILD) && ctest --output-on-failure

e2e: build
	E2E_BIN=$(abspath $(BUILD))/respcache $(PYTHON) -m pytest -q e2e $(E2E_ARGS)

test: deps
	$(MAKE) unit
	$(MAKE) e2e

# The same tests against an AddressSanitizer + UndefinedBehaviorSanitizer build.
asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRESPCACHE_SANITIZE=ON
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 E2E_SANITIZED=1 \
	  E2E_BIN=$(abspath $(ASAN_BUILD))/respcache $(PYTHON) -m pytest -q e2e $(E2E_ARGS)

# Builds, starts a local redis-server on $(REDIS_PORT) unless one answers there (or RESPCACHE_BACKEND
# names another), and runs respcache on $(PORT) in the foreground.
run: deps build
	@if [ -z "$$RESPCACHE_BACKEND" ] && ! redis-cli -p $(REDIS_PORT) ping >/dev/null 2>&1; then \
	  echo "starting redis-server on 127.0.0.1:$(REDIS_PORT)"; \
	  redis-server --port $(REDIS_PORT) --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
	    --pidfile /tmp/respcache-redis-$(REDIS_PORT).pid --logfile /tmp/respcache-redis-$(REDIS_PORT).log; \
	  for i in $$(seq 50); do redis-cli -p $(REDIS_PORT) ping >/dev/null 2>&1 && break; sleep 0.1; done; \
	fi
	exec $(BUILD)/respcache --port $(PORT) $(if $(RESPCACHE_BACKEND),,--backend redis://127.0.0.1:$(REDIS_PORT)) $(ARGS)

# libFuzzer harnesses (fuzz/), built with clang, ASan and UBSan in $(FUZZ_BUILD); each runs for
# FUZZ_SECONDS, e.g. make fuzz FUZZ_SECONDS=600, or only some: make fuzz FUZZERS="parser config".
# Fails on any crash; its reproducer is kept in $(FUZZ_BUILD)/artifacts (see README "Fuzzing").
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZERS ?= parser reply_framer config client_core
FUZZ_PACKAGES := clang libclang-rt-14-dev
.PHONY: fuzz
fuzz:
	$(MAKE) deps DEBIAN_PACKAGES="$(DEBIAN_PACKAGES) $(FUZZ_PACKAGES)"
	CC=clang CXX=clang++ cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Fuzz -DRESPCACHE_FUZZ=ON \
	  -DRESPCACHE_TESTS=OFF
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target $(addprefix fuzz_,$(FUZZERS))
	fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZERS)

bench: deps build
	cmake --build $(BUILD) --target respload
	$(PYTHON) bench/run.py --bin $(abspath $(BUILD))/respcache $(BENCH_ARGS)

# Ten minutes of mixed load (SOAK_SECONDS=N for another length), failing if respcache's RSS keeps growing
# once its cache is full (see bench/soak.py). Not part of `make test` or CI.
soak: deps build
	$(PYTHON) bench/soak.py --bin $(abspath $(BUILD))/respcache

microbench: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DRESPCACHE_MICROBENCH=ON
	cmake --build $(BUILD) -j $(JOBS) --target respcache_microbench
	$(BUILD)/respcache_microbench

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
