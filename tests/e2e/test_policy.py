"""Provider policy keys from the contract's "Identity-provider presets, access tokens and opaque tokens"
section: issuer_aliases, required_claims, required_scopes (403 insufficient_scope), groups_overage
(flag / deny) and the groups-overage header."""

from __future__ import annotations

from typing import Any

import pytest
from e2e_gateway import EnvoyPool, Gateway
from e2e_expect import assert_401
from standins.idp import IdP
from standins.messages_api import MessagesAPI

pytestmark = pytest.mark.extended


def _issuer(idp: IdP, suffix: str) -> str:
    return f"{idp.issuer}/{suffix}"


def test_issuer_aliases(pool: EnvoyPool, api: MessagesAPI, idp: IdP) -> None:
    plugin = {"providers": [{"name": "aliased", "issuer": _issuer(idp, "aliased"),
                             "issuer_aliases": ["urn:example:alias", "aliased.example"],
                             "audiences": ["claude-desktop"], "jwks": {"inline": idp.jwks_json()}}]}
    gw = pool.gateway("options-aliases", api, idp, plugin)
    for iss in (_issuer(idp, "aliased"), "urn:example:alias", "aliased.example"):
        r = gw.request(token=idp.mint(claims={"iss": iss, "sub": "aliased-user"}))
        assert r.status == 200, f"{iss}: {r.text}"
        assert r.seen.header_all("x-gateway-provider") == ["aliased"]
    t = idp.mint(claims={"iss": "urn:example:other"})
    assert_401(gw.request(token=t), "token issuer not trusted", secrets=(t,))


# ---- policy: required_claims, required_scopes, groups_overage ------------------------------------------------
@pytest.fixture(scope="module")
def policy(module_pool: EnvoyPool, api: MessagesAPI, idp: IdP) -> Gateway:
    plugin = {"providers": [
        {"name": "strict", "issuer": _issuer(idp, "strict"), "audiences": ["claude-desktop"],
         "required_claims": {"tid": ["tenant-1", "tenant-2"], "roles": ["llm-user"]},
         "required_scopes": ["llm.use"], "groups_overage": "deny", "jwks": {"inline": idp.jwks_json()}},
        {"name": "flagging", "issuer": _issuer(idp, "flag"), "audiences": ["claude-desktop"],
         "jwks": {"inline": idp.jwks_json()}},
    ]}
    return module_pool.gateway("options-policy", api, idp, plugin)


def _strict(idp: IdP, **claims: Any) -> str:
    base: dict[str, Any] = {"iss": _issuer(idp, "strict"), "tid": "tenant-1", "roles": ["reader", "llm-user"],
                            "scp": "openid llm.use"}
    base.update(claims)
    return idp.mint("RS256", claims=base)


@pytest.mark.parametrize("claims", [{}, {"tid": "tenant-2"}, {"scp": None, "scope": "llm.use email"},
                                    {"scp": ["profile", "llm.use"]}, {"roles": "llm-user"}],
                         ids=["scp-string", "second-tenant", "scope-claim", "scp-array", "role-as-string"])
def test_required_claims_and_scopes_met(policy: Gateway, idp: IdP, claims: dict[str, Any]) -> None:
    r = policy.request(token=_strict(idp, sub="policy-ok", **claims))
    assert r.status == 200, r.text
    assert r.seen.header_all("x-gateway-user-id") == ["policy-ok"]


@pytest.mark.parametrize("claims", [{"tid": "tenant-3"}, {"tid": None}, {"roles": ["reader"]}, {"roles": None}],
                         ids=["wrong-tenant", "no-tenant", "missing-role", "no-roles"])
def test_required_claims_mismatch_is_401(policy: Gateway, idp: IdP, claims: dict[str, Any]) -> None:
    token = _strict(idp, **claims)
    r = policy.request(token=token)
    assert r.status == 401, r.text
    assert r.upstream == []
    assert r.headers.get("content-type") == "application/json"
    body = r.json()
    assert body["type"] == "error" and body["error"]["type"] == "authentication_error"
    assert "tenant-1" not in r.text and "llm-user" not in r.text, "the answer reveals configuration"
    assert r.headers.get("www-authenticate", "").startswith('Bearer realm="llm-gateway", error="invalid_token"')


@pytest.mark.parametrize("claims", [{"scp": "openid"}, {"scp": None}, {"scp": None, "scope": ["email"]}],
                         ids=["other-scope", "no-scope", "scope-array-without"])
def test_missing_scope_is_403_insufficient_scope(policy: Gateway, idp: IdP, claims: dict[str, Any]) -> None:
    r = policy.request(token=_strict(idp, **claims))
    assert r.status == 403, r.text
    assert r.upstream == []
    assert r.headers.get("content-type") == "application/json"
    assert r.json()["type"] == "error" and r.json()["error"]["type"] == "permission_error"
    www = r.headers.get("www-authenticate", "")
    assert www.startswith("Bearer ") and 'error="insufficient_scope"' in www, www


@pytest.mark.parametrize("claims", [{"_claim_names": {"groups": "src1"},
                                     "_claim_sources": {"src1": {"endpoint": "https://graph.microsoft.com/x"}}},
                                    {"hasgroups": True}], ids=["claim-names", "hasgroups"])
def test_groups_overage(policy: Gateway, idp: IdP, claims: dict[str, Any]) -> None:
    r = policy.request(token=_strict(idp, **claims))
    assert r.status == 403, r.text
    assert r.upstream == []
    assert r.json()["error"]["type"] == "permission_error"
    token = idp.mint("ES256", claims={"iss": _issuer(idp, "flag"), "sub": "many-groups", **claims})
    r = policy.request(token=token, headers=[("x-gateway-groups-overage", "false")])
    assert r.status == 200, r.text
    assert r.seen.header_all("x-gateway-groups-overage") == ["true"]
    assert r.seen.header_all("x-gateway-user-groups") == []
    assert r.seen.header_all("x-gateway-provider") == ["flagging"]


def test_no_overage_no_flag(policy: Gateway, idp: IdP) -> None:
    token = idp.mint("ES256", claims={"iss": _issuer(idp, "flag"), "sub": "few-groups", "groups": ["g1"]})
    r = policy.request(token=token, headers=[("x-gateway-groups-overage", "true")])
    assert r.status == 200, r.text
    assert r.seen.header_all("x-gateway-groups-overage") in ([], ["false"])
    assert r.seen.header_all("x-gateway-user-groups") == ["g1"]
