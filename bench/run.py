#!/usr/bin/env python3
"""`make bench`: throughput and latency of this filter against plain Envoy and Envoy's native jwt_authn.

One command, one run, one Envoy binary. For every measurement a fresh Envoy (``--concurrency 1``,
pinned to one core) serves a front listener with the variant's auth filter and, as its upstream, a
second listener of the same Envoy that reads the request and answers 200 at once (``buffer`` +
``direct_response``; bench/envoy.yaml.in). ``wrk`` (pinned to
the other core) sends POST /v1/messages with a bearer token per request taken from a pre-minted pool
(bench/tokens.lua). Variants are measured in interleaved rounds; the report gives medians with
min/max over the rounds, ratios to "no auth" and to native jwt_authn, and writes the results block
of BENCHMARKS.md.

Variants (each RS256 and ES256 where it applies):
  no-auth                   plain Envoy proxy
  native                    envoy.filters.http.jwt_authn without cache, every token different
  native-cache              jwt_authn with jwt_cache_config, a few hundred users' tokens reused
  filter-cold               this filter, every token different (a pool of tens of thousands)
  filter-warm               this filter, a few hundred users' tokens reused
  filter-flood              this filter, forged tokens (known kid, wrong signature, each different)
  filter-flood-es384        the same with ES384 (a P-384 key in the JWKS): the cost of the costliest
                            forgery, to compare with filter-flood-rs256
  filter-flood-rs256-nokid  forged RS256 tokens without kid against a JWKS of 8 RSA keys (the real
                            one first): a kid-less token is tried against at most 2 keys
  models-open               the warm RS256 filter, a 2 KB body with `model` first, a one-model catalog
  models-enforce            the same with models.enforce (checked first: another model gets 403)
  budgets                   filter-warm-rs256 plus envoy/examples/budgets.yaml's rate-limit filter and
                            rate_limits, asking target/release/gateway-ratelimit on a redis-server that
                            this run starts (bench/budget_service.py); budgets never reached
The last three are reported as additions to the variant they extend (models-open, filter-warm-rs256),
which BENCH_VARIANTS brings along.

Sanity checks (never timing): before each measurement one valid and one forged request must get the
expected status (200/401, both 200 without auth); afterwards every response of a valid-token run
must be 2xx and every response of a flood 401, with no socket errors. A failed check stops the run
(exit 1) without touching BENCHMARKS.md.

Settings (environment): BENCH_SECONDS (10), BENCH_ROUNDS (3), BENCH_WARMUP (2, seconds per
measurement), BENCH_CONNECTIONS (16), BENCH_COLD_TOKENS (100000), BENCH_USERS (300), BENCH_VARIANTS
(comma-separated ids or prefixes; default all), BENCH_WRITE (unset: refresh the results block of
BENCHMARKS.md after a full run, i.e. all variants and at least 3 rounds; 1: always; 0: never),
BENCH_KEEP (1: keep the run directory), ENVOY_BIN, WRK_BIN.

Python stdlib plus `cryptography`. Every child process is stopped by its PID on exit, error or Ctrl-C.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from settings import (BENCHMARKS_MD, COLD_TOKENS, KEEP, MODEL_FIRST_BODY, NOOP_WASM, REPO, ROUNDS, SECONDS,
                      WARMUP, WASM, WRITE, BenchError)
import trim_exports  # noqa: E402  (settings put tools/ and tests/ on the path)
from envoy_process import EnvoyError, log  # noqa: E402
from budget_service import BudgetService  # noqa: E402
from measure import Context, Measurement, measure  # noqa: E402
from procs import run_main, stop_all  # noqa: E402
from report import machine_facts, med, report_block, summarize, write_benchmarks  # noqa: E402
from token_pools import make_keys, mint_pools  # noqa: E402
from variants import all_variants, select_variants  # noqa: E402


def find_envoy() -> str:
    env = os.environ.get("ENVOY_BIN", "").strip()
    if env:
        if not (os.path.isfile(env) and os.access(env, os.X_OK)):
            sys.exit(f"bench: ENVOY_BIN={env!r} is not an executable file")
        return env
    venv = REPO / ".venv" / "bin" / "envoy"
    if venv.is_file() and os.access(venv, os.X_OK):
        return str(venv)
    found = shutil.which("envoy")
    if not found:
        sys.exit("bench: no Envoy found: set ENVOY_BIN, run `make setup`, or put envoy on PATH")
    return found


def pick_cpus() -> tuple[int | None, int | None]:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= 2:
        return cpus[0], cpus[1]
    return None, None


def main() -> int:
    started = time.monotonic()
    load_start = os.getloadavg()
    envoy_bin = find_envoy()
    wrk = os.environ.get("WRK_BIN") or shutil.which("wrk") or ""
    if not wrk:
        sys.exit("bench: wrk not found (apt-get install wrk), or set WRK_BIN")
    try:
        import cryptography  # noqa: F401
    except ImportError:
        sys.exit("bench: Python package `cryptography` missing: run with .venv/bin/python "
                 "(`make setup` installs it)")
    if not WASM.is_file() or WASM.read_bytes()[:4] != b"\0asm":
        sys.exit(f"bench: {WASM} is missing or not a Wasm module: run `make build`")
    if not NOOP_WASM.is_file():
        sys.exit(f"bench: {NOOP_WASM} is missing: run `make bench` (it builds bench/noop)")
    variants = select_variants(all_variants())
    if ROUNDS < 3:
        log(f"bench: note: BENCH_ROUNDS={ROUNDS}; the published numbers use at least 3")
    workdir = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    # Measure one fixed copy, even if dist/ is rebuilt while the run goes on.
    wasm = workdir / "gateway_filter.wasm"
    shutil.copyfile(WASM, wasm)
    noop = {"noop-sdk": workdir / "noop_sdk.wasm", "noop": workdir / "noop_trimmed.wasm"}
    shutil.copyfile(NOOP_WASM, noop["noop-sdk"])
    noop["noop"].write_bytes(trim_exports.trim(NOOP_WASM.read_bytes()))
    facts = machine_facts(envoy_bin, wasm)
    envoy_cpu, wrk_cpu = pick_cpus()
    per = WARMUP + SECONDS + 3
    log(f"bench: Envoy {facts['envoy']}, filter {int(facts['wasm_size']):,} bytes, "
        f"{len(variants)} variants × {ROUNDS} rounds × ~{per} s ≈ {len(variants) * ROUNDS * per // 60 + 1}"
        f" min after minting; Envoy on CPU {envoy_cpu}, wrk on CPU {wrk_cpu}; run dir {workdir}")
    if envoy_cpu is None:
        log("bench: fewer than 2 CPUs available: Envoy and wrk are not pinned and share the CPU")

    results: list[Measurement] = []
    failed = False
    try:
        t = time.monotonic()
        keys = make_keys()
        pools = mint_pools(keys, workdir)
        log(f"bench: keys and {sum(1 for _ in pools)} token pools ready in {time.monotonic() - t:.0f} s "
            f"({COLD_TOKENS} cold tokens per algorithm)")
        bodies = {"model-first": workdir / "model-first.json"}
        bodies["model-first"].write_text(MODEL_FIRST_BODY)
        # gateway-ratelimit and Redis share wrk's core: Envoy's stays for Envoy alone.
        budgets = BudgetService(workdir, wrk_cpu) if any(v.budgets for v in variants) else None
        ctx = Context(envoy_bin, wrk, wasm, noop, keys, pools, workdir, envoy_cpu, wrk_cpu, bodies, budgets)
        for rnd in range(1, ROUNDS + 1):
            shift = (rnd - 1) % len(variants)
            order = variants[shift:] + variants[:shift]
            for v in order:
                m = measure(v, rnd, ctx)
                results.append(m)
                note = ("; " + "; ".join(m.warnings)) if m.warnings else ""
                aux = "".join(f"  {name} {us:.0f} µs/req" for name, us in m.aux_cpu_us_per_req.items())
                log(f"[round {rnd}/{ROUNDS}] {v.id:<20} {m.rps:8.0f} req/s  p50 {m.p50_ms:7.2f} ms  "
                    f"p99 {m.p99_ms:7.2f} ms  Envoy {m.envoy_cpu_us_per_req:5.0f} µs/req "
                    f"({m.envoy_cpu_util:.0%} CPU)  wrk {m.wrk_cpu_util:.0%} CPU{aux}  "
                    f"{m.requests} responses {m.statuses}{note}")
                (workdir / "results.json").write_text(json.dumps(
                    [m_.__dict__ for m_ in results], indent=1, default=str))
    except KeyboardInterrupt:
        log("bench: interrupted; stopping everything")
        failed = True
    except (BenchError, EnvoyError) as e:
        log(f"bench: FAILED: {e}")
        failed = True
    finally:
        stop_all()
    ended = time.monotonic()
    if failed:
        log(f"bench: run directory kept: {workdir}")
        return 1
    rows = summarize(variants, results)
    warnings = [f"{m.variant} round {m.round}: {w}" for m in results for w in m.warnings]
    others = [m.other_on_envoy_core for m in results if m.other_on_envoy_core == m.other_on_envoy_core]
    if others and max(others) > 0.05:
        warnings.append(f"other processes used a median {med(others):.0%} (max {max(others):.0%}) of "
                        "Envoy's core during the measurements: req/s and latencies are lower and "
                        "noisier than on a quiet machine; Envoy CPU µs/req is less affected")
    block = report_block(facts, rows, started, ended, ctx, (load_start, os.getloadavg()), warnings)
    print(block.split("\n", 3)[3].rsplit("\n", 1)[0])
    full = len(variants) == len(all_variants()) and ROUNDS >= 3
    if WRITE == "1" or (WRITE != "0" and full):
        write_benchmarks(block)
        log(f"bench: results written to {BENCHMARKS_MD.relative_to(REPO)}")
    elif WRITE != "0":
        log("bench: BENCHMARKS.md left alone: not a full run (all variants, at least 3 rounds); "
            "BENCH_WRITE=1 writes it anyway")
    if KEEP:
        log(f"bench: run directory kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    log(f"bench: done in {ended - started:.0f} s")
    return 0


if __name__ == "__main__":
    run_main(main)
