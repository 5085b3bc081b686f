#!/usr/bin/env python3
"""`make bench`: throughput and latency of this filter against plain Envoy and Envoy's native jwt_authn.

One command, one run, one Envoy binary. For every measurement a fresh Envoy (``--concurrency 1``,
pinned to one core) serves a front listener with the variant's auth filter and, as its upstream, a
second listener of the same Envoy that reads the request and answers 200 at once (``buffer`` +
``direct_response``; bench/envoy.yaml.in). ``wrk`` (pinned to
the other core) sends POST /v1/messages with a bearer token per request taken from a pre-minted pool
(bench/tokens.lua). Variants are measured in interleaved rounds; the report gives medians with
min/max over the rounds, ratios to "no auth" and to native jwt_authn, and writes the results block
of BENCHMARKS.md.

Variants (each RS256 and ES256 where it applies):
  no-auth                   plain Envoy proxy
  native                    envoy.filters.http.jwt_authn without cache, every token different
  native-cache              jwt_authn with jwt_cache_config, a few hundred users' tokens reused
  filter-cold               this filter, every token different (a pool of tens of thousands)
  filter-warm               this filter, a few hundred users' tokens reused
  filter-flood              this filter, forged tokens (known kid, wrong signature, each different)
  filter-flood-es384        the same with ES384 (a P-384 key in the JWKS): the cost of the costliest
                            forgery, to compare with filter-flood-rs256
  filter-flood-rs256-nokid  forged RS256 tokens without kid against a JWKS of 8 RSA keys (the real
                            one first): a kid-less token is tried against at most 2 keys

Sanity checks (never timing): before each measurement one valid and one forged request must get the
expected status (200/401, both 200 without auth); afterwards every response of a valid-token run
must be 2xx and every response of a flood 401, with no socket errors. A failed check stops the run
(exit 1) without touching BENCHMARKS.md.

Settings (environment): BENCH_SECONDS (10), BENCH_ROUNDS (3), BENCH_WARMUP (2, seconds per
measurement), BENCH_CONNECTIONS (16), BENCH_COLD_TOKENS (100000), BENCH_USERS (300), BENCH_VARIANTS
(comma-separated ids or prefixes; default all), BENCH_WRITE (unset: refresh the results block of
BENCHMARKS.md after a full run, i.e. all variants and at least 3 rounds; 1: always; 0: never),
BENCH_KEEP (1: keep the run directory), ENVOY_BIN, WRK_BIN.

Python stdlib plus `cryptography`. Every child process is stopped by its PID on exit, error or Ctrl-C.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import http.client
import json
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import trim_exports  # noqa: E402
from procs import free_port, spawn, stop, stop_all, wasm_memory  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
WASM = REPO / "dist" / "gateway_filter.wasm"
# `make bench` builds it: a proxy-wasm filter that does nothing, for the cost of any Wasm filter.
NOOP_WASM = BENCH / "noop" / "target" / "wasm32-wasip1" / "release" / "noop_filter.wasm"
TEMPLATE = BENCH / "envoy.yaml.in"
LUA = BENCH / "tokens.lua"
BENCHMARKS_MD = REPO / "BENCHMARKS.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"

ISSUER = "https://idp.bench.example"
AUDIENCE = "claude-gateway"
KID = {"RS256": "bench-rs256", "ES256": "bench-es256", "ES384": "bench-es384"}
# RSA keys in the JWKS of filter-flood-rs256-nokid: the real one and decoys.
NOKID_RSA_KEYS = 8
TOKEN_LIFETIME_S = 4 * 3600            # far longer than a run (the brief asks for at least 1 hour)
UPSTREAM_BODY = ('{"id":"msg_bench","type":"message","role":"assistant","model":"bench",'
                 '"content":[{"type":"text","text":"ok"}],"stop_reason":"end_turn",'
                 '"usage":{"input_tokens":1,"output_tokens":1}}')
NATIVE_CACHE_SIZE = 1000
# The identity headers the filter sets by default (README), from the claims the tokens carry; the
# filter also sets x-gateway-provider, which jwt_authn has no claim for.
IDENTITY_CLAIMS = [("x-gateway-user-id", "sub"), ("x-gateway-user-email", "email"),
                   ("x-gateway-user-name", "name"), ("x-gateway-user-groups", "groups")]
# What the wasm-headers baseline does to each request: what this filter does on a cache hit for a
# warm-pool user (the credential removed, the identity headers set), values of the same lengths.
HEADER_EDITS = "\n".join(["-authorization", "x-gateway-user-id: user-000042",
                          "x-gateway-user-email: user-000042@bench.example",
                          "x-gateway-user-name: Bench User user 42",
                          "x-gateway-user-groups: eng,ml-platform", "x-gateway-provider: bench"])


def env_int(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        sys.exit(f"bench: {name}={raw!r} is not an integer")
    if value < minimum:
        sys.exit(f"bench: {name}={value} is below {minimum}")
    return value


SECONDS = env_int("BENCH_SECONDS", 10)
ROUNDS = env_int("BENCH_ROUNDS", 3)
WARMUP = env_int("BENCH_WARMUP", 2, minimum=0)
CONNECTIONS = env_int("BENCH_CONNECTIONS", 16)
COLD_TOKENS = env_int("BENCH_COLD_TOKENS", 100000, minimum=100)
USERS = env_int("BENCH_USERS", 300)
WRITE = os.environ.get("BENCH_WRITE", "").strip()   # "1" always, "0" never, unset: full runs only
KEEP = os.environ.get("BENCH_KEEP", "0") == "1"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---- tokens -------------------------------------------------------------------------------------------
def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64u_uint(n: int, size: int) -> str:
    return b64u(n.to_bytes(size, "big"))


_SIGNER: dict[str, Any] = {}


def _init_signer(rsa_pem: bytes, ec_pem: bytes, ec384_pem: bytes) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    _SIGNER["RS256"] = load_pem_private_key(rsa_pem, None)
    _SIGNER["ES256"] = load_pem_private_key(ec_pem, None)
    _SIGNER["ES384"] = load_pem_private_key(ec384_pem, None)


def _claims(prefix: str, i: int, now: int) -> dict[str, Any]:
    """Claims like an ID token's: a user id, e-mail, name and groups (so the filter sets all its
    identity headers), a distinct jti."""
    return {"iss": ISSUER, "aud": AUDIENCE, "sub": f"{prefix}-{i:06d}",
            "email": f"{prefix}-{i:06d}@bench.example", "name": f"Bench User {prefix} {i}",
            "groups": ["eng", "ml-platform"], "iat": now - 60, "nbf": now - 60,
            "exp": now + TOKEN_LIFETIME_S, "jti": secrets.token_hex(16)}


def _signing_input(alg: str, claims: dict[str, Any], kid: bool = True) -> str:
    header = {"alg": alg, "typ": "JWT", "kid": KID[alg]} if kid else {"alg": alg, "typ": "JWT"}
    return (b64u(json.dumps(header, separators=(",", ":")).encode()) + "." +
            b64u(json.dumps(claims, separators=(",", ":")).encode()))


def _sign(alg: str, signing_input: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
    key = _SIGNER[alg]
    if alg == "RS256":
        return key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    hash_, size = (hashes.SHA384(), 48) if alg == "ES384" else (hashes.SHA256(), 32)
    r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hash_)))
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def _mint_chunk(args: tuple[str, str, int, int, int, bool]) -> list[str]:
    alg, prefix, start, count, now, kid = args
    out = []
    for i in range(start, start + count):
        si = _signing_input(alg, _claims(prefix, i, now), kid)
        out.append(si + "." + b64u(_sign(alg, si.encode())))
    return out


def forge(alg: str, prefix: str, start: int, count: int, now: int, modulus: int,
          kid: bool = True) -> list[str]:
    """Well-formed tokens with the real kid, iss and aud and a signature that is not the key's but
    is in range (RSA: 1 < s < n; ECDSA: 0 < r, s < order), so a verifier has to do the whole
    computation before it can say no. Each token is different."""
    out = []
    for i in range(start, start + count):
        si = _signing_input(alg, _claims(prefix, i, now), kid)
        if alg == "RS256":
            sig = (2 + secrets.randbelow(modulus - 3)).to_bytes(256, "big")
        else:
            size = 48 if alg == "ES384" else 32
            sig = b"".join((1 + secrets.randbelow(modulus - 1)).to_bytes(size, "big") for _ in range(2))
        out.append(si + "." + b64u(sig))
    return out


@dataclass
class Keys:
    jwks: str
    rsa_pem: bytes
    ec_pem: bytes
    rsa_n: int
    ec_order: int
    ec384_pem: bytes
    ec384_order: int
    jwks_nokid: str     # the real RSA key first, then NOKID_RSA_KEYS - 1 decoys


def make_keys() -> Keys:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    rn = rsa_key.public_key().public_numbers()
    en = ec_key.public_key().public_numbers()
    jwks = {"keys": [
        {"kty": "RSA", "kid": KID["RS256"], "use": "sig", "alg": "RS256",
         "n": b64u_uint(rn.n, 256), "e": b64u_uint(rn.e, 3)},
        {"kty": "EC", "kid": KID["ES256"], "use": "sig", "alg": "ES256", "crv": "P-256",
         "x": b64u_uint(en.x, 32), "y": b64u_uint(en.y, 32)}]}
    pem = dict(encoding=serialization.Encoding.PEM, format=serialization.PrivateFormat.PKCS8,
               encryption_algorithm=serialization.NoEncryption())
    p256_order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    ec384_key = ec.generate_private_key(ec.SECP384R1())
    e384 = ec384_key.public_key().public_numbers()
    jwks["keys"].append({"kty": "EC", "kid": KID["ES384"], "use": "sig", "alg": "ES384", "crv": "P-384",
                         "x": b64u_uint(e384.x, 48), "y": b64u_uint(e384.y, 48)})
    p384_order = int("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973", 16)
    decoys = [rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key().public_numbers()
              for _ in range(NOKID_RSA_KEYS - 1)]
    jwks_nokid = {"keys": [jwks["keys"][0]] + [
        {"kty": "RSA", "kid": f"bench-rs256-decoy-{i}", "use": "sig", "alg": "RS256",
         "n": b64u_uint(d.n, 256), "e": b64u_uint(d.e, 3)} for i, d in enumerate(decoys)]}
    return Keys(json.dumps(jwks, separators=(",", ":")), rsa_key.private_bytes(**pem),
                ec_key.private_bytes(**pem), rn.n, p256_order, ec384_key.private_bytes(**pem),
                p384_order, json.dumps(jwks_nokid, separators=(",", ":")))


def mint_pools(keys: Keys, workdir: Path) -> dict[str, Path]:
    """Token files, one token per line: cold-<alg> (COLD_TOKENS distinct users), warm-<alg> (USERS
    users, one token each), forged-<alg> (COLD_TOKENS forgeries), sanity-<alg> (one valid token used
    only by the sanity check) and sanity-forged-<alg>."""
    now = int(time.time())
    jobs: dict[str, list[tuple[str, str, int, int, int]]] = {}
    chunk = 2000
    for alg in ("RS256", "ES256"):
        a = alg.lower()
        jobs[f"cold-{a}"] = [(alg, "cold", s, min(chunk, COLD_TOKENS - s), now, True)
                             for s in range(0, COLD_TOKENS, chunk)]
        jobs[f"warm-{a}"] = [(alg, "user", 0, USERS, now, True)]
        jobs[f"sanity-{a}"] = [(alg, "sanity", 0, 1, now, True)]
    jobs["sanity-es384"] = [("ES384", "sanity", 0, 1, now, True)]
    jobs["sanity-rs256-nokid"] = [("RS256", "sanity", 0, 1, now, False)]
    workers = max(1, min(len(os.sched_getaffinity(0)), 4))
    files: dict[str, Path] = {}
    with ProcessPoolExecutor(max_workers=workers, initializer=_init_signer,
                             initargs=(keys.rsa_pem, keys.ec_pem, keys.ec384_pem)) as pool:
        futures = {name: [pool.submit(_mint_chunk, j) for j in js] for name, js in jobs.items()}
        for name, futs in futures.items():
            tokens = [t for f in futs for t in f.result()]
            files[name] = workdir / f"tokens-{name}.txt"
            files[name].write_text("\n".join(tokens) + "\n")
    for alg, modulus, a, kid in (("RS256", keys.rsa_n, "rs256", True), ("ES256", keys.ec_order, "es256", True),
                                 ("ES384", keys.ec384_order, "es384", True),
                                 ("RS256", keys.rsa_n, "rs256-nokid", False)):
        for name, prefix, count in ((f"forged-{a}", "forged", COLD_TOKENS),
                                    (f"sanity-forged-{a}", "sanity-forged", 1)):
            files[name] = workdir / f"tokens-{name}.txt"
            files[name].write_text("\n".join(forge(alg, prefix, 0, count, now, modulus, kid)) + "\n")
    return files


# ---- variants -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Variant:
    id: str
    kind: str             # none | noop-sdk | noop | noop-headers | native | native-cache | native-headers | filter
    alg: str              # RS256 | ES256 | "" (no auth)
    pool: str             # token file key
    label: str
    expect: int           # status of every measured response
    sanity: tuple[int, int]   # (valid, forged) expected statuses
    compare_native: str   # id of the native variant to compare with, "" for none
    tokens: str = ""      # suffix of its sanity-<tokens> pools, when not the alg's
    jwks: str = "jwks"    # the Keys field with its JWKS


def all_variants() -> list[Variant]:
    out = [Variant("no-auth", "none", "", "warm-rs256", "no auth filter (plain proxy)", 200,
                   (200, 200), ""),
           Variant("wasm-noop-sdk", "noop-sdk", "", "warm-rs256",
                   "a Wasm filter that does nothing, every SDK callback exported", 200, (200, 200), ""),
           Variant("wasm-noop", "noop", "", "warm-rs256",
                   "the same with the callbacks it leaves at their default not exported "
                   "(tools/trim_exports.py, as `make build` does for this filter)", 200, (200, 200), ""),
           Variant("wasm-headers", "noop-headers", "", "warm-rs256",
                   "the same module, trimmed, making the host calls of this filter's cache hit and "
                   "nothing else: reads the request headers, removes `authorization`, sets the five "
                   "identity headers to fixed values", 200, (200, 200), "")]
    for alg in ("RS256", "ES256"):
        a = alg.lower()
        out += [
            Variant(f"native-{a}", "native", alg, f"cold-{a}",
                    "native jwt_authn, no cache, distinct tokens", 200, (200, 401), ""),
            Variant(f"native-cache-{a}", "native-cache", alg, f"warm-{a}",
                    f"native jwt_authn, jwt_cache_size {NATIVE_CACHE_SIZE}, {USERS} users", 200,
                    (200, 401), ""),
            Variant(f"native-headers-{a}", "native-headers", alg, f"warm-{a}",
                    "the same, and claim_to_headers writing the identity headers this filter "
                    "writes (the same job)", 200, (200, 401), ""),
            Variant(f"filter-cold-{a}", "filter", alg, f"cold-{a}",
                    "this filter, cold: every token distinct", 200, (200, 401), f"native-{a}"),
            Variant(f"filter-warm-{a}", "filter", alg, f"warm-{a}",
                    f"this filter, warm: {USERS} users' tokens reused", 200, (200, 401),
                    f"native-cache-{a}"),
        ]
    for alg in ("RS256", "ES256"):
        a = alg.lower()
        out.append(Variant(f"filter-flood-{a}", "filter", alg, f"forged-{a}",
                           "this filter, forged-token flood (known kid, bad signature)", 401,
                           (200, 401), ""))
    out += [Variant("filter-flood-es384", "filter", "ES384", "forged-es384",
                    "this filter, forged-token flood, ES384 (known kid, bad signature)", 401, (200, 401), ""),
            Variant("filter-flood-rs256-nokid", "filter", "RS256", "forged-rs256-nokid",
                    f"this filter, forged-token flood, RS256 without kid, {NOKID_RSA_KEYS} RSA keys in the JWKS",
                    401, (200, 401), "", tokens="rs256-nokid", jwks="jwks_nokid")]
    return out


def select_variants(variants: list[Variant]) -> list[Variant]:
    wanted = [w.strip() for w in os.environ.get("BENCH_VARIANTS", "").split(",") if w.strip()]
    if not wanted:
        return variants
    chosen = [v for v in variants if any(v.id == w or v.id.startswith(w) for w in wanted)]
    if not chosen:
        sys.exit(f"bench: BENCH_VARIANTS={os.environ['BENCH_VARIANTS']!r} matches none of "
                 + ", ".join(v.id for v in variants))
    return chosen


def wasm_filter(wasm: Path, configuration: dict[str, Any] | None) -> dict[str, Any]:
    """The Wasm HTTP filter running `wasm`; `configuration`: its plugin configuration, an `Any`."""
    config: dict[str, Any] = {
        "name": "llm_gateway_auth", "root_id": "llm_gateway_auth", "failure_policy": "FAIL_CLOSED",
        "vm_config": {"vm_id": "llm_gateway_auth", "runtime": "envoy.wasm.runtime.v8",
                      "code": {"local": {"filename": str(wasm)}}}}
    if configuration is not None:
        config["configuration"] = configuration
    return {"name": "envoy.filters.http.wasm", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm", "config": config}}


def http_filters(v: Variant, keys: Keys, wasm: Path, noop: dict[str, Path]) -> list[dict[str, Any]]:
    router = {"name": "envoy.filters.http.router", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
    if v.kind == "none":
        return [router]
    if v.kind in noop:
        return [wasm_filter(noop[v.kind], None), router]
    if v.kind == "noop-headers":
        edits = {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": HEADER_EDITS}
        return [wasm_filter(noop["noop"], edits), router]
    if v.kind in ("native", "native-cache", "native-headers"):
        provider: dict[str, Any] = {"issuer": ISSUER, "audiences": [AUDIENCE],
                                    "local_jwks": {"inline_string": keys.jwks}, "forward": False}
        if v.kind in ("native-cache", "native-headers"):
            provider["jwt_cache_config"] = {"jwt_cache_size": NATIVE_CACHE_SIZE}
        if v.kind == "native-headers":
            provider["claim_to_headers"] = [{"header_name": h, "claim_name": c} for h, c in IDENTITY_CLAIMS]
        return [{"name": "envoy.filters.http.jwt_authn", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {"bench": provider},
            "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "bench"}}]}}, router]
    plugin = {"providers": [{"name": "bench", "issuer": ISSUER, "audiences": [AUDIENCE],
                             "jwks": {"inline": getattr(keys, v.jwks)}}]}
    struct = {"@type": "type.googleapis.com/google.protobuf.Struct", "value": plugin}
    return [wasm_filter(wasm, struct), router]


def render_config(v: Variant, keys: Keys, wasm: Path, noop: dict[str, Path], upstream_port: int) -> str:
    text = TEMPLATE.read_text()
    values = {"@FRONT_PORT@": "0", "@ADMIN_PORT@": "0", "@UPSTREAM_PORT@": str(upstream_port),
              "@UPSTREAM_BODY@": UPSTREAM_BODY,
              # JSON is YAML (flow style), so the filter list goes in as JSON text
              "@HTTP_FILTERS@": json.dumps(http_filters(v, keys, wasm, noop))}
    for k, val in values.items():
        text = text.replace(k, val)
    if re.search(r"@[A-Z_]+@", text):
        raise RuntimeError(f"unfilled placeholder in {TEMPLATE}")
    return text


# ---- processes ----------------------------------------------------------------------------------------
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class BenchError(RuntimeError):
    pass


class Envoy:
    def __init__(self, binary: str, workdir: Path, cpu: int | None) -> None:
        self.binary, self.dir, self.cpu = binary, workdir, cpu
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config = self.dir / "envoy.yaml"
        self.log = self.dir / "envoy.log"
        self.admin_file = self.dir / "admin-address.txt"
        self.proc: subprocess.Popen[bytes] | None = None
        self.admin = ""
        self.port = 0

    def command(self) -> list[str]:
        return [self.binary, "-c", str(self.config), "--concurrency", "1", "--log-level", "warn",
                "--use-dynamic-base-id", "--admin-address-path", str(self.admin_file),
                "--drain-time-s", "0", "--parent-shutdown-time-s", "1"]

    def start(self, config_text: str, timeout: float = 60.0) -> None:
        self.config.write_text(config_text)
        with open(self.log, "wb") as out:
            self.proc = spawn(self.command(), out, cpu=self.cpu)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise BenchError(f"Envoy exited with code {self.proc.returncode}\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise BenchError(f"Envoy not ready after {timeout}s\n{self.log_tail()}")
            try:
                if not self.admin:
                    text = self.admin_file.read_text().strip() if self.admin_file.exists() else ""
                    if text:
                        self.admin = "http://" + text
                if self.admin and self.admin_get("/ready")[0] == 200:
                    listeners = json.loads(self.admin_get("/listeners?format=json")[1])
                    for st in listeners.get("listener_statuses", []):
                        if st.get("name") == "front":
                            self.port = int(st["local_address"]["socket_address"]["port_value"])
                    if self.port:
                        return
            except (OSError, ValueError):
                pass
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)

    def admin_get(self, path: str) -> tuple[int, str]:
        try:
            with _OPENER.open(self.admin + path, timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            text = []
        return f"---- last lines of {self.log} ----\n" + "\n".join(text[-lines:])

    # -- facts
    def cpu_seconds(self) -> float:
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def snapshot(self) -> dict[str, Any]:
        """Memory as Envoy and the kernel see it: admin /memory (tcmalloc), the wasm* stats, the
        process's RSS, and the resident part of V8's Wasm memory reservations (see wasm_memory)."""
        assert self.proc is not None
        snap: dict[str, Any] = {}
        try:
            snap["memory"] = {k: int(v) for k, v in json.loads(self.admin_get("/memory")[1]).items()}
        except (OSError, ValueError):
            snap["memory"] = {}
        stats = {}
        try:
            for s in json.loads(self.admin_get("/stats?format=json&filter=wasm")[1]).get("stats", []):
                if "value" in s:
                    stats[s["name"]] = s["value"]
        except (OSError, ValueError):
            pass
        snap["wasm_stats"] = stats
        cx = {}
        try:
            for s in json.loads(self.admin_get(
                    "/stats?format=json&filter=(downstream_cx_total|upstream_cx_total)$")[1]).get("stats", []):
                if "value" in s:
                    cx[s["name"]] = s["value"]
        except (OSError, ValueError):
            pass
        snap["connections"] = cx
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        for key in ("VmRSS", "VmHWM"):
            m = re.search(rf"^{key}:\s+(\d+) kB", status, re.M)
            snap[key] = int(m.group(1)) * 1024 if m else 0
        snap["wasm_memory"] = wasm_memory(self.proc.pid)
        return snap


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


# ---- requests -----------------------------------------------------------------------------------------
def one_request(port: int, token: str | None) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
        if token is not None:
            headers["authorization"] = "Bearer " + token
        conn.request("POST", "/v1/messages", body=b'{"model":"claude-sonnet-4-5","max_tokens":1,'
                     b'"messages":[{"role":"user","content":"hi"}]}', headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()


def sanity(v: Variant, port: int, valid: str, forged: str) -> dict[str, Any]:
    """One valid and one forged request. The valid one must reach the upstream (its body); the
    forged one must be refused for its signature (the filter's message), not for anything earlier."""
    deadline = time.monotonic() + 10
    while True:  # keys from inline JWKS should be there at once; allow a first tick just in case
        status, body = one_request(port, valid)
        if status != 503 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    fstatus, fbody = one_request(port, forged)
    problems = []
    if status != v.sanity[0] or (status == 200 and body != UPSTREAM_BODY):
        problems.append(f"valid token: got {status} {body[:200]!r}, expected {v.sanity[0]} "
                        "with the upstream's body")
    if fstatus != v.sanity[1]:
        problems.append(f"forged token: got {fstatus} {fbody[:200]!r}, expected {v.sanity[1]}")
    if v.kind == "filter" and fstatus == 401 and "token signature invalid" not in fbody:
        problems.append(f"forged token refused for another reason than its signature: {fbody[:200]!r}")
    if problems:
        raise BenchError(f"{v.id}: sanity check failed: " + "; ".join(problems))
    return {"valid": status, "forged": fstatus}


def run_wrk(wrk: str, port: int, seconds: int, tokens: Path, offset: int, cpu: int | None,
            workdir: Path, name: str, no_auth: bool = False) -> dict[str, Any]:
    cmd = [wrk, "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "10s", "-s", str(LUA),
           f"http://127.0.0.1:{port}/v1/messages"]
    env = dict(os.environ, BENCH_TOKENS=str(tokens), BENCH_OFFSET=str(offset),
               BENCH_NO_AUTH="1" if no_auth else "0")
    out_path = workdir / f"wrk-{name}.txt"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(out_path, "wb") as out:
        proc = spawn(cmd, out, env, cpu)
        try:
            rc = proc.wait(timeout=seconds + 60)
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


# ---- one measurement ----------------------------------------------------------------------------------
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
    warnings: list[str] = field(default_factory=list)


def measure(v: Variant, rnd: int, ctx: "Context") -> Measurement:
    wd = ctx.workdir / f"r{rnd}-{v.id}"
    envoy = Envoy(ctx.envoy_bin, wd, ctx.envoy_cpu)
    try:
        for attempt in range(3):  # the upstream port was free a moment ago; retry if taken since
            try:
                envoy.start(render_config(v, ctx.keys, ctx.wasm, ctx.noop, free_port()))
                break
            except BenchError as e:
                envoy.stop()
                if attempt == 2 or "address already in use" not in str(e).lower():
                    raise
        a = v.tokens or v.alg.lower() or "rs256"
        sanity(v, envoy.port, ctx.first_token(f"sanity-{a}"), ctx.first_token(f"sanity-forged-{a}"))
        before = envoy.snapshot()
        pool = ctx.pools[v.pool]
        warm_requests = 0
        offset = 0
        if WARMUP:
            w = run_wrk(ctx.wrk, envoy.port, WARMUP, pool, 0, ctx.wrk_cpu, wd, "warmup",
                        no_auth=False)
            warm_requests = w["requests"]
            offset = w["next_offset"]
        busy0, cpu0, t0 = cpu_busy(), envoy.cpu_seconds(), time.monotonic()
        r = run_wrk(ctx.wrk, envoy.port, SECONDS, pool, offset, ctx.wrk_cpu, wd, "measure")
        busy1, cpu1, t1 = cpu_busy(), envoy.cpu_seconds(), time.monotonic()
        after = envoy.snapshot()
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
        before=before, after=after)
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
    last_envoy_command: list[str] = field(default_factory=list)

    def first_token(self, pool: str) -> str:
        with open(self.pools[pool]) as f:
            return f.readline().strip()


# ---- report -------------------------------------------------------------------------------------------
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


HAND_WRITTEN = """# Benchmarks

`make bench` measures what this filter costs a request in Envoy, next to a plain Envoy proxy and
Envoy's own `envoy.filters.http.jwt_authn`. It is the only place with speed numbers: no test asserts
a timing.

## How it measures

- **One Envoy binary, one fresh process per measurement**, `--concurrency 1` (one worker), pinned to
  one core. Its upstream is a second listener of the same Envoy that reads the small request body
  and answers 200 with a small JSON body (`buffer` + `direct_response`), so the upstream costs every
  variant the same, keeps its connections alive, and cannot be the bottleneck. Only the front
  listener's HTTP filters differ (`bench/envoy.yaml.in`; each measurement's rendered config is in
  its run directory, kept with `BENCH_KEEP=1`).
- **The load**: `wrk -t1 -c16` pinned to the other core, `POST /v1/messages` with a small Messages
  API body and `authorization: Bearer <token>`, the tokens taken in turn from a file
  (`bench/tokens.lua`). Each measurement runs `BENCH_SECONDS` after `BENCH_WARMUP` seconds of the
  same load on the same Envoy.
- **Keys and tokens** are made at the start of each run with Python `cryptography`: an RSA-2048 key
  (RS256) and a P-256 key (ES256), one JWKS with both, inlined in jwt_authn's `local_jwks` and in the
  filter's `jwks.inline` (one provider, issuer and audience, identity headers as default). Tokens
  carry `iss`, `aud`, `sub`, `email`, `name`, `groups`, `iat`, `nbf`, `exp` (4 hours) and a random
  `jti`:
  - *cold*: every request a different valid token, from a pool of `BENCH_COLD_TOKENS` (100,000) per
    algorithm; the measurement continues after the tokens its warm-up used, and the report says so
    if a pool ran out and tokens were sent twice;
  - *warm*: `BENCH_USERS` (300) users with one token each, sent round-robin;
  - *flood*: forged tokens, each different, with the real `kid`, `iss` and `aud` and a signature
    value in range that is not the key's, so the verifier does the whole computation; all must be
    answered 401. Envoy closes an HTTP/1.1 connection when it answers before the request body has
    arrived, so during a flood wrk reconnects for every request: the flood numbers include a TCP
    accept per request, as a real flood would.
- **Variants**: no auth; a Wasm filter that does nothing (`bench/noop`: the proxy-wasm Rust SDK
  with every callback at its default), as the SDK builds it and with the unused callbacks' exports
  dropped (`tools/trim_exports.py`, which `make build` applies to this filter): what any Wasm
  filter costs before it does any work; the same trimmed module configured to make the host calls
  of this filter's cache hit and nothing else (`wasm-headers`: read the request headers, remove
  `authorization`, set the five identity headers to fixed values): what this job costs in Wasm
  before any verifying or caching; native jwt_authn without cache (cold tokens), with
  `jwt_cache_config.jwt_cache_size: 1000` (warm tokens), and with its cache plus
  `claim_to_headers` for `sub`, `email`, `name` and `groups` (the identity headers this filter
  writes: the same job), all with `forward: false` and a rule for prefix `/`; this filter cold,
  warm and flooded; RS256 and ES256 for each. "× native" compares the filter cold with native
  without cache and the filter warm with native with cache (no headers), same algorithm.
- **Interleaved rounds**: each round measures every variant once (the order rotates from round to
  round); tables give the median of the rounds with min–max. Ratios are of the medians.
- **Envoy CPU µs/req** is the Envoy process's CPU time during the measurement divided by the
  requests served: one request's cost to the worker (front listener, auth, upstream listener) plus
  a little of the main thread; "+ µs/req vs no auth" is its median minus no auth's, what the auth
  step adds. On a shared machine it is steadier than req/s, which drops whenever other processes
  take Envoy's core; the per-round table shows how much they took.
- **Checks, not timings**: before each measurement one valid and one forged request must get the
  expected status (200 with the upstream's body, and 401 for the signature); after it, every
  response of a valid-token run must be 2xx and every response of a flood 401, with no socket
  errors, and the filter's own counters must account for the responses. A failed check stops the
  run with exit 1 and leaves this file alone.
- **Settings** (environment): `BENCH_SECONDS` (10), `BENCH_ROUNDS` (3), `BENCH_WARMUP` (2),
  `BENCH_CONNECTIONS` (16), `BENCH_COLD_TOKENS` (100000), `BENCH_USERS` (300), `BENCH_VARIANTS`
  (comma-separated ids or prefixes, e.g. `no-auth,filter-cold`), `BENCH_WRITE` (this file's results
  block is refreshed after a full run: all variants, at least 3 rounds; `1` always, `0` never),
  `BENCH_KEEP=1` (keep the run directory with configs, logs and raw `results.json`), `ENVOY_BIN`,
  `WRK_BIN`.

## Latest results

"""


def write_benchmarks(block: str) -> None:
    if BENCHMARKS_MD.exists():
        text = BENCHMARKS_MD.read_text()
        if BEGIN in text and END in text:
            head, rest = text.split(BEGIN, 1)
            tail = rest.split(END, 1)[1]
            text = head + block + tail
        else:
            text = text.rstrip("\n") + "\n\n" + block + "\n"
    else:
        text = HAND_WRITTEN + block + "\n"
    BENCHMARKS_MD.write_text(text)


# ---- main ---------------------------------------------------------------------------------------------
def find_envoy() -> str:
    env = os.environ.get("ENVOY_BIN", "").strip()
    if env:
        if not (os.path.isfile(env) and os.access(env, os.X_OK)):
            sys.exit(f"bench: ENVOY_BIN={env!r} is not an executable file")
        return env
    venv = REPO / ".venv" / "bin" / "envoy"
    if venv.is_file() and os.access(venv, os.X_OK):
        return str(venv)
    found = shutil.which("envoy")
    if not found:
        sys.exit("bench: no Envoy found: set ENVOY_BIN, run `make setup`, or put envoy on PATH")
    return found


def pick_cpus() -> tuple[int | None, int | None]:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= 2:
        return cpus[0], cpus[1]
    return None, None


def main() -> int:
    started = time.monotonic()
    load_start = os.getloadavg()
    envoy_bin = find_envoy()
    wrk = os.environ.get("WRK_BIN") or shutil.which("wrk") or ""
    if not wrk:
        sys.exit("bench: wrk not found (apt-get install wrk), or set WRK_BIN")
    try:
        import cryptography  # noqa: F401
    except ImportError:
        sys.exit("bench: Python package `cryptography` missing: run with .venv/bin/python "
                 "(`make setup` installs it)")
    if not WASM.is_file() or WASM.read_bytes()[:4] != b"\0asm":
        sys.exit(f"bench: {WASM} is missing or not a Wasm module: run `make build`")
    if not NOOP_WASM.is_file():
        sys.exit(f"bench: {NOOP_WASM} is missing: run `make bench` (it builds bench/noop)")
    variants = select_variants(all_variants())
    if ROUNDS < 3:
        log(f"bench: note: BENCH_ROUNDS={ROUNDS}; the published numbers use at least 3")
    workdir = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    # Measure one fixed copy, even if dist/ is rebuilt while the run goes on.
    wasm = workdir / "gateway_filter.wasm"
    shutil.copyfile(WASM, wasm)
    noop = {"noop-sdk": workdir / "noop_sdk.wasm", "noop": workdir / "noop_trimmed.wasm"}
    shutil.copyfile(NOOP_WASM, noop["noop-sdk"])
    noop["noop"].write_bytes(trim_exports.trim(NOOP_WASM.read_bytes()))
    facts = machine_facts(envoy_bin, wasm)
    envoy_cpu, wrk_cpu = pick_cpus()
    per = WARMUP + SECONDS + 3
    log(f"bench: Envoy {facts['envoy']}, filter {int(facts['wasm_size']):,} bytes, "
        f"{len(variants)} variants × {ROUNDS} rounds × ~{per} s ≈ {len(variants) * ROUNDS * per // 60 + 1}"
        f" min after minting; Envoy on CPU {envoy_cpu}, wrk on CPU {wrk_cpu}; run dir {workdir}")
    if envoy_cpu is None:
        log("bench: fewer than 2 CPUs available: Envoy and wrk are not pinned and share the CPU")

    results: list[Measurement] = []
    failed = False
    try:
        t = time.monotonic()
        keys = make_keys()
        pools = mint_pools(keys, workdir)
        log(f"bench: keys and {sum(1 for _ in pools)} token pools ready in {time.monotonic() - t:.0f} s "
            f"({COLD_TOKENS} cold tokens per algorithm)")
        ctx = Context(envoy_bin, wrk, wasm, noop, keys, pools, workdir, envoy_cpu, wrk_cpu)
        for rnd in range(1, ROUNDS + 1):
            shift = (rnd - 1) % len(variants)
            order = variants[shift:] + variants[:shift]
            for v in order:
                m = measure(v, rnd, ctx)
                results.append(m)
                note = ("; " + "; ".join(m.warnings)) if m.warnings else ""
                log(f"[round {rnd}/{ROUNDS}] {v.id:<20} {m.rps:8.0f} req/s  p50 {m.p50_ms:7.2f} ms  "
                    f"p99 {m.p99_ms:7.2f} ms  Envoy {m.envoy_cpu_us_per_req:5.0f} µs/req "
                    f"({m.envoy_cpu_util:.0%} CPU)  wrk {m.wrk_cpu_util:.0%} CPU  "
                    f"{m.requests} responses {m.statuses}{note}")
                (workdir / "results.json").write_text(json.dumps(
                    [m_.__dict__ for m_ in results], indent=1, default=str))
    except KeyboardInterrupt:
        log("bench: interrupted; stopping everything")
        failed = True
    except BenchError as e:
        log(f"bench: FAILED: {e}")
        failed = True
    finally:
        stop_all()
    ended = time.monotonic()
    if failed:
        log(f"bench: run directory kept: {workdir}")
        return 1
    rows = summarize(variants, results)
    warnings = [f"{m.variant} round {m.round}: {w}" for m in results for w in m.warnings]
    others = [m.other_on_envoy_core for m in results if m.other_on_envoy_core == m.other_on_envoy_core]
    if others and max(others) > 0.05:
        warnings.append(f"other processes used a median {med(others):.0%} (max {max(others):.0%}) of "
                        "Envoy's core during the measurements: req/s and latencies are lower and "
                        "noisier than on a quiet machine; Envoy CPU µs/req is less affected")
    block = report_block(facts, rows, started, ended, ctx, (load_start, os.getloadavg()), warnings)
    print(block.split("\n", 3)[3].rsplit("\n", 1)[0])
    full = len(variants) == len(all_variants()) and ROUNDS >= 3
    if WRITE == "1" or (WRITE != "0" and full):
        write_benchmarks(block)
        log(f"bench: results written to {BENCHMARKS_MD.relative_to(REPO)}")
    elif WRITE != "0":
        log("bench: BENCHMARKS.md left alone: not a full run (all variants, at least 3 rounds); "
            "BENCH_WRITE=1 writes it anyway")
    if KEEP:
        log(f"bench: run directory kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    log(f"bench: done in {ended - started:.0f} s")
    return 0


if __name__ == "__main__":
    def _terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)   # also when started with SIGINT ignored (background)
    try:
        sys.exit(main())
    finally:
        stop_all()
