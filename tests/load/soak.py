#!/usr/bin/env python3
"""`make soak` (also the last phase of `make loadtest`): do abandoned introspection calls leak?

A client that sends an opaque token and resets its stream leaves the filter a dispatched
introspection call whose request context is gone. The filter forgets the call when the context ends
(src/plugin/root.rs `abandon_calls_of`: its waiters get a 503 and its max_pending slot is freed);
Envoy does not cancel the call, whose answer then arrives for no context. This soak measures what
is left after SOAK_STREAMS (100,000) such streams:

  slow endpoint  tests/load/slow_introspection.py: holds every introspection call SOAK_HOLD_SECONDS (5)
                 before it answers `active: false`; also the upstream
  gateway Envoy  --concurrency 2, dist/gateway_filter.wasm, one provider with opaque_tokens (rfc7662,
                 timeout 60 s, max_pending 1000 and max_calls_per_second 10000 per VM, so neither
                 bound refuses a call of the soak); the call cluster's circuit breakers opened wide and
                 its idle connections closed after 1 s, so that settled means empty
  client         HTTP/2 (the `h2` package), one connection per 200 streams: each stream is a POST
                 /v1/messages with a distinct opaque token; HEADERS for a batch of SOAK_BATCH (50)
                 streams and then a RST_STREAM (CANCEL) for each go out in one write, so Envoy runs
                 the filter (which dispatches the call) before it sees the reset; at most 3,000
                 calls open at a time, so that the endpoint accepts every one

Phases: SOAK_WARMUP (10,000) streams, settle, measure; SOAK_STREAMS streams (measured half-way
too), settle, measure. Settled = the endpoint holds no call and the call cluster has no request
active or pending and no connection open.

Checks (exit 1 when one fails):
  - every stream was reset before it was answered (none got a response: the filter held each for its
    call), and every call reached the endpoint, so each was dispatched before its stream ended;
  - after settling, every call has ended at the endpoint and nothing is active on the call cluster;
  - the filter's pending-call state: no request got `token introspection unavailable` (a call slot
    that was never freed would fill max_pending within 1,000 streams and refuse every later call),
    and afterwards 20 fresh opaque tokens the endpoint knows get 200;
  - Wasm linear memory (every instance, procs.wasm_memory) grew by at most 256 KiB from warm-up to
    the end, and by at most 128 KiB over the second half alone: 2.6 bytes per reset stream, less than
    any per-call record would leave (the smallest, a u32 -> u32 map entry, costs 8 bytes plus the
    map's overhead; linear memory grows in 64 KiB pages, and may step once while the calls in flight
    peak); Envoy's own allocated memory (admin /memory) by at most 8 MiB (84 bytes per stream);
  - the VMs survived: none created or lost during the soak, no wasm error or panic in the log.

Settings (environment): SOAK_STREAMS (100000, >= 1000), SOAK_WARMUP (10000), SOAK_BATCH (50),
SOAK_HOLD_SECONDS (5: how long the endpoint holds a call), SOAK_KEEP=1 (keep the run directory), SOAK_WRITE=0 (do not write the soak section of
tests/load/RESULTS.md), LOAD_WASM (another build), ENVOY_BIN.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
from e2e.e2e_harness import HarnessError, envoy_config, find_envoy, find_wasm, to_yaml  # noqa: E402
from envoy_process import Envoy, EnvoyError, env_int, log, one_request  # noqa: E402
from procs import free_port, interrupt_on_signals, spawn, stop, stop_all  # noqa: E402
from standins.idp import Keys  # noqa: E402

RESULTS_MD = REPO / "tests" / "load" / "RESULTS.md"
BEGIN, END = "<!-- soak:begin -->", "<!-- soak:end -->"

STREAMS = env_int("soak", "SOAK_STREAMS", 100_000, 1000)
WARMUP = env_int("soak", "SOAK_WARMUP", 10_000, 0)
BATCH = env_int("soak", "SOAK_BATCH", 50, 1)
KEEP = os.environ.get("SOAK_KEEP", "0") == "1"
WRITE = os.environ.get("SOAK_WRITE", "1") != "0"
WASM_OVERRIDE = os.environ.get("LOAD_WASM", "")

HOLD_SECONDS = float(os.environ.get("SOAK_HOLD_SECONDS", "5"))
# Envoy closes an HTTP/2 connection once 250 of its streams have ended and at least half of them were
# reset within a second of their start (overload.premature_reset_total_stream_count 500 / 2, its
# "rapid reset" defence): a connection carries fewer streams than that.
STREAMS_PER_CONNECTION = 200
WORKERS = 2
MAX_PENDING = 1000
MAX_OPEN_CALLS = 3000
PROBES = 20
WASM_GROWTH_BOUND = 256 << 10
ALLOCATED_GROWTH_BOUND = 8 << 20
AUDIENCE = "claude-gateway"
# What the call cluster's counters say about the calls (Envoy's names).
CALL_STATS = ("upstream_rq_total", "upstream_rq_completed", "upstream_rq_timeout", "upstream_rq_pending_overflow",
              "upstream_cx_total", "upstream_cx_connect_fail", "upstream_cx_connect_timeout",
              "upstream_cx_destroy_local", "upstream_cx_destroy_remote")
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class SoakError(RuntimeError):
    pass


def plugin_config(endpoint_port: int) -> dict[str, Any]:
    return {"providers": [{
        "name": "soak", "issuer": "https://idp.soak.example", "audiences": [AUDIENCE],
        "jwks": {"inline": json.dumps(Keys().jwks(["ec-1"]))},
        "opaque_tokens": {"style": "rfc7662", "uri": f"http://127.0.0.1:{endpoint_port}/introspect",
                          "cluster": "introspection", "timeout_ms": 60000, "max_pending": MAX_PENDING,
                          "max_calls_per_second": 10000}}]}


def gateway_config(wasm: Path, endpoint_port: int) -> str:
    config = envoy_config(upstream_port=endpoint_port, plugin_config=plugin_config(endpoint_port),
                          wasm=wasm, clusters={"introspection": endpoint_port})
    wide = {"max_connections": 100000, "max_pending_requests": 100000, "max_requests": 100000}
    for cluster in config["static_resources"]["clusters"]:
        if cluster["name"] == "introspection":
            cluster["connect_timeout"] = "10s"
            cluster["circuit_breakers"] = {"thresholds": [wide]}
            cluster["typed_extension_protocol_options"] = {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "common_http_protocol_options": {"idle_timeout": "1s"},
                    "explicit_http_config": {"http_protocol_options": {}}}}
    return "# generated by tests/load/soak.py\n" + to_yaml(config)


# ---- the client ------------------------------------------------------------------------------------------
class ResetClient:
    """HTTP/2 streams that send an opaque token and are reset once their call has reached the
    endpoint. Counts what came back: a stream answered before its reset is a failed premise."""

    def __init__(self, port: int, endpoint: "Endpoint") -> None:
        self.port, self.endpoint = port, endpoint
        self.sent = 0
        self.answered: dict[int, int] = {}     # status -> streams answered before their reset
        self.serial = 0
        self.base = endpoint.counters()["answered"]     # probes and other calls made before

    def run(self, count: int) -> None:
        while count > 0:
            n = min(count, STREAMS_PER_CONNECTION)
            self._connection(n)
            count -= n

    def _connection(self, count: int) -> None:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        try:
            while count > 0:
                n = min(count, BATCH)
                self._pace()
                ids = []
                for _ in range(n):
                    sid = conn.get_next_available_stream_id()
                    self.serial += 1
                    conn.send_headers(sid, [
                        (":method", "POST"), (":scheme", "http"), (":authority", "gateway"),
                        (":path", "/v1/messages"), ("content-type", "application/json"),
                        ("authorization", f"Bearer soak-{os.getpid()}-{self.serial}-{os.urandom(8).hex()}")],
                        end_stream=True)
                    ids.append(sid)
                # HEADERS and RST_STREAM go out in one write: Envoy handles a stream's HEADERS, and so
                # the filter's dispatch of its call, before the reset that follows them.
                for sid in ids:
                    conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
                sock.sendall(conn.data_to_send())
                self._read(sock, conn)
                self.sent += n
                count -= n
            conn.close_connection()
            sock.sendall(conn.data_to_send())
        finally:
            sock.close()

    def _pace(self) -> None:
        """Waits while more than MAX_OPEN_CALLS calls are open (sent and not answered by the
        endpoint), so that the endpoint, one Python process, accepts every call Envoy makes."""
        deadline = time.monotonic() + HOLD_SECONDS + 10
        while time.monotonic() < deadline:
            c = self.endpoint.counters()
            if self.sent - self.base - (c["answered"] + c["dropped"]) <= MAX_OPEN_CALLS:
                return
            time.sleep(0.05)
        raise SoakError(f"the endpoint stopped answering: {self.endpoint.counters()}")

    def _read(self, sock: socket.socket, conn: h2.connection.H2Connection) -> None:
        sock.settimeout(0.0001)
        while True:
            try:
                data = sock.recv(65536)
            except (socket.timeout, BlockingIOError):
                return
            if not data:
                raise SoakError("the gateway closed the connection")
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    status = int(dict(event.headers).get(":status", "0"))
                    self.answered[status] = self.answered.get(status, 0) + 1
            out = conn.data_to_send()
            if out:
                sock.sendall(out)


class Endpoint:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.out = open(workdir / "slow_introspection.log", "w+b")
        self.proc = spawn([sys.executable, str(REPO / "tests" / "load" / "slow_introspection.py"),
                           str(self.port), str(HOLD_SECONDS)], self.out)
        deadline = time.monotonic() + 10
        while b"ready" not in Path(self.out.name).read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SoakError("the slow introspection endpoint did not start:\n"
                                + Path(self.out.name).read_text(errors="replace"))
            time.sleep(0.05)

    def counters(self) -> dict[str, int]:
        with _OPENER.open(f"http://127.0.0.1:{self.port}/counters", timeout=5) as resp:
            return json.loads(resp.read())

    def stop(self) -> None:
        stop(self.proc)
        self.out.close()


# ---- the run ---------------------------------------------------------------------------------------------
class Soak:
    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="soak-"))
        self.checks: list[tuple[str, bool, str]] = []
        self.points: list[dict[str, Any]] = []
        self.endpoint: Endpoint | None = None
        self.gateway: Envoy | None = None

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append((name, bool(ok), detail))

    def setup(self) -> None:
        source = Path(WASM_OVERRIDE).resolve() if WASM_OVERRIDE else find_wasm()
        wasm = self.workdir / "gateway_filter.wasm"
        shutil.copy2(source, wasm)
        self.endpoint = Endpoint(self.workdir)
        self.gateway = Envoy(find_envoy(), self.workdir / "gateway", "gateway", WORKERS,
                             ["--log-level", "warn", "--component-log-level", "wasm:warn"])
        self.gateway.start(gateway_config(wasm, self.endpoint.port))
        self.client = ResetClient(self.gateway.port, self.endpoint)
        log(f"soak: gateway Envoy pid {self.gateway.proc.pid} on :{self.gateway.port}, "
            f"slow endpoint on :{self.endpoint.port}")

    def settle(self) -> None:
        """Until, for a whole second, the endpoint holds no call and has received no new one, and the
        call cluster has no request and no connection."""
        deadline = time.monotonic() + HOLD_SECONDS + 20
        quiet_since, last = None, None
        while time.monotonic() < deadline:
            stats = self.gateway.stats(r"^cluster\.introspection\.upstream_(rq_active|rq_pending_active|cx_active)$")
            counters = self.endpoint.counters()
            if counters["holding"] == 0 and not any(stats.values()) and counters["received"] == last:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= 1.0:
                    return
            else:
                quiet_since = None
            last = counters["received"]
            time.sleep(0.2)
        raise SoakError(f"calls still open {HOLD_SECONDS + 20}s after the streams were reset: "
                        f"endpoint {self.endpoint.counters()}, cluster {stats}")

    def measure(self, label: str) -> dict[str, Any]:
        mem = self.gateway.memory()
        point = {"label": label, "streams": self.client.sent, "time": time.monotonic(),
                 "wasm": mem["wasm_memory"], "allocated": mem["memory"].get("allocated", 0),
                 "rss": mem["VmRSS"], "endpoint": self.endpoint.counters(),
                 "stats": self.gateway.stats(r"^(wasmcustom\.gateway_auth\.|wasm\.envoy\.wasm\.runtime\.v8\.|"
                                             r"cluster\.introspection\.upstream_(rq|cx)_)")}
        self.points.append(point)
        w = point["wasm"]
        log(f"soak: {label}: {point['streams']} streams reset; Wasm {w['count']} instances, "
            f"{w['size'] / 2**20:.2f} MiB linear (KiB each: {', '.join(str(x >> 10) for x in w['sizes'])}; "
            f"{w['rss'] / 2**20:.2f} MiB resident); Envoy allocated "
            f"{point['allocated'] / 2**20:.2f} MiB; endpoint {point['endpoint']}; call cluster "
            + ", ".join(f"{k.rsplit('.', 1)[1]} {v}" for k, v in point["stats"].items()
                        if k.startswith("cluster.introspection.") and v and k.rsplit(".", 1)[1] in CALL_STATS))
        return point

    def run(self) -> None:
        t = time.monotonic()
        self.client.run(WARMUP)
        self.settle()
        self.before = self.measure("after warm-up")
        self.started = time.monotonic()
        self.client.run(STREAMS // 2)
        self.settle()
        self.measure("half-way")
        self.client.run(STREAMS - STREAMS // 2)
        self.soak_seconds = time.monotonic() - self.started
        self.settle()
        self.after = self.measure("end")
        log(f"soak: {self.client.sent} streams in {time.monotonic() - t:.0f}s")
        self.probes = []
        for i in range(PROBES):
            status, _ = one_probe(self.gateway.port, f"soak-good-probe-{i}-{os.urandom(4).hex()}")
            self.probes.append(status)

    def analyse(self) -> None:
        b, a = self.before, self.after
        streams = a["streams"] - b["streams"]
        recv = a["endpoint"]["received"] - b["endpoint"]["received"]
        dropped = a["endpoint"]["dropped"] - b["endpoint"]["dropped"]
        answered = a["endpoint"]["answered"] - b["endpoint"]["answered"]
        self.check("every stream reset before an answer", not self.client.answered,
                   f"{self.client.sent} streams sent and reset; answered before the reset: "
                   f"{self.client.answered or 'none'}")
        self.check("every call dispatched before its stream ended", recv == streams,
                   f"{recv} of {streams} calls received by the endpoint during the soak")
        ended = a["endpoint"]["answered"] + a["endpoint"]["dropped"]
        self.check("every call ended", ended == a["endpoint"]["received"] and a["endpoint"]["holding"] == 0,
                   f"endpoint: {answered} calls answered after their stream was gone, {dropped} dropped by "
                   f"Envoy; call cluster: no request or connection left after settling")

        def delta(name: str) -> int:
            return a["stats"].get(name, 0) - b["stats"].get(name, 0)
        unavailable = delta("wasmcustom.gateway_auth.unavailable.introspection_unavailable")
        self.check("no call refused at max_pending", unavailable == 0,
                   f"`token introspection unavailable` during the soak: {unavailable}")
        self.check("opaque tokens still verified afterwards", self.probes.count(200) == PROBES,
                   f"{PROBES} fresh known opaque tokens: statuses {sorted(set(self.probes))}")
        wasm_growth = a["wasm"]["size"] - b["wasm"]["size"]
        self.check("Wasm linear memory flat", wasm_growth <= WASM_GROWTH_BOUND and a["wasm"]["count"] > 0,
                   f"{b['wasm']['size']} -> {a['wasm']['size']} bytes over {a['wasm']['count']} instances: "
                   f"{wasm_growth:+d} bytes ({wasm_growth / max(streams, 1):.2f} per stream; bound "
                   f"{WASM_GROWTH_BOUND} bytes)")
        # A leak grows with the streams; a step while the calls in flight peak does not: the second
        # half alone must add (nearly) nothing.
        half = next(p for p in self.points if p["label"] == "half-way")
        late = a["wasm"]["size"] - half["wasm"]["size"]
        self.check("Wasm linear memory flat over the second half", late <= WASM_GROWTH_BOUND // 2,
                   f"{half['wasm']['size']} -> {a['wasm']['size']} bytes over the last "
                   f"{a['streams'] - half['streams']:,} streams: {late:+d} bytes (bound {WASM_GROWTH_BOUND // 2})")
        alloc_growth = a["allocated"] - b["allocated"]
        self.check("Envoy allocated memory flat", alloc_growth <= ALLOCATED_GROWTH_BOUND,
                   f"{b['allocated']} -> {a['allocated']} bytes: {alloc_growth:+d} "
                   f"({alloc_growth / max(streams, 1):.1f} per stream; bound {ALLOCATED_GROWTH_BOUND})")
        vm = {k: delta(f"wasm.envoy.wasm.runtime.v8.{k}") for k in ("created", "active")}
        bad_log = [ln for ln in self.gateway.log_text().splitlines()
                   if re.search(r"panic|unreachable|RuntimeError|\]\[(error|critical)\]\[wasm\]", ln)]
        self.check("the VMs survived", self.gateway.alive() and not any(vm.values()) and not bad_log,
                   f"VMs created/active during the soak {vm}; wasm error lines: {len(bad_log)}"
                   + (f" (first: {bad_log[0][:200]})" if bad_log else ""))

    def cancel_note(self) -> str:
        b, a = self.before["endpoint"], self.after["endpoint"]
        dropped, answered = a["dropped"] - b["dropped"], a["answered"] - b["answered"]
        if dropped == 0:
            return ("\nEnvoy did not cancel the call of a reset stream: every call ran to its answer, "
                    "which arrived for no request.\nThe filter had freed the call's `max_pending` slot "
                    "when the request ended, so calls of reset streams are bounded\nby "
                    "`max_calls_per_second` × `timeout_ms` per VM, not by `max_pending`.\n")
        return f"\nEnvoy cancelled {dropped:,} calls when their stream ended; {answered:,} ran to their answer.\n"

    def report(self) -> str:
        b, a = self.before, self.after
        rows = "\n".join(
            f"| {p['label']} | {p['streams']:,} | {p['wasm']['count']} | {p['wasm']['size']:,} | "
            f"{p['wasm']['rss']:,} | {p['allocated']:,} | {p['rss']:,} | {p['endpoint']['received']:,} | "
            f"{p['endpoint']['dropped']:,} |" for p in self.points)
        checks = "\n".join(f"| {n} | {'ok' if ok else '**FAILED**'} | {d} |" for n, ok, d in self.checks)
        verdict = "PASS" if all(ok for _, ok, _ in self.checks) else "FAIL"
        streams = a["streams"] - b["streams"]
        return f"""{BEGIN}
## Soak: abandoned introspection calls (`make soak`, last phase of `make loadtest`)

Run of {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, {streams:,} HTTP/2 streams in
{self.soak_seconds:.0f} s after {WARMUP:,} of warm-up, each with a distinct opaque token and reset
(RST_STREAM CANCEL, in the same write as its HEADERS) while its introspection call was held by an
endpoint that answers after {HOLD_SECONDS} s. Envoy `--concurrency {WORKERS}`. Verdict: **{verdict}**.
{self.cancel_note()}

| point | streams reset | Wasm instances | Wasm linear memory (bytes) | resident | Envoy allocated | Envoy RSS | calls received | calls dropped by Envoy |
|---|---|---|---|---|---|---|---|---|
{rows}

| check | result | detail |
|---|---|---|
{checks}
{END}
"""


def one_probe(port: int, token: str) -> tuple[int, str]:
    return one_request(port, {"authorization": "Bearer " + token})


def write_results(section: str) -> None:
    """The soak section of RESULTS.md, replacing the previous one (the load test keeps it)."""
    text = RESULTS_MD.read_text() if RESULTS_MD.exists() else ""
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + section.rstrip("\n") + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS_MD.write_text(text)


def soak_section(text: str) -> str:
    """The soak section of a RESULTS.md text, or ''."""
    if BEGIN in text and END in text:
        return text[text.index(BEGIN):text.index(END) + len(END)] + "\n"
    return ""


def main() -> int:
    interrupt_on_signals()
    soak = Soak()
    keep = KEEP
    try:
        soak.setup()
        soak.run()
        soak.analyse()
        section = soak.report()
        (soak.workdir / "RESULTS-soak.md").write_text(section)
        for name, ok, detail in soak.checks:
            log(f"soak: {'ok    ' if ok else 'FAILED'} {name}: {detail}")
        if WRITE:
            write_results(section)
            log(f"soak: wrote the soak section of {RESULTS_MD.relative_to(REPO)}")
        if not all(ok for _, ok, _ in soak.checks):
            keep = True
            log("soak: FAIL")
            return 1
        log("soak: PASS")
        return 0
    except KeyboardInterrupt:
        log("soak: interrupted; stopping everything")
        return 130
    except (SoakError, EnvoyError, HarnessError, OSError) as e:
        keep = True
        log(f"soak: error: {e}")
        return 1
    finally:
        if soak.gateway is not None:
            soak.gateway.stop()
        if soak.endpoint is not None:
            soak.endpoint.stop()
        stop_all()
        if keep:
            log(f"soak: run directory kept: {soak.workdir}")
        else:
            shutil.rmtree(soak.workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
