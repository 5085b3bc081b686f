"""Models (contract: "Models"): each user's own `GET /v1/models` and `GET /v1/models/{id}` answered by
the filter, and `models.enforce` refusing a model on the body chunk that reveals it, for model-first and
model-last bodies of 8 MB over HTTP/1.1 and HTTP/2, without the upstream ever holding a complete body of
a refused request (the stand-in counts complete and cut-off bodies)."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
import uuid
from typing import Any

import pytest
from e2e_gateway import TRACE, EnvoyPool, Gateway
from standins.idp import IdP, Keys
from standins.messages_api import MessagesAPI

# Three users (API keys), three group sets.
USERS = {name: "sk-" + name + "-" + uuid.uuid4().hex for name in ("alice", "bob", "carol")}
GROUPS = {"alice": ["eng"], "bob": ["research", "other"], "carol": []}
CATALOG = [
    {"id": "claude-haiku-4-5", "display_name": "Claude Haiku 4.5", "created_at": "2025-10-01T00:00:00Z"},
    {"id": "claude-sonnet-4-5", "display_name": "Claude Sonnet 4.5", "created_at": "2025-09-29T00:00:00Z",
     "groups": ["eng", "research"]},
    {"id": "claude-opus-4-1", "display_name": "Claude Opus 4.1", "created_at": "2025-08-05T00:00:00Z",
     "groups": ["research"]},
    {"id": "claude-3-5-haiku", "display_name": "Claude Haiku 3.5", "created_at": "2024-10-22T00:00:00Z"},
    {"id": "claude-experimental", "display_name": "Experimental", "created_at": "2025-11-01T12:00:00.5+01:00",
     "groups": ["eng"]},
]
ALLOWED = {
    "alice": ["claude-haiku-4-5", "claude-sonnet-4-5", "claude-3-5-haiku", "claude-experimental"],
    "bob": ["claude-haiku-4-5", "claude-sonnet-4-5", "claude-opus-4-1", "claude-3-5-haiku"],
    "carol": ["claude-haiku-4-5", "claude-3-5-haiku"],
}
BIG = 8 * 1024 * 1024


def _plugin(**models: Any) -> dict[str, Any]:
    return {"api_keys": [{"name": n, "sha256": hashlib.sha256(k.encode()).hexdigest(), "groups": GROUPS[n]}
                         for n, k in USERS.items()],
            "models": {"catalog": CATALOG, "serve_list": True, "enforce": True, **models}}


@pytest.fixture(scope="module")
def gw(module_pool: EnvoyPool, api: MessagesAPI) -> Gateway:
    return module_pool.gateway("models", api, None, _plugin())


def _key(user: str) -> dict[str, str]:
    return {"x-api-key": USERS[user]}


def _error(r: Any, status: int, error_type: str) -> str:
    assert r.status == status, r.text
    body = r.json()
    assert body["type"] == "error" and body["error"]["type"] == error_type, body
    return body["error"]["message"]


# ---- GET /v1/models -----------------------------------------------------------------------------------
@pytest.mark.parametrize("user", sorted(USERS))
def test_each_user_lists_exactly_their_models(gw: Gateway, user: str) -> None:
    r = gw.request("GET", "/v1/models?limit=1000", headers=_key(user))
    assert r.status == 200, r.text
    assert r.headers["content-type"] == "application/json"
    page = r.json()
    assert [m["id"] for m in page["data"]] == ALLOWED[user]
    assert page["has_more"] is False
    assert page["first_id"] == ALLOWED[user][0] and page["last_id"] == ALLOWED[user][-1]
    entry = next(e for e in CATALOG if e["id"] == ALLOWED[user][0])
    assert page["data"][0] == {"type": "model", "id": entry["id"], "display_name": entry["display_name"],
                               "created_at": entry["created_at"]}
    assert r.upstream == [], "the upstream was called for /v1/models"


def test_listing_needs_authentication(gw: Gateway) -> None:
    r = gw.request("GET", "/v1/models")
    assert r.status == 401 and r.upstream == []


def test_pagination(gw: Gateway) -> None:
    def page(query: str) -> dict[str, Any]:
        r = gw.request("GET", "/v1/models?" + query, headers=_key("bob"))
        assert r.status == 200, r.text
        assert r.upstream == []
        return r.json()

    def ids(p: dict[str, Any]) -> list[str]:
        return [m["id"] for m in p["data"]]

    default = page("")
    assert ids(default) == ALLOWED["bob"] and default["has_more"] is False
    first = page("limit=2")
    assert ids(first) == ALLOWED["bob"][:2] and first["has_more"] is True
    second = page(f"limit=2&after_id={first['last_id']}")
    assert ids(second) == ALLOWED["bob"][2:4] and second["has_more"] is False
    back = page(f"limit=1&before_id={second['first_id']}")
    assert ids(back) == [ALLOWED["bob"][1]] and back["has_more"] is True
    empty = page(f"after_id={ALLOWED['bob'][-1]}")
    assert empty == {"data": [], "has_more": False, "first_id": None, "last_id": None}
    for query in ("limit=0", "limit=1001", "limit=two", "after_id=claude-experimental",
                  "after_id=claude-haiku-4-5&before_id=claude-opus-4-1"):
        r = gw.request("GET", "/v1/models?" + query, headers=_key("bob"))
        _error(r, 400, "invalid_request_error")
        assert r.upstream == []


def test_one_model(gw: Gateway) -> None:
    r = gw.request("GET", "/v1/models/claude-opus-4-1", headers=_key("bob"))
    assert r.status == 200, r.text
    assert r.json() == {"type": "model", "id": "claude-opus-4-1", "display_name": "Claude Opus 4.1",
                        "created_at": "2025-08-05T00:00:00Z"}
    # Not hers, and not anyone's: the same 404.
    for model in ("claude-opus-4-1", "claude-nonexistent"):
        r = gw.request("GET", f"/v1/models/{model}", headers=_key("alice"))
        assert _error(r, 404, "not_found_error") == f"model: {model}"
        assert r.upstream == []


# ---- enforcement: small bodies ------------------------------------------------------------------------
def test_bodiless_messages_request_is_refused(gw: Gateway) -> None:
    for method in ("GET", "POST"):
        r = gw.request(method, headers=_key("alice"), content=b"")
        _error(r, 400, "invalid_request_error")
        assert r.upstream == []


def test_allowed_model_passes_byte_identical(gw: Gateway) -> None:
    body = {"model": "claude-sonnet-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
    r = gw.request(headers=_key("alice"), body=body)
    assert r.status == 200, r.text
    assert r.seen.body == json.dumps(body).encode()


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens", "/v1//messages/",
                                  "/v1/%6Dessages?beta=true"])
def test_refused_model_gets_403_naming_it(gw: Gateway, path: str) -> None:
    r = gw.request(path=path, headers=_key("carol"),
                   body={"model": "claude-opus-4-1", "max_tokens": 16, "messages": []})
    assert _error(r, 403, "permission_error") == "model claude-opus-4-1 is not available to you"
    assert r.headers.get("x-should-retry") == "false"
    assert r.upstream == []


@pytest.mark.parametrize("path", ["/v1/messages/batches", "/v1//messages/batches/"])
def test_message_batches_are_refused_while_models_are_enforced(gw: Gateway, path: str) -> None:
    """A batch names a model per request, which the gate does not read: creating one is refused, even
    with only allowed models in it, so that it is no way around enforce. Reading batches is not."""
    batch = {"requests": [{"custom_id": "1", "params": {"model": "claude-opus-4-1", "max_tokens": 16,
                                                        "messages": [{"role": "user", "content": "hi"}]}}]}
    r = gw.request(path=path, headers=_key("bob"), body=batch)  # bob may use claude-opus-4-1
    assert _error(r, 403, "permission_error").startswith("message batches are not available through this gateway")
    assert r.headers.get("x-should-retry") == "false"
    assert r.upstream == []
    r = gw.request(method="GET", path="/v1/messages/batches", headers=_key("alice"))
    assert len(r.upstream) == 1 and r.upstream[0].header("x-gateway-user-id") == "alice"


@pytest.mark.parametrize("raw, status, error_type", [
    (rb'{"mod\u0065l":"claude-opus-4-1","messages":[]}', 403, "permission_error"),
    (rb'{"model":"claude-\u0068aiku-4-5","messages":[]}', 200, None),
    (rb'{"model":"claude-haiku-4-5","messages":[],"model":"claude-opus-4-1"}', 400, "invalid_request_error"),
    (rb'{"model":"claude-haiku-4-5","mod\u0065l":"claude-haiku-4-5"}', 400, "invalid_request_error"),
    (rb'{"messages":[{"role":"user","content":"\"model\":\"claude-haiku-4-5\""}],'
     rb'"metadata":{"model":"claude-haiku-4-5"}}', 400, "invalid_request_error"),
    (rb'{"model":5}', 400, "invalid_request_error"),
    (rb'{"messages":[1,],"model":"claude-haiku-4-5"}', 400, "invalid_request_error"),
    (b"", 400, "invalid_request_error"),
    (b'{"model":"' + b"m" * 257 + b'"}', 400, "invalid_request_error"),
], ids=["escaped-key", "escaped-value", "duplicate", "duplicate-escaped", "nested-only", "not-a-string",
        "invalid-json", "empty", "too-long"])
def test_escaped_duplicate_and_missing_models(gw: Gateway, raw: bytes, status: int, error_type: str | None) -> None:
    for http2 in (False, True):
        r = gw.request(headers=_key("carol"), content=raw, http2=http2)
        if error_type is None:
            assert r.status == status, r.text
            assert r.seen.body == raw
        else:
            _error(r, status, error_type)
            assert r.upstream == []


# ---- enforcement: 8 MB bodies, model first and last, HTTP/1.1 and HTTP/2 --------------------------------
def _big_body(model: str, first: bool) -> bytes:
    filler = json.dumps({"role": "user", "content": "x" * BIG}).encode()
    model_json = json.dumps(model).encode()
    if first:
        return b'{"model":' + model_json + b',"max_tokens":16,"messages":[' + filler + b"]}"
    return b'{"max_tokens":16,"messages":[' + filler + b'],"model":' + model_json + b"}"


def _raw_h1(gw: Gateway, trace: str, body: bytes, user: str) -> tuple[int, bytes]:
    """POST over a raw HTTP/1.1 connection, the body written by a thread that ignores a reset (Envoy may
    answer and close before the upload ends); the answer is read meanwhile."""
    port = int(gw.url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    head = (f"POST /v1/messages HTTP/1.1\r\nhost: gateway\r\nx-api-key: {USERS[user]}\r\n{TRACE}: {trace}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n").encode()

    def send() -> None:
        try:
            sock.sendall(head)
            for i in range(0, len(body), 1 << 16):
                sock.sendall(body[i:i + (1 << 16)])
        except OSError:
            pass

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            part = sock.recv(65536)
            if not part:
                break
            data += part
        head_end = data.find(b"\r\n\r\n")
        assert head_end > 0, f"no answer: {data[:200]!r}"
        status = int(data.split(b" ", 2)[1])
        length = next(int(line.split(b":", 1)[1]) for line in data[:head_end].split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        while len(data) < head_end + 4 + length:
            part = sock.recv(65536)
            if not part:
                break
            data += part
        return status, data[head_end + 4:head_end + 4 + length]
    finally:
        sock.close()
        sender.join(timeout=30)


def _wait_incomplete(api: MessagesAPI, trace: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not api.find_incomplete(TRACE, trace):
        time.sleep(0.05)


@pytest.mark.parametrize("http2", [False, True], ids=["http1", "http2"])
@pytest.mark.parametrize("first", [True, False], ids=["model-first", "model-last"])
@pytest.mark.parametrize("model, allowed", [("claude-haiku-4-5", True), ("claude-opus-4-1", False)],
                         ids=["allowed", "refused"])
def test_eight_megabyte_bodies(gw: Gateway, api: MessagesAPI, http2: bool, first: bool, model: str,
                               allowed: bool) -> None:
    body = _big_body(model, first)
    if http2:
        try:
            r = gw.request(headers=_key("alice"), content=body, http2=True)
            status, answer, trace = r.status, r.body, r.trace
        except Exception as e:  # noqa: BLE001 - a reset stream while uploading is only fine when refused
            assert not allowed, f"allowed upload failed: {e!r}"
            pytest.fail(f"HTTP/2 client got no answer: {e!r}")
    else:
        trace = uuid.uuid4().hex
        status, answer = _raw_h1(gw, trace, body, "alice")
    complete = api.find(TRACE, trace)
    if allowed:
        assert status == 200, answer[:300]
        assert len(complete) == 1 and complete[0].body_sha256 == hashlib.sha256(body).hexdigest()
        return
    assert status == 403, answer[:300]
    assert json.loads(answer)["error"] == {"type": "permission_error",
                                           "message": f"model {model} is not available to you"}
    if not first:
        # The upstream got all but the last chunk, and never a complete body.
        _wait_incomplete(api, trace)
        assert api.find_incomplete(TRACE, trace), "the upstream never saw the refused request start"
    assert api.find(TRACE, trace) == [], "a refused request completed at the upstream"


# ---- a body that arrives while the credential is still being checked ------------------------------------
@pytest.fixture(scope="module")
def slow_idp(module_pool: EnvoyPool, api: MessagesAPI, keys: Keys) -> Any:
    idp = IdP(issuer="https://sso.example.com", audience="claude-desktop", keys=keys).start()
    plugin = _plugin()
    plugin["providers"] = [{
        "name": "sso", "issuer": idp.issuer, "audiences": ["claude-desktop"], "jwks": {"inline": idp.jwks_json()},
        "opaque_tokens": {"style": "rfc7662", "uri": "https://sso.example.com/introspect", "cluster": "introspect",
                          "timeout_ms": 4000}}]
    try:
        yield module_pool.gateway("models-pending", api, idp, plugin, clusters={"introspect": idp.port}), idp
    finally:
        idp.stop()


@pytest.mark.parametrize("model, allowed", [("claude-haiku-4-5", True), ("claude-opus-4-1", False)],
                         ids=["allowed", "refused"])
@pytest.mark.parametrize("first", [True, False], ids=["model-first", "model-last"])
def test_body_sent_while_the_token_is_introspected(slow_idp: Any, api: MessagesAPI, model: str, allowed: bool,
                                                   first: bool) -> None:
    """Introspection takes 1 s; the whole body arrives meanwhile. Nothing reaches the upstream before the
    decision, and the decision covers what arrived while it waited."""
    gw, idp = slow_idp
    token = "opq_" + uuid.uuid4().hex
    idp.add_opaque(token, {"active": True, "sub": "pat", "aud": "claude-desktop", "exp": int(time.time()) + 600,
                           "groups": ["eng"]})
    idp.set_mode("delay", delay=1.0)
    try:
        body = (b'{"model":"%s","messages":[{"role":"user","content":"hi"}]}' % model.encode() if first
                else b'{"messages":[{"role":"user","content":"hi"}],"model":"%s"}' % model.encode())
        r = gw.request(headers={"authorization": f"Bearer {token}"}, content=body)
    finally:
        idp.set_mode("normal")
    if allowed:
        assert r.status == 200, r.text
        assert r.seen.body == body
    else:
        _error(r, 403, "permission_error")
        # Envoy may release the headers before the body reaches the filter; the body never completes.
        assert r.upstream == []
