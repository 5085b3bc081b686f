"""Authentication through a real Envoy: identity headers, credential stripping, every 401, API keys,
every algorithm, HTTP/1.1 and HTTP/2. Each test runs against both plugin-configuration forms (Struct and
StringValue JSON), one shared Envoy per form."""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from e2e_gateway import CI_KEY, PROVIDER, Gateway
from cryptography.hazmat.primitives.asymmetric import rsa
from e2e_expect import (EMAIL, GROUPS, IDENTITY_HEADERS, NAME, OVERAGE, PROVIDER_HDR, TENANT, USER_ID, assert_401,
                    assert_identity, error_body, www_authenticate)
from standins.idp import IdP, b64url, b64url_decode


@pytest.fixture(scope="module", params=["struct", "string"])
def gw(request: pytest.FixtureRequest, shared_gateway: Any) -> Gateway:
    return shared_gateway(request.param)


# ---- a. a valid token ------------------------------------------------------------------------------
def test_valid_token_sets_identity_and_strips_credential(gw: Gateway, idp: IdP) -> None:
    token = idp.mint(claims={"sub": "alice-sub", "email": "alice@example.com", "name": "Alice Example",
                             "groups": ["eng", "ml-ops", "admins"]})
    r = gw.request(token=token)
    assert r.status == 200, r.text
    assert r.json()["type"] == "message"
    seen = r.seen
    assert_identity(seen, "alice-sub", PROVIDER, email="alice@example.com", name="Alice Example",
                    groups="eng,ml-ops,admins")
    assert all(token not in v for _, v in seen.headers)


def test_oid_wins_over_sub(gw: Gateway, idp: IdP) -> None:
    token = idp.mint(claims={"sub": "pairwise-sub", "oid": "00000000-1111-2222-3333-444444444444",
                             "groups": "single-group"})
    r = gw.request(token=token)
    assert r.status == 200, r.text
    assert_identity(r.seen, "00000000-1111-2222-3333-444444444444", PROVIDER, email="user@example.com",
                    name="Test User", groups="single-group")


def test_token_without_optional_claims_sets_only_user_and_provider(gw: Gateway, idp: IdP) -> None:
    token = idp.mint(claims={"sub": "bare", "email": None, "name": None})
    r = gw.request(token=token)
    assert r.status == 200, r.text
    assert_identity(r.seen, "bare", PROVIDER)


def test_claim_values_are_made_header_safe(gw: Gateway, idp: IdP) -> None:
    """A comma inside a group name becomes %2C; control characters are dropped; 1024-byte cap. The user
    id is never rewritten: one with control characters is refused (docs/hardening.md, item 5)."""
    token = idp.mint(claims={"sub": "user-1", "name": "Bob\u0007\n Smith",
                             "email": "x" * 2000 + "@example.com", "groups": ["a,b", "c"]})
    r = gw.request(token=token)
    assert r.status == 200, r.text
    seen = r.seen
    assert seen.header_all(USER_ID) == ["user-1"]
    assert seen.header_all(NAME) == ["Bob Smith"]
    assert seen.header_all(GROUPS) == ["a%2Cb,c"]
    assert seen.header_all(EMAIL) == ["x" * 1024]
    token = idp.mint(claims={"sub": "u\u0001ser\u007f-1"})
    assert_401(gw.request(token=token), "token user id has control characters or leading or trailing spaces",
               secrets=(token,))


# ---- b, c. where the credential may be --------------------------------------------------------------
def test_token_in_x_api_key(gw: Gateway, idp: IdP) -> None:
    token = idp.mint(claims={"sub": "via-x-api-key"})
    r = gw.request(headers=[("x-api-key", token)])
    assert r.status == 200, r.text
    assert_identity(r.seen, "via-x-api-key", PROVIDER, email="user@example.com", name="Test User")


def test_same_secret_in_both_headers_claude_code_api_key_helper(gw: Gateway, idp: IdP) -> None:
    token = idp.mint(claims={"sub": "helper"})
    r = gw.request(headers=[("x-api-key", token)], token=token)
    assert r.status == 200, r.text
    assert_identity(r.seen, "helper", PROVIDER, email="user@example.com", name="Test User")


@pytest.mark.parametrize("scheme", ["Bearer", "bearer"])
def test_bearer_scheme_case(gw: Gateway, idp: IdP, scheme: str) -> None:
    token = idp.mint(claims={"sub": f"scheme-{scheme}"})
    r = gw.request(headers=[("authorization", f"{scheme} {token}")])
    assert r.status == 200, r.text
    assert r.seen.header_all(USER_ID) == [f"scheme-{scheme}"]
    assert r.seen.header_all("authorization") == []


# ---- d. spoofed identity headers ----------------------------------------------------------------------
SPOOFED = [(USER_ID, "attacker"), (EMAIL, "attacker@evil.example"), (NAME, "Mallory"), (GROUPS, "admins"),
           (PROVIDER_HDR, "evil"), (TENANT, "evil-tenant"), (OVERAGE, "false"),
           ("X-Gateway-User-Id", "attacker-2"), ("x-gateway-user-groups", "root")]


def test_spoofed_identity_headers_are_replaced(gw: Gateway, idp: IdP) -> None:
    token = idp.mint(claims={"sub": "honest", "groups": ["eng"]})
    r = gw.request(headers=SPOOFED, token=token)
    assert r.status == 200, r.text
    assert_identity(r.seen, "honest", PROVIDER, email="user@example.com", name="Test User", groups="eng")


def test_spoofed_headers_removed_when_token_lacks_the_claims(gw: Gateway, idp: IdP) -> None:
    token = idp.mint(claims={"sub": "minimal", "email": None, "name": None})
    r = gw.request(headers=SPOOFED, token=token)
    assert r.status == 200, r.text
    assert_identity(r.seen, "minimal", PROVIDER)
    assert not any(v in ("attacker", "attacker-2", "Mallory", "admins", "root", "evil", "evil-tenant")
                   for _, v in r.seen.headers)


def test_spoofed_identity_headers_with_api_key(gw: Gateway) -> None:
    r = gw.request(headers=SPOOFED + [("x-api-key", CI_KEY)])
    assert r.status == 200, r.text
    assert_identity(r.seen, "ci-bot", "api-key", groups="a,b")


def test_spoofed_identity_headers_without_credential(gw: Gateway) -> None:
    r = gw.request(headers=SPOOFED)
    assert_401(r, "missing credential", presented=False)


# ---- e. every 401 --------------------------------------------------------------------------------------
def _tampered(idp: IdP) -> str:
    h, p, s = idp.mint(claims={"sub": "victim"}).split(".")
    claims = json.loads(b64url_decode(p))
    claims["sub"] = "admin"
    return ".".join([h, b64url(json.dumps(claims).encode()), s])


def _foreign_key(idp: IdP) -> str:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return idp.mint("RS256", kid="rsa-1", key=other)


def _hs256_key_confusion(idp: IdP) -> str:
    return idp.mint("HS256", kid="rsa-1", key=idp.keys.rsa_public_pem())


def _malformed(idp: IdP) -> str:
    header = b64url(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "rsa-1"}).encode())
    return f"{header}.{b64url(b'this is not json')}.{b64url(b'sig')}"


REJECTED: list[tuple[str, Callable[[IdP], str], str]] = [
    ("malformed", _malformed, "malformed token"),
    ("malformed-payload-not-base64", lambda i: i.mint().split(".")[0] + ".%%%%.c2ln", "malformed token"),
    ("expired", lambda i: i.mint(claims={"exp": int(time.time()) - 3600}), "token expired"),
    ("not-yet-valid", lambda i: i.mint(claims={"nbf": int(time.time()) + 3600}), "token not yet valid"),
    ("issued-in-future", lambda i: i.mint(claims={"iat": int(time.time()) + 3600}), "token issued in the future"),
    ("no-exp", lambda i: i.mint(claims={"exp": None}), "token has no expiry"),
    ("wrong-issuer", lambda i: i.mint(claims={"iss": "https://evil.example.com"}), "token issuer not trusted"),
    ("wrong-audience", lambda i: i.mint(claims={"aud": "someone-else"}), "audience not allowed"),
    ("wrong-audience-array", lambda i: i.mint(claims={"aud": ["a", "b"]}), "audience not allowed"),
    ("bad-signature-tampered", _tampered, "token signature invalid"),
    ("bad-signature-foreign-key", _foreign_key, "token signature invalid"),
    ("unknown-kid", lambda i: i.mint(kid="no-such-key", key=i.keys.private["rsa-1"]), "token signing key not found"),
    ("alg-none", lambda i: i.mint("none", kid="rsa-1"), "token algorithm not allowed"),
    ("hs256", _hs256_key_confusion, "token algorithm not allowed"),
    ("no-user-id", lambda i: i.mint(claims={"sub": None}), "token has no user id claim"),
    ("too-large", lambda i: i.mint(claims={"pad": "x" * 17000}),
     "credential too large (over the gateway's limits.max_credential_bytes)"),
    ("unknown-api-key", lambda i: "sk-not-a-configured-key-0123456789", "invalid API key"),
]


def test_no_credential(gw: Gateway) -> None:
    assert_401(gw.request(), "missing credential", presented=False)


@pytest.mark.parametrize("make,message", [pytest.param(m, msg, id=i) for i, m, msg in REJECTED])
@pytest.mark.parametrize("where", ["authorization", "x-api-key"])
def test_rejected_credential(gw: Gateway, idp: IdP, make: Callable[[IdP], str], message: str,
                             where: str) -> None:
    cred = make(idp)
    headers = [("authorization", f"Bearer {cred}")] if where == "authorization" else [("x-api-key", cred)]
    assert_401(gw.request(headers=headers), message, secrets=(cred,))


def test_alg_allowed_but_key_type_mismatch_is_refused(gw: Gateway, idp: IdP) -> None:
    """ES256 header pointing at the RSA key: must never verify (exact reason left to the filter)."""
    token = idp.mint("ES256", kid="rsa-1", key=idp.keys.private["ec-1"])
    r = gw.request(token=token)
    assert r.status == 401 and r.upstream == [], r.text
    assert r.json()["error"]["type"] == "authentication_error"


# ---- f. static API keys ---------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["x-api-key", "authorization"])
def test_static_api_key(gw: Gateway, where: str) -> None:
    headers = [("x-api-key", CI_KEY)] if where == "x-api-key" else [("authorization", f"Bearer {CI_KEY}")]
    r = gw.request(headers=headers)
    assert r.status == 200, r.text
    assert_identity(r.seen, "ci-bot", "api-key", groups="a,b")


def test_wrong_static_api_key(gw: Gateway) -> None:
    wrong = CI_KEY[:-1] + ("0" if CI_KEY[-1] != "0" else "1")
    assert_401(gw.request(headers=[("x-api-key", wrong)]), "invalid API key", secrets=(wrong,))


# ---- g. every algorithm ----------------------------------------------------------------------------------
@pytest.mark.parametrize("alg", ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"])
def test_algorithm(gw: Gateway, idp: IdP, alg: str) -> None:
    r = gw.request(token=idp.mint(alg, claims={"sub": f"alg-{alg}"}))
    assert r.status == 200, r.text
    assert r.seen.header_all(USER_ID) == [f"alg-{alg}"]


# ---- l. Anthropic headers and query pass unchanged ------------------------------------------------------
def test_anthropic_headers_and_query_unchanged(gw: Gateway, idp: IdP) -> None:
    sent = [("anthropic-version", "2023-06-01"),
            ("anthropic-beta", "interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14"),
            ("anthropic-beta", "context-1m-2025-08-07"),
            ("x-stainless-lang", "js"), ("user-agent", "claude-cli/2.0.0 (external, cli)")]
    r = gw.request(path="/v1/messages?beta=true", headers=sent, token=idp.mint())
    assert r.status == 200, r.text
    seen = r.seen
    assert seen.path == "/v1/messages?beta=true"
    assert seen.header_all("anthropic-version") == ["2023-06-01"]
    assert seen.header_all("anthropic-beta") in (
        ["interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14", "context-1m-2025-08-07"],
        ["interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14,context-1m-2025-08-07"])
    assert seen.header_all("x-stainless-lang") == ["js"]
    assert seen.header_all("user-agent") == ["claude-cli/2.0.0 (external, cli)"]


# ---- o. other endpoints ----------------------------------------------------------------------------------
def test_models_and_count_tokens(gw: Gateway, idp: IdP) -> None:
    token = idp.mint(claims={"sub": "lister"})
    r = gw.request("GET", "/v1/models", token=token)
    assert r.status == 200, r.text
    assert r.json()["data"][0]["type"] == "model"
    assert r.seen.method == "GET" and r.seen.path == "/v1/models"
    assert_identity(r.seen, "lister", PROVIDER, email="user@example.com", name="Test User")
    r = gw.request("POST", "/v1/messages/count_tokens", token=token)
    assert r.status == 200, r.text
    assert "input_tokens" in r.json()
    assert_identity(r.seen, "lister", PROVIDER, email="user@example.com", name="Test User")
    assert_401(gw.request("GET", "/v1/models"), "missing credential", presented=False)


# ---- m. HTTP/1.1 and HTTP/2 ------------------------------------------------------------------------------
def _curl(gw: Gateway, http2: bool, headers: list[tuple[str, str]], post: bool = True,
          ) -> tuple[int, str, list[tuple[str, str]], bytes]:
    trace = f"curl-{time.monotonic_ns()}"
    with tempfile.TemporaryDirectory() as d:
        body, head = Path(d) / "body", Path(d) / "head"
        cmd = ["curl", "-sS", "--noproxy", "*", "--max-time", "30", "-o", str(body), "-D", str(head),
               "-w", "%{http_code} %{http_version}", "-H", f"x-e2e-id: {trace}",
               "--http2-prior-knowledge" if http2 else "--http1.1"]
        if post:
            cmd += ["-X", "POST", "--data-binary", '{"model":"m","messages":[]}', "-H", "content-type: application/json"]
        for k, v in headers:
            cmd += ["-H", f"{k}: {v}"]
        out = subprocess.run(cmd + [gw.url + ("/v1/messages" if post else "/v1/models")],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        code, version = out.stdout.split()
        lines = head.read_text().splitlines()[1:]
        fields = [(k.strip().lower(), v.strip()) for k, _, v in (ln.partition(":") for ln in lines) if v]
        return int(code), version, fields, body.read_bytes()


@pytest.mark.parametrize("http2", [False, True], ids=["http1.1", "h2c"])
def test_curl_http_versions(gw: Gateway, idp: IdP, http2: bool) -> None:
    code, version, head, body = _curl(gw, http2, [("authorization", f"Bearer {idp.mint(claims={'sub': 'curl'})}")])
    assert (code, version) == (200, "2" if http2 else "1.1"), body
    # The 401 case is a GET: on h2c, Envoy ends a refused stream with RST_STREAM(NO_ERROR) right after the
    # complete response (RFC 9113 8.1), and curl 7.88 reports error 92 if its POST body was still in flight.
    code, version, head, body = _curl(gw, http2, [], post=False)
    assert (code, version) == (401, "2" if http2 else "1.1"), body
    assert json.loads(body) == error_body("authentication_error", "missing credential")
    assert [v for k, v in head if k == "www-authenticate"] == [www_authenticate(None)]
    assert [v for k, v in head if k == "content-type"] == ["application/json"]


@pytest.mark.parametrize("http2", [False, True], ids=["http1.1", "h2c"])
def test_httpx_http_versions(gw: Gateway, idp: IdP, http2: bool) -> None:
    r = gw.request(token=idp.mint(claims={"sub": "h2" if http2 else "h1"}), http2=http2)
    assert r.status == 200, r.text
    assert r.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
    assert_identity(r.seen, "h2" if http2 else "h1", PROVIDER, email="user@example.com", name="Test User")
    r = gw.request(http2=http2)
    assert r.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
    assert_401(r, "missing credential", presented=False)
    r = gw.request(headers=[("x-api-key", "nope-" + "0" * 40)], http2=http2)
    assert_401(r, "invalid API key")


def test_identity_header_list_is_complete() -> None:
    """Guard: the spoof list covers every identity header the contract names."""
    assert {h.lower() for h, _ in SPOOFED} == set(IDENTITY_HEADERS)
