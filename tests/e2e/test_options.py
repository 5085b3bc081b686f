"""Configuration keys beyond the defaults (contract table "Configuration keys"): token_headers order,
remove_credential, renamed identity headers, user_claims, algorithms, clock_skew_seconds, audiences."""

from __future__ import annotations

import time
from typing import Any

import pytest
from e2e_gateway import CI_KEY, CI_KEY_SHA256, EnvoyPool, Gateway
from e2e_expect import assert_401
from standins.idp import IdP
from standins.messages_api import MessagesAPI

CUSTOM_HEADERS = {"user_id": "x-uid", "email": "x-mail", "name": "x-display-name", "groups": "x-groups",
                  "provider": "x-idp", "tenant_id": "x-tid", "groups_overage": "x-overage"}


def _issuer(idp: IdP, suffix: str) -> str:
    return f"{idp.issuer}/{suffix}"


@pytest.fixture(scope="module")
def custom(module_pool: EnvoyPool, api: MessagesAPI, idp: IdP) -> Gateway:
    """token_headers [x-custom-token, authorization], remove_credential false, renamed headers, and a
    provider with non-default claims options (inline keys)."""
    plugin = {
        "token_headers": ["x-custom-token", "authorization"],
        "remove_credential": False,
        "headers": CUSTOM_HEADERS,
        "api_keys": [{"name": "ci-bot", "sha256": CI_KEY_SHA256, "groups": ["a"]}],
        "providers": [{
            "name": "claims-opts", "issuer": _issuer(idp, "claims"),
            "audiences": ["aud-1", "aud-2"], "user_claims": ["preferred_username", "sub"],
            "algorithms": ["ES256", "EdDSA"], "clock_skew_seconds": 0,
            "jwks": {"inline": idp.jwks_json()}}],
    }
    return module_pool.gateway("options-custom", api, idp, plugin)


def _tok(idp: IdP, alg: str = "ES256", **claims: Any) -> str:
    base = {"iss": _issuer(idp, "claims"), "aud": "aud-1"}
    base.update(claims)
    return idp.mint(alg, claims=base)


def test_custom_token_header_raw_value(custom: Gateway, idp: IdP) -> None:
    token = _tok(idp, sub="custom-1")
    r = custom.request(headers=[("x-custom-token", token)])
    assert r.status == 200, r.text
    seen = r.seen
    assert seen.header_all("x-uid") == ["custom-1"]
    assert seen.header_all("x-idp") == ["claims-opts"]
    assert seen.header_all("x-mail") == ["user@example.com"]
    assert seen.header_all("x-display-name") == ["Test User"]
    assert seen.header_all("x-custom-token") == [token], "remove_credential: false keeps the credential"


def test_remove_credential_false_keeps_authorization(custom: Gateway, idp: IdP) -> None:
    token = _tok(idp, sub="keep")
    r = custom.request(token=token)
    assert r.status == 200, r.text
    assert r.seen.header_all("authorization") == [f"Bearer {token}"]


def test_first_token_header_wins(custom: Gateway, idp: IdP) -> None:
    good = _tok(idp, sub="first")
    r = custom.request(headers=[("x-custom-token", good), ("authorization", "Bearer not-a-key-at-all")])
    assert r.status == 200, r.text
    assert r.seen.header_all("x-uid") == ["first"]
    r = custom.request(headers=[("x-custom-token", "not-a-key-at-all"), ("authorization", f"Bearer {good}")])
    assert_401(r, "invalid API key")


def test_header_not_in_token_headers_is_not_a_credential(custom: Gateway) -> None:
    assert_401(custom.request(headers=[("x-api-key", CI_KEY)]), "missing credential", presented=False)
    r = custom.request(headers=[("x-custom-token", CI_KEY)])
    assert r.status == 200, r.text
    assert r.seen.header_all("x-uid") == ["ci-bot"] and r.seen.header_all("x-idp") == ["api-key"]
    assert r.seen.header_all("x-groups") == ["a"]


def test_renamed_identity_headers_cannot_be_spoofed(custom: Gateway, idp: IdP) -> None:
    spoof = [(h, "spoofed") for h in CUSTOM_HEADERS.values()]
    r = custom.request(headers=spoof + [("x-custom-token", _tok(idp, sub="real", email=None, name=None))])
    assert r.status == 200, r.text
    got = {h: r.seen.header_all(h) for h in CUSTOM_HEADERS.values()}
    assert got == {"x-uid": ["real"], "x-mail": [], "x-display-name": [], "x-groups": [], "x-idp": ["claims-opts"],
                   "x-tid": [], "x-overage": []}
    assert_401(custom.request(headers=spoof), "missing credential", presented=False)


def test_user_claims_order(custom: Gateway, idp: IdP) -> None:
    r = custom.request(headers=[("x-custom-token", _tok(idp, sub="s-1", preferred_username="alice@corp"))])
    assert r.status == 200 and r.seen.header_all("x-uid") == ["alice@corp"], r.text
    r = custom.request(headers=[("x-custom-token", _tok(idp, sub="s-2"))])
    assert r.status == 200 and r.seen.header_all("x-uid") == ["s-2"], r.text
    t = _tok(idp, sub=None)
    assert_401(custom.request(headers=[("x-custom-token", t)]), "token has no user id claim", secrets=(t,))


@pytest.mark.parametrize("alg,ok", [("ES256", True), ("EdDSA", True), ("RS256", False), ("PS256", False),
                                    ("ES384", False)])
def test_algorithms_restriction(custom: Gateway, idp: IdP, alg: str, ok: bool) -> None:
    t = _tok(idp, alg, sub=f"alg-{alg}")
    r = custom.request(headers=[("x-custom-token", t)])
    if ok:
        assert r.status == 200, r.text
    else:
        assert_401(r, "token algorithm not allowed", secrets=(t,))


def test_clock_skew_zero(custom: Gateway, idp: IdP) -> None:
    now = int(time.time())
    t = _tok(idp, exp=now - 5)
    assert_401(custom.request(headers=[("x-custom-token", t)]), "token expired", secrets=(t,))
    t = _tok(idp, nbf=now + 30)
    assert_401(custom.request(headers=[("x-custom-token", t)]), "token not yet valid", secrets=(t,))


def test_default_clock_skew_tolerates_60s(shared_gateway: Any, idp: IdP) -> None:
    gw = shared_gateway("struct")
    now = int(time.time())
    for claims in ({"exp": now - 30}, {"nbf": now + 30}, {"iat": now + 30}):
        r = gw.request(token=idp.mint(claims={**claims, "sub": "skew"}))
        assert r.status == 200, f"{claims}: {r.text}"


@pytest.mark.parametrize("aud", ["aud-2", ["other", "aud-1"]])
def test_audiences_any_of(custom: Gateway, idp: IdP, aud: Any) -> None:
    r = custom.request(headers=[("x-custom-token", _tok(idp, aud=aud))])
    assert r.status == 200, r.text
