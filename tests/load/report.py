"""The report of `make loadtest`: tests/load/RESULTS.md (the soak's section kept) and the summary printed
at the end of a run."""

from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from checks import mib
from settings import (FETCH_TIMEOUT_MS, MEMORY_BOUND_MIB_PER_MIN, PROVIDER, REFRESH_SECONDS, REPO, RPS, SECONDS,
                      UNKNOWN_KID_REFRESH_SECONDS, USERS, WORKERS)

if TYPE_CHECKING:
    from run import Run


def report(run: "Run") -> str:
    ok = all(c.ok for c in run.checks)
    lines: list[str] = []
    add = lines.append
    now = dt.datetime.now(dt.timezone.utc)
    try:
        cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                    if ln.startswith("model name")), platform.processor())
    except OSError:
        cpu = platform.processor()
    load1 = os.getloadavg()
    envoy_version = subprocess.run([str(run.envoy_bin), "--version"], capture_output=True,
                                   text=True).stdout.strip().split("version:")[-1].strip()
    cmd_env = " ".join(f"{k}={os.environ[k]}" for k in ("LOAD_SECONDS", "LOAD_RPS", "LOAD_USERS", "LOAD_SKIP",
                                                         "LOAD_ROTATION", "LOAD_WASM")
                       if os.environ.get(k))
    add("# Load test results\n")
    add("Written by `tests/load/run.py` (`make loadtest`); each run replaces this file.\n")
    add(f"- **Verdict: {'PASS' if ok else 'FAIL'}** ({sum(c.ok for c in run.checks)}/{len(run.checks)} checks)")
    add(f"- Date: {now:%Y-%m-%d %H:%M} UTC; duration {run.ended - run.started:.0f}s in total, "
        f"{SECONDS}s of load")
    add(f"- Machine: {os.cpu_count()} cores, {cpu}, Linux {platform.release()}; load average at the end "
        f"{load1[0]:.2f} (other work shares this machine)")
    add(f"- Command: `{(cmd_env + ' ') if cmd_env else ''}make loadtest` (`.venv/bin/python tests/load/run.py`)")
    try:
        shown = run.wasm_source.relative_to(REPO)
    except ValueError:
        shown = run.wasm_source
    add(f"- Envoy {envoy_version} (`{run.envoy_bin}`), `--concurrency {WORKERS}`; filter `{shown}` "
        f"({run.wasm.stat().st_size:,} bytes, sha256 `{run.wasm_sha[:16]}…`, built "
        f"{run.wasm_time:%Y-%m-%d %H:%M:%S} UTC), copied into the run directory at the start; "
        f"repository at `{run.git_rev}` then")
    add(f"- Load: `{' '.join(shlex.quote(c) for c in run.wrk_cmd[:-1])} http://127.0.0.1:<port>/v1/messages` "
        f"with `LOAD_PLAN=<plan>`; {USERS} users; target {RPS} req/s in total; "
        f"provider: refresh_seconds {REFRESH_SECONDS}, unknown_kid_refresh_seconds "
        f"{UNKNOWN_KID_REFRESH_SECONDS}, timeout_ms {FETCH_TIMEOUT_MS}")
    add("")
    add("## Timeline (seconds from the start of the load)\n")
    add("| t | event |\n|---|---|")
    add("| 0.0 | load starts; JWKS: rsa-1, ec-1 |")
    for t, what in run.events:
        add(f"| {f'{int(t)}.x' if round(t % 1, 3) == 0.999 else f'{t:.2f}'} | {what} |")
    add(f"| {SECONDS} | load stops |")
    add("")
    add("## Per class\n")
    add("| class | expected | sent | answered | 2xx | 401 | 503 | other | upstream | req/s | reasons (non-2xx) |")
    add("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in run.table:
        k, st = row["class"], row["statuses"]
        s2 = sum(n for s, n in st.items() if 200 <= s < 300)
        other = sum(n for s, n in st.items() if not (200 <= s < 300) and s not in (401, 503))
        span = max(1, (k.stop - k.start))
        reasons = "; ".join(f"{m} ×{n}" for m, n in sorted(row["messages"].items(), key=lambda x: -x[1]))
        add(f"| {k.name} | {'2xx' if k.valid else '401 ' + k.expect} | {row['sent']} | {row['answered']} | "
            f"{s2} | {st.get(401, 0)} | {st.get(503, 0)} | {other} | {row['upstream']} | "
            f"{row['answered'] / span:.1f} | {reasons or '—'} |")
    tot_sent = sum(r["sent"] for r in run.table)
    tot_ans = sum(r["answered"] for r in run.table)
    tot_up = sum(r["upstream"] for r in run.table)
    add(f"| **all** | | {tot_sent} | {tot_ans} | | | | | {tot_up} | {tot_ans / SECONDS:.1f} | |")
    lat = run.wrk_summary["latency_us"]
    add("\n*sent*: calls of load.lua's request(); wrk calls it again for a request whose connection closed "
        "before it was written, so it can exceed *answered* by a few. *upstream*: arrivals in the upstream "
        "Envoy's access log. *req/s*: answered per second of the class's active time.")
    add(f"\nLatency (all classes, wrk): p50 {lat['p50'] / 1000:.2f} ms, p90 {lat['p90'] / 1000:.2f} ms, "
        f"p99 {lat['p99'] / 1000:.2f} ms, max {lat['max'] / 1000:.1f} ms. "
        f"Sanity requests before the load reached the upstream too (class `sanity`: "
        f"{run.upstream_counts.get('sanity', 0)}).")
    if hasattr(run, "workers"):
        add("Connections per gateway worker during the load: "
            + ", ".join(f"{w} {n}" for w, n in sorted(run.workers.items())) + ".")
    add("")
    if hasattr(run, "metric_moved"):
        add("## Filter counters (`wasmcustom.gateway_auth.*`, change during the load)\n")
        add("| counter | change | expected from the client's view |\n|---|---|---|")
        for name in sorted(set(run.metric_moved) | set(run.metric_expected)):
            add(f"| {name} | {run.metric_moved.get(name, 0)} | {run.metric_expected.get(name, 0)} |")
        fs = run.fetch_stats
        add(f"| jwks.{PROVIDER}.fetch_ok | {fs['fetch_ok']} | IdP answered 200: {fs['idp_200']} |")
        add(f"| jwks.{PROVIDER}.fetch_failed | {fs['fetch_failed']} | IdP answered 500: {fs['idp_500']}, "
            f"plus refused connections while down |")
        add("")
        add("## JWKS fetches\n")
        add(f"The IdP stand-in received {fs['idp_gets']} JWKS requests during the load "
            f"({fs['idp_total']} since it started, including start-up and sanity requests); bound "
            f"checked: {run.fetch_bound}.\n")
        per_window: dict[int, int] = {}
        for t, _ in run.jwks_gets:
            w = max(-10, int(t // 10) * 10)
            per_window[w] = per_window.get(w, 0) + 1
        add("| seconds | " + " | ".join("before 0" if w < 0 else f"{w}–{w + 10}" for w in sorted(per_window))
            + " |")
        add("|---|" + "---|" * len(per_window))
        add("| JWKS requests | " + " | ".join(str(per_window[w]) for w in sorted(per_window)) + " |")
        add("")
        add("Times (s): " + ", ".join(f"{t:.1f}{'' if m == 'normal' else ' (' + m + ')'}"
                                      for t, m in run.jwks_gets))
        add("")
    if run.samples:
        add("## Memory (gateway Envoy)\n")
        sl = run.slopes
        add(f"Trend over the second half ({SECONDS / 2:.0f}–{SECONDS}s), least squares: `/memory` allocated "
            f"**{mib(sl['allocated']):+.3f} MiB/min** (bound {MEMORY_BOUND_MIB_PER_MIN}); Wasm linear "
            f"memory {mib(sl['wasm']):+.3f} MiB/min; RSS {mib(sl['rss']):+.3f} MiB/min (not bounded: "
            f"includes V8's own heap and code).\n")
        add("| t (s) | allocated MiB | heap_size MiB | Wasm linear memory MiB (instances, resident) | RSS MiB |")
        add("|---|---|---|---|---|")
        for s in run.samples:
            add(f"| {s['t']:.0f} | {mib(s['allocated'] or 0):.2f} | {mib(s['heap_size'] or 0):.2f} | "
                f"{mib(s['wasm_size']):.2f} ({s['wasm_count']}, {mib(s['wasm_rss']):.2f}) | "
                f"{mib(s['rss'] or 0):.1f} |")
        add("")
    add("## Checks\n")
    add("| check | result | detail |\n|---|---|---|")
    for c in run.checks:
        add(f"| {c.name} | {'ok' if c.ok else '**FAILED**'} | {c.detail.replace('|', '/')} |")
    add("")
    return "\n".join(lines) + "\n"

def print_summary(run: "Run") -> None:
    print()
    print(f"{'class':<13} {'expected':<32} {'sent':>6} {'2xx':>6} {'401':>6} {'503':>5} {'other':>5} "
          f"{'upstream':>8}")
    for row in run.table:
        k, st = row["class"], row["statuses"]
        s2 = sum(n for s, n in st.items() if 200 <= s < 300)
        other = sum(n for s, n in st.items() if not (200 <= s < 300) and s not in (401, 503))
        exp = "2xx" if k.valid else "401 " + k.expect
        print(f"{k.name:<13} {exp:<32} {row['sent']:>6} {s2:>6} {st.get(401, 0):>6} {st.get(503, 0):>5} "
              f"{other:>5} {row['upstream']:>8}")
    if run.samples and hasattr(run, "slopes"):
        al = [s["allocated"] or 0 for s in run.samples]
        print(f"\nmemory: allocated {mib(min(al)):.2f}..{mib(max(al)):.2f} MiB over {len(al)} samples; "
              f"trend (2nd half) {mib(run.slopes['allocated']):+.3f} MiB/min; Wasm linear memory "
              f"{mib(run.slopes['wasm']):+.3f} MiB/min; RSS {mib(run.slopes['rss']):+.3f} MiB/min")
    if hasattr(run, "fetch_stats"):
        fs = run.fetch_stats
        print(f"JWKS: {fs['idp_gets']} requests during the load (200: {fs['idp_200']}, 500: {fs['idp_500']}); "
              f"filter fetch_ok +{fs['fetch_ok']}, fetch_failed +{fs['fetch_failed']}")
    print(f"duration: {run.ended - run.started:.0f}s in total, {SECONDS}s of load\n")
    for c in run.checks:
        print(f"  [{'ok' if c.ok else 'FAILED'}] {c.name}: {c.detail}")
    print()
