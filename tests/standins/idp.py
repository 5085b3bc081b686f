#!/usr/bin/env python3
"""OIDC identity-provider stand-in: JWKS, discovery and a token minter, for tests and `make run`.

Never use this for anything but local testing: the keys live in memory and anyone can mint a token.

What it serves (127.0.0.1 only):
  GET  /jwks.json                          the public keys (JWKS); also any path ending in /keys or
                                           /certs (Okta, Entra, Google key URLs routed here by a cluster)
  GET  /.well-known/openid-configuration   {"issuer": ..., "jwks_uri": ...}; also <any prefix>/.well-known/...
  POST /mint[?alg=ES256]                   body: JSON object of claim overrides -> {"token": "<jwt>"}
  POST /introspect                         RFC 7662 token introspection of opaque tokens registered with
                                           add_opaque() (form field `token`; HTTP Basic client auth recorded)
  POST /tokeninfo                          Google-style tokeninfo (form field `access_token`; answers like
                                           Google: exp, expires_in and email_verified as strings; 400 if unknown)

Keys, generated at start (nothing is written to disk):
  kid "rsa-1"   RSA-2048   no `alg` in its JWK: signs RS256/384/512 and PS256/384/512
  kid "ec-1"    EC P-256   alg ES256
  kid "ec-384"  EC P-384   alg ES384
  kid "ed-1"    Ed25519    alg EdDSA

Command line:
  python tests/standins/idp.py --port 18080 --issuer http://127.0.0.1:18080 --audience claude-desktop
  python tests/standins/idp.py mint --url http://127.0.0.1:18080 [--alg ES256] [--sub alice] \
         [--claims '{"email": "a@example.com"}']          # prints a fresh token

In-process use (tests):
  idp = IdP(audience="claude-desktop").start()          # port 0: a free port is picked
  token = idp.mint("PS384", claims={"sub": "alice"})     # claims set to None are left out
  idp.set_mode("delay", delay=1.5)  # normal | delay | error500 | garbage | empty | down: the error modes
                                    # apply to every endpoint but /mint, `empty` only to the JWKS, `down`
                                    # closes the port (any other mode reopens it on the same port)
  idp.jwks_kids = ["ec-1"]          # serve only some keys (key rotation); None = all
  idp.extra_jwks = [{...}]          # JWKs served after those (odd keys: `use: enc`, `key_ops`, pinned `alg`)
  idp.add_opaque("opaque-token", {"sub": "bob", "aud": "client", "exp": ...})
  idp.jwks_fetches                  # how many GET /jwks.json were received
  idp.introspect_active             # /introspect + /tokeninfo calls being answered right now, and
  idp.introspect_max_active         # the most at once (reset_counters() restarts it from the calls open now)
  idp.stop()

Signatures follow RFC 7518: RS* = RSASSA-PKCS1-v1_5, PS* = RSASSA-PSS with MGF1 of the same hash and a
salt as long as the hash, ES* = raw r||s (fixed width, not DER), EdDSA = Ed25519 (RFC 8037).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

# A script (`python tests/standins/idp.py`) or the `standins` package (tests put tests/ on the path).
if __package__:
    from .serving import Served
else:
    from serving import Served

HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
DEFAULT_KID = {"RS": "rsa-1", "PS": "rsa-1", "ES256": "ec-1", "ES384": "ec-384", "EdDSA": "ed-1"}
MODES = ("normal", "delay", "error500", "garbage", "empty", "down")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _uint(n: int, width: int | None = None) -> str:
    length = width if width is not None else max(1, (n.bit_length() + 7) // 8)
    return b64url(n.to_bytes(length, "big"))


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class Keys:
    """The four signing keys. Generating them takes ~0.1 s; tests may share one Keys between IdPs."""

    def __init__(self) -> None:
        self.private: dict[str, Any] = {
            "rsa-1": rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "ec-1": ec.generate_private_key(ec.SECP256R1()),
            "ec-384": ec.generate_private_key(ec.SECP384R1()),
            "ed-1": ed25519.Ed25519PrivateKey.generate(),
        }

    def jwk(self, kid: str) -> dict[str, Any]:
        """The public JWK for `kid`."""
        key = self.private[kid]
        if isinstance(key, rsa.RSAPrivateKey):
            pub = key.public_key().public_numbers()
            return {"kty": "RSA", "kid": kid, "use": "sig", "n": _uint(pub.n), "e": _uint(pub.e)}
        if isinstance(key, ec.EllipticCurvePrivateKey):
            pub = key.public_key().public_numbers()
            size = (key.curve.key_size + 7) // 8
            crv, alg = ("P-256", "ES256") if size == 32 else ("P-384", "ES384")
            return {"kty": "EC", "kid": kid, "use": "sig", "alg": alg, "crv": crv,
                    "x": _uint(pub.x, size), "y": _uint(pub.y, size)}
        raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"kty": "OKP", "kid": kid, "use": "sig", "alg": "EdDSA", "crv": "Ed25519", "x": b64url(raw)}

    def jwks(self, kids: list[str] | None = None) -> dict[str, Any]:
        return {"keys": [self.jwk(k) for k in (kids or list(self.private))]}

    def rsa_public_pem(self) -> bytes:
        return self.private["rsa-1"].public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def sign(alg: str, key: Any, signing_input: bytes) -> bytes:
    """Sign per RFC 7518 / RFC 8037. `key` is a private key object (bytes for HS*)."""
    if alg == "none":
        return b""
    if alg.startswith("HS"):
        return hmac.new(key, signing_input, getattr(hashlib, "sha" + alg[2:])).digest()
    if alg.startswith("RS"):
        return key.sign(signing_input, padding.PKCS1v15(), HASHES[alg[2:]]())
    if alg.startswith("PS"):
        h = HASHES[alg[2:]]()
        return key.sign(signing_input, padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size), h)
    if alg in ("ES256", "ES384", "ES512"):
        der = key.sign(signing_input, ec.ECDSA(HASHES[alg[2:]]()))
        r, s = decode_dss_signature(der)
        width = (key.curve.key_size + 7) // 8
        return r.to_bytes(width, "big") + s.to_bytes(width, "big")
    if alg in ("EdDSA", "Ed25519"):
        return key.sign(signing_input)
    raise ValueError(f"unsupported alg {alg}")


def encode_jwt(header: dict[str, Any], claims: dict[str, Any], key: Any) -> str:
    signing_input = (b64url(_json_bytes(header)) + "." + b64url(_json_bytes(claims))).encode()
    return signing_input.decode() + "." + b64url(sign(header.get("alg", "none"), key, signing_input))


class IdP(Served):
    """The stand-in. Thread-safe enough for tests: mode and counters are read/written under a lock.
    Its port, once picked, is kept: mode "down" closes it and any other mode binds it again."""

    name = "idp"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, issuer: str | None = None,
                 audience: str = "claude-desktop", keys: Keys | None = None, jwks_uri: str | None = None,
                 client_auth: tuple[str, str] | None = None) -> None:
        self.host = host
        self.port = port
        self._issuer = issuer
        self._jwks_uri = jwks_uri          # what discovery announces (default: <url>/jwks.json)
        self.client_auth = client_auth     # (id, secret) /introspect requires as HTTP Basic, if set
        self.opaque: dict[str, dict[str, Any]] = {}
        self.introspections: list[dict[str, Any]] = []  # {"path", "headers", "form"} per opaque call
        self.introspect_active = 0          # opaque calls being answered now (delay mode holds them)
        self.introspect_max_active = 0      # the most at once since start / reset_counters()
        self.audience = audience
        self.keys = keys or Keys()
        self.mode = "normal"
        self.delay = 0.0
        self.jwks_fetches = 0
        self.discovery_fetches = 0
        self.requests: list[dict[str, Any]] = []   # {"time", "method", "path", "headers"}
        self.jwks_answered_at: list[float] = []    # time.monotonic() when each JWKS answer was sent
        self.jwks_kids: list[str] | None = None    # None = all keys; else only these kids are served
        self.extra_jwks: list[dict[str, Any]] = []  # served after the keys above (hand-made JWKs)
        self._lock = threading.Lock()

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        return _IdPHandler

    # ---- steering ----------------------------------------------------------------------------------
    def set_mode(self, mode: str, delay: float | None = None) -> None:
        """normal | delay (answer after `delay` s) | error500 | garbage (non-JSON 200) |
        empty ({"keys": []}) | down (port closed; any other mode brings it back on the same port)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        with self._lock:
            self.mode = mode
            if delay is not None:
                self.delay = delay
        if mode == "down":
            self.stop()
        elif self._server is None:
            self.start()

    def reset_counters(self) -> None:
        with self._lock:
            self.jwks_fetches = 0
            self.discovery_fetches = 0
            self.requests.clear()
            self.introspections.clear()
            self.introspect_max_active = self.introspect_active
            self.jwks_answered_at.clear()

    # ---- facts -------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def issuer(self) -> str:
        return self._issuer or self.url

    @property
    def jwks_uri(self) -> str:
        return self._jwks_uri or self.url + "/jwks.json"

    def add_opaque(self, token: str, claims: dict[str, Any]) -> None:
        """Make /introspect and /tokeninfo know `token` with these claims."""
        with self._lock:
            self.opaque[token] = dict(claims)

    def jwks(self) -> dict[str, Any]:
        doc = self.keys.jwks(self.jwks_kids)
        doc["keys"] += [dict(jwk) for jwk in self.extra_jwks]
        return doc

    def jwks_json(self) -> str:
        return json.dumps(self.jwks())

    def discovery(self) -> dict[str, Any]:
        return {"issuer": self.issuer, "jwks_uri": self.jwks_uri,
                "id_token_signing_alg_values_supported":
                    ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"]}

    # ---- tokens ------------------------------------------------------------------------------------
    def default_claims(self, lifetime: int = 3600) -> dict[str, Any]:
        now = int(time.time())
        return {"iss": self.issuer, "aud": self.audience, "sub": "user-123", "iat": now, "nbf": now - 5,
                "exp": now + lifetime, "email": "user@example.com", "name": "Test User"}

    def mint(self, alg: str = "RS256", kid: str | None = None, claims: dict[str, Any] | None = None,
             header: dict[str, Any] | None = None, key: Any = None, lifetime: int = 3600) -> str:
        """A compact JWT. `claims` override the defaults (a value of None removes the claim);
        `header` overrides the JOSE header likewise (e.g. {"kid": None}); `key` replaces the signing
        key (a private key object, or bytes for HS*)."""
        if kid is None:
            kid = DEFAULT_KID.get(alg) or DEFAULT_KID.get(alg[:2], "rsa-1")
        hdr: dict[str, Any] = {"alg": alg, "typ": "JWT", "kid": kid}
        for k, v in (header or {}).items():
            if v is None:
                hdr.pop(k, None)
            else:
                hdr[k] = v
        body = self.default_claims(lifetime)
        for k, v in (claims or {}).items():
            if v is None:
                body.pop(k, None)
            else:
                body[k] = v
        if key is None and alg != "none":
            key = self.keys.private[kid] if kid in self.keys.private else self.keys.private["rsa-1"]
        return encode_jwt(hdr, body, key)


class _IdPHandler(BaseHTTPRequestHandler):
    owner: IdP
    protocol_version = "HTTP/1.1"
    server_version = "idp-standin/1"

    def log_message(self, fmt: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        self.send_header("cache-control", "no-store")
        self.end_headers()
        try:
            self.wfile.write(body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass   # the caller gave up (a fetch past its timeout): nothing to report

    def _failure(self) -> bool:
        """Apply the failure mode; True when an answer was sent (the caller stops)."""
        with self.owner._lock:
            mode, delay = self.owner.mode, self.owner.delay
        if mode == "delay":
            time.sleep(delay)
        if mode == "error500":
            self._send(500, b'{"error":"internal"}')
            return True
        if mode == "garbage":
            self._send(200, b"<html>this is not what you asked for</html>", "text/html")
            return True
        return False

    def _key_endpoint(self, body: dict[str, Any], counter: str) -> None:
        idp = self.owner
        with idp._lock:
            setattr(idp, counter, getattr(idp, counter) + 1)
        if not self._failure():
            if idp.mode == "empty" and counter == "jwks_fetches":
                self._send(200, b'{"keys":[]}')
            else:
                self._send(200, json.dumps(body).encode())
        if counter == "jwks_fetches":
            with idp._lock:
                idp.jwks_answered_at.append(time.monotonic())

    def _record(self) -> None:
        with self.owner._lock:
            self.owner.requests.append({"time": time.monotonic(), "method": self.command,
                                        "path": self.path, "headers": list(self.headers.items())})

    def do_GET(self) -> None:  # noqa: N802
        self._record()
        path = urlsplit(self.path).path
        if path.endswith(("/jwks.json", "/keys", "/certs")):
            self._key_endpoint(self.owner.jwks(), "jwks_fetches")
        elif path.endswith("/.well-known/openid-configuration"):
            self._key_endpoint(self.owner.discovery(), "discovery_fetches")
        else:
            self._send(404, b'{"error":"not found"}')

    def do_POST(self) -> None:  # noqa: N802
        self._record()
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        if url.path.endswith("/introspect"):
            self._introspect(raw, google=False)
        elif url.path.endswith("/tokeninfo"):
            self._introspect(raw, google=True)
        elif url.path == "/mint":
            self._mint(raw, url.query)
        else:
            self._send(404, b'{"error":"not found"}')

    def _mint(self, raw: bytes, query: str) -> None:
        try:
            claims = json.loads(raw or b"{}")
            if not isinstance(claims, dict):
                raise ValueError("body must be a JSON object")
            alg = parse_qs(query).get("alg", ["RS256"])[0]
            token = self.owner.mint(alg, claims=claims)
        except Exception as exc:  # noqa: BLE001 - report any bad input to the caller
            self._send(400, json.dumps({"error": str(exc)}).encode())
            return
        self._send(200, json.dumps({"token": token}).encode())

    def _introspect(self, raw: bytes, google: bool) -> None:
        idp = self.owner
        with idp._lock:
            idp.introspect_active += 1
            idp.introspect_max_active = max(idp.introspect_max_active, idp.introspect_active)
        try:
            self._introspect_answer(raw, google)
        finally:
            with idp._lock:
                idp.introspect_active -= 1

    def _introspect_answer(self, raw: bytes, google: bool) -> None:
        idp = self.owner
        form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        with idp._lock:
            idp.introspections.append({"path": self.path, "headers": list(self.headers.items()), "form": form,
                                       "content_type": self.headers.get("content-type")})
        if self._failure():
            return
        token = form.get("access_token" if google else "token") or form.get("token") or ""
        with idp._lock:
            claims = idp.opaque.get(token)
        if google:
            if claims is None:
                self._send(400, b'{"error":"invalid_token","error_description":"Invalid Value"}')
                return
            out = {k: (str(v).lower() if isinstance(v, bool) else str(v) if k in ("exp", "expires_in") else v)
                   for k, v in claims.items()}
            if "exp" in claims and "expires_in" not in claims:
                out["expires_in"] = str(max(0, int(claims["exp"]) - int(time.time())))
            self._send(200, json.dumps(out).encode())
            return
        if idp.client_auth is not None:
            expected = "Basic " + base64.b64encode(":".join(idp.client_auth).encode()).decode()
            if self.headers.get("authorization") != expected:
                self._send(401, b'{"error":"invalid_client"}')
                return
        self._send(200, json.dumps({"active": True, **claims} if claims is not None else {"active": False}).encode())


def _cli_mint(args: argparse.Namespace) -> int:
    claims = json.loads(args.claims) if args.claims else {}
    if args.sub:
        claims["sub"] = args.sub
    req = urllib.request.Request(f"{args.url.rstrip('/')}/mint?alg={args.alg}", method="POST",
                                 data=json.dumps(claims).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        print(json.loads(resp.read())["token"])
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["mint"]:
        p = argparse.ArgumentParser(prog="idp.py mint", description="print a fresh token from a running IdP")
        p.add_argument("--url", default="http://127.0.0.1:18080")
        p.add_argument("--alg", default="RS256")
        p.add_argument("--sub", default=None)
        p.add_argument("--claims", default=None, help="JSON object of claim overrides")
        return _cli_mint(p.parse_args(argv[1:]))
    p = argparse.ArgumentParser(description="OIDC/JWKS stand-in (serves until interrupted)")
    p.add_argument("--port", type=int, default=18080)
    p.add_argument("--issuer", default=None, help="default: http://127.0.0.1:<port>")
    p.add_argument("--audience", default="claude-desktop")
    args = p.parse_args(argv)
    idp = IdP(port=args.port, issuer=args.issuer, audience=args.audience).start()
    print(f"idp stand-in on {idp.url} issuer={idp.issuer} audience={idp.audience}", flush=True)
    print(f"  token: python {sys.argv[0]} mint --url {idp.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        idp.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
