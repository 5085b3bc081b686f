"""Identity-provider presets (contract: "Identity-provider presets, access tokens and opaque tokens"):
entra, okta (custom and org authorization server) and google, each pointed at a local IdP stand-in through
`jwks.cluster`, so the filter's dispatched calls carry the real provider's host and path while the
cluster sends them to 127.0.0.1. Google access tokens go through the tokeninfo stand-in."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from e2e_gateway import EnvoyPool, Gateway
from e2e_expect import GROUPS, PROVIDER_HDR, TENANT, USER_ID
from standins.idp import IdP, Keys
from standins.messages_api import MessagesAPI

pytestmark = pytest.mark.extended

TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
ENTRA_ISS = f"https://login.microsoftonline.com/{TENANT_ID}/v2.0"
ENTRA_V1_ISS = f"https://sts.windows.net/{TENANT_ID}/"
ENTRA_CLIENT = "6731de76-14a6-49ae-97bc-6eba6914391e"
OKTA_ORG = "https://dev-123456.okta.com"
OKTA_CLIENT = "0oa1b2c3d4e5f6g7h8i9"
GOOGLE_CLIENT = "1234567890-abc.apps.googleusercontent.com"
GRAPH_AUD = "00000003-0000-0000-c000-000000000000"
GENERIC = {"token issuer not trusted", "token signature invalid", "audience not allowed", "malformed token",
           "token signing key not found", "invalid API key"}


class Presets:
    def __init__(self, gw: Gateway, entra: IdP, okta: IdP, google: IdP) -> None:
        self.gw, self.entra, self.okta, self.google = gw, entra, okta, google


@pytest.fixture(scope="module")
def presets(module_pool: EnvoyPool, api: MessagesAPI, keys: Keys) -> Any:
    entra = IdP(issuer=ENTRA_ISS, audience=ENTRA_CLIENT, keys=keys,
                jwks_uri=f"https://login.microsoftonline.com/{TENANT_ID}/discovery/v2.0/keys").start()
    okta = IdP(issuer=f"{OKTA_ORG}/oauth2/default", audience=OKTA_CLIENT, keys=keys).start()
    google = IdP(issuer="https://accounts.google.com", audience=GOOGLE_CLIENT, keys=keys).start()
    plugin = {"providers": [
        {"name": "entra", "preset": "entra", "tenant_id": TENANT_ID, "client_id": ENTRA_CLIENT,
         "jwks": {"cluster": "idp-entra"}},
        {"name": "okta", "preset": "okta", "org_url": OKTA_ORG, "authorization_server": "default",
         "client_id": OKTA_CLIENT, "jwks": {"cluster": "idp-okta"}},
        {"name": "okta-org", "preset": "okta", "org_url": OKTA_ORG, "client_id": OKTA_CLIENT,
         "jwks": {"cluster": "idp-okta"}},
        {"name": "google", "preset": "google", "client_id": GOOGLE_CLIENT, "hosted_domains": ["example.com"],
         "jwks": {"cluster": "idp-google"},
         "opaque_tokens": {"style": "google_tokeninfo", "uri": "https://oauth2.googleapis.com/tokeninfo",
                           "cluster": "idp-google"}},
    ]}
    try:
        gw = module_pool.gateway("presets", api, None, plugin,
                                  clusters={"idp-entra": entra.port, "idp-okta": okta.port, "idp-google": google.port})
        yield Presets(gw, entra, okta, google)
    finally:
        for s in (entra, okta, google):
            s.stop()


def _hosts_and_paths(idp: IdP) -> set[tuple[str | None, str]]:
    return {(dict((k.lower(), v) for k, v in q["headers"]).get("host"), q["path"]) for q in idp.requests}


# ---- entra ------------------------------------------------------------------------------------------------
def _entra(p: Presets, header: dict[str, Any] | None = None, **claims: Any) -> str:
    base = {"iss": ENTRA_ISS, "aud": ENTRA_CLIENT, "tid": TENANT_ID, "oid": "oid-" + uuid.uuid4().hex[:8],
            "sub": "pairwise-sub", "preferred_username": "alice@contoso.com", "ver": "2.0"}
    base.update(claims)
    return p.entra.mint("RS256", claims=base, header=header)


@pytest.mark.parametrize("claims", [{}, {"aud": f"api://{ENTRA_CLIENT}"},
                                    {"iss": ENTRA_V1_ISS, "aud": f"api://{ENTRA_CLIENT}", "ver": "1.0"}],
                         ids=["v2-id-token", "api-audience", "v1-issuer-alias"])
def test_entra_accepts(presets: Presets, claims: dict[str, Any]) -> None:
    r = presets.gw.request(token=_entra(presets, oid="entra-oid-1", groups=["g-1", "g-2"], **claims))
    assert r.status == 200, r.text
    seen = r.seen
    assert seen.header_all(USER_ID) == ["entra-oid-1"]
    assert seen.header_all(PROVIDER_HDR) == ["entra"]
    assert seen.header_all(TENANT) == [TENANT_ID]
    assert seen.header_all(GROUPS) == ["g-1,g-2"]


def test_entra_fetches_discovery_then_keys_with_real_host_and_path(presets: Presets) -> None:
    assert presets.gw.request(token=_entra(presets)).status == 200
    seen = _hosts_and_paths(presets.entra)
    assert ("login.microsoftonline.com", f"/{TENANT_ID}/v2.0/.well-known/openid-configuration") in seen
    assert ("login.microsoftonline.com", f"/{TENANT_ID}/discovery/v2.0/keys") in seen


def test_entra_other_tenant_is_401(presets: Presets) -> None:
    r = presets.gw.request(token=_entra(presets, tid="00000000-0000-0000-0000-000000000000"))
    assert r.status == 401 and r.upstream == [], r.text
    assert r.json()["error"]["type"] == "authentication_error"
    assert TENANT_ID not in r.text


@pytest.mark.parametrize("header,claims", [({"nonce": "abc123"}, {}), ({}, {"aud": GRAPH_AUD}),
                                           ({}, {"aud": "https://graph.microsoft.com"})],
                         ids=["nonce-header", "graph-aud-guid", "graph-aud-url"])
def test_entra_graph_token_gets_specific_reason(presets: Presets, header: dict[str, Any],
                                                claims: dict[str, Any]) -> None:
    r = presets.gw.request(token=_entra(presets, header=header, **claims))
    assert r.status == 401 and r.upstream == [], r.text
    body = r.json()
    assert body["error"]["type"] == "authentication_error"
    assert body["error"]["message"] not in GENERIC, "a Graph token should be named as such"


def test_issuer_with_trailing_slash_gets_specific_reason(presets: Presets) -> None:
    r = presets.gw.request(token=_entra(presets, iss=ENTRA_ISS + "/"))
    assert r.status == 401 and r.upstream == [], r.text
    message = r.json()["error"]["message"]
    assert message not in GENERIC and ENTRA_ISS not in message


def test_entra_groups_overage_flagged(presets: Presets) -> None:
    r = presets.gw.request(token=_entra(presets, oid="big", hasgroups=True))
    assert r.status == 200, r.text
    assert r.seen.header_all("x-gateway-groups-overage") == ["true"]


# ---- okta ------------------------------------------------------------------------------------------------
def test_okta_custom_authorization_server_uid_first(presets: Presets) -> None:
    t = presets.okta.mint("RS256", claims={"iss": f"{OKTA_ORG}/oauth2/default", "aud": OKTA_CLIENT,
                                            "sub": "alice@example.com", "uid": "00u1abcd"})
    r = presets.gw.request(token=t)
    assert r.status == 200, r.text
    assert r.seen.header_all(USER_ID) == ["00u1abcd"] and r.seen.header_all(PROVIDER_HDR) == ["okta"]
    assert ("dev-123456.okta.com", "/oauth2/default/v1/keys") in _hosts_and_paths(presets.okta)
    t = presets.okta.mint("RS256", claims={"iss": f"{OKTA_ORG}/oauth2/default", "aud": OKTA_CLIENT,
                                            "sub": "bob@example.com"})
    r = presets.gw.request(token=t)
    assert r.status == 200 and r.seen.header_all(USER_ID) == ["bob@example.com"], r.text


def test_okta_org_authorization_server_id_token(presets: Presets) -> None:
    t = presets.okta.mint("RS256", claims={"iss": OKTA_ORG, "aud": OKTA_CLIENT, "sub": "00u9zzzz"})
    r = presets.gw.request(token=t)
    assert r.status == 200, r.text
    assert r.seen.header_all(PROVIDER_HDR) == ["okta-org"]
    assert ("dev-123456.okta.com", "/oauth2/v1/keys") in _hosts_and_paths(presets.okta)


# ---- google ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("iss", ["https://accounts.google.com", "accounts.google.com"])
def test_google_id_token(presets: Presets, iss: str) -> None:
    t = presets.google.mint("RS256", claims={"iss": iss, "aud": GOOGLE_CLIENT, "sub": "1100220033",
                                              "hd": "example.com", "email": "carol@example.com",
                                              "email_verified": True})
    r = presets.gw.request(token=t)
    assert r.status == 200, r.text
    assert r.seen.header_all(USER_ID) == ["1100220033"] and r.seen.header_all(PROVIDER_HDR) == ["google"]
    assert ("www.googleapis.com", "/oauth2/v3/certs") in _hosts_and_paths(presets.google)


@pytest.mark.parametrize("hd", ["other.com", None])
def test_google_foreign_or_missing_hosted_domain_is_401(presets: Presets, hd: str | None) -> None:
    t = presets.google.mint("RS256", claims={"iss": "https://accounts.google.com", "aud": GOOGLE_CLIENT,
                                              "sub": "1100220044", "hd": hd})
    r = presets.gw.request(token=t)
    assert r.status == 401 and r.upstream == [], r.text
    assert r.json()["error"]["type"] == "authentication_error"
    assert "example.com" not in r.text


def _google_access(p: Presets, **claims: Any) -> str:
    token = "ya29." + uuid.uuid4().hex + uuid.uuid4().hex
    base = {"azp": GOOGLE_CLIENT, "aud": GOOGLE_CLIENT, "sub": "1100220055", "scope": "openid email",
            "exp": int(time.time()) + 3000, "email": "dave@example.com", "email_verified": True,
            "access_type": "online"}
    base.update(claims)
    p.google.add_opaque(token, {k: v for k, v in base.items() if v is not None})
    return token


def test_google_access_token_via_tokeninfo(presets: Presets) -> None:
    token = _google_access(presets)
    r = presets.gw.request(token=token)
    assert r.status == 200, r.text
    assert r.seen.header_all(USER_ID) == ["1100220055"] and r.seen.header_all(PROVIDER_HDR) == ["google"]
    assert r.seen.header_all("authorization") == []
    calls = [c for c in presets.google.introspections if token in c["form"].values()]
    assert calls, "tokeninfo was not called with the token in the form body"
    for c in calls:
        assert token not in c["path"], "the token went into the URL"
        assert dict((k.lower(), v) for k, v in c["headers"]).get("host") == "oauth2.googleapis.com"
        assert c["path"].split("?")[0] == "/tokeninfo"


@pytest.mark.parametrize("claims", [{"email": "eve@other.com"}, {"email_verified": False}, {"email": None},
                                    {"aud": "someone-else", "azp": "someone-else"},
                                    {"exp": int(time.time()) - 600}],
                         ids=["foreign-domain", "unverified", "no-email", "other-client", "expired"])
def test_google_access_token_refused(presets: Presets, claims: dict[str, Any]) -> None:
    token = _google_access(presets, **claims)
    r = presets.gw.request(token=token)
    assert r.status == 401 and r.upstream == [], r.text
    assert r.json()["error"]["type"] == "authentication_error"
    assert token not in r.text


def test_google_unknown_access_token_is_401(presets: Presets) -> None:
    token = "ya29.unknown-" + uuid.uuid4().hex
    r = presets.gw.request(token=token)
    assert r.status == 401 and r.upstream == [], r.text
    assert r.json()["error"]["type"] == "authentication_error"
