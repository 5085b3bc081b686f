"""Exact client-visible behaviour from docs/requests.md (responses the filter sends) and the contract, as
assertions shared by the e2e test modules."""

from __future__ import annotations

import re
from typing import Any

REALM = 'Bearer realm="llm-gateway"'

USER_ID = "x-gateway-user-id"
EMAIL = "x-gateway-user-email"
NAME = "x-gateway-user-name"
GROUPS = "x-gateway-user-groups"
PROVIDER_HDR = "x-gateway-provider"
TENANT = "x-gateway-tenant-id"
OVERAGE = "x-gateway-groups-overage"
IDENTITY_HEADERS = [USER_ID, EMAIL, NAME, GROUPS, PROVIDER_HDR, TENANT, OVERAGE]
CREDENTIAL_HEADERS = ["authorization", "x-api-key"]
# The filter's `request-id` on the answers it sends itself (the Messages API's own start `req_`).
GATEWAY_REQUEST_ID = re.compile(r"req_gw_[0-9a-f]{24}")


def error_body(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


def www_authenticate(message: str | None) -> str:
    if message is None:
        return REALM
    return f'{REALM}, error="invalid_token", error_description="{message}"'


def assert_answer_headers(headers: Any, should_retry: str) -> None:
    """Contract "Answers to clients": `x-should-retry` and a fresh `request-id` on every answer the
    filter sends itself."""
    assert headers.get_list("x-should-retry") == [should_retry], headers
    assert GATEWAY_REQUEST_ID.fullmatch(headers.get("request-id", "")), headers


def assert_401(r: Any, message: str, presented: bool = True, secrets: tuple[str, ...] = ()) -> None:
    """`r` is an e2e_gateway.Result: exact 401 from the filter, and nothing reached the upstream."""
    assert r.status == 401, f"status {r.status}, body {r.body[:300]!r}"
    assert r.headers.get("content-type") == "application/json", r.headers
    assert_answer_headers(r.headers, "false")
    assert r.json() == error_body("authentication_error", message)
    assert r.headers.get_list("www-authenticate") == [www_authenticate(message if presented else None)]
    assert r.upstream == [], "the upstream received a request that the filter should have refused"
    for secret in secrets:
        for part in [secret] + [p for p in secret.split(".") if len(p) > 8]:
            assert part not in r.text, "the error body echoes the credential"


def assert_503_keys_unavailable(r: Any) -> None:
    assert r.status == 503, f"status {r.status}, body {r.body[:300]!r}"
    assert r.headers.get("content-type") == "application/json", r.headers
    assert r.json() == error_body("api_error", "identity provider keys unavailable")
    assert r.headers.get("retry-after") == "5", r.headers
    assert_answer_headers(r.headers, "true")
    assert "www-authenticate" not in r.headers
    assert r.upstream == []


def assert_identity(seen: Any, user_id: str, provider: str, email: str | None = None,
                    name: str | None = None, groups: str | None = None) -> None:
    """What the upstream saw: each identity header exactly once with the expected value (absent when
    None), no tenant/overage header, and no credential header."""
    expected = {USER_ID: user_id, EMAIL: email, NAME: name, GROUPS: groups, PROVIDER_HDR: provider,
                TENANT: None, OVERAGE: None}
    got = {h: seen.header_all(h) for h in expected}
    want = {h: ([v] if v is not None else []) for h, v in expected.items()}
    assert got == want
    for h in CREDENTIAL_HEADERS:
        assert seen.header_all(h) == [], f"credential header {h} reached the upstream"
