"""The Envoy configuration of `make run` on other ports, and of `make run BUDGETS=1`.

`dev_config` starts from envoy/dev.yaml and moves its ports; with budgets it adds the budget pieces of
envoy/examples/budgets.yaml, taken from that file (so the demo is what operators deploy): the
`envoy.filters.http.ratelimit` filter after this filter, the route's `rate_limits` (request rate,
token budget check, stream-end charge of `wasm.gateway_cost`), the 429 `local_reply_config`, and a
cluster `ratelimit` to gateway-ratelimit on 127.0.0.1. DEMO_BUDGETS (tests/standins/dev-budgets.yaml)
is the rate-limit service's side.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from budgets_example import hcm, local_cluster, pieces

REPO = Path(__file__).resolve().parents[2]
DEV_YAML = REPO / "envoy" / "dev.yaml"
DEMO_BUDGETS = Path(__file__).resolve().parent / "dev-budgets.yaml"
# The example's 0.1 s is for a production service; a debug build on a busy laptop can take longer,
# and a timeout would fail open (uncounted) and hide the demo's 429.
DEV_RLS_TIMEOUT = "1s"


@dataclass
class DevPorts:
    """The 127.0.0.1 ports of `make run` (envoy/dev.yaml's), and of the budget demo's services."""
    gateway: int = 10000
    admin: int = 9901
    idp: int = 18080
    api: int = 18081
    rls: int = 18082
    redis: int = 18083


def _socket(port: int) -> dict[str, Any]:
    return {"socket_address": {"address": "127.0.0.1", "port_value": port}}


def _named(items: list[dict[str, Any]], name: str, where: str) -> dict[str, Any]:
    found = [i for i in items if i.get("name") == name]
    if len(found) != 1:
        raise ValueError(f"{where}: expected one entry named {name!r}, found {len(found)}")
    return found[0]


def _set_endpoint(cluster: dict[str, Any], port: int) -> None:
    cluster["load_assignment"] = {"cluster_name": cluster["name"],
                                  "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _socket(port)}}]}]}


def dev_config(ports: DevPorts, budgets: bool) -> dict[str, Any]:
    doc = yaml.safe_load(DEV_YAML.read_text())
    resources = doc["static_resources"]
    resources["listeners"][0]["address"] = _socket(ports.gateway)
    doc["admin"]["address"] = _socket(ports.admin)
    _set_endpoint(_named(resources["clusters"], "messages_api", "dev.yaml clusters"), ports.api)
    _set_endpoint(_named(resources["clusters"], "idp", "dev.yaml clusters"), ports.idp)
    manager = hcm(doc)
    wasm = _named(manager["http_filters"], "envoy.filters.http.wasm", "dev.yaml http_filters")
    issuer = f"http://127.0.0.1:{ports.idp}"
    for provider in wasm["typed_config"]["config"]["configuration"]["value"]["providers"]:
        provider["issuer"] = issuer
        provider["jwks"]["uri"] = f"{issuer}/jwks.json"
    if budgets:
        _add_budgets(doc, ports.rls)
    return doc


def _add_budgets(doc: dict[str, Any], rls_port: int) -> None:
    example = pieces()
    ratelimit = example["filter"]
    ratelimit["typed_config"]["timeout"] = DEV_RLS_TIMEOUT
    manager = hcm(doc)
    manager["local_reply_config"] = example["local_reply_config"]
    for route in manager["route_config"]["virtual_hosts"][0]["routes"]:
        route["typed_per_filter_config"] = example["per_route"]
    filters = manager["http_filters"]
    after_wasm = filters.index(_named(filters, "envoy.filters.http.wasm", "dev.yaml http_filters")) + 1
    filters.insert(after_wasm, ratelimit)
    doc["static_resources"]["clusters"].append(local_cluster(rls_port))
