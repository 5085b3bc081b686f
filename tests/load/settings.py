"""What every part of `make loadtest` shares: where things are, the run's settings (environment), and
the fixed facts of the load (rates, refresh periods, the outage, memory bound, messages)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LOAD_DIR = REPO / "tests" / "load"
LUA = LOAD_DIR / "load.lua"
RESULTS_MD = LOAD_DIR / "RESULTS.md"
sys.path.insert(0, str(REPO / "tests"))
from envoy_process import env_int  # noqa: E402

SECONDS = env_int("loadtest", "LOAD_SECONDS", 120, 60)
RPS = env_int("loadtest", "LOAD_RPS", 200, 20)
USERS = env_int("loadtest", "LOAD_USERS", 500, 10)
SKIP = {s.strip() for s in os.environ.get("LOAD_SKIP", "").split(",") if s.strip()}
ROTATION = os.environ.get("LOAD_ROTATION", "staged")
if ROTATION not in ("immediate", "staged"):
    sys.exit(f"loadtest: LOAD_ROTATION={ROTATION!r}: immediate or staged")
WASM_OVERRIDE = os.environ.get("LOAD_WASM", "")
KEEP = os.environ.get("LOAD_KEEP", "0") == "1"
# Envoy's --component-log-level for the gateway (wasm:debug logs every request's decision)
COMPONENT_LOG = os.environ.get("LOAD_COMPONENT_LOG", "wasm:info")
WRITE = os.environ.get("LOAD_WRITE", "1") != "0"

AUDIENCE = "claude-gateway"
PROVIDER = "idp"
REFRESH_SECONDS = 5
UNKNOWN_KID_REFRESH_SECONDS = 5
FETCH_TIMEOUT_MS = 2000
WORKERS = 2
OUTAGE_DOWN_SECONDS = 8
OUTAGE_500_SECONDS = 7
SAMPLE_SECONDS = 2.0
MEMORY_BOUND_MIB_PER_MIN = 5.0
# docs/requests.md: a request is held for keys "for at most the fetch's timeout_ms"; an unknown-kid refresh starts
# on the root context's next 1-s tick; +1 s for a shared machine. wrk counts a "timeout" for every answer
# later than this (it does not cancel the request).
WRK_TIMEOUT_S = FETCH_TIMEOUT_MS // 1000 + 2
TOKEN_LIFETIME_S = 4 * 3600
API_KEYS = 5
POOL_BAD = 300            # distinct credentials per bad pool (cycled)

UPSTREAM_BODY = ('{"id":"msg_load","type":"message","role":"assistant","model":"load",'
                 '"content":[{"type":"text","text":"ok"}],"stop_reason":"end_turn",'
                 '"usage":{"input_tokens":1,"output_tokens":1}}')

# 401/403/503 messages (src/reason.rs client_message) -> the metric the filter counts them in
# (src/metrics.rs for_denial: gateway_auth.denied.<code>, or .unavailable.<code> for the 503s).
MESSAGE_METRIC = {
    "missing credential": "denied.missing_credential",
    "credential too large (over the gateway's limits.max_credential_bytes)": "denied.credential_too_large",
    "malformed token": "denied.malformed",
    "token algorithm not allowed": "denied.algorithm_not_allowed",
    "token issuer not trusted": "denied.issuer_not_trusted",
    "token signing key not found": "denied.key_not_found",
    "token signature invalid": "denied.bad_signature",
    "token expired": "denied.expired",
    "token not yet valid": "denied.not_yet_valid",
    "token issued in the future": "denied.issued_in_future",
    "token has no expiry": "denied.no_expiry",
    "audience not allowed": "denied.audience_not_allowed",
    "token has no user id claim": "denied.no_user_id",
    "token user id has control characters or leading or trailing spaces": "denied.user_id_not_header_safe",
    "token user id is over 1024 bytes": "denied.user_id_too_long",
    "token sub claim is not a string": "denied.subject_not_string",
    "invalid API key": "denied.unknown_api_key",
    "token not issued for this gateway": "denied.required_claim",
    "token tenant not allowed": "denied.tenant_not_allowed",
    "account domain not allowed": "denied.domain_not_allowed",
    "account e-mail not verified": "denied.email_not_verified",
    "token not active": "denied.token_inactive",
    "token is a Microsoft Graph access token: send the ID token, or an access token for this gateway's app":
        "denied.graph_token",
    "token has an Entra ID v1.0 issuer (sts.windows.net) where v2.0 is expected": "denied.entra_v1_issuer",
    "token has an Entra ID v2.0 issuer where v1.0 (sts.windows.net) is expected": "denied.entra_v2_issuer",
    "token is an Okta org authorization server access token, which only Okta can verify: send the ID token, "
    "or use a custom authorization server": "denied.okta_org_access_token",
    "token issuer differs from a trusted issuer only by a trailing slash": "denied.issuer_trailing_slash",
    "insufficient scope": "denied.insufficient_scope",
    "token does not list the user's groups (groups overage)": "denied.groups_overage",
    "identity provider keys unavailable": "unavailable.keys_unavailable",
    "token introspection unavailable": "unavailable.introspection_unavailable",
    "gateway authentication is not configured": "unavailable.not_configured",
}



class LoadError(RuntimeError):
    pass
