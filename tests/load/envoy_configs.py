"""The Envoy configurations of `make loadtest` beyond the gateway's (tests/e2e/e2e_harness.envoy_config):
the upstream Envoy that logs who arrived, and the filter's plugin configuration."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from envoy_process import ROUTER
from settings import (AUDIENCE, FETCH_TIMEOUT_MS, PROVIDER, REFRESH_SECONDS, UNKNOWN_KID_REFRESH_SECONDS,
                      UPSTREAM_BODY)
from standins.idp import IdP


def upstream_config(access_log: Path) -> dict[str, Any]:
    fmt = ("%REQ(x-load-class)%|%REQ(x-load-user)%|%REQ(x-gateway-user-id)%|%REQ(x-gateway-provider)%|"
           "%REQ(authorization):6%|%REQ(x-api-key):6%\n")
    hcm = {"@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
                    "HttpConnectionManager",
           "stat_prefix": "upstream", "codec_type": "AUTO",
           "access_log": [{"name": "envoy.access_loggers.file", "typed_config": {
               "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
               "path": str(access_log),
               "log_format": {"text_format_source": {"inline_string": fmt}}}}],
           "route_config": {"name": "upstream", "virtual_hosts": [{
               "name": "upstream", "domains": ["*"],
               "routes": [{"match": {"prefix": "/"}, "direct_response": {
                   "status": 200, "body": {"inline_string": UPSTREAM_BODY}}}]}]},
           # Read the whole request body before answering, so the gateway's connections stay alive.
           "http_filters": [
               {"name": "envoy.filters.http.buffer", "typed_config": {
                   "@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer",
                   "max_request_bytes": 65536}},
               ROUTER]}
    return {"static_resources": {"listeners": [{
                "name": "upstream",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                                "typed_config": hcm}]}]}]},
            "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}}}


def plugin_config(idp: IdP, api_keys: list[tuple[str, str]]) -> dict[str, Any]:
    return {"providers": [{"name": PROVIDER, "issuer": idp.issuer, "audiences": [AUDIENCE],
                           "jwks": {"uri": idp.jwks_uri, "cluster": "idp",
                                    "refresh_seconds": REFRESH_SECONDS,
                                    "unknown_kid_refresh_seconds": UNKNOWN_KID_REFRESH_SECONDS,
                                    "timeout_ms": FETCH_TIMEOUT_MS}}],
            "api_keys": [{"name": name, "sha256": hashlib.sha256(key.encode()).hexdigest(),
                          "groups": ["load"]} for name, key in api_keys]}
