"""What every part of `make bench` shares: where things are, the run's settings (environment), and
the fixed facts of the tokens and the upstream."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(REPO / "tests"))
from envoy_process import env_int  # noqa: E402

BENCH = REPO / "bench"
WASM = REPO / "dist" / "gateway_filter.wasm"
# `make bench` builds it: a proxy-wasm filter that does nothing, for the cost of any Wasm filter.
NOOP_WASM = BENCH / "noop" / "target" / "wasm32-wasip1" / "release" / "noop_filter.wasm"
TEMPLATE = BENCH / "envoy.yaml.in"
LUA = BENCH / "tokens.lua"
BENCHMARKS_MD = REPO / "BENCHMARKS.md"

ISSUER = "https://idp.bench.example"
AUDIENCE = "claude-gateway"
KID = {"RS256": "bench-rs256", "ES256": "bench-es256", "ES384": "bench-es384"}
# RSA keys in the JWKS of filter-flood-rs256-nokid: the real one and decoys.
NOKID_RSA_KEYS = 8
TOKEN_LIFETIME_S = 4 * 3600            # far longer than a run (the brief asks for at least 1 hour)
UPSTREAM_BODY = ('{"id":"msg_bench","type":"message","role":"assistant","model":"bench",'
                 '"content":[{"type":"text","text":"ok"}],"stop_reason":"end_turn",'
                 '"usage":{"input_tokens":1,"output_tokens":1}}')

# The model the Messages API bodies name, and the ~2 KB body with `model` first (Claude Code's and
# the TypeScript SDK's order) of the models variants.
MODEL = "claude-sonnet-4-5"
MODEL_FIRST_BODY = ('{"model":"%s","max_tokens":64,"messages":[{"role":"user","content":"%s"}]}'
                    % (MODEL, "y" * 1950))
# The budgets variant's budgets (its rate-limit pieces are envoy/examples/budgets.yaml's: tests/budgets_example.py).
RLS_CONFIG = BENCH / "budgets.yaml"

SECONDS = env_int("bench", "BENCH_SECONDS", 10)
ROUNDS = env_int("bench", "BENCH_ROUNDS", 3)
WARMUP = env_int("bench", "BENCH_WARMUP", 2, minimum=0)
CONNECTIONS = env_int("bench", "BENCH_CONNECTIONS", 16)
COLD_TOKENS = env_int("bench", "BENCH_COLD_TOKENS", 100000, minimum=100)
USERS = env_int("bench", "BENCH_USERS", 300)
WRITE = os.environ.get("BENCH_WRITE", "").strip()   # "1" always, "0" never, unset: full runs only
KEEP = os.environ.get("BENCH_KEEP", "0") == "1"


class BenchError(RuntimeError):
    pass
