# Kiln's entry points. Every target installs what it needs first (Debian
# packages, as root or through sudo), so a fresh Debian 12 machine needs only
# `make demo` or `make test`.
BUILD      ?= build
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=

DEBIAN_PACKAGES = build-essential cmake pkg-config protobuf-c-compiler \
  libprotobuf-c-dev libzmq3-dev libsodium-dev libhiredis-dev libyaml-dev \
  libjansson-dev libcurl4-openssl-dev libsqlite3-dev libgit2-dev libssl-dev git libarchive-dev libzstd-dev libcmocka-dev redis-server nodejs podman buildah runc busybox-static bubblewrap docker-registry iproute2 sqlite3 procps python3
FUZZ_PACKAGES = clang libclang-rt-14-dev

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps fixtures build test demo bench asan-test fuzz fault-test clean

all: build

# Installs only what is missing, so repeated runs cost one dpkg query.
deps:
	@missing=$$(for p in $(DEBIAN_PACKAGES) $(EXTRA_PACKAGES); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_ARGS)
	cmake --build $(BUILD) -j $(JOBS)

# npm packages the tests vendor into JavaScript actions, as real actions
# bundle @actions/core (tests/fixtures/node, pinned by its lock file).
fixtures: deps
	@command -v npm >/dev/null || { $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends npm; }
	@[ -f tests/fixtures/node/node_modules/@actions/core/package.json ] || \
	  npm ci --prefix tests/fixtures/node --no-audit --no-fund

test: build fixtures
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

demo: build
	bash examples/demo.sh $(BUILD)/bin/kiln

asan-test:
	$(MAKE) test BUILD=build-asan CMAKE_ARGS="-DKILN_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug"

fuzz:
	$(MAKE) deps EXTRA_PACKAGES="$(FUZZ_PACKAGES)"
	cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DKILN_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug
	cmake --build build-fuzz -j $(JOBS)
	bash tests/fuzz/run.sh build-fuzz/bin $(or $(FUZZ_SECONDS),30)

# The long fault tests (kill storm, drain, coordinator and Redis kills,
# partition, hostile peers), with a table of figures.
fault-test: build
	KILN_BIN=$(CURDIR)/$(BUILD) bash tests/fault/run.sh

# An optimised build of its own; `make bench BENCH="e2e makespan"` runs a
# subset, `PEERS=buildbot` adds the peer comparison.
bench:
	$(MAKE) build BUILD=build-bench CMAKE_ARGS="-DCMAKE_BUILD_TYPE=Release"
	PEERS="$(PEERS)" bash bench/run.sh build-bench/bin $(BENCH)

clean:
	rm -rf build build-asan build-fuzz build-bench
