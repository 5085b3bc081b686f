"""The report of `make bench`: the tables of a run (medians with min–max over the rounds, per-round
figures, memory) and the results block of BENCHMARKS.md."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from measure import Context, Measurement
from settings import (BENCHMARKS_MD, COLD_TOKENS, CONNECTIONS, REPO, ROUNDS, SECONDS, USERS, WARMUP)
from variants import Variant

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def fmt_range(xs: list[float], fmt: str) -> str:
    return f"{format(med(xs), fmt)} ({format(min(xs), fmt)}–{format(max(xs), fmt)})"


def summarize(variants: list[Variant], results: list[Measurement]) -> list[dict[str, Any]]:
    by: dict[str, list[Measurement]] = {}
    for m in results:
        by.setdefault(m.variant, []).append(m)
    rows = []
    rps_med = {vid: med([m.rps for m in ms]) for vid, ms in by.items()}
    for v in variants:
        ms = by.get(v.id, [])
        if not ms:
            continue
        row = {"variant": v, "ms": ms, "rps": [m.rps for m in ms], "p50": [m.p50_ms for m in ms],
               "p99": [m.p99_ms for m in ms], "cpu": [m.envoy_cpu_us_per_req for m in ms],
               "non_2xx": sum(m.non_2xx for m in ms), "requests": sum(m.requests for m in ms)}
        row["x_noauth"] = rps_med[v.id] / rps_med["no-auth"] if "no-auth" in rps_med else None
        row["x_native"] = (rps_med[v.id] / rps_med[v.compare_native]
                           if v.compare_native in rps_med else None)
        rows.append(row)
    return rows


def load_label(v: Variant, ms: list[Measurement]) -> str:
    if v.kind in ("none", "noop-sdk", "noop", "noop-headers"):
        return f"{USERS} users' tokens, unchecked"
    if v.pool.startswith("warm"):
        return f"{USERS} users, reused"
    kind = "forged, each distinct" if v.pool.startswith("forged") else "each token distinct"
    reused = max(m.repeated_tokens / max(m.requests, 1) for m in ms)
    if reused and v.kind == "native":
        # no cache: sending a token again costs the same as a new one
        return f"pool of {COLD_TOKENS:,} distinct tokens, cycled"
    share = f"{reused:.0%}" if reused >= 0.005 else "under 1%"
    return kind + (f" ({share} reused: pool of {COLD_TOKENS} ran out)" if reused else "")


def table(rows: list[dict[str, Any]]) -> str:
    head = ("| variant | load | req/s median (min–max) | p50 ms | p99 ms | × no auth | × native "
            "| Envoy CPU µs/req | + µs/req vs no auth | responses |")
    lines = [head, "|" + "---|" * 10]
    base = next((med(r["cpu"]) for r in rows if r["variant"].kind == "none"), None)
    for row in rows:
        v: Variant = row["variant"]
        resp = (f"{row['requests']:,} × 401" if v.expect == 401 else
                f"{row['requests']:,} × 2xx" if row["non_2xx"] == 0 else f"{row['non_2xx']} non-2xx")
        x_n = f"{row['x_noauth']:.2f}" if row["x_noauth"] is not None and v.kind != "none" else "—"
        x_nat = f"{row['x_native']:.2f}" if row["x_native"] is not None else "—"
        lines.append(f"| {v.id} | {load_label(v, row['ms'])} | {fmt_range(row['rps'], '.0f')} | "
                     f"{fmt_range(row['p50'], '.2f')} | {fmt_range(row['p99'], '.2f')} | {x_n} | "
                     f"{x_nat} | {fmt_range(row['cpu'], '.0f')} | "
                     f"{'—' if base is None or v.kind == 'none' else format(med(row['cpu']) - base, '+.0f')}"
                     f" | {resp} |")
    return "\n".join(lines)


def additions_table(rows: list[dict[str, Any]]) -> str:
    """What the models and budgets variants add to the variant they extend (medians over the rounds;
    for the budgets variant also the rate-limit service's and Redis' CPU per request)."""
    by = {row["variant"].id: row for row in rows}
    lines = ["| variant | over | + p50 ms | + p99 ms | + Envoy CPU µs/req | gateway-ratelimit CPU µs/req "
             "| Redis CPU µs/req |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        v: Variant = row["variant"]
        base = by.get(v.compare)
        if base is None:
            continue
        aux = {name: med([m.aux_cpu_us_per_req[name] for m in row["ms"]])
               for name in row["ms"][0].aux_cpu_us_per_req}
        lines.append(f"| {v.id} | {v.compare} | {med(row['p50']) - med(base['p50']):+.3f} | "
                     f"{med(row['p99']) - med(base['p99']):+.3f} | {med(row['cpu']) - med(base['cpu']):+.1f} | "
                     f"{format(aux['gateway-ratelimit'], '.0f') if 'gateway-ratelimit' in aux else '—'} | "
                     f"{format(aux['redis-server'], '.0f') if 'redis-server' in aux else '—'} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def pct(x: float) -> str:
    return "—" if x != x else f"{x:.0%}"


def rounds_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| variant | " + " | ".join(f"round {i + 1} req/s" for i in range(ROUNDS)) +
             " | Envoy's core: Envoy | Envoy's core: others | wrk's core: wrk | wrk's core: others |",
             "|" + "---|" * (ROUNDS + 5)]
    for row in rows:
        ms = sorted(row["ms"], key=lambda m: m.round)
        cells = [f"{m.rps:.0f}" for m in ms] + [""] * (ROUNDS - len(ms))
        lines.append(f"| {row['variant'].id} | " + " | ".join(cells) +
                     f" | {pct(med([m.envoy_cpu_util for m in ms]))} "
                     f"| {pct(med([m.other_on_envoy_core for m in ms]))} "
                     f"| {pct(med([m.wrk_cpu_util for m in ms]))} "
                     f"| {pct(med([m.other_on_wrk_core for m in ms]))} |")
    return "\n".join(lines)


def mib(n: float) -> str:
    return f"{n / (1 << 20):.1f}"


def memory_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| variant (last round) | Envoy RSS, MiB | tcmalloc allocated (`/memory`), MiB "
             "| Wasm linear memory, MiB: size (resident), all instances |",
             "|---|---|---|---|"]
    for row in rows:
        m = max(row["ms"], key=lambda x: x.round)
        b, a = m.before, m.after
        wb, wa = b["wasm_memory"], a["wasm_memory"]
        wasm = (f"{mib(wb['size'])} ({mib(wb['rss'])}) → {mib(wa['size'])} ({mib(wa['rss'])}), "
                f"{wa['count']} instances" if wa.get("count") else "—")
        lines.append(f"| {row['variant'].id} | {mib(b['VmRSS'])} → {mib(a['VmRSS'])} | "
                     f"{mib(b['memory'].get('allocated', 0))} → {mib(a['memory'].get('allocated', 0))}"
                     f" | {wasm} |")
    return "\n".join(lines)


def wasm_stats_lines(rows: list[dict[str, Any]]) -> str:
    out = []
    for row in rows:
        if row["variant"].id.startswith("filter-warm"):
            m = max(row["ms"], key=lambda x: x.round)
            b, a = m.before["wasm_stats"], m.after["wasm_stats"]
            names = sorted(k for k in set(a) | set(b)
                           if not k.startswith("wasmcustom.") and (a.get(k) or b.get(k)))
            out.append(f"- `{row['variant'].id}` (round {m.round}), `/stats?filter=wasm` before → after: "
                       + (", ".join(f"`{k}` {b.get(k, '—')} → {a.get(k, '—')}" for k in names)
                          or "no non-zero `wasm.*` stat")
                       + "; the filter's counters after: "
                       + ", ".join(f"`{k}` {n:,}" for k, n in sorted(m.filter_counters.items())))
    return "\n".join(out)


def envoy_version(raw: str) -> str:
    """`9e55809.../1.40.0/Clean/RELEASE/BoringSSL` -> `1.40.0 (9e5580933739, RELEASE, BoringSSL)`."""
    parts = raw.split("/")
    if len(parts) >= 5:
        return f"{parts[1]} ({parts[0][:12]}, {parts[3]}, {parts[4]})"
    return raw


def machine_facts(envoy_bin: str, wasm: Path) -> dict[str, str]:
    cpu_model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    version = subprocess.run([envoy_bin, "--version"], capture_output=True, text=True).stdout.strip()
    m = re.search(r"version:\s*(\S+)", version)
    git = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                         capture_output=True, text=True).stdout.strip() or "unknown"
    wrk_v = subprocess.run([shutil.which("wrk") or "wrk", "--version"], capture_output=True,
                           text=True).stdout.splitlines()
    return {"nproc": str(os.cpu_count()),
            "nproc_cmd": subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip(),
            "cpu_model": cpu_model, "kernel": platform.release(),
            "envoy": envoy_version(m.group(1) if m else version), "envoy_bin": envoy_bin,
            "wasm_size": str(wasm.stat().st_size),
            "wasm_sha256": hashlib.sha256(wasm.read_bytes()).hexdigest(),
            "wasm_mtime": dt.datetime.fromtimestamp(wasm.stat().st_mtime, dt.timezone.utc)
            .strftime("%Y-%m-%d %H:%M UTC"),
            "git": git, "wrk": (wrk_v[0] if wrk_v else "wrk").split(" Copyright")[0].strip(),
            "python": platform.python_version()}


def report_block(facts: dict[str, str], rows: list[dict[str, Any]], started: float, ended: float,
                 ctx: Context, load: tuple[tuple[float, ...], tuple[float, ...]],
                 warnings: list[str]) -> str:
    date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    envoy_cmd = " ".join(["taskset -c", str(ctx.envoy_cpu)] if ctx.envoy_cpu is not None else [])
    envoy_cmd += " envoy -c <run dir>/envoy.yaml --concurrency 1 --log-level warn " \
                 "--use-dynamic-base-id --admin-address-path <file> --drain-time-s 0 " \
                 "--parent-shutdown-time-s 1"
    wrk_cmd = "BENCH_TOKENS=<pool file> BENCH_OFFSET=<n> " + \
        (f"taskset -c {ctx.wrk_cpu} " if ctx.wrk_cpu is not None else "") + \
        f"wrk -t1 -c{CONNECTIONS} -d{SECONDS}s --timeout 10s " \
        f"-s bench/tokens.lua http://127.0.0.1:<port>/v1/messages"
    out = [
        BEGIN,
        "<!-- Written by bench/run.py (`make bench`); edits between these markers are replaced. -->",
        "",
        f"### Results of {date}",
        "",
        f"- Machine: {facts['nproc']} cores (`nproc`: {facts['nproc_cmd']}), {facts['cpu_model']}, "
        f"Linux {facts['kernel']}; load average at start {load[0][0]:.2f}, at end {load[1][0]:.2f}",
        f"- Envoy {facts['envoy']} (`{facts['envoy_bin']}`), `--concurrency 1` pinned to CPU "
        f"{ctx.envoy_cpu}; {facts['wrk']} pinned to CPU {ctx.wrk_cpu}",
        f"- Filter: `dist/gateway_filter.wasm`, {int(facts['wasm_size']):,} bytes, sha256 "
        f"`{facts['wasm_sha256'][:16]}…`, file time {facts['wasm_mtime']}; repository at "
        f"`{facts['git']}` when the run started",
        f"- Run: `make bench` (`{sys.executable.replace(str(REPO) + '/', '')} bench/run.py`), "
        f"{ROUNDS} interleaved rounds × {len(rows)} variants, {SECONDS} s per measurement after "
        f"{WARMUP} s of warm-up, {CONNECTIONS} connections; {int(ended - started)} s in total",
        f"- Envoy: `{envoy_cmd.strip()}`",
        f"- Load: `{wrk_cmd}`",
        "",
        table(rows),
        "",
        *([f"What enforcing the model and the budgets add (medians; the variants are described under "
           f"[Models and budgets](#models-and-budgets)):", "", additions_table(rows), ""]
          if additions_table(rows) else []),
        "Per round (the order of the variants rotates from round to round), and how busy each "
        "process's core was during the measurement:",
        "",
        rounds_table(rows),
        "",
        "Memory, before → after each variant's last measurement (before: after start-up and the "
        "sanity check; after: after warm-up and measurement). Envoy's admin `/memory` is tcmalloc's "
        "heap, which does not hold V8's Wasm memory; the Wasm linear memory is read from "
        "`/proc/<pid>/smaps` (size = the instances' current `memory.size`, resident = pages touched):",
        "",
        memory_table(rows),
        "",
        wasm_stats_lines(rows),
    ]
    if warnings:
        out += ["", "Warnings from this run:", ""] + [f"- {w}" for w in warnings]
    out += ["", END]
    return "\n".join(out)


# A BENCHMARKS.md that is gone gets this head; the method is written by hand in the checked-in file.
MISSING_HEAD = """# Benchmarks

Written by `make bench`; the method is described in bench/run.py and bench/streaming.py.

"""


def write_benchmarks(block: str, markers: tuple[str, str] = (BEGIN, END)) -> None:
    """`block` (which starts and ends with `markers`) in place of the marked block of BENCHMARKS.md,
    or at its end when it has none; the rest of the file is left alone."""
    begin, end = markers
    if BENCHMARKS_MD.exists():
        text = BENCHMARKS_MD.read_text()
        if begin in text and end in text:
            head, rest = text.split(begin, 1)
            tail = rest.split(end, 1)[1]
            text = head + block + tail
        else:
            text = text.rstrip("\n") + "\n\n" + block + "\n"
    else:
        text = MISSING_HEAD + block + "\n"
    BENCHMARKS_MD.write_text(text)
