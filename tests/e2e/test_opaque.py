"""Opaque tokens through RFC 7662 introspection (contract: `providers[].opaque_tokens`): the token in a
POST form body, HTTP Basic client authentication with the secret from a VM environment variable, audience
and expiry checks, caching, and 503 (never 401) when the endpoint fails."""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

import pytest
from e2e_gateway import CI_KEY, CI_KEY_SHA256, EnvoyPool, Gateway
from e2e_expect import PROVIDER_HDR, USER_ID, assert_identity
from standins.idp import IdP, Keys
from standins.messages_api import MessagesAPI

pytestmark = pytest.mark.extended

CLIENT_ID, SECRET = "llm-gateway", "s3cret-" + uuid.uuid4().hex[:8]
INTROSPECT_URL = "https://sso.example.com/realms/corp/protocol/openid-connect/token/introspect"


@pytest.fixture(scope="module")
def opaque(module_pool: EnvoyPool, api: MessagesAPI, keys: Keys) -> Any:
    idp = IdP(issuer="https://sso.example.com/realms/corp", audience="claude-desktop", keys=keys,
              client_auth=(CLIENT_ID, SECRET)).start()
    plugin = {
        "api_keys": [{"name": "ci-bot", "sha256": CI_KEY_SHA256, "groups": ["a", "b"]}],
        "providers": [{
            "name": "keycloak", "issuer": idp.issuer, "audiences": ["claude-desktop", "llm-gateway"],
            "jwks": {"inline": idp.jwks_json()},
            "opaque_tokens": {"style": "rfc7662", "uri": INTROSPECT_URL, "cluster": "introspect",
                              "client_id": CLIENT_ID, "client_secret_env": "INTROSPECT_SECRET",
                              "timeout_ms": 1000, "cache_seconds": 300}}]}
    try:
        yield module_pool.gateway("opaque", api, idp, plugin, clusters={"introspect": idp.port},
                                  vm_env={"INTROSPECT_SECRET": SECRET})
    finally:
        idp.stop()


def _opaque(gw: Gateway, **claims: Any) -> str:
    token = "opq_" + uuid.uuid4().hex
    base = {"sub": "opaque-user", "client_id": "claude-desktop", "aud": "claude-desktop",
            "exp": int(time.time()) + 600, "scope": "openid llm.use", "token_type": "Bearer",
            "email": "olga@example.com"}
    base.update(claims)
    assert gw.idp is not None
    gw.idp.add_opaque(token, {k: v for k, v in base.items() if v is not None})
    return token


def _calls(gw: Gateway, token: str) -> list[dict[str, Any]]:
    assert gw.idp is not None
    return [c for c in gw.idp.introspections if c["form"].get("token") == token]


def test_active_token_is_accepted(opaque: Gateway) -> None:
    token = _opaque(opaque, sub="kc-user-1")
    r = opaque.request(token=token)
    assert r.status == 200, r.text
    assert r.seen.header_all(USER_ID) == ["kc-user-1"]
    assert r.seen.header_all(PROVIDER_HDR) == ["keycloak"]
    assert r.seen.header_all("authorization") == []
    calls = _calls(opaque, token)
    assert len(calls) == 1
    call = calls[0]
    hdrs = dict((k.lower(), v) for k, v in call["headers"])
    assert call["path"] == "/realms/corp/protocol/openid-connect/token/introspect"
    assert hdrs.get("host") == "sso.example.com"
    assert hdrs.get("authorization") == "Basic " + base64.b64encode(f"{CLIENT_ID}:{SECRET}".encode()).decode()
    assert (call["content_type"] or "").startswith("application/x-www-form-urlencoded")


@pytest.mark.parametrize("claims", [{"aud": None}, {"aud": None, "client_id": None, "azp": "llm-gateway"},
                                    {"aud": ["x", "llm-gateway"], "client_id": "x"}],
                         ids=["client-id-only", "azp-only", "aud-array"])
def test_audience_from_aud_client_id_or_azp(opaque: Gateway, claims: dict[str, Any]) -> None:
    r = opaque.request(token=_opaque(opaque, **claims))
    assert r.status == 200, r.text


@pytest.mark.parametrize("claims", [{"aud": "x", "client_id": "y"}, {"exp": int(time.time()) - 600},
                                    {"sub": None}], ids=["foreign-audience", "expired", "no-user-id"])
def test_refused_answers_are_401(opaque: Gateway, claims: dict[str, Any]) -> None:
    token = _opaque(opaque, **claims)
    r = opaque.request(token=token)
    assert r.status == 401 and r.upstream == [], r.text
    assert r.json()["error"]["type"] == "authentication_error"
    assert token not in r.text


def test_inactive_token_is_401(opaque: Gateway) -> None:
    token = "opq_unknown_" + uuid.uuid4().hex
    r = opaque.request(token=token)
    assert r.status == 401 and r.upstream == [], r.text
    assert r.json()["error"]["type"] == "authentication_error"
    assert r.headers.get("www-authenticate", "").startswith('Bearer realm="llm-gateway", error="invalid_token"')


def test_positive_answers_are_cached(opaque: Gateway) -> None:
    token = _opaque(opaque, sub="cached")
    for _ in range(6):
        r = opaque.request(token=token)
        assert r.status == 200, r.text
    assert 1 <= len(_calls(opaque, token)) <= 2, "one call per worker VM at most"


def test_api_keys_and_jwts_do_not_go_to_introspection(opaque: Gateway) -> None:
    assert opaque.idp is not None
    before = len(opaque.idp.introspections)
    r = opaque.request(headers=[("x-api-key", CI_KEY)])
    assert r.status == 200, r.text
    assert_identity(r.seen, "ci-bot", "api-key", groups="a,b")
    r = opaque.request(token=opaque.idp.mint(claims={"sub": "jwt-user"}))
    assert r.status == 200, r.text
    assert len(opaque.idp.introspections) == before


def test_endpoint_failure_is_503_and_not_cached(opaque: Gateway) -> None:
    assert opaque.idp is not None
    token = _opaque(opaque, sub="after-outage")
    for mode, delay in (("error500", None), ("garbage", None), ("delay", 3.0)):
        opaque.idp.set_mode(mode, delay=delay)
        try:
            started = time.monotonic()
            r = opaque.request(token=token)
            assert r.status == 503, f"{mode}: {r.status} {r.text}"
            assert r.upstream == []
            assert r.json()["error"]["type"] == "api_error"
            assert r.headers.get("retry-after"), r.headers
            assert "www-authenticate" not in r.headers
            assert time.monotonic() - started < 3.0, "timeout_ms 1000 not applied"
        finally:
            opaque.idp.set_mode("normal", delay=0)
    r = opaque.request(token=token)
    assert r.status == 200, r.text
    assert r.seen.header_all(USER_ID) == ["after-outage"]
