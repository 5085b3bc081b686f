"""The budget pieces of envoy/examples/budgets.yaml, read from that file by everything that runs them
beside the filter (the e2e tests, `make run BUDGETS=1`, the bench) or checks other platforms' copies
of them (tests/deploy): what runs and what is compared is what ships."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

EXAMPLE = Path(__file__).resolve().parents[1] / "envoy" / "examples" / "budgets.yaml"
RATELIMIT = "envoy.filters.http.ratelimit"


def hcm(doc: dict[str, Any]) -> dict[str, Any]:
    """The first listener's HTTP connection manager config of an Envoy bootstrap."""
    return doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]


def pieces() -> dict[str, Any]:
    """Fresh copies of the example's ratelimit filter entry (`filter`), its /v1/ route's
    `typed_per_filter_config` (`per_route`), `local_reply_config`, `access_log` and cluster
    `ratelimit` (`cluster`)."""
    doc = yaml.safe_load(EXAMPLE.read_text())
    manager = hcm(doc)
    [route] = [r for r in manager["route_config"]["virtual_hosts"][0]["routes"] if "typed_per_filter_config" in r]
    [rl_filter] = [f for f in manager["http_filters"] if f["name"] == RATELIMIT]
    [cluster] = [c for c in doc["static_resources"]["clusters"] if c["name"] == "ratelimit"]
    return {"filter": rl_filter, "per_route": route["typed_per_filter_config"],
            "local_reply_config": manager["local_reply_config"], "access_log": manager["access_log"],
            "cluster": cluster}


def local_cluster(port: int) -> dict[str, Any]:
    """The example's cluster `ratelimit` (gRPC over HTTP/2 cleartext) at 127.0.0.1:`port`."""
    cluster = pieces()["cluster"]
    cluster["type"] = "STATIC"
    cluster["load_assignment"] = {"cluster_name": cluster["name"], "endpoints": [{"lb_endpoints": [{"endpoint": {
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]}
    return cluster
