"""Key sources: JWKS fetched through an Envoy cluster (down, failing, slow), inline JWKS, discovery."""

from __future__ import annotations

import json
import time
from typing import Callable

import pytest
from e2e_gateway import AUDIENCE, CI_KEY, PROVIDER, EnvoyPool, plugin_config
from e2e_expect import USER_ID, assert_503_keys_unavailable, assert_identity
from standins.idp import IdP
from standins.messages_api import MessagesAPI

ALGS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"]


# ---- h. identity provider unavailable -------------------------------------------------------------------
@pytest.mark.parametrize("mode,delay,timeout_ms", [
    ("down", None, 5000),        # cluster and URI point at a closed port
    ("error500", None, 5000),
    ("garbage", None, 5000),     # 200 with a body that is not JSON
    ("empty", None, 5000),       # {"keys": []}: zero usable keys
    ("delay", 3.0, 500),         # slower than timeout_ms
])
def test_keys_unavailable_is_503(pool: EnvoyPool, api: MessagesAPI, new_idp: Callable[..., IdP], mode: str,
                                 delay: float | None, timeout_ms: int) -> None:
    idp = new_idp()
    idp.set_mode(mode, delay=delay)
    plugin = plugin_config(idp, jwks={"uri": idp.jwks_uri, "cluster": "idp", "timeout_ms": timeout_ms})
    gw = pool.gateway(f"keys-{mode}", api, idp, plugin)
    started = time.monotonic()
    r = gw.request(token=idp.mint(claims={"sub": "nobody"}))
    assert_503_keys_unavailable(r)
    assert time.monotonic() - started < timeout_ms / 1000 + 3
    if mode != "down":
        assert idp.jwks_fetches >= 1
    # A second request gets the same answer, and static API keys do not depend on the IdP.
    assert_503_keys_unavailable(gw.request(token=idp.mint()))
    r = gw.request(headers=[("x-api-key", CI_KEY)])
    assert r.status == 200, r.text
    assert_identity(r.seen, "ci-bot", "api-key", groups="a,b")


def test_keys_kept_when_idp_goes_down_after_first_fetch(pool: EnvoyPool, api: MessagesAPI,
                                                        new_idp: Callable[..., IdP]) -> None:
    idp = new_idp()
    gw = pool.gateway("keys-then-down", api, idp, plugin_config(idp))
    assert gw.request(token=idp.mint()).status == 200
    _wait_stable(lambda: idp.jwks_fetches)
    idp.set_mode("down")
    for i in range(4):   # `connection: close`: each request on a new connection, so both workers are reached
        r = gw.request(token=idp.mint("ES256", claims={"sub": f"after-down-{i}"}), headers=[("connection", "close")])
        assert r.status == 200, r.text
        assert r.seen.header_all(USER_ID) == [f"after-down-{i}"]


def _wait_stable(read: Callable[[], int], quiet: float = 0.5, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    last, since = read(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = read()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return


def test_keys_refreshed_in_background(pool: EnvoyPool, api: MessagesAPI, new_idp: Callable[..., IdP]) -> None:
    """Key rotation: a key the IdP starts serving later is used after `refresh_seconds`."""
    idp = new_idp()
    idp.jwks_kids = ["ec-1"]
    plugin = plugin_config(idp, jwks={"uri": idp.jwks_uri, "cluster": "idp", "refresh_seconds": 2})
    gw = pool.gateway("keys-rotation", api, idp, plugin)
    assert gw.request(token=idp.mint("ES256")).status == 200
    t = idp.mint("RS256")
    r = gw.request(token=t)
    assert r.status == 401 and r.json()["error"]["message"] == "token signing key not found", r.text
    idp.jwks_kids = None   # rotation: the RSA key appears
    deadline = time.monotonic() + 8
    while True:
        r = gw.request(token=idp.mint("RS256", claims={"sub": "rotated"}))
        if r.status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    assert r.status == 200, f"new key not picked up within 8 s with refresh_seconds 2: {r.text}"
    assert r.seen.header_all(USER_ID) == ["rotated"]


# ---- i. a request that arrives before the first fetch finished waits for it ------------------------------
def test_request_waits_for_first_jwks_fetch(pool: EnvoyPool, api: MessagesAPI, new_idp: Callable[..., IdP]) -> None:
    """The IdP answers the JWKS fetch after 1.5 s; a request sent as soon as the listener is up waits for
    it and succeeds. (On a machine so loaded that Envoy's listener came up after the keys arrived, the case
    proves nothing, so it is repeated with a longer delay.)"""
    for delay in (1.5, 3.0, 6.0):
        idp = new_idp()
        idp.set_mode("delay", delay=delay)
        plugin = plugin_config(idp, jwks={"uri": idp.jwks_uri, "cluster": "idp",
                                          "timeout_ms": int(delay * 1000) + 5000})
        gw = pool.gateway(f"keys-slow-{delay}", api, idp, plugin)
        token = idp.mint(claims={"sub": "early-bird"})
        sent = time.monotonic()
        r = gw.request(token=token)
        done = time.monotonic()
        assert idp.jwks_answered_at, "the IdP never answered a JWKS fetch"
        first_answer = min(idp.jwks_answered_at)
        if sent < first_answer:
            break
        gw.close()
    else:
        pytest.fail("Envoy's listener was never up before a delayed JWKS answer (machine too loaded?)")
    assert r.status == 200, r.text
    assert r.seen.header_all(USER_ID) == ["early-bird"]
    assert done >= first_answer, "the request was answered before the keys were"
    assert done - first_answer < 1.0, f"answered {done - first_answer:.2f}s after the keys arrived"
    assert done - sent < delay + 2.0, f"took {done - sent:.2f}s for a {delay} s JWKS delay"


# ---- p. inline JWKS ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("form", ["struct", "string"])
def test_inline_jwks_needs_no_fetch(pool: EnvoyPool, api: MessagesAPI, new_idp: Callable[..., IdP],
                                    form: str) -> None:
    idp = new_idp()   # also the `idp` cluster: any fetch would be counted
    plugin = {"providers": [{"name": "inline-idp", "issuer": idp.issuer, "audiences": [AUDIENCE],
                             "jwks": {"inline": idp.jwks_json()}}]}
    gw = pool.gateway(f"inline-{form}", api, idp, plugin, form=form)
    for alg in ALGS:
        r = gw.request(token=idp.mint(alg, claims={"sub": f"inline-{alg}", "groups": ["g"]}))
        assert r.status == 200, f"{alg}: {r.text}"
        assert_identity(r.seen, f"inline-{alg}", "inline-idp", email="user@example.com", name="Test User",
                        groups="g")
    assert (idp.jwks_fetches, idp.discovery_fetches, idp.requests) == (0, 0, [])


def test_inline_jwks_with_only_some_keys(pool: EnvoyPool, api: MessagesAPI, new_idp: Callable[..., IdP]) -> None:
    """A kid that the inline set does not hold is `token signing key not found`."""
    idp = new_idp()
    plugin = {"providers": [{"name": "inline-idp", "issuer": idp.issuer, "audiences": [AUDIENCE],
                             "jwks": {"inline": _jwks_json(idp, ["ec-1"])}}]}
    gw = pool.gateway("inline-partial", api, idp, plugin)
    assert gw.request(token=idp.mint("ES256")).status == 200
    r = gw.request(token=idp.mint("RS256"))
    assert r.status == 401 and r.upstream == []
    assert r.json()["error"]["message"] == "token signing key not found"


def _jwks_json(idp: IdP, kids: list[str]) -> str:
    return json.dumps(idp.keys.jwks(kids))


# ---- discovery ---------------------------------------------------------------------------------------------
def test_discovery(pool: EnvoyPool, api: MessagesAPI, new_idp: Callable[..., IdP]) -> None:
    idp = new_idp()
    plugin = plugin_config(idp, jwks={"discovery": True, "cluster": "idp"})
    gw = pool.gateway("discovery", api, idp, plugin)
    r = gw.request(token=idp.mint("EdDSA", claims={"sub": "discovered"}))
    assert r.status == 200, r.text
    assert_identity(r.seen, "discovered", PROVIDER, email="user@example.com", name="Test User")
    assert idp.discovery_fetches >= 1 and idp.jwks_fetches >= 1
    paths = [q["path"] for q in idp.requests]
    assert "/.well-known/openid-configuration" in paths and "/jwks.json" in paths
    authorities = {dict((k.lower(), v) for k, v in q["headers"]).get("host") for q in idp.requests}
    assert authorities == {f"127.0.0.1:{idp.port}"}


def test_fetch_carries_url_host_and_path(pool: EnvoyPool, api: MessagesAPI, new_idp: Callable[..., IdP]) -> None:
    idp = new_idp()
    gw = pool.gateway("fetch-authority", api, idp, plugin_config(idp))
    assert gw.request(token=idp.mint()).status == 200
    jwks_requests = [q for q in idp.requests if q["path"] == "/jwks.json"]
    assert jwks_requests and all(q["method"] == "GET" for q in jwks_requests)
    hosts = {dict((k.lower(), v) for k, v in q["headers"]).get("host") for q in jwks_requests}
    assert hosts == {f"127.0.0.1:{idp.port}"}
