"""The official `anthropic` Python SDK against the filter in Envoy (contract: "Answers to clients").

The SDK obeys `x-should-retry` before its own rules and waits `retry-after` between retries. Requests
are counted where they arrive, at Envoy (its access log, envoy/dev.yaml's block), and the Messages
API stand-in says what got through.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Any, Callable

import anthropic
import pytest

from e2e_expect import GATEWAY_REQUEST_ID, USER_ID
from e2e_gateway import CI_KEY, TRACE, EnvoyPool, Gateway, forged, plugin_config
from standins.idp import IdP
from standins.messages_api import MessagesAPI

MAX_RETRIES = 2


@pytest.fixture(autouse=True)
def _no_ambient_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test passes reaches the SDK (it reads ANTHROPIC_* and proxies from the environment)."""
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL", "HTTP_PROXY",
                 "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


def sdk(gw: Gateway, trace: str, **credential: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, max_retries=MAX_RETRIES, timeout=30,
                               default_headers={TRACE: trace}, **credential)


def create(client: anthropic.Anthropic) -> Any:
    return client.messages.create(model="claude-sonnet-4-5", max_tokens=16,
                                  messages=[{"role": "user", "content": "hi"}])


def test_sdk_with_a_valid_token_reaches_the_upstream_as_the_user(pool: EnvoyPool, api: MessagesAPI,
                                                                 idp: IdP) -> None:
    gw = pool.gateway("sdk-ok", api, idp, plugin_config(idp), access_log=True)
    trace = uuid.uuid4().hex
    message = create(sdk(gw, trace, auth_token=idp.mint(claims={"sub": "sdk-user"})))
    assert message.content[0].text == "Hello from the Messages API stand-in."
    [seen] = api.find(TRACE, trace)
    assert seen.header_all(USER_ID) == ["sdk-user"]
    assert "authorization" not in seen.header_names()
    [line] = gw.envoy.access_log(1)
    assert (line["status"], line["user_id"], line["request_id"]) == (200, "sdk-user", f"req_standin_{seen.seq:06d}")


@pytest.mark.parametrize("credential, reason", [
    ("forged", "token signature invalid"),
    ("unknown-key", "invalid API key"),
])
def test_sdk_raises_authentication_error_after_one_request(pool: EnvoyPool, api: MessagesAPI, idp: IdP,
                                                           credential: str, reason: str) -> None:
    gw = pool.gateway(f"sdk-401-{credential}", api, idp, plugin_config(idp), access_log=True)
    trace = uuid.uuid4().hex
    if credential == "forged":
        client = sdk(gw, trace, auth_token=forged(idp.mint(claims={"sub": "mallory"}), "admin"))
    else:
        client = sdk(gw, trace, api_key=CI_KEY + "-not-it")
    started = time.monotonic()
    with pytest.raises(anthropic.AuthenticationError) as raised:
        create(client)
    assert time.monotonic() - started < 3, "the SDK waited: it retried or hung"
    err = raised.value
    assert err.status_code == 401
    assert err.body == {"type": "error", "error": {"type": "authentication_error", "message": reason}}
    assert reason in str(err)
    assert err.response.headers["x-should-retry"] == "false"
    assert GATEWAY_REQUEST_ID.fullmatch(err.request_id or ""), err.request_id
    assert api.find(TRACE, trace) == []
    time.sleep(0.5)   # a retry, if the SDK made one, would be logged by now
    lines = gw.envoy.access_log(1)
    assert len(lines) == 1, f"Envoy received {len(lines)} requests: {lines}"
    assert (lines[0]["status"], lines[0]["request_id"], lines[0]["user_id"]) == (401, err.request_id, None)
    assert gw.envoy.stats("http.gateway.downstream_rq_total")["http.gateway.downstream_rq_total"] == 1


def test_sdk_retries_a_503_after_retry_after(pool: EnvoyPool, api: MessagesAPI,
                                             new_idp: Callable[..., IdP]) -> None:
    idp = new_idp()
    idp.set_mode("error500")   # the keys cannot be fetched: 503 from the filter, retry-after 5
    gw = pool.gateway("sdk-503", api, idp, plugin_config(idp), access_log=True)
    trace = uuid.uuid4().hex
    started = time.monotonic()
    with pytest.raises(anthropic.InternalServerError) as raised:
        create(sdk(gw, trace, auth_token=idp.mint(claims={"sub": "patient"})))
    elapsed = time.monotonic() - started
    err = raised.value
    assert err.status_code == 503
    assert err.body == {"type": "error", "error": {"type": "api_error",
                                                  "message": "identity provider keys unavailable"}}
    assert (err.response.headers["retry-after"], err.response.headers["x-should-retry"]) == ("5", "true")
    lines = gw.envoy.access_log(MAX_RETRIES + 1)
    assert [line["status"] for line in lines] == [503] * (MAX_RETRIES + 1), lines
    # Each retry came `retry-after` (5 s) after the answer before it; the SDK's own backoff for two
    # retries is about 0.5 s and 1 s.
    starts = [datetime.fromisoformat(line["time"].replace("Z", "+00:00")) for line in lines]
    gaps = [(b - a).total_seconds() for a, b in zip(starts, starts[1:])]
    assert all(4.9 <= gap < 8 for gap in gaps), gaps
    assert 2 * 4.9 <= elapsed < 2 * 5 + 6, elapsed
    assert len({line["request_id"] for line in lines}) == MAX_RETRIES + 1   # a fresh id each time
    assert err.request_id == lines[-1]["request_id"]
    assert api.find(TRACE, trace) == []
