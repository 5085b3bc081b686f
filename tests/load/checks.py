"""The checks of `make loadtest`: what the client, the upstream, the filter's counters, the IdP and the
memory samples of a run say, each a named Check with its detail."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from settings import (MEMORY_BOUND_MIB_PER_MIN, MESSAGE_METRIC, PROVIDER, REFRESH_SECONDS, SECONDS, SKIP,
                      UNKNOWN_KID_REFRESH_SECONDS, WORKERS, WRK_TIMEOUT_S)

if TYPE_CHECKING:
    from run import Run


def trend(points: list[tuple[float, float]]) -> float:
    """Least-squares slope (units per second)."""
    n = len(points)
    if n < 3:
        return float("nan")
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    sxx = sum((p[0] - mx) ** 2 for p in points)
    if sxx == 0:
        return float("nan")
    return sum((p[0] - mx) * (p[1] - my) for p in points) / sxx


def mib(n: float) -> float:
    return n / (1 << 20)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str



def _seconds(row: dict[str, Any], pick: Callable[[str], bool]) -> str:
    """Where in the timeline the picked answers fell: per second, counts by label."""
    secs = sorted(s for s, labels in row["per_second"].items() if any(pick(lab) for lab in labels))
    if not secs:
        return ""
    return f" (in seconds {secs[0]}..{secs[-1]}: " + ", ".join(
        f"{s}s: " + "+".join(f"{n}x{lab}" for lab, n in row["per_second"][s].items() if pick(lab))
        for s in secs[:8]) + (" ..." if len(secs) > 8 else "") + ")"


def analyse(run: "Run") -> None:
    tl, ks = run.tl, run.ks
    # client side, per class
    run.table: list[dict[str, Any]] = []
    client_by_message: dict[str, int] = {}
    client_2xx = 0
    for k in ks:
        r = run.results[k.name]
        statuses: dict[int, int] = {}
        messages: dict[str, int] = {}
        per_second: dict[int, dict[str, int]] = {}     # second -> "200" or "401 <message>" -> n
        first_sec, last_sec = None, None
        for key, n in r["counts"].items():
            sec_s, status_s, msg = key.split("|", 2)
            sec, status = int(sec_s), int(status_s)
            statuses[status] = statuses.get(status, 0) + n
            first_sec = sec if first_sec is None else min(first_sec, sec)
            last_sec = sec if last_sec is None else max(last_sec, sec)
            label = f"{status} {msg}" if msg else str(status)
            per_second.setdefault(sec, {})
            per_second[sec][label] = per_second[sec].get(label, 0) + n
            if not 200 <= status < 300:
                messages[label] = messages.get(label, 0) + n
                client_by_message[msg] = client_by_message.get(msg, 0) + n
            else:
                client_2xx += n
        slow = sorted(((int(a), int(b), f"{st} {msg}".strip(), n) for key, n in r.get("slow", {}).items()
                       for a, b, st, msg in [key.split("|", 3)]))
        run.table.append({"class": k, "sent": r["sent"], "statuses": statuses, "messages": messages,
                           "slow": slow, "inflight": r.get("inflight_second", -1),
                           "per_second": per_second, "first": first_sec, "last": last_sec,
                           "answered": sum(statuses.values())})

    # upstream side
    upstream: dict[str, int] = {}
    identity_problems: list[str] = []
    known = {k.name for k in ks}
    for line in run.upstream_lines:
        parts = line.split("|")
        if len(parts) != 6:
            identity_problems.append(f"unparsable upstream line {line!r}")
            continue
        klass, user, uid, provider, auth, xkey = parts
        upstream[klass] = upstream.get(klass, 0) + 1
        if klass == "sanity":
            continue
        if klass not in known:
            identity_problems.append(f"request of unknown class {klass!r} arrived")
            continue
        expected_provider = "api-key" if klass == "valid_apikey" else PROVIDER
        if uid != user or provider != expected_provider or auth != "-" or xkey != "-":
            if len(identity_problems) < 10:
                identity_problems.append(f"{klass}: expected user {user!r} provider {expected_provider!r} "
                                         f"and no credential; upstream saw user {uid!r} provider "
                                         f"{provider!r} authorization {auth!r} x-api-key {xkey!r}")
            else:
                identity_problems.append("...")
    run.upstream_counts = upstream
    for row in run.table:
        row["upstream"] = upstream.get(row["class"].name, 0)

    # 1. bad classes
    for row in run.table:
        k = row["class"]
        if k.valid:
            continue
        wrong = {m: n for m, n in row["messages"].items() if m != f"401 {k.expect}"}
        s2xx = sum(n for s, n in row["statuses"].items() if 200 <= s < 300)
        run.check(f"{k.name}: none upstream", row["upstream"] == 0 and s2xx == 0,
                   f"upstream {row['upstream']}, client 2xx {s2xx}" +
                   (_seconds(row, lambda lab: lab.startswith("2")) if s2xx else ""))
        run.check(f"{k.name}: all 401 {k.expect!r}", not wrong and row["answered"] > 0,
                   f"{row['answered']} answered; other answers: {wrong or 'none'}" +
                   (_seconds(row, lambda lab: lab != f"401 {k.expect}") if wrong else ""))
    # 2. valid classes
    for row in run.table:
        k = row["class"]
        if not k.valid:
            continue
        s2xx = sum(n for s, n in row["statuses"].items() if 200 <= s < 300)
        run.check(f"{k.name}: client 2xx == upstream", s2xx == row["upstream"] and s2xx > 0,
                   f"client 2xx {s2xx}, upstream {row['upstream']}")
        non2xx = {m: n for m, n in row["messages"].items()}
        run.check(f"{k.name}: no 401, no 503, nothing but 2xx", not non2xx,
                   "none" if not non2xx else f"{non2xx}" + _seconds(row, lambda lab: not lab.startswith("2")))
    # 3. identity
    run.check("upstream: identity headers right, credentials removed", not identity_problems,
               f"{len(run.upstream_lines)} arrivals checked" if not identity_problems
               else "; ".join(identity_problems[:10]))
    run.check("upstream: access log complete",
               len(run.upstream_lines) == run.upstream_total,
               f"{len(run.upstream_lines)} lines, upstream counted {run.upstream_total} requests")
    # 4. wrk
    e = run.wrk_summary["errors"]
    sent = sum(row["sent"] for row in run.table)
    answered = sum(row["answered"] for row in run.table)
    slow = [f"{row['class'].name} sent at {a}s answered at {b}s: {n}x{lab}"
            for row in run.table for a, b, lab, n in row["slow"]]
    inflight = [f"{row['class'].name} (sent at {row['inflight']}s)" for row in run.table if row["inflight"] >= 0]
    if run.after is not None:
        received = (run.after["stats"].get("http.gateway.downstream_rq_total", 0)
                    - run.before["stats"].get("http.gateway.downstream_rq_total", 0))
        run.check("gateway: every request it received was answered to the client", received == answered,
                   f"Envoy received {received} requests during the load, the client got {answered} answers "
                   f"(wrk's request() ran {sent} times: it runs again for a request whose connection "
                   f"closed before it was written)")
    run.check(f"client: every request answered within {WRK_TIMEOUT_S}s, no socket error",
               e["timeout"] == 0 and e["connect"] == 0 and e["read"] == 0 and e["write"] == 0
               and not inflight,
               f"answered {answered}; wrk errors connect {e['connect']} read {e['read']} "
               f"write {e['write']} timeout (answer later than {WRK_TIMEOUT_S}s) {e['timeout']}"
               + (f"; unanswered when wrk stopped: {', '.join(inflight)}" if inflight else "")
               + (f"; answered 2 or more clock seconds late: {'; '.join(slow[:12])}" if slow else ""))

    # 5. the filter's counters
    if run.after is None:
        run.check("gateway Envoy alive at the end", False, "it exited during the load")
        return
    b, a = run.before["stats"], run.after["stats"]

    def delta(name: str) -> int:
        return a.get(name, 0) - b.get(name, 0)

    prefix = "wasmcustom.gateway_auth."
    moved = {n[len(prefix):]: delta(n) for n in set(a) | set(b)
             if n.startswith(prefix) and not n.startswith(prefix + "jwks.") and delta(n)}
    expected: dict[str, int] = {"allowed": client_2xx}
    unmapped = {}
    for msg, n in client_by_message.items():
        metric = MESSAGE_METRIC.get(msg)
        if metric is None:
            unmapped[msg] = n
        else:
            expected[metric] = expected.get(metric, 0) + n
    expected = {k: v for k, v in expected.items() if v}
    run.metric_moved, run.metric_expected = moved, expected
    run.check("metrics: gateway_auth counters == client counts", moved == expected and not unmapped,
               "equal: " + ", ".join(f"{k} {v}" for k, v in sorted(moved.items())) if moved == expected
               else f"counters moved {dict(sorted(moved.items()))}; client saw {dict(sorted(expected.items()))}"
                    + (f"; unmapped messages {unmapped}" if unmapped else ""))

    # 6. JWKS fetches
    fetch_ok = delta(f"{prefix}jwks.{PROVIDER}.fetch_ok")
    fetch_failed = delta(f"{prefix}jwks.{PROVIDER}.fetch_failed")
    t_before, t_after = run.before["time"], run.after["time"]
    gets = [r for r in run.after["idp_requests"]
            if r["method"] == "GET" and r["path"].endswith("/jwks.json") and t_before <= r["time"] <= t_after]
    run.jwks_gets = [(r["time"] - run.mono_t0, run.mode_at(r["time"])) for r in gets]
    answered_ok = sum(1 for _, mode in run.jwks_gets if mode == "normal")
    while_down = [round(t, 1) for t, mode in run.jwks_gets if mode == "down"]
    run.check("outage: the IdP received no JWKS request while down", not while_down,
               "none" if not while_down else f"at {while_down}")
    answered_500 = sum(1 for _, mode in run.jwks_gets if mode == "error500")
    run.fetch_stats = {"fetch_ok": fetch_ok, "fetch_failed": fetch_failed, "idp_gets": len(gets),
                        "idp_200": answered_ok, "idp_500": answered_500, "idp_total": run.idp.jwks_fetches}
    run.check("metrics: jwks fetch_ok == JWKS answered 200", abs(fetch_ok - answered_ok) <= 1,
               f"fetch_ok {fetch_ok}, IdP answered 200 {answered_ok} times (and 500 {answered_500} times)")
    keeping = len(re.findall(r"key fetch failed provider=\S+ .*keeping=last-good-keys", run.gateway.log_text()))
    run.check("outage seen and survived", fetch_failed > 0 and keeping > 0,
               f"fetch_failed +{fetch_failed}; {keeping} log line(s) 'key fetch failed ... "
               f"keeping=last-good-keys'")
    bound = math.ceil(SECONDS / REFRESH_SECONDS) + math.ceil(SECONDS / UNKNOWN_KID_REFRESH_SECONDS) + 2
    run.fetch_bound = bound
    run.check("JWKS fetches within the documented bound", len(gets) <= bound,
               f"{len(gets)} JWKS requests in {SECONDS}s under a steady unknown-kid flood; docs/operations.md: one per "
               f"refresh_seconds ({REFRESH_SECONDS}) plus at most one unknown-kid refresh per "
               f"unknown_kid_refresh_seconds ({UNKNOWN_KID_REFRESH_SECONDS}) per provider: <= {bound}")
    after_outage = [t for t, mode in run.jwks_gets if mode == "normal" and tl.outage_end <= t < tl.drop - 0.5]
    after_drop = [t for t, mode in run.jwks_gets
                  if mode == "normal" and tl.drop - 0.5 <= t <= tl.retired - REFRESH_SECONDS - 1]
    run.check("timeline preconditions",
               bool(after_outage) and (bool(after_drop) or "retired" in SKIP),
               f"JWKS fetched after the outage, before the drop at {[round(t, 1) for t in after_outage[:3]]}; "
               f"after the drop, >= {REFRESH_SECONDS + 1}s before retired started, at "
               f"{[round(t, 1) for t in after_drop[:3]]}")

    # 7. memory
    half = [s for s in run.samples if s["t"] >= SECONDS / 2 and s["t"] <= SECONDS + 1]
    alloc_slope = trend([(s["t"], s["allocated"]) for s in half if s["allocated"] is not None])
    wasm_slope = trend([(s["t"], s["wasm_size"]) for s in half]) if all(s["wasm_count"] for s in half) \
        else float("nan")
    rss_slope = trend([(s["t"], s["rss"]) for s in half if s["rss"] is not None])
    run.slopes = {"allocated": alloc_slope * 60, "wasm": wasm_slope * 60, "rss": rss_slope * 60}
    rate = answered / SECONDS
    per_req = MEMORY_BOUND_MIB_PER_MIN * (1 << 20) / 60 / max(rate, 1)
    run.check("memory: /memory allocated flat over the second half",
               not math.isnan(alloc_slope) and mib(alloc_slope * 60) < MEMORY_BOUND_MIB_PER_MIN,
               f"trend {mib(alloc_slope * 60):+.3f} MiB/min over {len(half)} samples, bound "
               f"{MEMORY_BOUND_MIB_PER_MIN} MiB/min (= a leak of {per_req:.0f} B/request at {rate:.0f} req/s)")
    if math.isnan(wasm_slope):
        run.check("memory: Wasm linear memory flat over the second half", True,
                   "not measured: V8's memory layout not recognised in /proc/<pid>/smaps")
    else:
        run.check("memory: Wasm linear memory flat over the second half",
                   mib(wasm_slope * 60) < MEMORY_BOUND_MIB_PER_MIN,
                   f"trend {mib(wasm_slope * 60):+.3f} MiB/min ({half[0]['wasm_count']} instances, "
                   f"{mib(half[0]['wasm_size']):.2f} -> {mib(half[-1]['wasm_size']):.2f} MiB)")

    # 8. VM health
    text = run.gateway.log_text()
    bad_lines = [ln for ln in text.splitlines()
                 if re.search(r"\]\[(error|critical)\]\[wasm\]", ln)
                 or re.search(r"panic|unreachable|RuntimeError|Function: \S+ failed|\bFailed\b", ln)]
    run.check("VMs: no wasm failure in Envoy's log", not bad_lines,
               "none" if not bad_lines else " / ".join(ln[-200:] for ln in bad_lines[:5]))
    runtime = {n.rsplit(".", 1)[1]: (b.get(n, 0), a.get(n, 0)) for n in a
               if n.startswith("wasm.envoy.wasm.runtime.v8.")}
    run.check("VMs: none created or lost during the load",
               all(x == y for x, y in runtime.values()) and run.gateway.alive(),
               ", ".join(f"v8.{k} {x} -> {y}" for k, (x, y) in sorted(runtime.items())) +
               f"; Envoy pid {run.gateway.proc.pid} {'running' if run.gateway.alive() else 'gone'}")
    workers = {m.group(1): delta(n) for n in a
               if (m := re.match(r"listener\.127\.0\.0\.1_\d+\.(worker_\d+)\.downstream_cx_total$", n))}
    run.workers = workers
    run.check("both workers served connections", len([w for w in workers.values() if w > 0]) >= WORKERS,
               ", ".join(f"{w} {n}" for w, n in sorted(workers.items())))
