"""The budget manifests (envoy/istio/budgets, envoy/envoy-gateway/budgets, envoy/kubernetes): the Envoy
pieces they patch in are those of envoy/examples/budgets.yaml (which tests/e2e runs), they point at the
rate-limit Service that envoy/kubernetes/ratelimit.yaml declares, and put where their patches put them,
next to the platform's Wasm filter configuration, they pass `envoy --mode validate` in Envoy 1.40."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

from deploy_helpers import (
    ENVOY_GATEWAY_BUDGETS_DIR,
    ISTIO_BUDGETS_DIR,
    ISTIO_DIR,
    KUBERNETES_DIR,
    REPO,
    envoy_config,
    envoy_gateway_wasm,
    envoy_validate,
    find_envoy,
    find_wasm,
    istio_plugin_config,
    named_clusters,
    one,
    resources,
    static_cluster,
)
import budgets_example  # noqa: E402 - tests/ is on sys.path once deploy_helpers is imported

RATELIMIT = budgets_example.RATELIMIT
ROUTER = "envoy.filters.http.router"
HCM = "envoy.filters.network.http_connection_manager"
H2 = {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
    "explicit_http_config": {"http2_protocol_options": {}}}}
# The JSONPaths the Envoy Gateway policy uses, and what each selects in an xDS resource (Envoy
# Gateway evaluates them; the test carries them out the same way on its stand-in resources).
EG_ROUTER = "$..http_filters[?(@.name=='envoy.filters.http.router')]"
EG_ROUTES = "$.virtual_hosts[*].routes[*]"
EG_HCM = "$..filters[?(@.name=='envoy.filters.network.http_connection_manager')].typed_config"


# ---- the plain Envoy example ------------------------------------------------------------------------
def _example() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """envoy/examples/budgets.yaml's ratelimit filter config, per-route config and local_reply_config."""
    shipped = budgets_example.pieces()
    return shipped["filter"]["typed_config"], shipped["per_route"][RATELIMIT], shipped["local_reply_config"]


def _without_cluster(rl: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(rl)
    grpc = out["rate_limit_service"]["grpc_service"]["envoy_grpc"]
    grpc.pop("cluster_name")
    grpc.pop("authority", None)
    return out


def _rls_service() -> tuple[str, int]:
    """The rate-limit Service of envoy/kubernetes/ratelimit.yaml: its DNS name and gRPC port."""
    [svc] = [s for s in resources(KUBERNETES_DIR, "Service") if s["metadata"]["name"] == "gateway-ratelimit"]
    [port] = svc["spec"]["ports"]
    assert port["name"] == "grpc" and port.get("appProtocol") == "grpc", "Istio must see gRPC (HTTP/2) on it"
    return f"{svc['metadata']['name']}.{svc['metadata']['namespace']}.svc.cluster.local", port["port"]


def _validate(tmp_path: Path, config: dict[str, Any]) -> None:
    out = envoy_validate(find_envoy(), config, tmp_path)
    assert out.returncode == 0, f"envoy --mode validate refused it:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"


def _hcm(config: dict[str, Any]) -> dict[str, Any]:
    return config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]


def _merge(into: dict[str, Any], value: dict[str, Any]) -> None:
    """Protobuf merge as Istio's MERGE does it: messages merge field by field, lists append."""
    for key, v in value.items():
        if isinstance(v, dict) and isinstance(into.get(key), dict) and v.get("@type") == into[key].get("@type"):
            _merge(into[key], v)
        elif isinstance(v, list) and isinstance(into.get(key), list):
            into[key] = into[key] + v
        else:
            into[key] = v


# ---- the rate-limit service on Kubernetes -----------------------------------------------------------
def test_kubernetes_budgets_are_the_shipped_budgets_file() -> None:
    config = one(KUBERNETES_DIR, "ConfigMap")
    deploy = [d for d in resources(KUBERNETES_DIR, "Deployment") if d["metadata"]["name"] == "gateway-ratelimit"]
    assert len(deploy) == 1
    [container] = deploy[0]["spec"]["template"]["spec"]["containers"]
    mount = [m for m in container["volumeMounts"] if m["name"] == "budgets"][0]["mountPath"]
    assert f"--config={mount}/budgets.yaml" in container["args"]
    shipped = yaml.safe_load((REPO / "ratelimit" / "config" / "budgets.yaml").read_text())
    assert yaml.safe_load(config["data"]["budgets.yaml"]) == shipped
    redis = [a for a in container["args"] if a.startswith("--redis=")]
    [redis_svc] = [s for s in resources(KUBERNETES_DIR, "Service") if s["metadata"]["name"] == "redis"]
    host = f"redis.{redis_svc['metadata']['namespace']}.svc.cluster.local:{redis_svc['spec']['ports'][0]['port']}"
    assert redis == [f"--redis=redis://{host}"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"


# ---- Istio ------------------------------------------------------------------------------------------
def _istio_patches() -> dict[str, dict[str, Any]]:
    ef = one(ISTIO_BUDGETS_DIR, "EnvoyFilter")
    assert ef["spec"]["workloadSelector"]["labels"] == one(ISTIO_DIR, "WasmPlugin")["spec"]["selector"]["matchLabels"]
    patches = {p["applyTo"]: p for p in ef["spec"]["configPatches"]}
    assert sorted(patches) == ["HTTP_FILTER", "HTTP_ROUTE", "NETWORK_FILTER"]
    for p in patches.values():
        assert p["match"]["context"] == "GATEWAY"
    return patches


def test_istio_budgets_are_the_plain_envoy_example() -> None:
    rl, per_route, local_reply = _example()
    patches = _istio_patches()
    f = patches["HTTP_FILTER"]
    assert f["match"]["listener"]["filterChain"]["filter"]["subFilter"]["name"] == ROUTER
    assert f["patch"]["operation"] == "INSERT_BEFORE"   # after the WasmPlugin (AUTHN), before the router
    assert f["patch"]["value"]["name"] == RATELIMIT
    assert _without_cluster(f["patch"]["value"]["typed_config"]) == _without_cluster(rl)
    assert patches["HTTP_ROUTE"]["patch"]["value"]["typed_per_filter_config"][RATELIMIT] == per_route
    hcm = patches["NETWORK_FILTER"]["patch"]["value"]["typed_config"]
    assert hcm["local_reply_config"] == local_reply


def test_istio_budgets_target_the_route_service_and_gateway_that_exist() -> None:
    patches = _istio_patches()
    vhost = patches["HTTP_ROUTE"]["match"]["routeConfiguration"]["vhost"]
    server = one(ISTIO_DIR, "Gateway")["spec"]["servers"][0]
    assert vhost["name"] == f"{server['hosts'][0]}:{server['port']['number']}", "Istio names gateway vhosts <host>:<port>"
    routes = [r["name"] for vs in resources(ISTIO_DIR, "VirtualService") for r in vs["spec"]["http"]]
    assert vhost["route"]["name"] in routes
    host, port = _rls_service()
    grpc = patches["HTTP_FILTER"]["patch"]["value"]["typed_config"]["rate_limit_service"]["grpc_service"]["envoy_grpc"]
    assert grpc["cluster_name"] == f"outbound|{port}||{host}"
    assert grpc["authority"] == host


def test_istio_budget_patches_pass_envoy_validate(tmp_path: Path) -> None:
    patches = _istio_patches()
    config = istio_plugin_config()
    grpc = patches["HTTP_FILTER"]["patch"]["value"]["typed_config"]["rate_limit_service"]["grpc_service"]["envoy_grpc"]
    rls = static_cluster(grpc["cluster_name"], 8081)
    rls["typed_extension_protocol_options"] = H2   # what Istio gives a port named grpc
    cfg = envoy_config(find_wasm(), config, [static_cluster(c, 443) for c in named_clusters(config)] + [rls])
    hcm = _hcm(cfg)
    filters = hcm["typed_config"]["http_filters"]
    filters.insert([f["name"] for f in filters].index(ROUTER), patches["HTTP_FILTER"]["patch"]["value"])
    route = hcm["typed_config"]["route_config"]["virtual_hosts"][0]["routes"][0]
    route["name"] = patches["HTTP_ROUTE"]["match"]["routeConfiguration"]["vhost"]["route"]["name"]
    _merge(route, patches["HTTP_ROUTE"]["patch"]["value"])
    _merge(hcm, patches["NETWORK_FILTER"]["patch"]["value"])
    assert [f["name"] for f in filters] == ["envoy.filters.http.wasm", RATELIMIT, ROUTER]
    _validate(tmp_path, cfg)


# ---- Envoy Gateway ----------------------------------------------------------------------------------
def _eg_patches() -> list[dict[str, Any]]:
    policy = one(ENVOY_GATEWAY_BUDGETS_DIR, "EnvoyPatchPolicy")
    gateway = one(REPO / "envoy" / "envoy-gateway", "Gateway")
    assert policy["spec"]["targetRef"] == {"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                           "name": gateway["metadata"]["name"]}
    assert policy["metadata"]["namespace"] == gateway["metadata"]["namespace"]
    listener = f"{gateway['metadata']['namespace']}/{gateway['metadata']['name']}/{gateway['spec']['listeners'][0]['name']}"
    for p in policy["spec"]["jsonPatches"]:
        if not p["type"].endswith("Cluster"):
            assert p["name"] == listener, f"Envoy Gateway names the listener and its routes {listener}"
    return policy["spec"]["jsonPatches"]


def _eg_patch(patches: list[dict[str, Any]], kind: str, json_path: str | None) -> dict[str, Any]:
    found = [p["operation"] for p in patches
             if p["type"].endswith(kind) and p["operation"].get("jsonPath") == json_path]
    assert len(found) == 1, f"expected one {kind} patch with jsonPath {json_path!r}"
    assert found[0]["op"] == "add"
    return found[0]


def test_envoy_gateway_budgets_are_the_plain_envoy_example() -> None:
    rl, per_route, local_reply = _example()
    patches = _eg_patches()
    assert len(patches) == 4
    cluster = _eg_patch(patches, "Cluster", None)
    assert cluster["path"] == ""
    filt = _eg_patch(patches, "Listener", EG_ROUTER)
    assert filt.get("path", "") == ""   # add at the router's index: just before it
    assert filt["value"]["name"] == RATELIMIT
    assert _without_cluster(filt["value"]["typed_config"]) == _without_cluster(rl)
    assert filt["value"]["typed_config"]["rate_limit_service"]["grpc_service"]["envoy_grpc"]["cluster_name"] \
        == cluster["value"]["name"]
    route = _eg_patch(patches, "RouteConfiguration", EG_ROUTES)
    assert route["path"] == f"/typed_per_filter_config/{RATELIMIT}"
    assert route["value"] == per_route
    reply = _eg_patch(patches, "Listener", EG_HCM)
    assert reply["path"] == "/local_reply_config"
    assert reply["value"] == local_reply
    host, port = _rls_service()
    address = cluster["value"]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert address["socket_address"] == {"address": host, "port_value": port}


def test_envoy_gateway_budget_patches_pass_envoy_validate(tmp_path: Path) -> None:
    patches = _eg_patches()
    wasm = envoy_gateway_wasm()
    cluster = _eg_patch(patches, "Cluster", None)["value"]
    cfg = envoy_config(find_wasm(), wasm["config"],
                       [static_cluster(c, 443) for c in named_clusters(wasm["config"])] + [cluster])
    hcm = _hcm(cfg)
    filters = hcm["typed_config"]["http_filters"]
    filters.insert([f["name"] for f in filters].index(ROUTER), _eg_patch(patches, "Listener", EG_ROUTER)["value"])
    hcm["typed_config"]["local_reply_config"] = _eg_patch(patches, "Listener", EG_HCM)["value"]
    route_patch = _eg_patch(patches, "RouteConfiguration", EG_ROUTES)
    key = re.fullmatch(r"/typed_per_filter_config/(.+)", route_patch["path"]).group(1)  # type: ignore[union-attr]
    for vhost in hcm["typed_config"]["route_config"]["virtual_hosts"]:
        for route in vhost["routes"]:
            route.setdefault("typed_per_filter_config", {})[key] = route_patch["value"]
    assert [f["name"] for f in filters] == ["envoy.filters.http.wasm", RATELIMIT, ROUTER]
    _validate(tmp_path, cfg)
