#!/usr/bin/env python3
"""`make loadtest`: the filter under a steady mixed load, through a key rotation and an IdP outage.

One command, bounded (LOAD_SECONDS, default 120, at least 60), stops by itself. Everything runs on
127.0.0.1 with ports the kernel picks:

  IdP stand-in (tests/standins/idp.py, in this process)  JWKS at /jwks.json; steered during the run
  gateway Envoy  --concurrency 2, dist/gateway_filter.wasm, provider `idp` with jwks.uri on the
                 stand-in, refresh_seconds 5, unknown_kid_refresh_seconds 5; five static API keys
  upstream Envoy --concurrency 1, direct_response 200 after reading the body; its access log has one
                 line per request that arrived: class, expected user, x-gateway-user-id,
                 x-gateway-provider, and whether authorization / x-api-key were still on it
  wrk            tests/load/load.lua: one thread and one connection per credential class, each
                 paced to a fixed rate; every request names its class in `x-load-class`

Credential classes (USERS users, default 500):
  valid_rs256   RS256 tokens, kid rsa-1; from the rotation on, new tokens of the same users, kid rsa-2
  valid_es256   ES256 tokens, kid ec-1 (published all run)
  valid_apikey  five static API keys, in x-api-key or as a Bearer credential
  expired       RS256/ES256 tokens signed by published keys, expired an hour ago
  forged        well-formed tokens with a published kid and a signature by another key
  unknown_kid   tokens naming kids the IdP never publishes
  missing       no credential
  wrong_key     random API keys, in x-api-key or as a Bearer credential
  retired       after the old key left the JWKS: the rsa-1 tokens valid_rs256 sent (and the filter
                cached) before the rotation

Timeline (seconds from the start of the load, D = LOAD_SECONDS; 120 gives 12/30-45/60/75):
  0          load starts: JWKS = rsa-1, ec-1
  0.1 D      rotation (LOAD_ROTATION): `staged` (default) or `immediate`. `immediate`: right after the IdP answers the next JWKS
             fetch, rsa-2 is published, and 0.5 s later valid_rs256 sends rsa-2 tokens only: an IdP
             that starts signing with a key as it publishes it, at the least favourable moment (the
             filter just fetched, so only an unknown-kid refresh brings the key before the next regular
             refresh). With the unknown-kid flood running, that refresh is rate-limited, so such tokens
             can get 401 for up to unknown_kid_refresh_seconds: a documented trade-off, and this mode's
             check fails on it. `staged`: published at 0.1 D, used from refresh_seconds + 2 s later
             (an IdP that publishes keys ahead of use, as Entra, Okta and Google do); every VM has
             refreshed by then
  0.25 D     outage of 15 s: the IdP's port is closed (mode `down`) for 8 s, then it answers 500
             (mode `error500`) for 7 s
  drop       max(outage end + 8, 0.5 D): rsa-1 leaves the JWKS; forged RS256 tokens name rsa-2 from now
  drop+15    retired starts: three refresh periods after the drop, by when every Wasm VM has refreshed
             (a VM adopts a published key set at most refresh_seconds old, on its next due refresh)
  D          load stops; wrk ends a second later, so nothing is in flight when it does

Checks (the run exits 1 with the failed checks named):
  - bad classes: none of their requests arrived upstream, the client got 401 with the expected reason
    for every one of them.
  - valid classes: client 2xx == upstream arrivals, per class; no 401, no 503 and nothing else, at any
    time. No 503 at all, not even in the first second: the load starts only after Envoy is ready, the
    filter's key gauge shows the JWKS loaded and one request per class got its expected answer, and a
    request arriving before a VM's first fetch waits for it (docs/operations.md "Keys") rather than getting 503.
    So any 503 means keys were lost (e.g. during the outage), which is what this test looks for.
  - identity upstream: every arrival has x-gateway-user-id == the user its credential belongs to (the
    client's spoofed x-gateway-user-id is gone), provider `idp` or `api-key`, no authorization and no
    x-api-key.
  - no request was held longer than timeout_ms + 2 s (docs/requests.md: a request waits for keys "for at most
    the fetch's timeout_ms"; an unknown-kid refresh starts on the next 1-s tick; +1 s for a shared
    machine), counted by wrk's --timeout, which counts late answers without cancelling them; no
    socket errors, nothing in flight when wrk stopped, and Envoy's downstream_rq_total == the answers
    the client got.
  - the filter's counters (`wasmcustom.gateway_auth.*` on /stats), load-time deltas, equal what the
    client saw: allowed == 2xx, denied.<reason> == 401s with that reason's message,
    unavailable.keys_unavailable == 503s; jwks fetch_ok == JWKS answers the IdP sent with 200 (±1 for
    a fetch in flight at a snapshot).
  - JWKS: the outage was seen (fetch_failed rose, the filter logged keeping=last-good-keys); the IdP's
    fetch count during the load stays within the documented bound: one per refresh_seconds plus at most one
    unknown-kid refresh per unknown_kid_refresh_seconds per provider, +2 for the edges; the drop was
    fetched before `retired` started.
  - memory: Envoy's admin /memory `allocated` (tcmalloc) sampled every 2 s; a least-squares line over
    the second half of the run must grow less than 5 MiB/min. The working set is complete by then
    (every user's tokens are cached before 0.5 D; the token cache is bounded anyway), so a healthy
    Envoy is flat to within allocator noise (well under 1 MiB). 5 MiB/min is far above that noise,
    and at ~200 requests/s it catches any leak of more than ~450 bytes per request, which is less
    than one leaked request context, header map or dispatched call. /memory does not contain V8's
    Wasm linear memory, so the same bound is applied to the total linear memory of the filter's
    Wasm instances (tests/procs.py wasm_memory, read from /proc/<pid>/smaps), which only ever grows.
  - the VMs survived: Envoy still runs, its log has no wasm error/critical line and nothing matching
    panic / unreachable / RuntimeError / "Function: ... failed" / "Failed", and the
    wasm.envoy.wasm.runtime.v8 created/active counts did not change during the load.

Output: a summary table (per class: sent, client statuses, upstream count), memory samples and
trend, JWKS fetches, duration; the same, with date, machine and command, in tests/load/RESULTS.md.

Settings (environment): LOAD_SECONDS (120, >= 60), LOAD_RPS (total target rate, 200), LOAD_USERS
(500), LOAD_ROTATION (immediate | staged), LOAD_SKIP (comma-separated classes to leave out, for
experiments), LOAD_WASM (another build of the filter; default dist/gateway_filter.wasm, which is copied
into the run directory at the start so a concurrent `make build` cannot change it mid-run),
LOAD_COMPONENT_LOG (the gateway's --component-log-level, default wasm:info; wasm:debug logs every
decision), LOAD_KEEP=1 (keep the run directory with configs, logs, pools and wrk output; it is kept
anyway when a check fails), LOAD_WRITE=0 (do not write RESULTS.md), ENVOY_BIN, WRK_BIN.

Python stdlib plus `cryptography`. Every process started here is stopped by its PID on exit, on
failure and on Ctrl-C (children run in their own session and get SIGTERM if this process dies).
"""


from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from settings import (AUDIENCE, COMPONENT_LOG, KEEP, LUA, PROVIDER, REFRESH_SECONDS, REPO, RESULTS_MD, ROTATION,
                      RPS, SAMPLE_SECONDS, SECONDS, SKIP, UPSTREAM_BODY, USERS, WASM_OVERRIDE, WORKERS, WRITE,
                      WRK_TIMEOUT_S, LoadError)
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402

from checks import Check, analyse, mib  # noqa: E402
from e2e.e2e_harness import HarnessError, envoy_config, find_envoy, find_wasm, to_yaml  # noqa: E402
from envoy_configs import plugin_config, upstream_config  # noqa: E402
from envoy_process import Envoy, EnvoyError, log, one_request  # noqa: E402
from plan import Klass, Timeline, assign_pools, classes, make_credentials, write_plan  # noqa: E402
from procs import interrupt_on_signals, spawn, stop, stop_all, wasm_memory  # noqa: E402
from report import print_summary, report  # noqa: E402
from soak import soak_section  # noqa: E402
from standins.idp import IdP, Keys  # noqa: E402


def generated(name: str, config: dict[str, Any]) -> str:
    return f"# generated by tests/load/run.py ({name})\n" + to_yaml(config)


def request(port: int, header: str, value: str, klass: str = "sanity", user: str = "-") -> tuple[int, str]:
    """One request outside the load, labelled like the load's (x-load-class, x-load-user), with the
    credential `value` in `header` ("-": none)."""
    headers = {"x-load-class": klass, "x-load-user": user}
    if header != "-":
        headers[header] = value
    return one_request(port, headers)


def error_message(body: str) -> str:
    try:
        return json.loads(body)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return "?"


# ---- the run --------------------------------------------------------------------------------------------
class Rotation:
    """The key rotation, stepped by the main loop. `immediate`: from `tl.rotate` on, wait for
    the next JWKS answer the IdP sends (the filter's regular refresh or an unknown-kid refresh),
    publish rsa-2 right after it, and 0.5 s later tell valid_rs256 to send rsa-2 tokens only (the flag
    file; load.lua looks for it on every request). That is an IdP that starts signing with a key as it
    publishes it, at the least favourable moment: the filter has just fetched, so only an unknown-kid
    refresh can bring the key before the next regular refresh. `staged`: publish at `tl.rotate`, switch
    refresh_seconds + 2 s later (an IdP that publishes keys ahead of use, as Entra, Okta and Google
    do): by then every VM has refreshed."""

    def __init__(self, run: "Run", tl: Timeline, flag: Path) -> None:
        self.run, self.tl, self.flag = run, tl, flag
        self.state = "idle"
        self.answers = 0
        self.until = 0.0
        self.flag_at = 0.0

    def publish(self, how: str) -> None:
        idp = self.run.idp
        idp.jwks_kids = ["rsa-1", "ec-1", "rsa-2"]
        self.run.event(f"IdP publishes rsa-2 (JWKS: rsa-1, ec-1, rsa-2){how}")

    def step(self, now: float) -> None:
        idp = self.run.idp
        if self.state == "idle" and now >= self.tl.at(self.tl.rotate):
            if ROTATION == "staged":
                self.publish(" (staged rotation)")
                self.flag_at, self.state = now + REFRESH_SECONDS + 2, "published"
            else:
                self.answers, self.until, self.state = len(idp.jwks_answered_at), now + REFRESH_SECONDS + 2, "watching"
        elif self.state == "watching":
            if len(idp.jwks_answered_at) > self.answers:
                ago = time.monotonic() - idp.jwks_answered_at[-1]
                self.publish(f", {ago:.2f}s after the IdP answered the filter's last JWKS fetch")
                self.flag_at, self.state = now + 0.5, "published"
            elif now >= self.until:
                self.publish(" (no JWKS fetch seen for a refresh period)")
                self.flag_at, self.state = now + 0.5, "published"
        elif self.state == "published" and now >= self.flag_at:
            self.flag.write_text("rotate\n")
            self.run.event("valid_rs256 told to send rsa-2 tokens only (flag file)")
            self.state = "done"


class Run:
    def __init__(self) -> None:
        self.started = time.time()
        self.workdir = Path(tempfile.mkdtemp(prefix="loadtest-"))
        self.idp: IdP | None = None
        self.gateway: Envoy | None = None
        self.upstream: Envoy | None = None
        self.events: list[tuple[float, str]] = []        # (relative seconds, what)
        self.mode_log: list[tuple[float, str]] = []      # (monotonic, mode) from the start
        self.samples: list[dict[str, Any]] = []
        self.checks: list[Check] = []
        self.sanity: dict[str, tuple[int, str]] = {}

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append(Check(name, bool(ok), detail))

    # -- set-up
    def setup(self) -> None:
        envoy_bin = find_envoy()
        # The filter is copied into the run directory and loaded from there: `make build` in another
        # shell must not change what this run measures. LOAD_WASM tests another build.
        source = Path(WASM_OVERRIDE).resolve() if WASM_OVERRIDE else find_wasm()
        if not source.is_file() or source.read_bytes()[:4] != b"\0asm":
            raise LoadError(f"{source} is not a Wasm module")
        wasm = self.workdir / "gateway_filter.wasm"
        shutil.copy2(source, wasm)
        self.wasm_source = source
        self.wasm_sha = hashlib.sha256(wasm.read_bytes()).hexdigest()
        self.wasm_time = dt.datetime.fromtimestamp(source.stat().st_mtime, dt.timezone.utc)
        self.git_rev = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True,
                                      text=True).stdout.strip() or "?"
        self.wrk = os.environ.get("WRK_BIN") or shutil.which("wrk")
        if not self.wrk:
            raise LoadError("wrk not found: install it (apt-get install wrk) or set WRK_BIN")
        self.envoy_bin, self.wasm = envoy_bin, wasm
        keys = Keys()
        keys.private["rsa-2"] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.idp = IdP(audience=AUDIENCE, keys=keys)
        self.idp.jwks_kids = ["rsa-1", "ec-1"]
        self.idp.start()
        self.mode_log.append((time.monotonic(), "normal"))
        log(f"loadtest: IdP stand-in on {self.idp.url}; minting {USERS} users' tokens and the bad pools")
        t = time.monotonic()
        self.cred = make_credentials(self.idp, self.workdir)
        log(f"loadtest: credentials ready in {time.monotonic() - t:.1f}s")

        self.access_log = self.workdir / "upstream" / "access.log"
        self.upstream = Envoy(envoy_bin, self.workdir / "upstream", "upstream", 1,
                              ["--log-level", "warn", "--file-flush-interval-msec", "200"])
        self.upstream.start(generated("upstream", upstream_config(self.access_log)))
        self.gateway = Envoy(envoy_bin, self.workdir / "gateway", "gateway", WORKERS,
                             ["--log-level", "info", "--component-log-level", COMPONENT_LOG])
        config = envoy_config(upstream_port=self.upstream.port,
                              plugin_config=plugin_config(self.idp, self.cred.api_keys),
                              wasm=wasm, clusters={"idp": self.idp.port})
        # One request per connection to the IdP: the stand-in's mode `down` closes its listening socket
        # but keeps serving connections already open, so with pooled keep-alive connections a `down`
        # IdP would go on answering the filter's fetches.
        for cluster in config["static_resources"]["clusters"]:
            if cluster["name"] == "idp":
                cluster["typed_extension_protocol_options"] = {
                    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                        "common_http_protocol_options": {"max_requests_per_connection": 1},
                        "explicit_http_config": {"http_protocol_options": {}}}}
        self.gateway.start(generated("gateway", config))
        log(f"loadtest: gateway Envoy pid {self.gateway.proc.pid} on :{self.gateway.port} "
            f"(admin {self.gateway.admin}), upstream Envoy pid {self.upstream.proc.pid} on :{self.upstream.port}")

    def wait_for_keys(self) -> None:
        """Until the filter's key gauge shows the two published keys for 2 s in a row (every VM
        records it on its 1-s tick)."""
        name = f"wasmcustom.gateway_auth.jwks.{PROVIDER}.keys"
        deadline = time.monotonic() + 30
        good_since = None
        while time.monotonic() < deadline:
            value = self.gateway.stats(r"^wasmcustom\.").get(name)
            if value == 2:
                good_since = good_since or time.monotonic()
                if time.monotonic() - good_since >= 2.0:
                    return
            else:
                good_since = None
            time.sleep(0.2)
        raise LoadError(f"the filter did not load the JWKS within 30 s ({name} = {value})\n"
                        f"{self.gateway.log_tail()}")

    def sanity_checks(self, ks: list[Klass]) -> None:
        problems = []
        for k in ks:
            if k.name not in self.cred.sanity:
                continue
            user, header, value = self.cred.sanity[k.name]
            status, body = request(self.gateway.port, header, value)
            self.sanity[k.name] = (status, error_message(body) if status != 200 else "")
            if k.valid and (status != 200 or body != UPSTREAM_BODY):
                problems.append(f"{k.name}: {status} {body[:160]!r}, expected 200 with the upstream's body")
            if not k.valid and (status != 401 or error_message(body) != k.expect):
                problems.append(f"{k.name}: {status} {body[:160]!r}, expected 401 {k.expect!r}")
        if problems:
            raise LoadError("sanity requests before the load failed:\n  " + "\n  ".join(problems))

    # -- snapshots
    def snapshot(self) -> dict[str, Any]:
        stats = self.gateway.stats(r"^(wasmcustom\.|wasm\.|listener\.127|http\.gateway\.downstream_(rq|cx_destroy)|"
                                   r"cluster\.idp\.upstream_(rq|cx))")
        assert self.idp is not None
        with self.idp._lock:                       # the stand-in's own lock (a consistent copy)
            requests = list(self.idp.requests)
        return {"time": time.monotonic(), "stats": stats, "idp_requests": requests}

    def sample(self, tl: Timeline) -> None:
        rel = time.time() - tl.t0
        s: dict[str, Any] = {"t": rel}
        try:
            mem = json.loads(self.gateway.admin_get("/memory")[1])
            s["allocated"] = int(mem.get("allocated", 0))
            s["heap_size"] = int(mem.get("heap_size", 0))
        except (OSError, ValueError):
            s["allocated"] = s["heap_size"] = None
        wm = wasm_memory(self.gateway.proc.pid)
        s["wasm_count"], s["wasm_size"], s["wasm_rss"] = wm["count"], wm["size"], wm["rss"]
        try:
            status = Path(f"/proc/{self.gateway.proc.pid}/status").read_text()
            m = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
            s["rss"] = int(m.group(1)) * 1024 if m else None
        except OSError:
            s["rss"] = None
        self.samples.append(s)

    def event(self, what: str) -> None:
        t = time.time() - self.tl.t0
        self.events.append((t, what))
        log(f"loadtest: t={t:5.1f}s {what}")

    def set_mode(self, mode: str) -> None:
        self.idp.set_mode(mode)
        self.mode_log.append((time.monotonic(), mode))

    # -- the load
    def run_load(self) -> None:
        ks_all = classes(Timeline.plan(0, SECONDS))
        self.sanity_checks(ks_all)
        time.sleep(1.2)       # let the sanity requests' unknown-kid refresh settle
        t0 = int(time.time()) + 2
        tl = Timeline.plan(t0, SECONDS)
        ks = classes(tl)
        rotate_flag = self.workdir / "rotate.flag"
        assign_pools(ks, tl, self.cred, rotate_flag)
        plan = write_plan(self.workdir / "plan.txt", ks, tl)
        self.tl, self.ks = tl, ks
        rotation = Rotation(self, tl, rotate_flag)

        def drop_rsa1() -> None:
            self.idp.jwks_kids = ["ec-1", "rsa-2"]

        schedule: list[tuple[float, str, Callable[[], None]]] = sorted([
            (tl.at(tl.outage), "IdP down (port closed)", lambda: self.set_mode("down")),
            (tl.at(tl.outage_500), "IdP answers 500", lambda: self.set_mode("error500")),
            (tl.at(tl.outage_end), "IdP back to normal", lambda: self.set_mode("normal")),
            (tl.at(tl.drop - 0.5), "IdP drops rsa-1 (JWKS: ec-1, rsa-2)", drop_rsa1),
            (tl.at(tl.drop), "forged RS256 tokens switch to kid rsa-2", lambda: None),
        ] + ([(tl.at(tl.retired), "retired starts (rsa-1 tokens of the first phase)", lambda: None)]
             if "retired" not in SKIP else []), key=lambda e: e[0])

        cmd = [self.wrk, f"-t{len(ks)}", f"-c{len(ks)}", f"-d{SECONDS + 2}s", "--timeout", f"{WRK_TIMEOUT_S}s",
               "-s", str(LUA), f"http://127.0.0.1:{self.gateway.port}/v1/messages"]
        self.wrk_cmd = cmd
        self.wrk_out = self.workdir / "wrk.txt"
        self.before = self.snapshot()
        while time.time() < t0 - 0.5:
            time.sleep(0.05)
        log(f"loadtest: load for {SECONDS}s at ~{RPS} req/s over {len(ks)} classes; "
            f"rotation at {tl.rotate}s, outage {tl.outage}-{tl.outage_end}s, drop at {tl.drop}s, "
            f"retired from {tl.retired}s")
        with open(self.wrk_out, "wb") as out:
            proc = spawn(cmd, out, dict(os.environ, LOAD_PLAN=str(plan)))
        self.mono_t0 = time.monotonic() + (t0 - time.time())
        next_sample = float(t0)
        pending = list(schedule)
        last_progress = t0
        try:
            while proc.poll() is None:
                now = time.time()
                while pending and now >= pending[0][0]:
                    at, what, fn = pending.pop(0)
                    fn()
                    self.event(what)
                rotation.step(now)
                if now >= next_sample:
                    self.sample(tl)
                    next_sample += SAMPLE_SECONDS
                if now - last_progress >= 15:
                    last_progress = now
                    log(f"loadtest: t={now - t0:5.1f}s allocated {mib(self.samples[-1]['allocated'] or 0):.1f} MiB, "
                        f"IdP JWKS fetches {self.idp.jwks_fetches}")
                if not self.gateway.alive():
                    log("loadtest: the gateway Envoy exited during the load")
                    break
                if now > t0 + SECONDS + 30:
                    raise LoadError("wrk did not end")
                time.sleep(0.05)
        finally:
            stop(proc)
        for _, what, fn in pending:      # e.g. the gateway died: still put the IdP back
            if "normal" in what:
                fn()
        if self.gateway.alive():
            self.sample(tl)
        self.wrk_rc = proc.returncode
        self.after = self.snapshot() if self.gateway.alive() else None
        self.ended = time.time()

    # -- collection
    def parse_wrk(self) -> None:
        text = self.wrk_out.read_text(errors="replace")
        self.wrk_text = text
        self.results: dict[str, dict[str, Any]] = {}
        for m in re.finditer(r"^LOAD_RESULT (\{.*\})$", text, re.M):
            r = json.loads(m.group(1))
            self.results[r["class"]] = r
        m = re.search(r"^LOAD_SUMMARY (\{.*\})$", text, re.M)
        if not m or len(self.results) != len(self.ks):
            raise LoadError(f"wrk failed (exit {self.wrk_rc}); its output:\n{text[-3000:]}")
        self.wrk_summary = json.loads(m.group(1))
        for r in self.results.values():
            for pool, second in r.get("switched", {}).items():
                # whole seconds from load.lua: sorted after the steering events of the same second
                self.events.append((second + 0.999, f"{r['class']} sends its first request from "
                                                    f"{Path(pool).name} (in second {second})"))
        self.events.sort(key=lambda e: e[0])

    def read_upstream(self) -> None:
        """Waits until the access log has a line for every request the upstream answered."""
        deadline = time.monotonic() + 15
        while True:
            total = self.upstream.stats(r"^http\.upstream\.downstream_rq_total$").get(
                "http.upstream.downstream_rq_total", 0)
            lines = self.access_log.read_text().splitlines() if self.access_log.exists() else []
            if len(lines) >= total or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.upstream_total = total
        self.upstream_lines = lines

    # -- checks

    def mode_at(self, mono: float) -> str:
        mode = "normal"
        for t, m in self.mode_log:
            if t <= mono:
                mode = m
        return mode


    def cleanup(self, keep: bool) -> None:
        if self.gateway:
            self.gateway.stop()
        if self.upstream:
            self.upstream.stop()
        stop_all()
        if self.idp:
            self.idp.stop()
        if keep:
            log(f"loadtest: run directory kept: {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)


def main() -> int:
    interrupt_on_signals()
    run = Run()
    keep = KEEP
    try:
        run.setup()
        run.wait_for_keys()
        run.run_load()
        run.parse_wrk()
        run.read_upstream()
        analyse(run)
        ok = all(c.ok for c in run.checks)
        print_summary(run)
        text = report(run)
        (run.workdir / "RESULTS.md").write_text(text)
        if WRITE:
            # The soak's section (tests/load/soak.py) stays until the soak replaces it.
            kept = soak_section(RESULTS_MD.read_text()) if RESULTS_MD.exists() else ""
            RESULTS_MD.write_text(text + ("\n" + kept if kept else ""))
            log(f"loadtest: wrote {RESULTS_MD.relative_to(REPO)}")
        if not ok:
            keep = True
            failed = [c.name for c in run.checks if not c.ok]
            log(f"loadtest: FAILED: {len(failed)} check(s): " + "; ".join(failed))
            return 1
        log("loadtest: PASS")
        return 0
    except KeyboardInterrupt:
        log("loadtest: interrupted; stopping everything")
        return 130
    except (LoadError, HarnessError, EnvoyError) as e:
        keep = True
        log(f"loadtest: error: {e}")
        return 1
    finally:
        run.cleanup(keep)


if __name__ == "__main__":
    sys.exit(main())
