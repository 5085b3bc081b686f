"""What the filter must not touch: SSE streams chunk by chunk, request and response bodies byte-identical
(tool_use / tool_result / tool_reference blocks, 8 MB bodies, chunked uploads from HTTP/2 clients)."""

from __future__ import annotations

import hashlib
import http.client
import json
import time
import uuid
from typing import Any

import httpx
import pytest
from e2e_gateway import TRACE, EnvoyPool, Gateway
from e2e_harness import envoy_config
from standins.idp import IdP
from standins.messages_api import MessagesAPI, Recorded

EVENT_DELAY_MS = 300
DELTAS = 1          # message_start, content_block_start, 1 delta, content_block_stop, message_delta, message_stop


@pytest.fixture(scope="module")
def gw(shared_gateway: Any) -> Gateway:
    return shared_gateway("struct")


def _stream_body() -> bytes:
    return json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": True,
                       "messages": [{"role": "user", "content": "stream please"}]}).encode()


def _upstream(api: MessagesAPI, trace: str) -> Recorded:
    recs = api.find(TRACE, trace)
    assert len(recs) == 1, f"upstream saw {len(recs)} requests"
    assert recs[0].done.wait(10), "stand-in did not finish its answer"
    return recs[0]


def _read_sse_http1(port: int, headers: dict[str, str]) -> tuple[int, str, list[tuple[float, bytes]]]:
    """POST a streaming request over HTTP/1.1 and read the body as it comes (read1 = what is there)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/v1/messages", body=_stream_body(), headers=headers)
        resp = conn.getresponse()
        chunks: list[tuple[float, bytes]] = []
        while True:
            data = resp.read1(65536)
            if not data:
                break
            chunks.append((time.monotonic(), data))
        return resp.status, resp.getheader("content-type") or "", chunks
    finally:
        conn.close()


def _read_sse_h2(url: str, headers: dict[str, str]) -> tuple[int, str, list[tuple[float, bytes]]]:
    with httpx.Client(http1=False, http2=True, trust_env=False, timeout=30) as c:
        with c.stream("POST", url + "/v1/messages", content=_stream_body(), headers=headers) as resp:
            chunks = [(time.monotonic(), data) for data in resp.iter_raw() if data]
            return resp.status_code, resp.headers.get("content-type", ""), chunks


def _assert_streamed(rec: Recorded, status: int, ctype: str, chunks: list[tuple[float, bytes]]) -> None:
    assert status == 200
    assert ctype.startswith("text/event-stream")
    assert len(rec.events) == 6
    first_sent, last_sent = rec.events[0][0], rec.events[-1][0]
    assert last_sent - first_sent >= 5 * EVENT_DELAY_MS / 1000 * 0.9
    first_received = chunks[0][0]
    # The first event reached the client while the stand-in was still producing the rest.
    assert first_received < last_sent - 1.0, (
        f"first bytes at +{first_received - first_sent:.2f}s, last event sent at +{last_sent - first_sent:.2f}s: buffered")
    assert len({round(t, 1) for t, _ in chunks}) >= 4, "the events arrived in fewer than 4 bursts"
    assert b"".join(c for _, c in chunks) == rec.response_body


@pytest.mark.parametrize("client", ["http1.1", "h2c"])
def test_sse_streams_incrementally_and_byte_identical(gw: Gateway, idp: IdP, client: str) -> None:
    trace = uuid.uuid4().hex
    headers = {"authorization": f"Bearer {idp.mint()}", "content-type": "application/json",
               "anthropic-version": "2023-06-01", "accept": "text/event-stream", TRACE: trace,
               "x-standin-event-delay-ms": str(EVENT_DELAY_MS), "x-standin-deltas": str(DELTAS)}
    if client == "h2c":
        status, ctype, chunks = _read_sse_h2(gw.url, headers)
    else:
        status, ctype, chunks = _read_sse_http1(gw.envoy.port, headers)
    _assert_streamed(_upstream(gw.api, trace), status, ctype, chunks)


def test_control_sse_through_plain_envoy(pool: EnvoyPool, api: MessagesAPI) -> None:
    """Control: the same stream through an Envoy without the filter (tells harness from filter faults)."""
    envoy = pool.envoy("plain", envoy_config(upstream_port=api.port))
    trace = uuid.uuid4().hex
    status, ctype, chunks = _read_sse_http1(envoy.port, {
        "content-type": "application/json", TRACE: trace,
        "x-standin-event-delay-ms": str(EVENT_DELAY_MS), "x-standin-deltas": str(DELTAS)})
    _assert_streamed(_upstream(api, trace), status, ctype, chunks)


# ---- k. byte identity --------------------------------------------------------------------------------------
# Irregular whitespace, escapes, raw UTF-8, key order and number forms a re-serializer would change.
TOOL_BODY = (
    b'{ "model":"claude-sonnet-4-5" ,"max_tokens":1024,\n'
    b'  "tools":[{"name":"get_weather","description":"Weather \xe2\x98\x80 \\u00e9","input_schema":'
    b'{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}},'
    b'{"type":"tool_search_tool_regex_20251119","name":"tool_search"}],\n'
    b'  "messages":[\n'
    b'   {"role":"user","content":"Weather in Z\xc3\xbcrich?"},\n'
    b'   {"role":"assistant","content":[{"type":"text","text":"Let me check."},'
    b'{"type":"server_tool_use","id":"srvtoolu_01","name":"tool_search","input":{"query":"weather"}},'
    b'{"type":"tool_search_tool_result","tool_use_id":"srvtoolu_01","content":{"type":"tool_search_tool_search_result",'
    b'"tool_references":[{"type":"tool_reference","tool_name":"get_weather"}]}},'
    b'{"type":"tool_use","id":"toolu_01A","name":"get_weather","input":{"city":"Z\\u00fcrich","n":1.50E+1,"x":null}}]},\n'
    b'   {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_01A","content":['
    b'{"type":"text","text":"18\xc2\xb0C \\"sunny\\"\\n\\t"},{"type":"tool_reference","tool_name":"get_weather"}],'
    b'"is_error":false}]}\n'
    b'  ] ,"metadata":{"user_id":"u-1"} }\n')


def test_tool_blocks_reach_upstream_byte_identical(gw: Gateway, idp: IdP) -> None:
    json.loads(TOOL_BODY)  # it is valid JSON, just not in canonical form
    r = gw.request(content=TOOL_BODY, headers=[("content-type", "application/json")], token=idp.mint())
    assert r.status == 200, r.text
    assert r.seen.body == TOOL_BODY
    assert r.seen.header_all("content-length") == [str(len(TOOL_BODY))]
    assert hashlib.sha256(r.body).hexdigest() == r.seen.response_sha256   # response identical too


def _big_body(size: int = 8 * 1024 * 1024) -> bytes:
    head = b'{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"'
    tail = b'"}]}'
    filler = (b"tool_use tool_result tool_reference \\u00e9 \xc3\xa9 0123456789 " * (size // 50 + 1))
    return head + filler[: size - len(head) - len(tail)] + tail


@pytest.mark.parametrize("client", ["http1.1", "http1.1-chunked", "h2c", "h2c-no-length"])
def test_8mb_request_and_response_byte_identical(gw: Gateway, idp: IdP, client: str) -> None:
    body = _big_body()
    assert len(body) == 8 * 1024 * 1024
    content: Any = body
    if client.endswith(("chunked", "no-length")):   # no content-length: Envoy sends it chunked upstream
        content = (body[i:i + 256 * 1024] for i in range(0, len(body), 256 * 1024))
    r = gw.request(content=content, http2=client.startswith("h2c"), token=idp.mint(),
                   headers=[("content-type", "application/json"), ("x-standin-echo-body", "1")])
    assert r.status == 200, r.text[:300]
    seen = r.seen
    assert (seen.body_len, seen.body_sha256) == (len(body), hashlib.sha256(body).hexdigest())
    if client.endswith(("chunked", "no-length")):
        assert seen.chunked
    assert hashlib.sha256(r.body).hexdigest() == hashlib.sha256(body).hexdigest()


def test_non_streamed_response_byte_identical(gw: Gateway, idp: IdP) -> None:
    r = gw.request(token=idp.mint())
    assert r.status == 200, r.text
    assert r.body == r.seen.response_body
    assert r.headers.get("request-id") == f"req_standin_{r.seen.seq:06d}"
