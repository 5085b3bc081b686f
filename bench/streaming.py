#!/usr/bin/env python3
"""`make bench`, streaming part (issue #16): what a filter costs Envoy per streamed answer, and what
reading the usage record adds.

Variants, each its own Envoy (``--concurrency 1``, all pinned to one core, started once and warmed
up; only the one being measured has work) in front of the Messages API stand-in
(tests/standins/messages_api.py), the same API key on every request:
  no-filter      plain Envoy proxy
  wasm-noop-sdk  a Wasm filter that does nothing (bench/noop as the SDK builds it: its response-body
                 callback is exported, so every chunk enters the VM and comes back): the floor of any
                 Wasm filter that looks at response bodies
  wasm-read-body the same filter copying each response chunk into the VM and dropping it: the floor
                 of any filter that reads a streamed answer, as the usage record must
  usage-off      this filter with ``usage.enabled: false``
  usage-on       this filter, metering (the default)

Two measurements per variant and round, by Envoy's own CPU time (all its threads, in nanoseconds:
/proc/<pid>/task/*/schedstat):
  stream  wrk (bench/stream.lua, one thread, BENCH_STREAM_CONNECTIONS (16) connections) asks for
          answers of 2,000 ``content_block_delta`` events with 40-byte texts, 1 ms apart, each event
          its own HTTP chunk (so Envoy, idle between events, reads each on its own, as with a real
          model's answer), and reads each answer whole; BENCH_STREAM_ANSWERS (32) answers are
          measured: Envoy CPU per answer. The stand-in runs in this process, on wrk's core; its CPU
          time per answer and share of that core are reported to show it is not the limit. Goal:
          usage-on at most 5% above usage-off.
  body    BENCH_BODIES (10) non-streamed requests with a 10 MB body whose ``model`` comes last (the
          Python SDK's order), from Python: the model scan's throughput is 10 MB / (CPU of usage-on
          - CPU of usage-off) per request. Goal: at least 500 MB/s.
Rounds (BENCH_STREAM_ROUNDS, 12; short, so that many pairs are taken) run the variants forward and
backward in turn; medians are reported with min-max, and each comparison as the median of its
per-round differences between neighbours. BENCH_STREAM_VARIANTS (comma-separated ids) picks
variants. The Markdown block goes to stdout and, after a run of all variants and at least 3 rounds
(BENCH_WRITE=1: always, 0: never), between the bench-usage markers of BENCHMARKS.md (the rest of the
file is left alone). After the rounds, if `perf` is installed (BENCH_PERF=0: not), one more
measurement per variant under `perf record` splits Envoy's CPU per event into kernel, Envoy's code
and the VM's code. The metering's own work without Envoy (no copies, no host calls) is measured in
V8 by bench/json_scan.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from settings import NOOP_WASM, REPO, WASM, WRITE, BenchError
from envoy_process import Envoy, EnvoyError, env_int, log, wasm_filter  # noqa: E402
from measure import run_wrk_script  # noqa: E402
from procs import run_main, spawn, stop, stop_all  # noqa: E402
from report import fmt_range, med, write_benchmarks  # noqa: E402
from run import find_envoy, pick_cpus  # noqa: E402

sys.path.insert(0, str(REPO / "tests" / "e2e"))
from e2e_harness import envoy_config  # noqa: E402
from standins.messages_api import MessagesAPI  # noqa: E402

KEY = "sk-bench-usage"
EVENTS = 2000
DELTA_BYTES = 40
EVENT_DELAY_MS = 1
BODY_BYTES = 10 * 1024 * 1024
LUA = REPO / "bench" / "stream.lua"
CONNECTIONS = env_int("bench", "BENCH_STREAM_CONNECTIONS", 16)
ANSWERS = env_int("bench", "BENCH_STREAM_ANSWERS", 32)
ROUNDS = env_int("bench", "BENCH_STREAM_ROUNDS", 12)
BODIES = env_int("bench", "BENCH_BODIES", 10)
BEGIN, END = "<!-- bench-usage:begin -->", "<!-- bench-usage:end -->"


def plugin(enabled: bool) -> dict[str, Any]:
    return {"api_keys": [{"name": "bench", "sha256": hashlib.sha256(KEY.encode()).hexdigest()}],
            "usage": {"enabled": enabled}}


# In this order, every pair compared is a pair of neighbours: usage-on sits between the floor it is
# measured against (wasm-read-body) and the filter without metering (usage-off).
VARIANTS: dict[str, dict[str, Any] | None] = {
    "no-filter": None, "wasm-noop-sdk": None, "wasm-read-body": None,
    "usage-on": plugin(True), "usage-off": plugin(False)}


class PacedAPI(MessagesAPI):
    """The stand-in with Nagle's algorithm off, so that each event leaves when it is written, 1 ms
    after the last (with it on, an event may wait for the previous one's ACK), a backlog for all of
    wrk's connections, and quiet about the streams cut off when wrk stops."""

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        base = super().handler_class()

        class PacedHandler(base):  # type: ignore[valid-type, misc]
            disable_nagle_algorithm = True

            def handle(self) -> None:
                try:
                    super().handle()
                except (BrokenPipeError, ConnectionResetError):
                    pass   # the streams wrk leaves unfinished when a measurement ends

        return PacedHandler

    def start(self) -> "PacedAPI":
        super().start()
        assert self._server is not None
        # wrk opens all its connections at once; socketserver's backlog of 5 would drop some SYNs
        # (and Envoy answer 503 after its 1 s connect timeout). listen() again just raises the backlog.
        self._server.socket.listen(256)
        return self


def config(name: str, upstream_port: int, wasm: Path, noop: Path) -> str:
    plugin_config = VARIANTS[name]
    cfg = envoy_config(upstream_port=upstream_port, plugin_config=plugin_config,
                       wasm=wasm if plugin_config is not None else None)
    if name in ("wasm-noop-sdk", "wasm-read-body"):
        hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        read = {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": "read-response-body"}
        hcm["http_filters"].insert(0, wasm_filter(noop, read if name == "wasm-read-body" else None))
    return json.dumps(cfg)   # JSON is YAML


def big_body() -> bytes:
    messages = [{"role": "user", "content": "x" * (BODY_BYTES - 200)}]
    return json.dumps({"messages": messages, "max_tokens": 5, "model": "claude-sonnet-4-5"}).encode()


def post_body(port: int, payload: bytes) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("POST", "/v1/messages", body=payload, headers={"x-api-key": KEY,
                                                                    "content-type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            raise BenchError(f"the 10 MB request got {resp.status}")
    finally:
        conn.close()


def stream_env(answers: int) -> dict[str, str]:
    return {"BENCH_API_KEY": KEY, "BENCH_DELTAS": str(EVENTS), "BENCH_DELTA_BYTES": str(DELTA_BYTES),
            "BENCH_EVENT_DELAY_MS": str(EVENT_DELAY_MS), "BENCH_ANSWERS": str(answers)}


def run_streams(wrk: str, port: int, answers: int, cpu: int | None, wd: Path, name: str) -> dict[str, Any]:
    """`answers` streamed answers over CONNECTIONS connections, each checked whole by stream.lua."""
    limit = answers // CONNECTIONS * EVENTS * EVENT_DELAY_MS / 1000 * 4 + 60   # a stuck run's bound
    r = run_wrk_script(wrk, ["-t1", f"-c{CONNECTIONS}", f"-d{int(limit)}s", "--timeout", "60s"], LUA,
                       f"http://127.0.0.1:{port}/v1/messages", stream_env(answers), cpu, wd, name,
                       limit + 30, done_line="BENCH_ANSWERS_DONE")
    sock_errors = sum(r["errors"][k] for k in ("connect", "read", "write", "timeout"))
    if r["statuses"] != {"200": r["requests"]} or r["requests"] < answers or sock_errors:
        raise BenchError(f"{name}: expected {answers} whole answers, got {r['requests']}: "
                         f"{r['statuses']}, socket errors {r['errors']} (wrk output in {wd})")
    return r


def start_envoys(names: list[str], envoy_bin: str, wrk: str, api: MessagesAPI, wasm: Path, noop: Path,
                 wd: Path, cpus: tuple[int | None, int | None]) -> dict[str, Envoy]:
    """One Envoy per variant, all on Envoy's core for the whole run, each warmed up (VM, connections).
    Only the one being measured has work; the others sit idle."""
    envoys: dict[str, Envoy] = {}
    for name in names:
        envoy = envoys[name] = Envoy(envoy_bin, wd / name, "gateway", 1, ["--log-level", "warn"], cpus[0])
        try:
            envoy.start(config(name, api.port, wasm, noop))
        except EnvoyError as e:
            raise BenchError(str(e)) from e
        run_streams(wrk, envoy.port, CONNECTIONS, cpus[1], envoy.dir, "warmup")
    api.clear()
    return envoys


def measure(name: str, envoy: Envoy, wrk: str, api: MessagesAPI, payload: bytes, wd: Path,
            cpus: tuple[int | None, int | None]) -> dict[str, float]:
    wd.mkdir(parents=True, exist_ok=True)
    e0, s0, t0 = envoy.cpu_ns(), time.process_time(), time.monotonic()
    r = run_streams(wrk, envoy.port, ANSWERS, cpus[1], wd, name)
    e1, s1, t1 = envoy.cpu_ns(), time.process_time(), time.monotonic()
    n = r["requests"]
    api.clear()
    b0 = envoy.cpu_ns()
    for _ in range(BODIES):
        post_body(envoy.port, payload)
    b1 = envoy.cpu_ns()
    api.clear()
    if not envoy.alive():
        raise BenchError(f"{name}: Envoy died during the run\n{envoy.log_tail()}")
    return {"stream_ms": (e1 - e0) / n / 1e6, "standin_ms": (s1 - s0) / n * 1000,
            "standin_util": (s1 - s0) / (t1 - t0), "envoy_util": (e1 - e0) / 1e9 / (t1 - t0),
            "wrk_util": r["cpu_s"] / (t1 - t0), "wall_s": (t1 - t0) / n * CONNECTIONS,
            "body_ms": (b1 - b0) / BODIES / 1e6}


def profile(name: str, envoy: Envoy, perf: str, wrk: str, api: MessagesAPI, wd: Path,
            cpus: tuple[int | None, int | None]) -> dict[str, float]:
    """Envoy's CPU per event split by where it ran, from `perf record -e cpu-clock` over one
    measurement: the kernel (the sockets), Envoy's own code (with the host side of every call into
    and out of the VM) and the VM's compiled code (`[JIT]`). Shares within one run do not depend on
    how fast the machine is at the moment, so this split is steadier than differences of CPU time."""
    wd.mkdir(parents=True, exist_ok=True)
    data = wd / f"perf-{name}.data"
    with open(wd / f"perf-{name}.log", "wb") as out:
        rec = spawn([perf, "record", "-e", "cpu-clock", "-F", "2999", "-p", str(envoy.proc.pid), "-o", str(data)],
                    out, cpu=cpus[1])
        try:
            time.sleep(0.5)   # perf attached
            e0 = envoy.cpu_ns()
            n = run_streams(wrk, envoy.port, ANSWERS, cpus[1], wd, f"perf-{name}")["requests"]
            per_event_us = (envoy.cpu_ns() - e0) / n / EVENTS / 1000
        finally:
            stop(rec)   # perf writes its data on SIGTERM
    api.clear()
    text = subprocess.run([perf, "report", "-i", str(data), "--stdio", "--sort", "dso", "-g", "none"],
                          capture_output=True, text=True, check=True).stdout
    shares = {"kernel": 0.0, "envoy": 0.0, "jit": 0.0, "other": 0.0}
    for line in text.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(.+?)\s*$", line)
        if not m:
            continue
        dso = m.group(2)
        # Envoy's binary under whatever name ENVOY_BIN gives it; shared libraries and [vdso] are other.
        key = "kernel" if dso.startswith("[kernel") else "jit" if dso.startswith("[JIT]") else \
            "other" if dso.startswith("[") or ".so" in dso else "envoy"
        shares[key] += float(m.group(1)) / 100
    return {k: v * per_event_us for k, v in shares.items()}


def report(results: dict[str, list[dict[str, float]]], profiles: dict[str, dict[str, float]],
           cpus: tuple[int | None, int | None], seconds: float) -> str:
    def col(name: str, key: str) -> list[float]:
        return [m[key] for m in results[name]]

    stream = {n: med(col(n, "stream_ms")) for n in results}
    lines = [f"### Streaming and the usage record (bench/streaming.py, "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
             "",
             f"{ROUNDS} rounds, the variants forward then backward in turn, medians (min–max); one Envoy per variant "
             f"(`--concurrency 1`, started once, only the measured one busy) on CPU {cpus[0]}, its CPU time from "
             f"schedstat (ns), wrk "
             f"and the stand-in on CPU {cpus[1]}; per variant and round {ANSWERS} answers of {EVENTS} "
             f"`content_block_delta` events ({DELTA_BYTES}-byte texts, {EVENT_DELAY_MS} ms apart, each its "
             f"own chunk) on {CONNECTIONS} concurrent streams, and {BODIES} requests of 10 MB (`model` "
             f"last); {seconds:.0f} s in total. Load average at the end: {os.getloadavg()[0]:.2f}.",
             "",
             "| variant | Envoy CPU per streamed answer, ms | per event, µs | + per event vs no-filter, µs "
             "| stand-in CPU per answer, ms (share of its core) | wall per answer, s | Envoy CPU per 10 MB request, ms |",
             "|---|---|---|---|---|---|---|"]
    for n in results:
        extra = "—" if n == "no-filter" or "no-filter" not in stream else \
            f"{(stream[n] - stream['no-filter']) * 1000 / EVENTS:+.2f}"
        lines.append(f"| {n} | {fmt_range(col(n, 'stream_ms'), '.1f')} | {stream[n] * 1000 / EVENTS:.2f} | "
                     f"{extra} | {med(col(n, 'standin_ms')):.0f} ({med(col(n, 'standin_util')):.0%}) | "
                     f"{med(col(n, 'wall_s')):.2f} | {fmt_range(col(n, 'body_ms'), '.1f')} |")
    lines.append("")
    def paired(a: str, b: str) -> float:
        """Median over rounds of b minus a in Envoy CPU per answer, ms: neighbours in every round's
        order, so the machine's drift between rounds cancels."""
        return med([mb["stream_ms"] - ma["stream_ms"] for ma, mb in zip(results[a], results[b])])

    def per_event(ms: float) -> str:
        return f"{ms * 1000 / EVENTS:+.2f} µs"

    def ratios(base: str, variant: str) -> list[float]:
        """Per round, variant over base minus 1, each side's Envoy CPU per answer divided by the
        stand-in's CPU per answer in the same measurement: the stand-in does the same work for every
        answer, so its CPU time is the machine's speed at that moment (on this shared VM the two move
        together, correlation 0.7 to 0.99 within a variant), and the division takes that out."""
        return [(v["stream_ms"] / v["standin_ms"]) / (b["stream_ms"] / b["standin_ms"]) - 1
                for b, v in zip(results[base], results[variant])]

    def raw(base: str, variant: str) -> float:
        return med([v["stream_ms"] / b["stream_ms"] - 1 for b, v in zip(results[base], results[variant])])

    floor = med(ratios("wasm-noop-sdk", "wasm-read-body")) if {"wasm-read-body", "wasm-noop-sdk"} <= set(stream) \
        else None
    own = med(ratios("wasm-read-body", "usage-on")) if {"wasm-read-body", "usage-on"} <= set(stream) else None
    if {"usage-on", "usage-off"} <= set(stream):
        rounds = ratios("usage-off", "usage-on")
        over = med(rounds)
        if over <= 0.05:
            verdict = "met"
        elif floor is not None and own is not None:
            verdict = (f"not met as stated; of it, copying each chunk into the VM is {floor:+.1%} (below) and "
                       f"metering's own work above that copy (usage-on over wasm-read-body) {own:+.1%}")
        else:
            verdict = "missed"
        scan = med(col("usage-on", "body_ms")) - med(col("usage-off", "body_ms"))
        rate = f"{BODY_BYTES / (scan / 1000) / 1e6:,.0f} MB/s" if scan > 0 else "not measurable (no difference)"
        lines.append(f"- Metering adds **{over:+.1%}** Envoy CPU per streamed answer over the filter without "
                     f"metering, {per_event(paired('usage-off', 'usage-on'))} per event (median of the rounds, "
                     f"corrected for the machine's speed: {', '.join(f'{r:+.1%}' for r in rounds)}; "
                     f"uncorrected {raw('usage-off', 'usage-on'):+.1%}; goal at most +5%: {verdict}).")
        lines.append(f"- Model scan of a 10 MB body (usage-on minus usage-off, which also includes copying "
                     f"each chunk into the VM): {rate} (goal at least 500 MB/s).")
    if {"wasm-noop-sdk", "no-filter"} <= set(stream):
        lines.append(f"- The floor of any Wasm filter with a response-body callback (wasm-noop-sdk minus "
                     f"no-filter): {per_event(paired('no-filter', 'wasm-noop-sdk'))} of Envoy CPU per chunk.")
    if floor is not None:
        lines.append(f"- Copying each chunk into the VM and nothing else (wasm-read-body minus wasm-noop-sdk): "
                     f"{per_event(paired('wasm-noop-sdk', 'wasm-read-body'))} per chunk, **{floor:+.1%}** of a "
                     f"Wasm filter's answer (corrected as above; uncorrected "
                     f"{raw('wasm-noop-sdk', 'wasm-read-body'):+.1%}): the floor of reading a streamed answer "
                     "with proxy-wasm's copy-out API (`get_buffer_bytes`, which also calls into the VM to "
                     "allocate), below which metering cannot go.")
    if profiles:
        lines += ["", "Where Envoy's CPU per event goes (`perf record -e cpu-clock`, one more measurement per "
                  "variant after the rounds; µs per event, the profiler's own cost included):", "",
                  "| variant | kernel | Envoy's code | the VM's code ([JIT]) | other (libc, ...) |",
                  "|---|---|---|---|---|"]
        for n, p in profiles.items():
            lines.append(f"| {n} | {p['kernel']:.2f} | {p['envoy']:.2f} | {p['jit']:.2f} | {p['other']:.2f} |")
        lines.append("")
        if {"usage-on", "wasm-read-body", "wasm-noop-sdk"} <= set(profiles):
            on, read, noop = profiles["usage-on"], profiles["wasm-read-body"], profiles["wasm-noop-sdk"]
            copy = (read["envoy"] + read["jit"]) - (noop["envoy"] + noop["jit"])
            own = on["jit"] - read["jit"]
            lines.append(f"- In this profile, metering's own work in the VM (usage-on minus wasm-read-body, [JIT]) is "
                         f"**{own:+.2f} µs per event**; copying the chunk into the VM (wasm-read-body minus "
                         f"wasm-noop-sdk, Envoy's code and [JIT]) {copy:+.2f} µs.")
    utils = [m["standin_util"] for ms in results.values() for m in ms]
    wrk_utils = [m["wrk_util"] for ms in results.values() for m in ms]
    lines.append(f"- The stand-in used at most {max(utils):.0%} of its core and wrk at most {max(wrk_utils):.0%} "
                 f"of the same core; the answers are paced by the {EVENT_DELAY_MS} ms between events, so "
                 "Envoy CPU per answer, not answers per second, is the figure.")
    return "\n".join(lines)


def main() -> int:
    started = time.monotonic()
    envoy_bin = find_envoy()
    wrk = os.environ.get("WRK_BIN") or shutil.which("wrk") or ""
    if not wrk:
        sys.exit("bench: wrk not found (apt-get install wrk), or set WRK_BIN")
    if not WASM.is_file() or not NOOP_WASM.is_file():
        sys.exit(f"bench: {WASM} or {NOOP_WASM} is missing: run `make bench`")
    wanted = [w.strip() for w in os.environ.get("BENCH_STREAM_VARIANTS", "").split(",") if w.strip()]
    names = [n for n in VARIANTS if not wanted or n in wanted]
    if not names:
        sys.exit(f"bench: BENCH_STREAM_VARIANTS matches none of {', '.join(VARIANTS)}")
    cpus = pick_cpus()
    if cpus[1] is not None:   # the stand-in's threads run in this process: on wrk's core, not Envoy's
        os.sched_setaffinity(0, {cpus[1]})
    workdir = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    wasm_copy = workdir / "gateway_filter.wasm"   # one fixed copy, even if dist/ is rebuilt meanwhile
    shutil.copyfile(WASM, wasm_copy)
    noop = workdir / "noop_sdk.wasm"
    shutil.copyfile(NOOP_WASM, noop)
    payload = big_body()
    results: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    profiles: dict[str, dict[str, float]] = {}
    perf = "" if os.environ.get("BENCH_PERF") == "0" else shutil.which("perf") or ""
    if not perf:
        log("bench: no profile (perf not found, or BENCH_PERF=0)")
    log(f"bench: streaming: {len(names)} variants × {ROUNDS} rounds, {ANSWERS} answers each "
        f"(~{ANSWERS // CONNECTIONS * EVENTS * EVENT_DELAY_MS * 1.2 / 1000 + 6:.0f} s per measurement); run dir {workdir}")
    try:
        with PacedAPI(event_delay=0.0) as api:
            envoys = start_envoys(names, envoy_bin, wrk, api, wasm_copy, noop, workdir, cpus)
            for rnd in range(1, ROUNDS + 1):
                # Forward, then backward: the variants compared (neighbours in VARIANTS) run one
                # after the other, and a drift of the machine's speed cancels over two rounds.
                for name in names if rnd % 2 else names[::-1]:
                    m = measure(name, envoys[name], wrk, api, payload, workdir / f"r{rnd}", cpus)
                    results[name].append(m)
                    log(f"[round {rnd}/{ROUNDS}] {name:<14} {m['stream_ms']:6.1f} ms Envoy CPU per answer "
                        f"({m['stream_ms'] * 1000 / EVENTS:.2f} µs/event, Envoy {m['envoy_util']:.0%} CPU), "
                        f"stand-in {m['standin_ms']:.0f} ms/answer ({m['standin_util']:.0%} of its core), "
                        f"wrk {m['wrk_util']:.0%}, {m['wall_s']:.2f} s/answer; "
                        f"{m['body_ms']:.1f} ms per 10 MB request")
            if perf:
                for name in names:
                    profiles[name] = profile(name, envoys[name], perf, wrk, api, workdir / "perf", cpus)
            for envoy in envoys.values():
                envoy.stop()
    except KeyboardInterrupt:
        log(f"bench: interrupted; run directory kept: {workdir}")
        return 1
    except BenchError as e:
        log(f"bench: FAILED: {e}\nbench: run directory kept: {workdir}")
        return 1
    finally:
        stop_all()
    block = report(results, profiles, cpus, time.monotonic() - started)
    print(block)
    full = len(names) == len(VARIANTS) and ROUNDS >= 3
    if WRITE == "1" or (WRITE != "0" and full):
        write_benchmarks(f"{BEGIN}\n{block}\n{END}", (BEGIN, END))
        log("bench: streaming results written to BENCHMARKS.md")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    run_main(main)
