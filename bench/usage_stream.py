#!/usr/bin/env python3
"""`make bench`, streaming part: what reading the usage record costs Envoy.

Four variants, each a fresh Envoy (``--concurrency 1``) in front of the Messages API stand-in
(tests/standins/messages_api.py), the same API key on every request:
  no-filter       plain Envoy proxy
  usage-off       this filter with ``usage.enabled: false``
  usage-on        this filter, metering (the default)
  models-enforce  usage off, ``models.enforce`` on (a one-model catalog): every body is scanned for its
                  ``model`` before it is passed on (checked first: a refused model must get 403)

Three measurements per variant, by Envoy's CPU time (user + system, /proc) over the run:
  stream    BENCH_STREAMS (20) streamed answers of 2,000 ``content_block_delta`` events with 40-byte
            texts (each event its own HTTP chunk): CPU per answer. Goal: usage-on at most 5% above
            usage-off.
  body      BENCH_BODIES (10) non-streamed requests with a 10 MB body whose ``model`` comes last (the
            Python SDK's order): the model scan's throughput is 10 MB / (CPU of usage-on - CPU of
            usage-off) per request. Goal: at least 500 MB/s.
  small     BENCH_SMALL (2000) non-streamed requests of ~2 KB whose ``model`` comes first (Claude Code's
            and the TypeScript SDK's order) on one connection: what enforcing the model adds per request
            is models-enforce minus usage-off.
Rounds (BENCH_ROUNDS, 3) interleave the variants; medians are reported. The Markdown block goes to
stdout and, after a run of at least 3 rounds, between the bench-usage markers of BENCHMARKS.md
(added at the end when missing; the rest of the file is left alone).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "tests" / "e2e")]

import procs  # noqa: E402
from e2e_harness import Envoy, envoy_config  # noqa: E402
from standins.messages_api import MessagesAPI  # noqa: E402

KEY = "sk-bench-usage"
EVENTS = 2000
DELTA_BYTES = 40
BODY_BYTES = 10 * 1024 * 1024
STREAMS = int(os.environ.get("BENCH_STREAMS", "20"))
BODIES = int(os.environ.get("BENCH_BODIES", "10"))
SMALL = int(os.environ.get("BENCH_SMALL", "2000"))
MODEL = "claude-sonnet-4-5"
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
WASM = REPO / "dist" / "gateway_filter.wasm"
BENCHMARKS_MD = REPO / "BENCHMARKS.md"
BEGIN, END = "<!-- bench-usage:begin -->", "<!-- bench-usage:end -->"


def plugin(enabled: bool, enforce: bool = False) -> dict[str, Any]:
    config: dict[str, Any] = {"api_keys": [{"name": "bench", "sha256": hashlib.sha256(KEY.encode()).hexdigest()}],
                              "usage": {"enabled": enabled}}
    if enforce:
        config["models"] = {"catalog": [{"id": MODEL, "display_name": "Claude Sonnet 4.5",
                                         "created_at": "2025-09-29T00:00:00Z"}], "enforce": True}
    return config


VARIANTS = {"no-filter": None, "usage-off": plugin(False), "usage-on": plugin(True),
            "models-enforce": plugin(False, enforce=True)}
# A ~2 KB request body with `model` first.
SMALL_BODY = json.dumps({"model": MODEL, "max_tokens": 16,
                         "messages": [{"role": "user", "content": "y" * 1900}]}).encode()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Bench:
    def __init__(self, envoy_bin: str, api: MessagesAPI, workdir: Path) -> None:
        self.envoy_bin, self.api, self.workdir = envoy_bin, api, workdir

    def start(self, name: str, config: dict[str, Any] | None) -> Envoy:
        cfg = envoy_config(upstream_port=self.api.port, plugin_config=config,
                           wasm=WASM if config is not None else None)
        envoy = Envoy(Path(self.envoy_bin), Path(tempfile.mkdtemp(prefix=name + "-", dir=self.workdir)), name)
        envoy.start(cfg)
        return envoy

    def stream(self, port: int) -> int:
        body = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 4096, "stream": True,
                           "messages": [{"role": "user", "content": "hi"}]})
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            conn.request("POST", "/v1/messages", body=body, headers={
                "x-api-key": KEY, "content-type": "application/json", "x-standin-deltas": str(EVENTS),
                "x-standin-delta-bytes": str(DELTA_BYTES), "x-standin-event-delay-ms": "0"})
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 200 or data.count(b"content_block_delta") != 2 * EVENTS:
                raise SystemExit(f"bench: bad streamed answer (status {resp.status}, {len(data)} bytes)")
            return len(data)
        finally:
            conn.close()

    def body(self, port: int, payload: bytes) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            conn.request("POST", "/v1/messages", body=payload, headers={
                "x-api-key": KEY, "content-type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                raise SystemExit(f"bench: bad answer to the 10 MB body (status {resp.status})")
        finally:
            conn.close()

    def small(self, port: int, body: bytes, count: int, expect: int = 200) -> None:
        """`count` non-streamed requests with `body` on one connection, each answered `expect`."""
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            for _ in range(count):
                conn.request("POST", "/v1/messages", body=body, headers={
                    "x-api-key": KEY, "content-type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                if resp.status != expect:
                    raise SystemExit(f"bench: a 2 KB request got {resp.status}, expected {expect}")
        finally:
            conn.close()

    def measure(self, name: str, config: dict[str, Any] | None,
                payload: bytes) -> tuple[float, float, float]:
        """Envoy CPU seconds per streamed answer, per 10 MB request and per 2 KB request."""
        envoy = self.start(name, config)
        try:
            assert envoy.proc is not None
            self.stream(envoy.port)   # warm-up: VM, connections
            if config is not None and "models" in config:
                # Enforcement is really on: another model is refused before anything goes upstream.
                self.small(envoy.port, SMALL_BODY.replace(MODEL.encode(), b"claude-other-4-5"), 1, expect=403)
            t0 = cpu_seconds(envoy.proc.pid)
            for _ in range(STREAMS):
                self.stream(envoy.port)
            t1 = cpu_seconds(envoy.proc.pid)
            for _ in range(BODIES):
                self.body(envoy.port, payload)
            t2 = cpu_seconds(envoy.proc.pid)
            self.small(envoy.port, SMALL_BODY, SMALL)
            t3 = cpu_seconds(envoy.proc.pid)
            self.api.clear()
            return (t1 - t0) / STREAMS, (t2 - t1) / BODIES, (t3 - t2) / SMALL
        finally:
            envoy.stop()


def main() -> int:
    envoy_bin = os.environ.get("ENVOY_BIN") or str(REPO / ".venv" / "bin" / "envoy")
    messages = [{"role": "user", "content": "x" * (BODY_BYTES - 200)}]
    payload = json.dumps({"messages": messages, "max_tokens": 5, "model": "claude-sonnet-4-5"}).encode()
    results: dict[str, list[tuple[float, float, float]]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="bench-usage-") as tmp, \
            MessagesAPI(event_delay=0.0) as api:
        bench = Bench(envoy_bin, api, Path(tmp))
        try:
            for rnd in range(ROUNDS):
                for name, config in VARIANTS.items():
                    results[name].append(bench.measure(name, config, payload))
                    stream_s, body_s, small_s = results[name][-1]
                    print(f"round {rnd + 1} {name}: {stream_s * 1000:.1f} ms CPU per streamed answer, "
                          f"{body_s * 1000:.1f} ms per 10 MB request, {small_s * 1e6:.0f} µs per 2 KB request",
                          file=sys.stderr, flush=True)
        finally:
            procs.stop_all()
    stream = {n: statistics.median(r[0] for r in rs) for n, rs in results.items()}
    body = {n: statistics.median(r[1] for r in rs) for n, rs in results.items()}
    small = {n: statistics.median(r[2] for r in rs) for n, rs in results.items()}
    enforce_us = (small["models-enforce"] - small["usage-off"]) * 1e6
    overhead = stream["usage-on"] / stream["usage-off"] - 1
    scan = body["usage-on"] - body["usage-off"]
    rate = BODY_BYTES / scan / 1e6 if scan > 0 else float("inf")
    lines = [f"### Streaming and the usage record (bench/usage_stream.py, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
             "",
             f"{ROUNDS} rounds, medians; Envoy CPU (user + system) with `--concurrency 1`; {STREAMS} answers of "
             f"{EVENTS} `content_block_delta` events ({DELTA_BYTES}-byte texts), {BODIES} requests of 10 MB "
             f"(`model` last) and {SMALL} requests of 2 KB (`model` first) per variant and round.",
             "",
             "| variant | CPU per streamed answer | CPU per 10 MB request | CPU per 2 KB request |",
             "|---|---|---|---|"]
    lines += [f"| {name} | {stream[name] * 1000:.1f} ms | {body[name] * 1000:.1f} ms | {small[name] * 1e6:.0f} µs |"
              for name in VARIANTS]
    lines += ["",
              f"Metering adds {overhead:+.1%} Envoy CPU per streamed answer over the filter without metering "
              f"({'meets' if overhead <= 0.05 else 'misses'} the 5% goal). Model scan of a 10 MB body: {rate:,.0f} MB/s "
              f"in Wasm ({'meets' if rate >= 500 else 'misses'} the 500 MB/s goal; usage-on minus usage-off, which "
              "also includes copying each chunk into the VM). Enforcing the model (`models.enforce`) adds "
              f"{enforce_us:+.1f} µs of Envoy CPU per 2 KB request with `model` first (models-enforce minus usage-off)."]
    block = "\n".join(lines)
    print(block)
    if ROUNDS >= 3 and BENCHMARKS_MD.exists():
        text = BENCHMARKS_MD.read_text()
        marked = f"{BEGIN}\n{block}\n{END}"
        if BEGIN in text and END in text:
            text = text[:text.index(BEGIN)] + marked + text[text.index(END) + len(END):]
        else:
            text = text.rstrip("\n") + "\n\n" + marked + "\n"
        BENCHMARKS_MD.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
