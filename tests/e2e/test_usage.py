"""The usage record in Envoy 1.40: the access log line of real requests (envoy/dev.yaml's JSON block,
reading `%FILTER_STATE(wasm.gateway_...:PLAIN)%`) carries the model, tokens, cost and state, whatever
the chunking (HTTP/1.1 and HTTP/2), for early endings, upstream errors and gzip answers; SSE timing is
unchanged; the per-budget-group metrics add up to what the stand-in answered."""

from __future__ import annotations

import copy
import http.client
import json
import math
import time
import uuid
from typing import Any

import httpx
import pytest
from e2e_gateway import CI_KEY, TRACE, EnvoyPool, Gateway, plugin_config
from e2e_harness import dev_access_log, envoy_config
from standins.idp import IdP
from standins.messages_api import MessagesAPI

WEIGHTS = {"input_tokens": 1, "output_tokens": 5, "cache_creation_input_tokens": 1.25,
           "cache_read_input_tokens": 0.1}
BUDGET_GROUPS = ["research", "b"]        # ci-bot's groups are a, b: its budget group is b
STREAM = {"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": True,
          "messages": [{"role": "user", "content": "stream please"}]}
USAGE_FIELDS = ["model", "input_tokens", "output_tokens", "cache_creation_input_tokens",
                "cache_read_input_tokens", "cost", "usage"]


def cost(input_tokens: int, output_tokens: int, creation: int, read: int) -> str:
    milli = (1000 * input_tokens + 5000 * output_tokens + 1250 * creation + 100 * read)
    return str(-(-milli // 1000))


def start_gateway(pool: EnvoyPool, name: str, api: MessagesAPI, idp: IdP, **plugin: Any) -> Gateway:
    """A gateway like the shared one, with `plugin` keys added and envoy/dev.yaml's access log
    (plus the test's correlation id)."""
    config = plugin_config(idp)
    config.update(plugin)
    access_log = copy.deepcopy(dev_access_log())
    access_log[0]["typed_config"]["log_format"]["json_format"]["trace"] = f"%REQ({TRACE})%"
    cfg = envoy_config(upstream_port=api.port, plugin_config=config, wasm=pool.wasm, clusters={"idp": idp.port},
                       access_log=access_log)
    gw = Gateway(pool.envoy(name, cfg), api, idp)
    pool.gateways.append(gw)
    return gw


@pytest.fixture(scope="module")
def gw(module_pool: EnvoyPool, api: MessagesAPI, idp: IdP) -> Gateway:
    return start_gateway(module_pool, "usage", api, idp, budget_groups=BUDGET_GROUPS,
                         usage={"cost_weights": WEIGHTS})


def log_line(gw: Gateway, trace: str, timeout: float = 10) -> dict[str, Any]:
    """The access log line of request `trace`."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [line for line in gw.envoy.access_log() if line.get("trace") == trace]
        if lines:
            assert len(lines) == 1, lines
            return lines[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no access log line for {trace}\n{gw.envoy.log_tail(20)}")
        time.sleep(0.05)


def usage_of(line: dict[str, Any]) -> dict[str, Any]:
    return {k: line.get(k) for k in USAGE_FIELDS}


def complete(model: str, i: int, o: int, cc: int, cr: int) -> dict[str, Any]:
    return {"model": model, "input_tokens": str(i), "output_tokens": str(o), "cache_creation_input_tokens": str(cc),
            "cache_read_input_tokens": str(cr), "cost": cost(i, o, cc, cr), "usage": "complete"}


def key_headers(**steer: str) -> dict[str, str]:
    return {"x-api-key": CI_KEY, "accept-encoding": "gzip, br", **{f"x-standin-{k}": v for k, v in steer.items()}}


@pytest.mark.parametrize("http2", [False, True], ids=["http1", "http2"])
@pytest.mark.parametrize("split,crlf", [(0, "0"), (3, "1"), (7, "0"), (50, "1")])
def test_streamed_answer_is_recorded_exactly_whatever_the_chunking(gw: Gateway, http2: bool, split: int,
                                                                    crlf: str) -> None:
    r = gw.request(body=STREAM, http2=http2, headers=key_headers(
        split=str(split), crlf=crlf, usage="1234,98765,56,7890", deltas="6", **{"event-delay-ms": "0"}))
    assert r.status == 200, r.text
    seen = r.seen
    assert seen.done.wait(10)
    assert r.body == seen.response_body, "the stream reached the client byte-identical"
    line = log_line(gw, r.trace)
    assert usage_of(line) == complete("claude-sonnet-4-5", 1234, 98765, 56, 7890)
    assert line["budget_group"] == "b" and line["user_id"] == "ci-bot" and line["status"] == 200
    # Metered requests lose accept-encoding (the answer must be readable); the budget group goes up.
    assert seen.header_all("accept-encoding") == []
    assert seen.header_all("x-gateway-budget-group") == ["b"]


def test_non_streamed_answer_and_jwt_user(gw: Gateway, idp: IdP) -> None:
    token = idp.mint(claims={"groups": ["eng", "research"]})
    body = {"messages": [{"role": "user", "content": "x" * 3_000_000}], "model": "claude-opus-4-1", "max_tokens": 5}
    r = gw.request(body=body, token=token, headers={"x-standin-usage": "10,20,0,3",
                                                    "x-claude-code-session-id": "sess-1"})
    assert r.status == 200
    line = log_line(gw, r.trace)
    assert usage_of(line) == complete("claude-opus-4-1", 10, 20, 0, 3)
    assert (line["user_id"], line["budget_group"], line["session_id"]) == ("user-123", "research", "sess-1")
    assert r.seen.body_len == len(json.dumps(body)), "the request body reached the upstream whole"


def test_budget_group_header_cannot_be_spoofed_and_defaults(gw: Gateway, idp: IdP) -> None:
    token = idp.mint(claims={"groups": ["sales"]})
    r = gw.request(token=token, headers={"x-gateway-budget-group": "research"})
    assert r.status == 200
    assert r.seen.header_all("x-gateway-budget-group") == ["default"]


def test_client_hang_up_mid_stream_leaves_an_estimate(gw: Gateway) -> None:
    trace = uuid.uuid4().hex
    conn = http.client.HTTPConnection("127.0.0.1", gw.envoy.port, timeout=30)
    conn.request("POST", "/v1/messages", body=json.dumps(STREAM), headers={
        **key_headers(deltas="40", usage="25,0,0,0", **{"event-delay-ms": "100"}), TRACE: trace,
        "content-type": "application/json"})
    resp = conn.getresponse()
    got = b""
    while got.count(b"content_block_delta") < 6:
        got += resp.read1(65536)
    assert conn.sock is not None
    conn.sock.close()   # the client goes away mid-answer
    conn.close()
    line = log_line(gw, trace, timeout=20)
    assert line["usage"] == "estimated", line
    assert line["input_tokens"] == "25" and line["model"] == "claude-sonnet-4-5"
    # The filter saw at least the six deltas the client got (each word at least 1 byte), and far
    # fewer than the 40 of the whole answer (at most 9 bytes each).
    output = int(line["output_tokens"])
    assert math.ceil(6 / 4) <= output < math.ceil(40 * 9 / 4), line
    assert line["cost"] == cost(25, output, 0, 0)


def read_stream(gw: Gateway, headers: dict[str, str]) -> tuple[str, bytes]:
    """POSTs a streaming request over HTTP/1.1 and reads until the end or a broken connection."""
    trace = uuid.uuid4().hex
    conn = http.client.HTTPConnection("127.0.0.1", gw.envoy.port, timeout=30)
    got = b""
    try:
        conn.request("POST", "/v1/messages", body=json.dumps(STREAM),
                     headers={**headers, TRACE: trace, "content-type": "application/json"})
        resp = conn.getresponse()
        while data := resp.read1(65536):
            got += data
    except (http.client.HTTPException, OSError):
        pass   # an upstream reset reaches the client as a cut stream
    finally:
        conn.close()
    return trace, got


@pytest.mark.parametrize("steer", ["reset-after", "error-after"])
def test_upstream_reset_or_error_event_mid_stream_is_estimated(gw: Gateway, steer: str) -> None:
    trace, _ = read_stream(gw, key_headers(deltas="5", usage="30,0,4,5", **{steer: "5", "event-delay-ms": "0"}))
    line = log_line(gw, trace)
    # Five events were sent: message_start, content_block_start and three deltas ("Hello", " from", " the").
    output = math.ceil(len("Hello from the") / 4)
    assert usage_of(line) == {"model": "claude-sonnet-4-5", "input_tokens": "30", "output_tokens": str(output),
                              "cache_creation_input_tokens": "4", "cache_read_input_tokens": "5",
                              "cost": cost(30, output, 4, 5), "usage": "estimated"}


@pytest.mark.parametrize("status", [429, 529])
def test_upstream_errors_record_none(gw: Gateway, status: int) -> None:
    r = gw.request(headers=key_headers(status=str(status)))
    assert r.status == status
    line = log_line(gw, r.trace)
    assert usage_of(line) == {"model": "claude-sonnet-4-5", "input_tokens": None, "output_tokens": None,
                              "cache_creation_input_tokens": None, "cache_read_input_tokens": None,
                              "cost": "0", "usage": "none"}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_gzip_answer_is_none_and_counted(gw: Gateway, stream: bool) -> None:
    before = gw.envoy.stats("wasmcustom.gateway_auth.usage.encoded_answers").get(
        "wasmcustom.gateway_auth.usage.encoded_answers", 0)
    body = STREAM if stream else None
    r = gw.request(body=body, headers=key_headers(gzip="1", usage="11,12,0,0", **{"event-delay-ms": "0"}))
    assert r.status == 200
    assert r.headers.get("content-encoding") == "gzip"
    assert r.seen.done.wait(10)
    line = log_line(gw, r.trace)
    assert line["usage"] == "none" and line["input_tokens"] is None and line["cost"] == "0"
    if not stream:
        assert json.loads(r.body)["usage"]["output_tokens"] == 12   # httpx decoded the untouched gzip
    deadline = time.monotonic() + 5
    while gw.envoy.stats("wasmcustom.gateway_auth.usage.encoded_answers").get(
            "wasmcustom.gateway_auth.usage.encoded_answers", 0) != before + 1:
        assert time.monotonic() < deadline, "encoded answer not counted"
        time.sleep(0.1)


@pytest.mark.parametrize("method,path", [("POST", "/v1/messages/count_tokens"), ("GET", "/v1/models")])
def test_other_paths_are_not_metered(gw: Gateway, method: str, path: str) -> None:
    r = gw.request(method=method, path=path, headers=key_headers())
    assert r.status == 200
    line = log_line(gw, r.trace)
    assert usage_of(line) == {"model": None, "input_tokens": None, "output_tokens": None,
                              "cache_creation_input_tokens": None, "cache_read_input_tokens": None,
                              "cost": "0", "usage": None}
    assert line["budget_group"] == "b"
    assert r.seen.header_all("accept-encoding") == ["gzip, br"], "only metered requests lose accept-encoding"


def test_sse_events_still_arrive_spaced_as_sent(gw: Gateway) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", gw.envoy.port, timeout=30)
    try:
        conn.request("POST", "/v1/messages", body=json.dumps(STREAM), headers={
            **key_headers(deltas="3", **{"event-delay-ms": "300"}), "content-type": "application/json"})
        resp = conn.getresponse()
        arrivals: list[float] = []
        while True:
            data = resp.read1(65536)
            if not data:
                break
            arrivals += [time.monotonic()] * data.count(b"\n\n")
    finally:
        conn.close()
    assert len(arrivals) == 8, arrivals   # message_start ... message_stop, three deltas
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    assert all(0.2 < g < 0.6 for g in gaps), gaps


def test_metrics_per_budget_group_add_up_to_the_stand_ins_totals(pool: EnvoyPool, api: MessagesAPI,
                                                                 idp: IdP) -> None:
    gw = start_gateway(pool, "usage-metrics", api, idp, budget_groups=BUDGET_GROUPS,
                       usage={"cost_weights": WEIGHTS})
    users = [("research", idp.mint(claims={"sub": "r1", "groups": ["research"]})),
             ("b", None),                                                  # ci-bot, API key
             ("default", idp.mint(claims={"sub": "d1", "groups": ["sales"]})),
             ("research", idp.mint(claims={"sub": "r2", "groups": ["b", "research"]}))]
    sums: dict[str, dict[str, int]] = {}
    for i in range(16):
        group, token = users[i % len(users)]
        headers = {"x-standin-usage": f"{10 + i},{3 * i + 1},{i % 3},{7 * i}", "x-standin-event-delay-ms": "0"}
        if token is None:
            headers["x-api-key"] = CI_KEY
        r = gw.request(body=STREAM if i % 2 else None, token=token, headers=headers, http2=i % 3 == 0)
        assert r.status == 200
        assert r.seen.done.wait(10)
        total = sums.setdefault(group, {"requests": 0})
        total["requests"] += 1
        for kind, n in r.seen.usage.items():
            total[kind] = total.get(kind, 0) + n
        total["cost"] = total.get("cost", 0) + int(cost(r.seen.usage["input_tokens"], r.seen.usage["output_tokens"],
                                                         r.seen.usage["cache_creation_input_tokens"],
                                                         r.seen.usage["cache_read_input_tokens"]))
    prefix = "wasmcustom.gateway_auth.usage.budget_group."
    want = {f"{prefix}{g}.{k}": v for g, t in sums.items() for k, v in t.items() if v}
    deadline = time.monotonic() + 10
    while True:
        got = {k: v for k, v in gw.envoy.stats(prefix).items() if v}
        if got == want or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert got == want
    by_model = gw.envoy.stats("wasmcustom.gateway_auth.usage.model.")
    assert by_model["wasmcustom.gateway_auth.usage.model.other.requests"] == 16
    assert by_model["wasmcustom.gateway_auth.usage.model.other.output_tokens"] == sum(
        t["output_tokens"] for t in sums.values())


def test_usage_off_writes_only_the_zero_cost(pool: EnvoyPool, api: MessagesAPI, idp: IdP) -> None:
    gw = start_gateway(pool, "usage-off", api, idp, usage={"enabled": False})
    r = gw.request(body=STREAM, headers=key_headers(**{"event-delay-ms": "0"}))
    assert r.status == 200
    line = log_line(gw, r.trace)
    assert usage_of(line) == {"model": None, "input_tokens": None, "output_tokens": None,
                              "cache_creation_input_tokens": None, "cache_read_input_tokens": None,
                              "cost": "0", "usage": None}
    assert r.seen.header_all("accept-encoding") == ["gzip, br"]
    assert line["budget_group"] == "default"



# ---- a body that arrives while the credential is still being checked ------------------------------------
@pytest.fixture(scope="module")
def slow_gateways(module_pool: EnvoyPool, api: MessagesAPI, keys: Any) -> Any:
    """Two gateways whose provider introspects opaque tokens at a stand-in IdP that can be slowed
    down: usage alone, and usage with `models.enforce` (the gate reads the body, the meter follows)."""
    idp = IdP(issuer="https://sso.example.com", audience="claude-desktop", keys=keys).start()
    provider = {"name": "sso", "issuer": idp.issuer, "audiences": ["claude-desktop"],
                "jwks": {"inline": idp.jwks_json()},
                "opaque_tokens": {"style": "rfc7662", "uri": "https://sso.example.com/introspect", "cluster": "idp",
                                  "timeout_ms": 4000}}
    catalog = [{"id": "claude-sonnet-4-5", "display_name": "Sonnet", "created_at": "2025-09-29T00:00:00Z"}]
    try:
        yield idp, {
            "usage": start_gateway(module_pool, "usage-pending", api, idp, providers=[provider],
                                   usage={"cost_weights": WEIGHTS}),
            "enforced": start_gateway(module_pool, "usage-pending-enforced", api, idp, providers=[provider],
                                      usage={"cost_weights": WEIGHTS}, models={"catalog": catalog, "enforce": True}),
        }
    finally:
        idp.stop()


@pytest.mark.parametrize("which", ["usage", "enforced"])
@pytest.mark.parametrize("first", [True, False], ids=["model-first", "model-last"])
def test_a_body_held_while_the_token_is_checked_is_metered(slow_gateways: Any, which: str, first: bool) -> None:
    """Introspection takes 1 s and the whole body arrives meanwhile. Envoy holds it (the headers
    callback paused) and hands it to the body callback on resume: the record has the model, read
    once (by the gate when models are enforced)."""
    idp, gateways = slow_gateways
    gw = gateways[which]
    token = "opq_" + uuid.uuid4().hex
    idp.add_opaque(token, {"active": True, "sub": "pat", "aud": "claude-desktop", "exp": int(time.time()) + 600})
    padding = "x" * 50_000
    body = ({"model": "claude-sonnet-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": padding}]}
            if first else {"max_tokens": 8, "messages": [{"role": "user", "content": padding}],
                           "model": "claude-sonnet-4-5"})
    idp.set_mode("delay", delay=1.0)
    try:
        r = gw.request(body=body, headers={"authorization": f"Bearer {token}", "x-standin-usage": "40,7,0,0"})
    finally:
        idp.set_mode("normal")
    assert r.status == 200, r.text
    assert r.elapsed >= 0.9, "the token was not introspected while the body arrived"
    assert usage_of(log_line(gw, r.trace)) == complete("claude-sonnet-4-5", 40, 7, 0, 0)
