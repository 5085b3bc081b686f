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
    request arriving before a VM's first fetch waits for it (README "Keys") rather than getting 503.
    So any 503 means keys were lost (e.g. during the outage), which is what this test looks for.
  - identity upstream: every arrival has x-gateway-user-id == the user its credential belongs to (the
    client's spoofed x-gateway-user-id is gone), provider `idp` or `api-key`, no authorization and no
    x-api-key.
  - no request was held longer than timeout_ms + 2 s (README: a request waits for keys "for at most
    the fetch's timeout_ms"; an unknown-kid refresh starts on the next 1-s tick; +1 s for a shared
    machine), counted by wrk's --timeout, which counts late answers without cancelling them; no
    socket errors, nothing in flight when wrk stopped, and Envoy's downstream_rq_total == the answers
    the client got.
  - the filter's counters (`wasmcustom.gateway_auth.*` on /stats), load-time deltas, equal what the
    client saw: allowed == 2xx, denied.<reason> == 401s with that reason's message,
    unavailable.keys_unavailable == 503s; jwks fetch_ok == JWKS answers the IdP sent with 200 (±1 for
    a fetch in flight at a snapshot).
  - JWKS: the outage was seen (fetch_failed rose, the filter logged keeping=last-good-keys); the IdP's
    fetch count during the load stays within README's bound: one per refresh_seconds plus at most one
    unknown-kid refresh per unknown_kid_refresh_seconds per provider, +2 for the edges; the drop was
    fetched before `retired` started.
  - memory: Envoy's admin /memory `allocated` (tcmalloc) sampled every 2 s; a least-squares line over
    the second half of the run must grow less than 5 MiB/min. The working set is complete by then
    (every user's tokens are cached before 0.5 D; the token cache is bounded anyway), so a healthy
    Envoy is flat to within allocator noise (well under 1 MiB). 5 MiB/min is far above that noise,
    and at ~200 requests/s it catches any leak of more than ~450 bytes per request, which is less
    than one leaked request context, header map or dispatched call. /memory does not contain V8's
    Wasm linear memory, so the same bound is applied to the total linear memory of the filter's
    Wasm instances (read from /proc/<pid>/smaps, the way bench/run.py does), which only ever grows.
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
import http.client
import json
import math
import os
import platform
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[2]
LOAD_DIR = REPO / "tests" / "load"
LUA = LOAD_DIR / "load.lua"
RESULTS_MD = LOAD_DIR / "RESULTS.md"
sys.path.insert(0, str(REPO / "tests"))

from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: E402

from e2e.e2e_harness import HarnessError, envoy_config, find_envoy, find_wasm, to_yaml  # noqa: E402
from procs import spawn, stop, stop_all, wasm_memory  # noqa: E402
from standins.idp import IdP, Keys  # noqa: E402


def env_int(name: str, default: int, minimum: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        sys.exit(f"loadtest: {name}={raw!r} is not an integer")
    if value < minimum:
        sys.exit(f"loadtest: {name}={value} is below {minimum}")
    return value


SECONDS = env_int("LOAD_SECONDS", 120, 60)
RPS = env_int("LOAD_RPS", 200, 20)
USERS = env_int("LOAD_USERS", 500, 10)
SKIP = {s.strip() for s in os.environ.get("LOAD_SKIP", "").split(",") if s.strip()}
ROTATION = os.environ.get("LOAD_ROTATION", "staged")
if ROTATION not in ("immediate", "staged"):
    sys.exit(f"loadtest: LOAD_ROTATION={ROTATION!r}: immediate or staged")
WASM_OVERRIDE = os.environ.get("LOAD_WASM", "")
KEEP = os.environ.get("LOAD_KEEP", "0") == "1"
# Envoy's --component-log-level for the gateway (wasm:debug logs every request's decision)
COMPONENT_LOG = os.environ.get("LOAD_COMPONENT_LOG", "wasm:info")
WRITE = os.environ.get("LOAD_WRITE", "1") != "0"

AUDIENCE = "claude-gateway"
PROVIDER = "idp"
REFRESH_SECONDS = 5
UNKNOWN_KID_REFRESH_SECONDS = 5
FETCH_TIMEOUT_MS = 2000
WORKERS = 2
OUTAGE_DOWN_SECONDS = 8
OUTAGE_500_SECONDS = 7
SAMPLE_SECONDS = 2.0
MEMORY_BOUND_MIB_PER_MIN = 5.0
# README: a request is held for keys "for at most the fetch's timeout_ms"; an unknown-kid refresh starts
# on the root context's next 1-s tick; +1 s for a shared machine. wrk counts a "timeout" for every answer
# later than this (it does not cancel the request).
WRK_TIMEOUT_S = FETCH_TIMEOUT_MS // 1000 + 2
TOKEN_LIFETIME_S = 4 * 3600
API_KEYS = 5
POOL_BAD = 300            # distinct credentials per bad pool (cycled)

UPSTREAM_BODY = ('{"id":"msg_load","type":"message","role":"assistant","model":"load",'
                 '"content":[{"type":"text","text":"ok"}],"stop_reason":"end_turn",'
                 '"usage":{"input_tokens":1,"output_tokens":1}}')

# 401/503 messages (src/reason.rs client_message) -> the metric the filter counts them in.
MESSAGE_METRIC = {
    "missing credential": "denied.missing_credential",
    "credential too large": "denied.credential_too_large",
    "malformed token": "denied.malformed",
    "token algorithm not allowed": "denied.algorithm_not_allowed",
    "token issuer not trusted": "denied.issuer_not_trusted",
    "token signing key not found": "denied.key_not_found",
    "token signature invalid": "denied.bad_signature",
    "token expired": "denied.expired",
    "token not yet valid": "denied.not_yet_valid",
    "token issued in the future": "denied.issued_in_future",
    "token has no expiry": "denied.no_expiry",
    "audience not allowed": "denied.audience_not_allowed",
    "token has no user id claim": "denied.no_user_id",
    "invalid API key": "denied.unknown_api_key",
    "identity provider keys unavailable": "unavailable.keys_unavailable",
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class LoadError(RuntimeError):
    pass


# ---- the classes and the timeline -----------------------------------------------------------------------
@dataclass
class Timeline:
    t0: int                 # Unix second of second 0
    duration: int
    rotate: int             # rsa-2 published at rotate - 0.5, valid_rs256 switches at rotate
    outage: int
    outage_500: int
    outage_end: int
    drop: int               # rsa-1 removed at drop - 0.5; forged RS256 switches to kid rsa-2 at drop
    retired: int

    @staticmethod
    def plan(t0: int, d: int) -> "Timeline":
        rotate = round(0.10 * d)
        outage = round(0.25 * d)
        outage_500 = outage + OUTAGE_DOWN_SECONDS
        outage_end = outage_500 + OUTAGE_500_SECONDS
        drop = max(outage_end + 8, round(0.5 * d))
        retired = drop + 3 * REFRESH_SECONDS
        if retired > d - 5:
            raise LoadError(f"LOAD_SECONDS={d} leaves no time for the retired-key phase")
        return Timeline(t0, d, rotate, outage, outage_500, outage_end, drop, retired)

    def at(self, rel: float) -> float:
        return self.t0 + rel


@dataclass
class Klass:
    name: str
    valid: bool
    weight: float
    expect: str             # valid: "2xx"; bad: the 401 message
    start: int = 0          # relative seconds
    stop: int = 0
    pools: list[tuple[int, Path, Path | None]] = field(default_factory=list)   # (relative from, file, flag)



def classes(tl: Timeline) -> list[Klass]:
    d = tl.duration
    out = [
        Klass("valid_rs256", True, 0.24, "2xx"),
        Klass("valid_es256", True, 0.24, "2xx"),
        Klass("valid_apikey", True, 0.08, "2xx"),
        Klass("expired", False, 0.07, "token expired"),
        Klass("forged", False, 0.07, "token signature invalid"),
        Klass("unknown_kid", False, 0.07, "token signing key not found"),
        Klass("missing", False, 0.07, "missing credential"),
        Klass("wrong_key", False, 0.07, "invalid API key"),
        Klass("retired", False, 0.09, "token signing key not found"),
    ]
    for k in out:
        k.start, k.stop = (tl.retired if k.name == "retired" else 0), d
    return [k for k in out if k.name not in SKIP]


# ---- credentials ----------------------------------------------------------------------------------------
def write_pool(path: Path, entries: list[tuple[str, str, str]]) -> Path:
    """One line per credential: expected user id, header name (or -), value (or -)."""
    for user, header, value in entries:
        assert "\t" not in user + header + value and "\n" not in user + header + value
    path.write_text("".join(f"{u}\t{h}\t{v}\n" for u, h, v in entries))
    return path


def user_claims(i: int, prefix: str = "user") -> dict[str, Any]:
    return {"sub": f"{prefix}-{i:04d}", "email": f"{prefix}-{i:04d}@load.example",
            "name": f"Load User {i}", "groups": ["eng", "load"], "jti": secrets.token_hex(8)}


@dataclass
class Credentials:
    pools: dict[str, Path]
    api_keys: list[tuple[str, str]]              # (name, key)
    sanity: dict[str, tuple[str, str, str]]     # class -> (user, header, value)


def make_credentials(idp: IdP, workdir: Path) -> Credentials:
    """Every token is minted before the load: the rsa-2 ones too (the IdP publishes rsa-2 only at the
    rotation)."""
    ghost_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ghost_ec = ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())
    life = TOKEN_LIFETIME_S
    bearer = "authorization"

    def tok(alg: str, kid: str, claims: dict[str, Any], key: Any = None, lifetime: int = life) -> str:
        return idp.mint(alg, kid=kid, claims=claims, key=key, lifetime=lifetime)

    def expired_claims(i: int) -> dict[str, Any]:
        return {**user_claims(i, "expired"), "iat": now - 7200, "nbf": now - 7200, "exp": now - 3600}

    pools: dict[str, Path] = {}
    w = workdir
    pools["rs256_old"] = write_pool(w / "rs256-rsa-1.txt", [
        (f"user-{i:04d}", bearer, "Bearer " + tok("RS256", "rsa-1", user_claims(i))) for i in range(USERS)])
    pools["rs256_new"] = write_pool(w / "rs256-rsa-2.txt", [
        (f"user-{i:04d}", bearer, "Bearer " + tok("RS256", "rsa-2", user_claims(i))) for i in range(USERS)])
    pools["es256"] = write_pool(w / "es256-ec-1.txt", [
        (f"user-{i:04d}", bearer, "Bearer " + tok("ES256", "ec-1", user_claims(i))) for i in range(USERS)])
    api_keys = [(f"team-{n}", "sk-load-" + secrets.token_urlsafe(24)) for n in range(API_KEYS)]
    pools["apikey"] = write_pool(w / "apikey.txt", [
        (name, "x-api-key", key) if n % 2 == 0 else (name, bearer, "Bearer " + key)
        for n, (name, key) in enumerate(api_keys * 4)])
    pools["expired"] = write_pool(w / "expired.txt", [
        ("-", bearer, "Bearer " + (tok("RS256", "rsa-1", expired_claims(i)) if i % 2 else
                                   tok("ES256", "ec-1", expired_claims(i)))) for i in range(POOL_BAD)])

    def forged(rs_kid: str, name: str) -> Path:
        return write_pool(w / name, [
            ("-", bearer, "Bearer " + (tok("RS256", rs_kid, user_claims(i, "forged"), ghost_rsa) if i % 2 else
                                       tok("ES256", "ec-1", user_claims(i, "forged"), ghost_ec)))
            for i in range(POOL_BAD)])

    pools["forged_old"] = forged("rsa-1", "forged-rsa-1.txt")
    pools["forged_new"] = forged("rsa-2", "forged-rsa-2.txt")
    pools["unknown_kid"] = write_pool(w / "unknown-kid.txt", [
        ("-", bearer, "Bearer " + (tok("RS256", f"unknown-{secrets.token_hex(6)}", user_claims(i, "ghost"),
                                       ghost_rsa) if i % 4 == 0 else
                                   tok("ES256", f"unknown-{secrets.token_hex(6)}", user_claims(i, "ghost"),
                                       ghost_ec))) for i in range(POOL_BAD)])
    pools["missing"] = write_pool(w / "missing.txt", [("-", "-", "-")])
    pools["wrong_key"] = write_pool(w / "wrong-key.txt", [
        ("-", "x-api-key", "sk-wrong-" + secrets.token_urlsafe(24)) if i % 2 else
        ("-", bearer, "Bearer sk-wrong-" + secrets.token_urlsafe(24)) for i in range(POOL_BAD)])
    sanity = {
        "valid_rs256": ("sanity-rs", bearer, "Bearer " + tok("RS256", "rsa-1", {**user_claims(0, "sanity-rs"),
                                                                                 "sub": "sanity-rs"})),
        "valid_es256": ("sanity-es", bearer, "Bearer " + tok("ES256", "ec-1", {**user_claims(0, "sanity-es"),
                                                                                "sub": "sanity-es"})),
        "valid_apikey": (api_keys[0][0], "x-api-key", api_keys[0][1]),
        "expired": ("-", bearer, "Bearer " + tok("ES256", "ec-1", expired_claims(9999))),
        "forged": ("-", bearer, "Bearer " + tok("ES256", "ec-1", user_claims(9999, "forged"), ghost_ec)),
        "unknown_kid": ("-", bearer, "Bearer " + tok("ES256", "unknown-sanity", user_claims(9999, "ghost"),
                                                      ghost_ec)),
        "missing": ("-", "-", "-"),
        "wrong_key": ("-", "x-api-key", "sk-wrong-sanity"),
    }
    return Credentials(pools, api_keys, sanity)


def assign_pools(ks: list[Klass], tl: Timeline, cred: Credentials, rotate_flag: Path) -> None:
    p = cred.pools
    for k in ks:
        k.pools = {
            "valid_rs256": [(0, p["rs256_old"], None), (tl.rotate, p["rs256_new"], rotate_flag)],
            "valid_es256": [(0, p["es256"], None)],
            "valid_apikey": [(0, p["apikey"], None)],
            "expired": [(0, p["expired"], None)],
            "forged": [(0, p["forged_old"], None), (tl.drop, p["forged_new"], None)],
            "unknown_kid": [(0, p["unknown_kid"], None)],
            "missing": [(0, p["missing"], None)],
            "wrong_key": [(0, p["wrong_key"], None)],
            "retired": [(tl.retired, p["rs256_old"], None)],
        }[k.name]


def write_plan(path: Path, ks: list[Klass], tl: Timeline) -> Path:
    total_weight = sum(k.weight for k in ks)
    lines = [f"t0 {tl.t0}"]
    for k in ks:
        rate = RPS * k.weight / total_weight
        lines.append(f"class {k.name} {max(1, round(1000 / rate))} {tl.t0 + k.start} {tl.t0 + k.stop}")
    for k in ks:
        for rel, pool, flag in k.pools:
            lines.append(f"pool {k.name} {tl.t0 + rel} {pool}" + (f" {flag}" if flag else ""))
    path.write_text("\n".join(lines) + "\n")
    return path


# ---- processes ------------------------------------------------------------------------------------------
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Envoy:
    def __init__(self, binary: Path, workdir: Path, name: str, listener: str, concurrency: int,
                 extra_args: list[str]) -> None:
        self.binary, self.name, self.listener = binary, name, listener
        self.dir = workdir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config = self.dir / "envoy.yaml"
        self.log = self.dir / "envoy.log"
        self.admin_file = self.dir / "admin-address.txt"
        self.concurrency = concurrency
        self.extra_args = extra_args
        self.proc: subprocess.Popen[bytes] | None = None
        self.admin = ""
        self.port = 0

    def command(self) -> list[str]:
        return [str(self.binary), "-c", str(self.config), "--concurrency", str(self.concurrency),
                "--use-dynamic-base-id", "--admin-address-path", str(self.admin_file),
                "--drain-time-s", "0", "--parent-shutdown-time-s", "1", *self.extra_args]

    def start(self, config: dict[str, Any], timeout: float = 60.0) -> "Envoy":
        self.config.write_text(f"# generated by tests/load/run.py ({self.name})\n" + to_yaml(config))
        with open(self.log, "wb") as out:
            self.proc = spawn(self.command(), out)
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                raise LoadError(f"{self.name} Envoy exited with code {self.proc.returncode}\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise LoadError(f"{self.name} Envoy not ready after {timeout}s\n{self.log_tail()}")
            try:
                if not self.admin and self.admin_file.exists():
                    text = self.admin_file.read_text().strip()
                    if text:
                        self.admin = "http://" + text
                if self.admin and self.admin_get("/ready")[0] == 200:
                    listeners = json.loads(self.admin_get("/listeners?format=json")[1])
                    for st in listeners.get("listener_statuses", []):
                        if st.get("name") == self.listener:
                            self.port = int(st["local_address"]["socket_address"]["port_value"])
                    if self.port:
                        return self
            except (OSError, ValueError):
                pass
            time.sleep(0.05)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)

    def admin_get(self, path: str, timeout: float = 5.0) -> tuple[int, str]:
        try:
            with _OPENER.open(self.admin + path, timeout=timeout) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def stats(self, regex: str = "") -> dict[str, int]:
        q = "/stats?format=json" + (f"&filter={urllib.parse.quote(regex)}" if regex else "")
        return {s["name"]: s["value"] for s in json.loads(self.admin_get(q)[1]).get("stats", [])
                if "value" in s}

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_text().splitlines()
        return f"---- last lines of {self.log} ----\n" + "\n".join(text[-lines:])


# ---- Envoy configurations -------------------------------------------------------------------------------
def upstream_config(access_log: Path) -> dict[str, Any]:
    fmt = ("%REQ(x-load-class)%|%REQ(x-load-user)%|%REQ(x-gateway-user-id)%|%REQ(x-gateway-provider)%|"
           "%REQ(authorization):6%|%REQ(x-api-key):6%\n")
    hcm = {"@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
                    "HttpConnectionManager",
           "stat_prefix": "upstream", "codec_type": "AUTO",
           "access_log": [{"name": "envoy.access_loggers.file", "typed_config": {
               "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
               "path": str(access_log),
               "log_format": {"text_format_source": {"inline_string": fmt}}}}],
           "route_config": {"name": "upstream", "virtual_hosts": [{
               "name": "upstream", "domains": ["*"],
               "routes": [{"match": {"prefix": "/"}, "direct_response": {
                   "status": 200, "body": {"inline_string": UPSTREAM_BODY}}}]}]},
           # Read the whole request body before answering, so the gateway's connections stay alive.
           "http_filters": [
               {"name": "envoy.filters.http.buffer", "typed_config": {
                   "@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer",
                   "max_request_bytes": 65536}},
               {"name": "envoy.filters.http.router", "typed_config": {
                   "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}
    return {"static_resources": {"listeners": [{
                "name": "upstream",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                                "typed_config": hcm}]}]}]},
            "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}}}


def plugin_config(idp: IdP, api_keys: list[tuple[str, str]]) -> dict[str, Any]:
    return {"providers": [{"name": PROVIDER, "issuer": idp.issuer, "audiences": [AUDIENCE],
                           "jwks": {"uri": idp.jwks_uri, "cluster": "idp",
                                    "refresh_seconds": REFRESH_SECONDS,
                                    "unknown_kid_refresh_seconds": UNKNOWN_KID_REFRESH_SECONDS,
                                    "timeout_ms": FETCH_TIMEOUT_MS}}],
            "api_keys": [{"name": name, "sha256": hashlib.sha256(key.encode()).hexdigest(),
                          "groups": ["load"]} for name, key in api_keys]}


# ---- requests outside the load --------------------------------------------------------------------------
def one_request(port: int, header: str, value: str, klass: str = "sanity",
                user: str = "-") -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"content-type": "application/json", "anthropic-version": "2023-06-01",
                   "x-load-class": klass, "x-load-user": user}
        if header != "-":
            headers[header] = value
        conn.request("POST", "/v1/messages", body=b'{"model":"claude-sonnet-4-5","max_tokens":1,'
                     b'"messages":[{"role":"user","content":"hi"}]}', headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()


def error_message(body: str) -> str:
    try:
        return json.loads(body)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return "?"


# ---- analysis helpers -----------------------------------------------------------------------------------
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
        self.upstream = Envoy(envoy_bin, self.workdir, "upstream", "upstream", 1,
                              ["--log-level", "warn", "--file-flush-interval-msec", "200"])
        self.upstream.start(upstream_config(self.access_log))
        self.gateway = Envoy(envoy_bin, self.workdir, "gateway", "gateway", WORKERS,
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
        self.gateway.start(config)
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
            status, body = one_request(self.gateway.port, header, value)
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
    def analyse(self) -> None:
        tl, ks = self.tl, self.ks
        # client side, per class
        self.table: list[dict[str, Any]] = []
        client_by_message: dict[str, int] = {}
        client_2xx = 0
        for k in ks:
            r = self.results[k.name]
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
            self.table.append({"class": k, "sent": r["sent"], "statuses": statuses, "messages": messages,
                               "slow": slow, "inflight": r.get("inflight_second", -1),
                               "per_second": per_second, "first": first_sec, "last": last_sec,
                               "answered": sum(statuses.values())})

        # upstream side
        upstream: dict[str, int] = {}
        identity_problems: list[str] = []
        known = {k.name for k in ks}
        for line in self.upstream_lines:
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
        self.upstream_counts = upstream
        for row in self.table:
            row["upstream"] = upstream.get(row["class"].name, 0)

        # 1. bad classes
        for row in self.table:
            k = row["class"]
            if k.valid:
                continue
            wrong = {m: n for m, n in row["messages"].items() if m != f"401 {k.expect}"}
            s2xx = sum(n for s, n in row["statuses"].items() if 200 <= s < 300)
            self.check(f"{k.name}: none upstream", row["upstream"] == 0 and s2xx == 0,
                       f"upstream {row['upstream']}, client 2xx {s2xx}" +
                       (self._seconds(row, lambda lab: lab.startswith("2")) if s2xx else ""))
            self.check(f"{k.name}: all 401 {k.expect!r}", not wrong and row["answered"] > 0,
                       f"{row['answered']} answered; other answers: {wrong or 'none'}" +
                       (self._seconds(row, lambda lab: lab != f"401 {k.expect}") if wrong else ""))
        # 2. valid classes
        for row in self.table:
            k = row["class"]
            if not k.valid:
                continue
            s2xx = sum(n for s, n in row["statuses"].items() if 200 <= s < 300)
            self.check(f"{k.name}: client 2xx == upstream", s2xx == row["upstream"] and s2xx > 0,
                       f"client 2xx {s2xx}, upstream {row['upstream']}")
            non2xx = {m: n for m, n in row["messages"].items()}
            self.check(f"{k.name}: no 401, no 503, nothing but 2xx", not non2xx,
                       "none" if not non2xx else f"{non2xx}" + self._seconds(row, lambda lab: not lab.startswith("2")))
        # 3. identity
        self.check("upstream: identity headers right, credentials removed", not identity_problems,
                   f"{len(self.upstream_lines)} arrivals checked" if not identity_problems
                   else "; ".join(identity_problems[:10]))
        self.check("upstream: access log complete",
                   len(self.upstream_lines) == self.upstream_total,
                   f"{len(self.upstream_lines)} lines, upstream counted {self.upstream_total} requests")
        # 4. wrk
        e = self.wrk_summary["errors"]
        sent = sum(row["sent"] for row in self.table)
        answered = sum(row["answered"] for row in self.table)
        slow = [f"{row['class'].name} sent at {a}s answered at {b}s: {n}x{lab}"
                for row in self.table for a, b, lab, n in row["slow"]]
        inflight = [f"{row['class'].name} (sent at {row['inflight']}s)" for row in self.table if row["inflight"] >= 0]
        if self.after is not None:
            received = (self.after["stats"].get("http.gateway.downstream_rq_total", 0)
                        - self.before["stats"].get("http.gateway.downstream_rq_total", 0))
            self.check("gateway: every request it received was answered to the client", received == answered,
                       f"Envoy received {received} requests during the load, the client got {answered} answers "
                       f"(wrk's request() ran {sent} times: it runs again for a request whose connection "
                       f"closed before it was written)")
        self.check(f"client: every request answered within {WRK_TIMEOUT_S}s, no socket error",
                   e["timeout"] == 0 and e["connect"] == 0 and e["read"] == 0 and e["write"] == 0
                   and not inflight,
                   f"answered {answered}; wrk errors connect {e['connect']} read {e['read']} "
                   f"write {e['write']} timeout (answer later than {WRK_TIMEOUT_S}s) {e['timeout']}"
                   + (f"; unanswered when wrk stopped: {', '.join(inflight)}" if inflight else "")
                   + (f"; answered 2 or more clock seconds late: {'; '.join(slow[:12])}" if slow else ""))

        # 5. the filter's counters
        if self.after is None:
            self.check("gateway Envoy alive at the end", False, "it exited during the load")
            return
        b, a = self.before["stats"], self.after["stats"]

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
        self.metric_moved, self.metric_expected = moved, expected
        self.check("metrics: gateway_auth counters == client counts", moved == expected and not unmapped,
                   "equal: " + ", ".join(f"{k} {v}" for k, v in sorted(moved.items())) if moved == expected
                   else f"counters moved {dict(sorted(moved.items()))}; client saw {dict(sorted(expected.items()))}"
                        + (f"; unmapped messages {unmapped}" if unmapped else ""))

        # 6. JWKS fetches
        fetch_ok = delta(f"{prefix}jwks.{PROVIDER}.fetch_ok")
        fetch_failed = delta(f"{prefix}jwks.{PROVIDER}.fetch_failed")
        t_before, t_after = self.before["time"], self.after["time"]
        gets = [r for r in self.after["idp_requests"]
                if r["method"] == "GET" and r["path"].endswith("/jwks.json") and t_before <= r["time"] <= t_after]
        self.jwks_gets = [(r["time"] - self.mono_t0, self.mode_at(r["time"])) for r in gets]
        answered_ok = sum(1 for _, mode in self.jwks_gets if mode == "normal")
        while_down = [round(t, 1) for t, mode in self.jwks_gets if mode == "down"]
        self.check("outage: the IdP received no JWKS request while down", not while_down,
                   "none" if not while_down else f"at {while_down}")
        answered_500 = sum(1 for _, mode in self.jwks_gets if mode == "error500")
        self.fetch_stats = {"fetch_ok": fetch_ok, "fetch_failed": fetch_failed, "idp_gets": len(gets),
                            "idp_200": answered_ok, "idp_500": answered_500, "idp_total": self.idp.jwks_fetches}
        self.check("metrics: jwks fetch_ok == JWKS answered 200", abs(fetch_ok - answered_ok) <= 1,
                   f"fetch_ok {fetch_ok}, IdP answered 200 {answered_ok} times (and 500 {answered_500} times)")
        keeping = len(re.findall(r"key fetch failed provider=\S+ .*keeping=last-good-keys", self.gateway.log_text()))
        self.check("outage seen and survived", fetch_failed > 0 and keeping > 0,
                   f"fetch_failed +{fetch_failed}; {keeping} log line(s) 'key fetch failed ... "
                   f"keeping=last-good-keys'")
        bound = math.ceil(SECONDS / REFRESH_SECONDS) + math.ceil(SECONDS / UNKNOWN_KID_REFRESH_SECONDS) + 2
        self.fetch_bound = bound
        self.check("JWKS fetches within README's bound", len(gets) <= bound,
                   f"{len(gets)} JWKS requests in {SECONDS}s under a steady unknown-kid flood; README: one per "
                   f"refresh_seconds ({REFRESH_SECONDS}) plus at most one unknown-kid refresh per "
                   f"unknown_kid_refresh_seconds ({UNKNOWN_KID_REFRESH_SECONDS}) per provider: <= {bound}")
        after_outage = [t for t, mode in self.jwks_gets if mode == "normal" and tl.outage_end <= t < tl.drop - 0.5]
        after_drop = [t for t, mode in self.jwks_gets
                      if mode == "normal" and tl.drop - 0.5 <= t <= tl.retired - REFRESH_SECONDS - 1]
        self.check("timeline preconditions",
                   bool(after_outage) and (bool(after_drop) or "retired" in SKIP),
                   f"JWKS fetched after the outage, before the drop at {[round(t, 1) for t in after_outage[:3]]}; "
                   f"after the drop, >= {REFRESH_SECONDS + 1}s before retired started, at "
                   f"{[round(t, 1) for t in after_drop[:3]]}")

        # 7. memory
        half = [s for s in self.samples if s["t"] >= SECONDS / 2 and s["t"] <= SECONDS + 1]
        alloc_slope = trend([(s["t"], s["allocated"]) for s in half if s["allocated"] is not None])
        wasm_slope = trend([(s["t"], s["wasm_size"]) for s in half]) if all(s["wasm_count"] for s in half) \
            else float("nan")
        rss_slope = trend([(s["t"], s["rss"]) for s in half if s["rss"] is not None])
        self.slopes = {"allocated": alloc_slope * 60, "wasm": wasm_slope * 60, "rss": rss_slope * 60}
        rate = answered / SECONDS
        per_req = MEMORY_BOUND_MIB_PER_MIN * (1 << 20) / 60 / max(rate, 1)
        self.check("memory: /memory allocated flat over the second half",
                   not math.isnan(alloc_slope) and mib(alloc_slope * 60) < MEMORY_BOUND_MIB_PER_MIN,
                   f"trend {mib(alloc_slope * 60):+.3f} MiB/min over {len(half)} samples, bound "
                   f"{MEMORY_BOUND_MIB_PER_MIN} MiB/min (= a leak of {per_req:.0f} B/request at {rate:.0f} req/s)")
        if math.isnan(wasm_slope):
            self.check("memory: Wasm linear memory flat over the second half", True,
                       "not measured: V8's memory layout not recognised in /proc/<pid>/smaps")
        else:
            self.check("memory: Wasm linear memory flat over the second half",
                       mib(wasm_slope * 60) < MEMORY_BOUND_MIB_PER_MIN,
                       f"trend {mib(wasm_slope * 60):+.3f} MiB/min ({half[0]['wasm_count']} instances, "
                       f"{mib(half[0]['wasm_size']):.2f} -> {mib(half[-1]['wasm_size']):.2f} MiB)")

        # 8. VM health
        text = self.gateway.log_text()
        bad_lines = [ln for ln in text.splitlines()
                     if re.search(r"\]\[(error|critical)\]\[wasm\]", ln)
                     or re.search(r"panic|unreachable|RuntimeError|Function: \S+ failed|\bFailed\b", ln)]
        self.check("VMs: no wasm failure in Envoy's log", not bad_lines,
                   "none" if not bad_lines else " / ".join(ln[-200:] for ln in bad_lines[:5]))
        runtime = {n.rsplit(".", 1)[1]: (b.get(n, 0), a.get(n, 0)) for n in a
                   if n.startswith("wasm.envoy.wasm.runtime.v8.")}
        self.check("VMs: none created or lost during the load",
                   all(x == y for x, y in runtime.values()) and self.gateway.alive(),
                   ", ".join(f"v8.{k} {x} -> {y}" for k, (x, y) in sorted(runtime.items())) +
                   f"; Envoy pid {self.gateway.proc.pid} {'running' if self.gateway.alive() else 'gone'}")
        workers = {m.group(1): delta(n) for n in a
                   if (m := re.match(r"listener\.127\.0\.0\.1_\d+\.(worker_\d+)\.downstream_cx_total$", n))}
        self.workers = workers
        self.check("both workers served connections", len([w for w in workers.values() if w > 0]) >= WORKERS,
                   ", ".join(f"{w} {n}" for w, n in sorted(workers.items())))

    def mode_at(self, mono: float) -> str:
        mode = "normal"
        for t, m in self.mode_log:
            if t <= mono:
                mode = m
        return mode

    @staticmethod
    def _seconds(row: dict[str, Any], pick: Callable[[str], bool]) -> str:
        """Where in the timeline the picked answers fell: per second, counts by label."""
        secs = sorted(s for s, labels in row["per_second"].items() if any(pick(lab) for lab in labels))
        if not secs:
            return ""
        return f" (in seconds {secs[0]}..{secs[-1]}: " + ", ".join(
            f"{s}s: " + "+".join(f"{n}x{lab}" for lab, n in row["per_second"][s].items() if pick(lab))
            for s in secs[:8]) + (" ..." if len(secs) > 8 else "") + ")"

    # -- report
    def report(self) -> str:
        ok = all(c.ok for c in self.checks)
        lines: list[str] = []
        add = lines.append
        now = dt.datetime.now(dt.timezone.utc)
        try:
            cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                        if ln.startswith("model name")), platform.processor())
        except OSError:
            cpu = platform.processor()
        load1 = os.getloadavg()
        envoy_version = subprocess.run([str(self.envoy_bin), "--version"], capture_output=True,
                                       text=True).stdout.strip().split("version:")[-1].strip()
        cmd_env = " ".join(f"{k}={os.environ[k]}" for k in ("LOAD_SECONDS", "LOAD_RPS", "LOAD_USERS", "LOAD_SKIP",
                                                             "LOAD_ROTATION", "LOAD_WASM")
                           if os.environ.get(k))
        add("# Load test results\n")
        add("Written by `tests/load/run.py` (`make loadtest`); each run replaces this file.\n")
        add(f"- **Verdict: {'PASS' if ok else 'FAIL'}** ({sum(c.ok for c in self.checks)}/{len(self.checks)} checks)")
        add(f"- Date: {now:%Y-%m-%d %H:%M} UTC; duration {self.ended - self.started:.0f}s in total, "
            f"{SECONDS}s of load")
        add(f"- Machine: {os.cpu_count()} cores, {cpu}, Linux {platform.release()}; load average at the end "
            f"{load1[0]:.2f} (other work shares this machine)")
        add(f"- Command: `{(cmd_env + ' ') if cmd_env else ''}make loadtest` (`.venv/bin/python tests/load/run.py`)")
        try:
            shown = self.wasm_source.relative_to(REPO)
        except ValueError:
            shown = self.wasm_source
        add(f"- Envoy {envoy_version} (`{self.envoy_bin}`), `--concurrency {WORKERS}`; filter `{shown}` "
            f"({self.wasm.stat().st_size:,} bytes, sha256 `{self.wasm_sha[:16]}…`, built "
            f"{self.wasm_time:%Y-%m-%d %H:%M:%S} UTC), copied into the run directory at the start; "
            f"repository at `{self.git_rev}` then")
        add(f"- Load: `{' '.join(shlex.quote(c) for c in self.wrk_cmd[:-1])} http://127.0.0.1:<port>/v1/messages` "
            f"with `LOAD_PLAN=<plan>`; {USERS} users; target {RPS} req/s in total; "
            f"provider: refresh_seconds {REFRESH_SECONDS}, unknown_kid_refresh_seconds "
            f"{UNKNOWN_KID_REFRESH_SECONDS}, timeout_ms {FETCH_TIMEOUT_MS}")
        add("")
        add("## Timeline (seconds from the start of the load)\n")
        add("| t | event |\n|---|---|")
        add("| 0.0 | load starts; JWKS: rsa-1, ec-1 |")
        for t, what in self.events:
            add(f"| {f'{int(t)}.x' if round(t % 1, 3) == 0.999 else f'{t:.2f}'} | {what} |")
        add(f"| {SECONDS} | load stops |")
        add("")
        add("## Per class\n")
        add("| class | expected | sent | answered | 2xx | 401 | 503 | other | upstream | req/s | reasons (non-2xx) |")
        add("|---|---|---|---|---|---|---|---|---|---|---|")
        for row in self.table:
            k, st = row["class"], row["statuses"]
            s2 = sum(n for s, n in st.items() if 200 <= s < 300)
            other = sum(n for s, n in st.items() if not (200 <= s < 300) and s not in (401, 503))
            span = max(1, (k.stop - k.start))
            reasons = "; ".join(f"{m} ×{n}" for m, n in sorted(row["messages"].items(), key=lambda x: -x[1]))
            add(f"| {k.name} | {'2xx' if k.valid else '401 ' + k.expect} | {row['sent']} | {row['answered']} | "
                f"{s2} | {st.get(401, 0)} | {st.get(503, 0)} | {other} | {row['upstream']} | "
                f"{row['answered'] / span:.1f} | {reasons or '—'} |")
        tot_sent = sum(r["sent"] for r in self.table)
        tot_ans = sum(r["answered"] for r in self.table)
        tot_up = sum(r["upstream"] for r in self.table)
        add(f"| **all** | | {tot_sent} | {tot_ans} | | | | | {tot_up} | {tot_ans / SECONDS:.1f} | |")
        lat = self.wrk_summary["latency_us"]
        add("\n*sent*: calls of load.lua's request(); wrk calls it again for a request whose connection closed "
            "before it was written, so it can exceed *answered* by a few. *upstream*: arrivals in the upstream "
            "Envoy's access log. *req/s*: answered per second of the class's active time.")
        add(f"\nLatency (all classes, wrk): p50 {lat['p50'] / 1000:.2f} ms, p90 {lat['p90'] / 1000:.2f} ms, "
            f"p99 {lat['p99'] / 1000:.2f} ms, max {lat['max'] / 1000:.1f} ms. "
            f"Sanity requests before the load reached the upstream too (class `sanity`: "
            f"{self.upstream_counts.get('sanity', 0)}).")
        if hasattr(self, "workers"):
            add("Connections per gateway worker during the load: "
                + ", ".join(f"{w} {n}" for w, n in sorted(self.workers.items())) + ".")
        add("")
        if hasattr(self, "metric_moved"):
            add("## Filter counters (`wasmcustom.gateway_auth.*`, change during the load)\n")
            add("| counter | change | expected from the client's view |\n|---|---|---|")
            for name in sorted(set(self.metric_moved) | set(self.metric_expected)):
                add(f"| {name} | {self.metric_moved.get(name, 0)} | {self.metric_expected.get(name, 0)} |")
            fs = self.fetch_stats
            add(f"| jwks.{PROVIDER}.fetch_ok | {fs['fetch_ok']} | IdP answered 200: {fs['idp_200']} |")
            add(f"| jwks.{PROVIDER}.fetch_failed | {fs['fetch_failed']} | IdP answered 500: {fs['idp_500']}, "
                f"plus refused connections while down |")
            add("")
            add("## JWKS fetches\n")
            add(f"The IdP stand-in received {fs['idp_gets']} JWKS requests during the load "
                f"({fs['idp_total']} since it started, including start-up and sanity requests); bound "
                f"checked: {self.fetch_bound}.\n")
            per_window: dict[int, int] = {}
            for t, _ in self.jwks_gets:
                w = max(-10, int(t // 10) * 10)
                per_window[w] = per_window.get(w, 0) + 1
            add("| seconds | " + " | ".join("before 0" if w < 0 else f"{w}–{w + 10}" for w in sorted(per_window))
                + " |")
            add("|---|" + "---|" * len(per_window))
            add("| JWKS requests | " + " | ".join(str(per_window[w]) for w in sorted(per_window)) + " |")
            add("")
            add("Times (s): " + ", ".join(f"{t:.1f}{'' if m == 'normal' else ' (' + m + ')'}"
                                          for t, m in self.jwks_gets))
            add("")
        if self.samples:
            add("## Memory (gateway Envoy)\n")
            sl = self.slopes
            add(f"Trend over the second half ({SECONDS / 2:.0f}–{SECONDS}s), least squares: `/memory` allocated "
                f"**{mib(sl['allocated']):+.3f} MiB/min** (bound {MEMORY_BOUND_MIB_PER_MIN}); Wasm linear "
                f"memory {mib(sl['wasm']):+.3f} MiB/min; RSS {mib(sl['rss']):+.3f} MiB/min (not bounded: "
                f"includes V8's own heap and code).\n")
            add("| t (s) | allocated MiB | heap_size MiB | Wasm linear memory MiB (instances, resident) | RSS MiB |")
            add("|---|---|---|---|---|")
            for s in self.samples:
                add(f"| {s['t']:.0f} | {mib(s['allocated'] or 0):.2f} | {mib(s['heap_size'] or 0):.2f} | "
                    f"{mib(s['wasm_size']):.2f} ({s['wasm_count']}, {mib(s['wasm_rss']):.2f}) | "
                    f"{mib(s['rss'] or 0):.1f} |")
            add("")
        add("## Checks\n")
        add("| check | result | detail |\n|---|---|---|")
        for c in self.checks:
            add(f"| {c.name} | {'ok' if c.ok else '**FAILED**'} | {c.detail.replace('|', '/')} |")
        add("")
        return "\n".join(lines) + "\n"

    def print_summary(self) -> None:
        print()
        print(f"{'class':<13} {'expected':<32} {'sent':>6} {'2xx':>6} {'401':>6} {'503':>5} {'other':>5} "
              f"{'upstream':>8}")
        for row in self.table:
            k, st = row["class"], row["statuses"]
            s2 = sum(n for s, n in st.items() if 200 <= s < 300)
            other = sum(n for s, n in st.items() if not (200 <= s < 300) and s not in (401, 503))
            exp = "2xx" if k.valid else "401 " + k.expect
            print(f"{k.name:<13} {exp:<32} {row['sent']:>6} {s2:>6} {st.get(401, 0):>6} {st.get(503, 0):>5} "
                  f"{other:>5} {row['upstream']:>8}")
        if self.samples and hasattr(self, "slopes"):
            al = [s["allocated"] or 0 for s in self.samples]
            print(f"\nmemory: allocated {mib(min(al)):.2f}..{mib(max(al)):.2f} MiB over {len(al)} samples; "
                  f"trend (2nd half) {mib(self.slopes['allocated']):+.3f} MiB/min; Wasm linear memory "
                  f"{mib(self.slopes['wasm']):+.3f} MiB/min; RSS {mib(self.slopes['rss']):+.3f} MiB/min")
        if hasattr(self, "fetch_stats"):
            fs = self.fetch_stats
            print(f"JWKS: {fs['idp_gets']} requests during the load (200: {fs['idp_200']}, 500: {fs['idp_500']}); "
                  f"filter fetch_ok +{fs['fetch_ok']}, fetch_failed +{fs['fetch_failed']}")
        print(f"duration: {self.ended - self.started:.0f}s in total, {SECONDS}s of load\n")
        for c in self.checks:
            print(f"  [{'ok' if c.ok else 'FAILED'}] {c.name}: {c.detail}")
        print()

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


def _raise_interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    # Installed explicitly: a shell starts background jobs with SIGINT ignored, which Python keeps.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_interrupt)
    run = Run()
    keep = KEEP
    try:
        run.setup()
        run.wait_for_keys()
        run.run_load()
        run.parse_wrk()
        run.read_upstream()
        run.analyse()
        ok = all(c.ok for c in run.checks)
        run.print_summary()
        report = run.report()
        (run.workdir / "RESULTS.md").write_text(report)
        if WRITE:
            RESULTS_MD.write_text(report)
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
    except (LoadError, HarnessError) as e:
        keep = True
        log(f"loadtest: error: {e}")
        return 1
    finally:
        run.cleanup(keep)


if __name__ == "__main__":
    sys.exit(main())
