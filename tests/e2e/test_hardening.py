"""Issue #14, in Envoy 1.40: underscore twins of the identity headers never reach the upstream (item 1),
and credentials go to an introspection endpoint only as `Authorization: Bearer` tokens, to Google's
tokeninfo only as Google access tokens (item 7, counted at the stand-in).

The filter's own stripping is tested with Envoy's default, which lets header names with underscores
through (`headers_with_underscores_action: ALLOW`); the setting every shipped config carries
(REJECT_REQUEST) is tested apart, from the shipped files themselves.
"""

from __future__ import annotations

import secrets
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
import yaml
from e2e_gateway import CI_KEY, CI_KEY_SHA256, EnvoyPool, Gateway, Result
from e2e_expect import IDENTITY_HEADERS, assert_401, assert_identity
from e2e_harness import REPO
from standins.idp import IdP, Keys
from standins.messages_api import MessagesAPI, Recorded

AUDIENCE = "claude-desktop"
GOOGLE_CLIENT = "1234567890-hardening.apps.googleusercontent.com"
INTROSPECT_URL = "https://sso.example.com/realms/corp/protocol/openid-connect/token/introspect"
CLIENT_KEY = "sk-ant-api03-" + "x" * 40          # a client's real Anthropic key, sent by mistake

# Underscore twins of every identity header (the two extra ones included), in the spellings a client
# can send: all lowercase, all uppercase, and dashes and underscores mixed.
TWINS = [
    ("x_gateway_user_email", "evil@x.example"),
    ("X_GATEWAY_USER_ID", "evil"),
    ("x_gateway_user_groups", "admins"),
    ("x_gateway_user_name", "Eve"),
    ("x_gateway_provider", "api-key"),
    ("x_gateway_tenant_id", "t2"),
    ("x_gateway_groups_overage", "false"),
    ("X-Gateway_User-Id", "evil-mixed"),
]
REJECT = {"headers_with_underscores_action": "REJECT_REQUEST"}
SHIPPED_ENVOY = sorted((REPO / "envoy").glob("*.yaml")) + sorted((REPO / "envoy" / "examples").glob("*.yaml"))


@pytest.fixture(scope="module")
def sso(keys: Keys) -> Iterator[IdP]:
    with IdP(issuer="https://sso.example.com/realms/corp", audience=AUDIENCE, keys=keys) as idp:
        yield idp


@pytest.fixture(scope="module")
def gw(module_pool: EnvoyPool, api: MessagesAPI, sso: IdP) -> Gateway:
    """JWTs, the API key ci-bot, and opaque tokens by RFC 7662 introspection; Envoy's defaults."""
    plugin = {
        "api_keys": [{"name": "ci-bot", "sha256": CI_KEY_SHA256, "groups": ["a", "b"]}],
        "providers": [{
            "name": "corp", "issuer": sso.issuer, "audiences": [AUDIENCE], "jwks": {"inline": sso.jwks_json()},
            "opaque_tokens": {"style": "rfc7662", "uri": INTROSPECT_URL, "cluster": "introspect"}}]}
    return module_pool.gateway("hardening", api, sso, plugin, clusters={"introspect": sso.port})


@pytest.fixture(scope="module")
def google(module_pool: EnvoyPool, api: MessagesAPI, keys: Keys) -> Iterator[Gateway]:
    with IdP(issuer="https://accounts.google.com", audience=GOOGLE_CLIENT, keys=keys) as idp:
        plugin = {"providers": [{
            "name": "google", "preset": "google", "client_id": GOOGLE_CLIENT, "hosted_domains": ["example.com"],
            "jwks": {"inline": idp.jwks_json()},
            "opaque_tokens": {"style": "google_tokeninfo", "uri": "https://oauth2.googleapis.com/tokeninfo",
                              "cluster": "google_oauth"}}]}
        yield module_pool.gateway("hardening-google", api, idp, plugin, clusters={"google_oauth": idp.port})


def _opaque(idp: IdP, sub: str) -> str:
    token = "opq_" + uuid.uuid4().hex
    idp.add_opaque(token, {"sub": sub, "aud": AUDIENCE, "client_id": AUDIENCE, "exp": int(time.time()) + 600,
                           "email": "olga@example.com", "email_verified": True})
    return token


def _calls(idp: IdP) -> list[dict[str, Any]]:
    with idp._lock:                            # noqa: SLF001 - the stand-in's own lock
        return list(idp.introspections)


def _asked_about(idp: IdP, credential: str) -> int:
    return sum(credential in (c["form"].get("token"), c["form"].get("access_token")) for c in _calls(idp))


def _no_twins(seen: Recorded) -> None:
    """No header reached the upstream whose name is an identity header's with `_` for `-`."""
    for name, value in seen.headers:
        if name.lower().replace("_", "-") in IDENTITY_HEADERS:
            assert "_" not in name, f"underscore twin {name}: {value} reached the upstream"


# ---- item 1: the filter strips underscore twins --------------------------------------------------------------
@pytest.mark.parametrize("http2", [False, True], ids=["http1.1", "http2"])
@pytest.mark.parametrize("path", ["jwt", "api-key", "opaque"])
def test_underscore_twins_never_reach_the_upstream(gw: Gateway, sso: IdP, path: str, http2: bool) -> None:
    if path == "jwt":
        credential = [("authorization", "Bearer " + sso.mint(claims={"sub": "jwt-user", "email_verified": True}))]
        expected: dict[str, Any] = {"user_id": "jwt-user", "provider": "corp", "email": "user@example.com",
                                    "name": "Test User"}
    elif path == "api-key":
        # No email header is set for an API key: a twin would be the upstream's only copy.
        credential = [("x-api-key", CI_KEY)]
        expected = {"user_id": "ci-bot", "provider": "api-key", "groups": "a,b"}
    else:
        credential = [("authorization", "Bearer " + _opaque(sso, "opaque-user"))]
        expected = {"user_id": "opaque-user", "provider": "corp", "email": "olga@example.com"}
    r = gw.request(headers=credential + TWINS, http2=http2)
    assert r.status == 200, r.text
    assert r.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
    _no_twins(r.seen)
    assert_identity(r.seen, **expected)


def test_other_underscore_headers_pass_under_envoys_default(gw: Gateway) -> None:
    """Control: the filter strips only identity twins; Envoy's default lets other underscore names by."""
    r = gw.request(headers=[("x-api-key", CI_KEY), ("x_request_tag", "kept")])
    assert r.status == 200, r.text
    assert r.seen.header_all("x_request_tag") == ["kept"]


# ---- item 1: the setting every shipped config carries ---------------------------------------------------------
def _hcm(path: Path) -> dict[str, Any]:
    config = yaml.safe_load(path.read_text())
    managers = [f["typed_config"] for lst in config["static_resources"]["listeners"]
                for chain in lst["filter_chains"] for f in chain["filters"]
                if f["name"] == "envoy.filters.network.http_connection_manager"]
    assert managers, f"{path}: no HTTP connection manager"
    return managers[0]


@pytest.mark.parametrize("path", SHIPPED_ENVOY, ids=[p.name for p in SHIPPED_ENVOY])
def test_shipped_envoy_configs_reject_underscores(path: Path) -> None:
    assert _hcm(path).get("common_http_protocol_options") == REJECT, path


def test_shipped_istio_and_envoy_gateway_manifests_reject_underscores() -> None:
    docs = [d for p in sorted((REPO / "envoy" / "istio").glob("*.yaml"))
            + sorted((REPO / "envoy" / "envoy-gateway").glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]
    (patch,) = [d for d in docs if d["kind"] == "EnvoyFilter"]
    (wasm_plugin,) = [d for d in docs if d["kind"] == "WasmPlugin"]
    assert patch["spec"]["workloadSelector"]["labels"] == wasm_plugin["spec"]["selector"]["matchLabels"]
    (change,) = patch["spec"]["configPatches"]
    assert change["applyTo"] == "NETWORK_FILTER" and change["match"]["context"] == "GATEWAY"
    assert change["match"]["listener"]["filterChain"]["filter"]["name"] == "envoy.filters.network.http_connection_manager"
    assert change["patch"]["operation"] == "MERGE"
    assert change["patch"]["value"]["typed_config"]["common_http_protocol_options"] == REJECT
    (policy,) = [d for d in docs if d["kind"] == "ClientTrafficPolicy"]
    (gateway,) = [d for d in docs if d["kind"] == "Gateway" and d["apiVersion"].startswith("gateway.networking.k8s.io")]
    assert policy["metadata"]["namespace"] == gateway["metadata"]["namespace"]
    assert {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gateway["metadata"]["name"]} \
        in policy["spec"]["targetRefs"]
    assert policy["spec"]["headers"]["withUnderscoresAction"] == "RejectRequest"


@pytest.fixture(scope="module")
def shipped(module_pool: EnvoyPool, api: MessagesAPI, sso: IdP) -> Gateway:
    """The API-key gateway with the HTTP options envoy/dev.yaml ships."""
    options = _hcm(REPO / "envoy" / "dev.yaml")["common_http_protocol_options"]
    plugin = {"api_keys": [{"name": "ci-bot", "sha256": CI_KEY_SHA256}]}
    return module_pool.gateway("hardening-shipped", api, None, plugin, protocol_options=options)


def test_shipped_setting_rejects_underscore_names(shipped: Gateway) -> None:
    assert shipped.request(headers=[("x-api-key", CI_KEY)]).status == 200    # control
    for name, value in TWINS[:2] + [("x_request_tag", "any")]:
        r = shipped.request(headers=[("x-api-key", CI_KEY), (name, value)])
        assert r.status == 400, f"{name}: {r.status} {r.text[:200]}"
        assert r.upstream == []
        assert "www-authenticate" not in r.headers      # Envoy's codec answered, not the filter
        # HTTP/2: the stream is reset; nothing reaches the upstream either.
        trace = uuid.uuid4().hex
        with pytest.raises(httpx.HTTPError):
            shipped.client(http2=True).get(shipped.url + "/v1/models",
                                           headers=[("x-api-key", CI_KEY), (name.lower(), value), ("x-e2e-id", trace)])
        assert shipped.api.find("x-e2e-id", trace) == []


# ---- item 7: what is sent to an introspection endpoint ------------------------------------------------------
def test_x_api_key_is_never_introspected(gw: Gateway, sso: IdP) -> None:
    before = len(_calls(sso))
    r = gw.request(headers=[("x-api-key", CLIENT_KEY)])
    assert_401(r, "invalid API key", secrets=(CLIENT_KEY,))
    # Not even a token the endpoint knows, when it comes as x-api-key.
    known = _opaque(sso, "opaque-user")
    assert_401(gw.request(headers=[("x-api-key", known)]), "invalid API key", secrets=(known,))
    assert len(_calls(sso)) == before
    # The same token as a bearer token is asked about, once.
    r = gw.request(token=known)
    assert r.status == 200, r.text
    assert _asked_about(sso, known) == 1 and len(_calls(sso)) == before + 1


def test_tokeninfo_is_asked_only_about_google_access_tokens(google: Gateway) -> None:
    idp = google.idp
    assert idp is not None
    before = len(_calls(idp))
    for credential in (CLIENT_KEY, "opq_" + uuid.uuid4().hex, "ya29"):
        r: Result = google.request(token=credential)
        assert_401(r, "invalid API key", secrets=(credential,))
    assert len(_calls(idp)) == before, "a credential that is no Google access token went to tokeninfo"
    token = "ya29." + secrets.token_urlsafe(40)
    idp.add_opaque(token, {"azp": GOOGLE_CLIENT, "aud": GOOGLE_CLIENT, "sub": "1100220066", "scope": "openid email",
                           "exp": int(time.time()) + 3000, "email": "frank@example.com", "email_verified": True})
    r = google.request(token=token)
    assert r.status == 200, r.text
    assert _asked_about(idp, token) == 1 and len(_calls(idp)) == before + 1
