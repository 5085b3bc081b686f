"""Bounds on opaque-token calls (docs/operations.md "Opaque tokens"): a hanging endpoint gives 503 after `timeout_ms`
and the failure is not cached; a flood of random opaque tokens costs the endpoint at most
workers x `max_calls_per_second` calls a second; a refusal is cached; `max_pending` bounds the calls in
flight per VM; and the exact 401 messages of Google tokeninfo answers (test_presets.py checks only that
those are 401s).

Envoy runs with --concurrency 2 (e2e_harness): two worker VMs handle requests, each with its own answer
cache, call budget and in-flight set. A single HTTP/2 connection stays on one worker, which is how the
tests that count calls exactly pin their requests to one VM. Requests are bodiless GETs of /v1/models:
on HTTP/2 a client still sending a body when the filter has already answered (503 at once) may fail
with a protocol error of its own (httpcore: LocalProtocolError on the reset stream)."""

from __future__ import annotations

import asyncio
import math
import secrets
import threading
import time
import uuid
from typing import Any

import httpx
import pytest
from e2e_gateway import TRACE, EnvoyPool, Gateway, Result
from e2e_expect import PROVIDER_HDR, USER_ID, assert_401, error_body
from standins.idp import IdP, Keys
from standins.messages_api import MessagesAPI

pytestmark = pytest.mark.extended

WORKERS = 2                                    # --concurrency 2 in e2e_harness.Envoy.start
AUDIENCE = "claude-desktop"
INTROSPECT_URL = "https://sso.example.com/realms/corp/protocol/openid-connect/token/introspect"
UNAVAILABLE = error_body("api_error", "token introspection unavailable")
GOOGLE_CLIENT = "1234567890-bounds.apps.googleusercontent.com"


# ---- helpers -----------------------------------------------------------------------------------------------
def _gateway(pool: EnvoyPool, api: MessagesAPI, idp: IdP, name: str, **opaque: Any) -> Gateway:
    """An Envoy whose only provider asks `idp` (cluster `introspect`) about opaque tokens (RFC 7662)."""
    plugin = {"providers": [{
        "name": "corp", "issuer": idp.issuer, "audiences": [AUDIENCE], "jwks": {"inline": idp.jwks_json()},
        "opaque_tokens": {"style": "rfc7662", "uri": INTROSPECT_URL, "cluster": "introspect", **opaque}}]}
    return pool.gateway(name, api, idp, plugin, clusters={"introspect": idp.port})


def _active(idp: IdP, sub: str) -> str:
    token = "opq_" + secrets.token_hex(16)
    idp.add_opaque(token, {"sub": sub, "aud": AUDIENCE, "client_id": AUDIENCE,
                           "exp": int(time.time()) + 600, "scope": "openid"})
    return token


def _calls(idp: IdP, token: str | None = None) -> list[dict[str, Any]]:
    with idp._lock:                            # noqa: SLF001 - the stand-in's own lock
        calls = list(idp.introspections)
    return [c for c in calls if token is None or c["form"].get("token") == token]


def _assert_unavailable(status: int, headers: httpx.Headers, body: bytes) -> None:
    """The exact 503 of docs/requests.md "Responses the filter sends"."""
    assert status == 503, f"status {status}, body {body[:300]!r}"
    assert headers.get("content-type") == "application/json", headers
    assert httpx.Response(200, content=body).json() == UNAVAILABLE
    assert headers.get("retry-after") == "5", headers
    assert "www-authenticate" not in headers


def _is_not_active(status: int, headers: httpx.Headers, body: bytes) -> bool:
    return (status == 401 and httpx.Response(200, content=body).json()
            == error_body("authentication_error", "token not active")
            and headers.get_list("www-authenticate")
            == ['Bearer realm="llm-gateway", error="invalid_token", error_description="token not active"'])


def _metric(gw: Gateway, name: str) -> int:
    return gw.envoy.stats(r"^wasmcustom\.gateway_auth\.").get("wasmcustom.gateway_auth." + name, 0)


def _wait_idle(idp: IdP, timeout: float = 5.0) -> None:
    """Until the stand-in holds no introspection call (delay mode answers late)."""
    deadline = time.monotonic() + timeout
    while idp.introspect_active and time.monotonic() < deadline:
        time.sleep(0.02)
    assert idp.introspect_active == 0


def _sleep_to_second_start(max_fraction: float = 0.01) -> None:
    """Until the wall clock (the filter's clock too) is within `max_fraction` s after a whole second."""
    while True:
        frac = time.time() % 1.0
        if frac < max_fraction:
            return
        time.sleep(max(0.0, 1.0 - frac - 0.002) if frac < 0.998 else 0.0005)


# ---- a hanging endpoint ------------------------------------------------------------------------------------
def test_hanging_endpoint_is_503_after_timeout_then_recovers_uncached(pool: EnvoyPool, api: MessagesAPI,
                                                                      new_idp: Any) -> None:
    idp = new_idp(issuer="https://sso.example.com/realms/corp")
    gw = _gateway(pool, api, idp, "opaque-timeout", timeout_ms=500)
    token = _active(idp, "after-hang")
    pinned = gw.client(http2=True)             # one connection: one worker VM, one cache
    idp.set_mode("delay", delay=3.0)
    try:
        started = time.monotonic()
        r = gw.request("GET", "/v1/models", token=token, client=pinned)
        waited = time.monotonic() - started
        _assert_unavailable(r.status, r.headers, r.body)
        assert r.upstream == []
        assert 0.45 <= waited < 2.0, f"503 after {waited:.2f}s: timeout_ms 500 not applied"
        assert len(_calls(idp, token)) == 1
        assert _metric(gw, "unavailable.introspection_unavailable") == 1
    finally:
        idp.set_mode("normal", delay=0)
    r = gw.request("GET", "/v1/models", token=token, client=pinned)
    assert r.status == 200, r.text
    assert r.seen.header_all(USER_ID) == ["after-hang"] and r.seen.header_all(PROVIDER_HDR) == ["corp"]
    assert len(_calls(idp, token)) == 2, "the timed-out answer was cached"
    r = gw.request("GET", "/v1/models", token=token, client=pinned)
    assert r.status == 200, r.text
    assert len(_calls(idp, token)) == 2, "the positive answer was not cached"


# ---- a flood of random tokens ------------------------------------------------------------------------------
def test_flood_of_random_tokens_is_bounded_per_second(pool: EnvoyPool, api: MessagesAPI, new_idp: Any) -> None:
    rate, total, senders = 5, 300, 4
    idp = new_idp(issuer="https://sso.example.com/realms/corp")
    gw = _gateway(pool, api, idp, "opaque-flood", max_calls_per_second=rate)
    tokens = ["opq_" + secrets.token_hex(16) for _ in range(total)]
    flood_id = uuid.uuid4().hex
    answers: list[tuple[str, int, httpx.Headers, bytes]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def send(part: list[str]) -> None:
        try:
            with httpx.Client(trust_env=False, timeout=30) as client:   # its own connection
                for t in part:
                    resp = client.get(gw.url + "/v1/models",
                                      headers={"authorization": f"Bearer {t}", TRACE: flood_id})
                    with lock:
                        answers.append((t, resp.status_code, resp.headers, resp.content))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(tokens[i::senders],)) for i in range(senders)]
    # Each VM's budget refills whole when the clock second changes (the filter's `now` is in whole
    # seconds), so a flood straddling a second boundary can get two budgets within milliseconds, more
    # than `rate` x (elapsed + 1). Starting right after a second begins makes the number of budgets
    # the flood can touch at most elapsed + 1 (but for the last 10 ms of a second); both bounds are
    # asserted below.
    _sleep_to_second_start()
    t_start = time.time()
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    t_end = time.time()
    assert not errors, errors
    assert len(answers) == total
    elapsed = t_end - t_start

    not_active = {t for t, s, h, b in answers if _is_not_active(s, h, b)}
    unavailable = [t for t, s, h, b in answers if s == 503]
    for _, s, h, b in answers:
        if s == 503:
            _assert_unavailable(s, h, b)
    others = [(s, b[:200]) for t, s, h, b in answers if s != 503 and t not in not_active]
    assert others == [], f"answers other than 401 `token not active` and 503: {others[:5]}"
    assert api.find(TRACE, flood_id) == [], "a flood request reached the upstream"

    called = [c["form"].get("token") for c in _calls(idp)]
    assert len(called) == len(set(called)), "a token was asked about twice"
    assert set(called) == not_active, "every call is one 401, every 401 one call"
    windows = math.floor(t_end) - math.floor(t_start) + 1
    print(f"\nflood: {total} requests in {elapsed:.2f}s ({windows} clock seconds), {len(called)} calls, "
          f"{len(unavailable)} x 503")
    assert len(called) <= WORKERS * rate * windows, "more calls than the per-second budgets of the workers"
    assert len(called) <= WORKERS * rate * (elapsed + 1), \
        f"{len(called)} calls in {elapsed:.2f}s > {WORKERS} workers x {rate}/s x (elapsed + 1)"
    assert len(called) <= total // 5, "not well below one call per token"
    assert len(unavailable) == total - len(called) and unavailable
    assert _metric(gw, "unavailable.introspection_unavailable") == len(unavailable)


def test_sustained_flood_on_one_vm_gets_a_fresh_budget_each_second(pool: EnvoyPool, api: MessagesAPI,
                                                                   new_idp: Any) -> None:
    """The 300-request flood above is over in well under a second (one budget); this one keeps a single
    worker VM (one HTTP/2 connection) flooded for over two seconds: the budget refills (a limiter stuck
    at zero would lock out every new opaque token) and stays within `max_calls_per_second`."""
    rate, duration = 5, 2.2
    idp = new_idp(issuer="https://sso.example.com/realms/corp")
    gw = _gateway(pool, api, idp, "opaque-sustained", max_calls_per_second=rate)
    statuses: list[int] = []

    async def flood() -> tuple[float, float]:
        async with httpx.AsyncClient(http1=False, http2=True, trust_env=False, timeout=30) as client:
            assert (await client.get(gw.url + "/v1/models")).status_code == 401   # connect first
            _sleep_to_second_start()
            t_start = time.time()
            while time.time() - t_start < duration:
                answers = await asyncio.gather(*(
                    client.get(gw.url + "/v1/models", headers={"authorization": f"Bearer opq_{secrets.token_hex(16)}"})
                    for _ in range(8)))
                statuses.extend(a.status_code for a in answers)
                for a in answers:
                    if a.status_code == 503:
                        _assert_unavailable(a.status_code, a.headers, a.content)
                    else:
                        assert _is_not_active(a.status_code, a.headers, a.content), (a.status_code, a.text)
                await asyncio.sleep(0.01)
            return t_start, time.time()

    t_start, t_end = asyncio.run(flood())
    elapsed = t_end - t_start
    calls = len(_calls(idp))
    print(f"\nsustained flood on one VM: {len(statuses)} requests in {elapsed:.2f}s, {calls} calls")
    assert statuses.count(401) == calls
    assert calls <= rate * (math.floor(t_end) - math.floor(t_start) + 1)
    assert calls <= rate * (elapsed + 1), f"{calls} calls in {elapsed:.2f}s on one VM > {rate}/s x (elapsed + 1)"
    assert calls >= rate * math.floor(elapsed), "the per-second budget was not renewed"


def test_refusal_is_cached_one_call_for_fifty_requests(pool: EnvoyPool, api: MessagesAPI, new_idp: Any) -> None:
    idp = new_idp(issuer="https://sso.example.com/realms/corp")
    gw = _gateway(pool, api, idp, "opaque-negative")
    token = "opq_" + secrets.token_hex(16)    # unknown to the stand-in: {"active": false}
    pinned = gw.client(http2=True)
    for _ in range(50):
        r = gw.request("GET", "/v1/models", token=token, client=pinned)
        assert_401(r, "token not active", secrets=(token,))
    assert len(_calls(idp, token)) == 1


# ---- max_pending -------------------------------------------------------------------------------------------
async def _concurrently(gw: Gateway, tokens: list[str], one_connection: bool) -> list[tuple[int, httpx.Headers,
                                                                                            bytes, float]]:
    """Send one request per token at the same moment, over one HTTP/2 connection (one worker) or one
    connection each; returns (status, headers, body, seconds) per token, in order."""
    clients = [httpx.AsyncClient(http1=False, http2=True, trust_env=False, timeout=30)
               for _ in range(1 if one_connection else len(tokens))]
    try:
        for c in clients:                      # open the connections first (no credential: no call)
            assert (await c.get(gw.url + "/v1/models")).status_code == 401

        async def one(i: int, token: str) -> tuple[int, httpx.Headers, bytes, float]:
            started = time.monotonic()
            resp = await clients[0 if one_connection else i].get(
                gw.url + "/v1/models", headers={"authorization": f"Bearer {token}"})
            return resp.status_code, resp.headers, resp.content, time.monotonic() - started

        return list(await asyncio.gather(*(one(i, t) for i, t in enumerate(tokens))))
    finally:
        for c in clients:
            await c.aclose()


def test_max_pending_bounds_calls_in_flight(pool: EnvoyPool, api: MessagesAPI, new_idp: Any) -> None:
    idp = new_idp(issuer="https://sso.example.com/realms/corp")
    gw = _gateway(pool, api, idp, "opaque-pending", max_pending=1, timeout_ms=3000)
    idp.set_mode("delay", delay=1.0)
    cx = "http.gateway.downstream_cx_total"

    # One connection, so one worker VM: one call in flight, the four others 503 at once.
    tokens = [_active(idp, f"pending-{i}") for i in range(5)]
    before = gw.envoy.stats(cx).get(cx, 0)
    answers = asyncio.run(_concurrently(gw, tokens, one_connection=True))
    assert gw.envoy.stats(cx).get(cx, 0) - before == 1, "the requests did not share one connection"
    statuses = sorted(s for s, _, _, _ in answers)
    assert statuses == [200, 503, 503, 503, 503], statuses
    for s, h, b, secs in answers:
        if s == 503:
            _assert_unavailable(s, h, b)
            assert secs < 0.9, f"a 503 waited {secs:.2f}s for the call in flight"
        else:
            assert secs >= 0.95
    assert len(_calls(idp)) == 1 and idp.introspect_max_active == 1
    _wait_idle(idp)

    # One connection each: the connections spread over the two workers, one call in flight per worker.
    idp.reset_counters()
    tokens = [_active(idp, f"spread-{i}") for i in range(5)]
    answers = asyncio.run(_concurrently(gw, tokens, one_connection=False))
    calls = len(_calls(idp))
    print(f"\nmax_pending 1, 5 connections: {calls} calls, at most {idp.introspect_max_active} at once")
    assert 1 <= calls <= WORKERS
    assert idp.introspect_max_active <= WORKERS * 1
    assert sum(1 for s, *_ in answers if s == 200) == calls
    for s, h, b, _ in answers:
        if s != 200:
            _assert_unavailable(s, h, b)
    _wait_idle(idp)


# ---- Google tokeninfo: the exact refusals -------------------------------------------------------------------
@pytest.fixture(scope="module")
def google(module_pool: EnvoyPool, api: MessagesAPI, keys: Keys) -> Any:
    idp = IdP(issuer="https://accounts.google.com", audience=GOOGLE_CLIENT, keys=keys).start()
    plugin = {"providers": [{
        "name": "google", "preset": "google", "client_id": GOOGLE_CLIENT, "hosted_domains": ["example.com"],
        "jwks": {"cluster": "google_jwks"},
        "opaque_tokens": {"style": "google_tokeninfo", "uri": "https://oauth2.googleapis.com/tokeninfo",
                          "cluster": "google_oauth"}}]}
    try:
        yield module_pool.gateway("opaque-google", api, idp, plugin,
                                  clusters={"google_jwks": idp.port, "google_oauth": idp.port})
    finally:
        idp.stop()


@pytest.mark.parametrize("claims,message", [
    ({"exp": str(int(time.time()) - 600)}, "token expired"),
    ({"email": "eve@other.com"}, "account domain not allowed"),
    ({"email_verified": False}, "account e-mail not verified"),
], ids=["expired-string-exp", "foreign-domain", "unverified-email"])
def test_google_tokeninfo_refusal_messages(google: Gateway, claims: dict[str, Any], message: str) -> None:
    assert google.idp is not None
    token = "ya29." + secrets.token_urlsafe(40)
    answer = {"azp": GOOGLE_CLIENT, "aud": GOOGLE_CLIENT, "sub": "1100220066", "scope": "openid email",
              "exp": str(int(time.time()) + 3000), "email": "frank@example.com", "email_verified": True}
    answer.update(claims)
    google.idp.add_opaque(token, answer)
    r: Result = google.request(token=token)
    assert_401(r, message, secrets=(token,))
    assert [c for c in _calls(google.idp) if c["form"].get("access_token") == token], "tokeninfo not asked"
