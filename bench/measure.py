"""One measurement of `make bench`: a fresh Envoy for the variant, the sanity pair, wrk's warm-up and
measured run, and the checks on what came back (never on timing)."""

from __future__ import annotations

import http.client
import json
import os
import re
import resource
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from budget_service import BudgetService
from envoy_process import Envoy, EnvoyError, one_request
from procs import free_port, spawn, stop
from settings import CONNECTIONS, LUA, MODEL, MODEL_FIRST_BODY, SECONDS, UPSTREAM_BODY, WARMUP, BenchError
from token_pools import Keys
from variants import Variant, render_config


def snapshot(envoy: Envoy) -> dict[str, Any]:
    """Envoy.memory(), the wasm* stats and the connection counters."""
    snap = envoy.memory()
    for key, regex in (("wasm_stats", "wasm"), ("connections", "(downstream_cx_total|upstream_cx_total)$")):
        try:
            snap[key] = envoy.stats(regex)
        except (OSError, ValueError):
            snap[key] = {}
    return snap


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_busy() -> dict[int, float]:
    """Busy seconds of each CPU since boot (/proc/stat: everything but idle and iowait)."""
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    for line in Path("/proc/stat").read_text().splitlines():
        m = re.match(r"^cpu(\d+) (.*)$", line)
        if m:
            f = [int(x) for x in m.group(2).split()]
            out[int(m.group(1))] = (sum(f[:8]) - f[3] - f[4]) / tick
    return out



def bearer(token: str | None) -> dict[str, str]:
    return {} if token is None else {"authorization": "Bearer " + token}


def sanity(v: Variant, port: int, valid: str, forged: str) -> dict[str, Any]:
    """One valid and one forged request. The valid one must reach the upstream (its body); the
    forged one must be refused for its signature (the filter's message), not for anything earlier."""
    deadline = time.monotonic() + 10
    while True:  # keys from inline JWKS should be there at once; allow a first tick just in case
        status, body = one_request(port, bearer(valid))
        if status != 503 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    fstatus, fbody = one_request(port, bearer(forged))
    problems = []
    if status != v.sanity[0] or (status == 200 and body != UPSTREAM_BODY):
        problems.append(f"valid token: got {status} {body[:200]!r}, expected {v.sanity[0]} "
                        "with the upstream's body")
    if fstatus != v.sanity[1]:
        problems.append(f"forged token: got {fstatus} {fbody[:200]!r}, expected {v.sanity[1]}")
    if v.kind == "filter" and fstatus == 401 and "token signature invalid" not in fbody:
        problems.append(f"forged token refused for another reason than its signature: {fbody[:200]!r}")
    if v.models:
        # The same valid token with a model outside the catalog: refused only when enforced, and
        # then before anything reaches the upstream.
        other = MODEL_FIRST_BODY.replace(MODEL, "claude-other-4-5", 1).encode()
        ostatus, obody = post(port, bearer(valid), other)
        want = 403 if v.models == "enforce" else 200
        if ostatus != want or (want == 403 and "claude-other-4-5" not in obody):
            problems.append(f"a model outside the catalog: got {ostatus} {obody[:200]!r}, expected {want}")
    if problems:
        raise BenchError(f"{v.id}: sanity check failed: " + "; ".join(problems))
    return {"valid": status, "forged": fstatus}


def post(port: int, headers: dict[str, str], body: bytes) -> tuple[int, str]:
    """One POST /v1/messages with `body` on its own connection: the status and the answer."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/v1/messages", body=body, headers={"content-type": "application/json", **headers})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()


def run_wrk(wrk: str, port: int, seconds: int, tokens: Path, offset: int, cpu: int | None,
            workdir: Path, name: str, no_auth: bool = False, body: Path | None = None) -> dict[str, Any]:
    """wrk with bench/tokens.lua for `seconds`; `body`: a file with the request body to send instead
    of the script's small one."""
    env = {"BENCH_TOKENS": str(tokens), "BENCH_OFFSET": str(offset), "BENCH_NO_AUTH": "1" if no_auth else "0",
           "BENCH_BODY_FILE": str(body or "")}
    return run_wrk_script(wrk, ["-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "10s"], LUA,
                          f"http://127.0.0.1:{port}/v1/messages", env, cpu, workdir, name, seconds + 60)


def run_wrk_script(wrk: str, args: list[str], script: Path, url: str, env_extra: dict[str, str],
                   cpu: int | None, workdir: Path, name: str, timeout: float,
                   done_line: str = "") -> dict[str, Any]:
    """One wrk run with a bench Lua script that ends with a `BENCH_RESULT {json}` line: that JSON, with
    wrk's own CPU seconds (`cpu_s`) and the command line added. `done_line`: a line the script prints
    when it has stopped its thread; wrk itself would still wait out its -d, so it then gets SIGINT,
    on which it ends at once and prints its results."""
    cmd = [wrk, *args, "-s", str(script), url]
    env = dict(os.environ, **env_extra)
    out_path = workdir / f"wrk-{name}.txt"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(out_path, "wb") as out:
        proc = spawn(cmd, out, env, cpu)
        try:
            deadline = time.monotonic() + timeout
            while done_line and proc.poll() is None and time.monotonic() < deadline:
                if done_line in out_path.read_text(errors="replace"):
                    os.kill(proc.pid, signal.SIGINT)
                    break
                time.sleep(0.05)
            rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        finally:
            stop(proc)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    text = out_path.read_text(errors="replace")
    m = re.search(r"^BENCH_RESULT (\{.*\})$", text, re.M)
    if rc != 0 or not m:
        raise BenchError(f"wrk failed (exit {rc}):\n{text[-2000:]}")
    result = json.loads(m.group(1))
    result["cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result["command"] = cmd
    return result




@dataclass
class Measurement:
    variant: str
    round: int
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    statuses: dict[str, int]
    errors: dict[str, int]
    envoy_cpu_us_per_req: float
    envoy_cpu_util: float
    wrk_cpu_util: float
    other_on_envoy_core: float     # share of Envoy's core used by other processes meanwhile
    other_on_wrk_core: float
    warmup_requests: int
    repeated_tokens: int
    filter_counters: dict[str, int]
    before: dict[str, Any]
    after: dict[str, Any]
    connections_opened: int = 0    # client connections Envoy accepted during the measurement
    # CPU µs per request of the other processes serving the chain (budgets: gateway-ratelimit, Redis)
    aux_cpu_us_per_req: dict[str, float] = field(default_factory=dict)
    ratelimit_stats: dict[str, int] = field(default_factory=dict)   # the rate-limit filter's, after
    warnings: list[str] = field(default_factory=list)


def measure(v: Variant, rnd: int, ctx: "Context") -> Measurement:
    wd = ctx.workdir / f"r{rnd}-{v.id}"
    envoy = Envoy(ctx.envoy_bin, wd, "front", 1, ["--log-level", "warn"], ctx.envoy_cpu)
    try:
        for attempt in range(3):  # the upstream port was free a moment ago; retry if taken since
            try:
                envoy.start(render_config(v, ctx.keys, ctx.wasm, ctx.noop, free_port(),
                                             ctx.budgets.port if ctx.budgets else 0))
                break
            except EnvoyError as e:
                envoy.stop()
                if attempt == 2 or "address already in use" not in str(e).lower():
                    raise BenchError(str(e)) from e
        a = v.tokens or v.alg.lower() or "rs256"
        sanity(v, envoy.port, ctx.first_token(f"sanity-{a}"), ctx.first_token(f"sanity-forged-{a}"))
        before = snapshot(envoy)
        pool = ctx.pools[v.pool]
        body = ctx.bodies[v.body] if v.body else None
        service = ctx.budgets if v.budgets else None
        aux = service.pids() if service else {}
        warm_requests = 0
        offset = 0
        if WARMUP:
            w = run_wrk(ctx.wrk, envoy.port, WARMUP, pool, 0, ctx.wrk_cpu, wd, "warmup",
                        no_auth=False, body=body)
            warm_requests = w["requests"]
            offset = w["next_offset"]
        charged0 = service.tokens_charged() if service else 0
        aux0 = {name: process_cpu_seconds(pid) for name, pid in aux.items()}
        busy0, cpu0, t0 = cpu_busy(), envoy.cpu_seconds(), time.monotonic()
        r = run_wrk(ctx.wrk, envoy.port, SECONDS, pool, offset, ctx.wrk_cpu, wd, "measure", body=body)
        busy1, cpu1, t1 = cpu_busy(), envoy.cpu_seconds(), time.monotonic()
        aux1 = {name: process_cpu_seconds(pid) for name, pid in aux.items()}
        after = snapshot(envoy)
        charged = service.tokens_charged() - charged0 if service else 0
        prefix = "cluster.upstream.ratelimit."   # the rate-limit filter's stats, for the route's cluster
        rl_stats = ({k[len(prefix):]: int(n) for k, n in envoy.stats("^" + prefix.replace(".", r"\.")).items()}
                    if v.budgets else {})
        counters = {k.split("gateway_auth.", 1)[1]: int(v_) for k, v_ in after["wasm_stats"].items()
                    if k.startswith("wasmcustom.gateway_auth.") and ".jwks." not in k}
        if envoy.proc is not None and envoy.proc.poll() is not None:
            raise BenchError(f"{v.id}: Envoy died during the run\n{envoy.log_tail()}")
    finally:
        envoy.stop()
    ctx.last_envoy_command = envoy.command()
    requests = r["requests"]
    duration = r["duration_us"] / 1e6
    statuses = {k: int(x) for k, x in r["statuses"].items()}
    non_2xx = sum(n for s, n in statuses.items() if not s.startswith("2"))
    m = Measurement(
        variant=v.id, round=rnd, rps=requests / duration, p50_ms=r["latency_us"]["p50"] / 1000,
        p99_ms=r["latency_us"]["p99"] / 1000, requests=requests, non_2xx=non_2xx, statuses=statuses,
        errors=r["errors"], envoy_cpu_us_per_req=(cpu1 - cpu0) / max(requests, 1) * 1e6,
        envoy_cpu_util=(cpu1 - cpu0) / (t1 - t0), wrk_cpu_util=r["cpu_s"] / duration,
        other_on_envoy_core=other_share(busy0, busy1, ctx.envoy_cpu, cpu1 - cpu0, t1 - t0),
        other_on_wrk_core=other_share(busy0, busy1, ctx.wrk_cpu, r["cpu_s"], t1 - t0),
        warmup_requests=warm_requests, repeated_tokens=int(r["wrapped"]), filter_counters=counters,
        before=before, after=after, ratelimit_stats=rl_stats,
        aux_cpu_us_per_req={name: (aux1[name] - aux0[name]) / max(requests, 1) * 1e6 for name in aux})
    # checks on what came back (never on timing)
    sock_errors = sum(r["errors"][k] for k in ("connect", "read", "write", "timeout"))
    problems = []
    if requests == 0:
        problems.append("no request completed")
    if v.expect == 200 and non_2xx:
        problems.append(f"{non_2xx} non-2xx responses {statuses}")
    if v.expect == 401 and set(statuses) != {"401"}:
        problems.append(f"a flood must be answered 401 only, got {statuses}")
    if sock_errors:
        problems.append(f"socket errors {r['errors']}")
    if v.budgets:
        # Every request was checked by the service (`ok`: the check at the start; the charge at stream
        # end is not counted there) and charged (Redis below), none let through for an error.
        failed = rl_stats.get("error", 0) + rl_stats.get("failure_mode_allowed", 0)
        if rl_stats.get("over_limit", 0):
            problems.append(f"the rate-limit filter refused requests: {rl_stats}")
        if rl_stats.get("ok", 0) < requests + warm_requests - failed:
            problems.append(f"the rate-limit filter answered fewer calls than requests: {rl_stats}")
        # Each answer's usage (1 input + 1 output token) charged to its user when the stream ended.
        if charged < 2 * requests - 2 * failed:
            problems.append(f"Redis was charged {charged} tokens for {requests} requests of 2 tokens")
        if failed:
            m.warnings.append(f"{failed} rate-limit calls failed or timed out (let through, fail open): "
                              f"{rl_stats}")
    if problems:
        raise BenchError(f"{v.id} round {rnd}: " + "; ".join(problems) + f" (wrk output in {wd})")
    if v.kind == "filter":
        # The filter's own counters must account for every response (plus the sanity pair; a few
        # more if wrk stopped with requests in flight).
        counted = counters.get("allowed", 0) if v.expect == 200 else sum(
            n for k, n in counters.items() if k.startswith("denied."))
        if counted < requests + warm_requests:
            m.warnings.append(f"filter counted {counted} decisions for {requests + warm_requests} "
                              "responses")
    if m.repeated_tokens and v.pool.startswith(("cold", "forged")) and v.kind != "native":
        m.warnings.append(f"token pool ran out: {m.repeated_tokens} of {requests} requests reused a "
                          "token (raise BENCH_COLD_TOKENS)")
    opened = (after["connections"].get("http.front.downstream_cx_total", 0) -
              before["connections"].get("http.front.downstream_cx_total", 0))
    m.connections_opened = opened
    if opened > 3 * CONNECTIONS and v.expect != 401:
        m.warnings.append(f"{opened} client connections were opened for {CONNECTIONS} wrk connections: "
                          "Envoy closed connections during the run")
    if m.wrk_cpu_util > 0.9:
        m.warnings.append(f"wrk used {m.wrk_cpu_util:.0%} of its core: the load generator may be "
                          "the limit")
    return m


def other_share(busy0: dict[int, float], busy1: dict[int, float], cpu: int | None, ours: float,
                wall: float) -> float:
    if cpu is None or cpu not in busy0 or cpu not in busy1 or wall <= 0:
        return float("nan")
    return max(0.0, (busy1[cpu] - busy0[cpu] - ours) / wall)


@dataclass
class Context:
    envoy_bin: str
    wrk: str
    wasm: Path
    noop: dict[str, Path]     # variant kind -> no-op filter module
    keys: Keys
    pools: dict[str, Path]
    workdir: Path
    envoy_cpu: int | None
    wrk_cpu: int | None
    bodies: dict[str, Path] = field(default_factory=dict)   # Variant.body -> file with that body
    budgets: BudgetService | None = None    # gateway-ratelimit and Redis (budgets variant)
    last_envoy_command: list[str] = field(default_factory=list)

    def first_token(self, pool: str) -> str:
        with open(self.pools[pool]) as f:
            return f.readline().strip()
