"""Static checks of the Kubernetes manifests: they parse, they are well-formed Kubernetes objects,
and the pieces that must agree with each other do (cluster names, fail-closed settings, timeouts)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from deploy_helpers import (
    ENVOY_GATEWAY_DIR,
    ISTIO_DIR,
    REPO,
    envoy_gateway_wasm,
    istio_plugin_config,
    load_documents,
    manifest_files,
    named_clusters,
    one,
    patched_clusters,
    resources,
)

FILES = manifest_files()


def test_manifest_directories_are_populated() -> None:
    for d in (ISTIO_DIR, ENVOY_GATEWAY_DIR):
        assert list(d.glob("*.yaml")), f"no manifests in {d.relative_to(REPO)}"


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(REPO)) for p in FILES])
def test_every_document_is_a_kubernetes_object(path: Path) -> None:
    docs = load_documents(path)
    assert docs, f"{path.name}: no YAML documents"
    for i, doc in enumerate(docs):
        where = f"{path.name} document {i}"
        assert isinstance(doc, dict), f"{where}: not a mapping"
        assert isinstance(doc.get("apiVersion"), str) and doc["apiVersion"], f"{where}: no apiVersion"
        assert isinstance(doc.get("kind"), str) and doc["kind"], f"{where}: no kind"
        meta = doc.get("metadata")
        assert isinstance(meta, dict) and isinstance(meta.get("name"), str) and meta["name"], \
            f"{where}: no metadata.name"
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", meta["name"]), \
            f"{where}: metadata.name {meta['name']!r} is not a valid Kubernetes name"


# ---- Istio ------------------------------------------------------------------------------------------
def test_istio_wasmplugin_fails_closed_on_the_ingress_gateway() -> None:
    spec = one(ISTIO_DIR, "WasmPlugin")["spec"]
    assert spec["failStrategy"] == "FAIL_CLOSE"
    assert spec["phase"] == "AUTHN"
    assert spec["selector"]["matchLabels"] == {"istio": "ingressgateway"}
    assert spec["url"].startswith("oci://")
    # Istio classes gateway listeners as CLIENT: a SERVER-only match would leave the gateway without
    # the filter, i.e. unauthenticated.
    for m in spec.get("match", []):
        assert m.get("mode", "UNDEFINED") in ("CLIENT", "CLIENT_AND_SERVER", "UNDEFINED"), m


def _tls_for_port(dr_spec: dict[str, Any], port: int) -> dict[str, Any]:
    policy = dr_spec.get("trafficPolicy", {})
    for pls in policy.get("portLevelSettings", []):
        if pls.get("port", {}).get("number") == port and "tls" in pls:
            return pls["tls"]
    return policy.get("tls", {})


def test_istio_clusters_named_by_the_plugin_exist_and_originate_tls() -> None:
    clusters = named_clusters(istio_plugin_config())
    assert clusters, "the WasmPlugin's pluginConfig names no cluster"
    entries = list(resources(ISTIO_DIR, "ServiceEntry"))
    rules = list(resources(ISTIO_DIR, "DestinationRule"))
    for cluster in clusters:
        m = re.fullmatch(r"outbound\|(\d+)\|\|([^|]+)", cluster)
        assert m, f"{cluster!r} is not an Istio outbound cluster name (outbound|<port>||<host>)"
        port, host = int(m.group(1)), m.group(2)
        declaring = [e for e in entries
                     if host in e["spec"]["hosts"]
                     and any(p["number"] == port for p in e["spec"]["ports"])]
        assert declaring, f"no ServiceEntry declares {host}:{port} (needed for cluster {cluster})"
        assert declaring[0]["spec"].get("resolution") == "DNS"
        matching = [r for r in rules if r["spec"]["host"] == host]
        assert matching, f"no DestinationRule for {host}: the cluster would not originate TLS"
        tls = _tls_for_port(matching[0]["spec"], port)
        assert tls.get("mode") == "SIMPLE", f"DestinationRule for {host}: tls.mode must be SIMPLE"
        assert tls.get("sni") == host, f"DestinationRule for {host}: sni must be {host}"


def test_istio_messages_route_has_no_request_timeout() -> None:
    routes = [r for vs in resources(ISTIO_DIR, "VirtualService") for r in vs["spec"].get("http", [])]
    v1 = [r for r in routes if any(m.get("uri", {}).get("prefix") == "/v1/" for m in r.get("match", []))]
    assert v1, "no VirtualService route matches the prefix /v1/"
    for r in v1:
        assert r.get("timeout") == "0s", f"route {r.get('name')}: timeout must be 0s (streamed answers)"


def test_istio_gateway_and_virtualservice_agree() -> None:
    gw = one(ISTIO_DIR, "Gateway")
    vs = one(ISTIO_DIR, "VirtualService")
    ref = f"{gw['metadata']['namespace']}/{gw['metadata']['name']}"
    assert ref in vs["spec"]["gateways"]
    assert gw["spec"]["selector"] == one(ISTIO_DIR, "WasmPlugin")["spec"]["selector"]["matchLabels"]


# ---- Envoy Gateway ----------------------------------------------------------------------------------
def test_envoy_gateway_extension_fails_closed_on_the_gateway() -> None:
    policy = one(ENVOY_GATEWAY_DIR, "EnvoyExtensionPolicy")
    wasm = envoy_gateway_wasm()
    assert wasm.get("failOpen") is False, "failOpen must be false, explicitly"
    code = wasm["code"]
    assert code["type"] in ("Image", "HTTP")
    assert ("image" in code) == (code["type"] == "Image") and ("http" in code) == (code["type"] == "HTTP")
    gateways = {g["metadata"]["name"] for g in resources(ENVOY_GATEWAY_DIR, "Gateway")}
    refs = policy["spec"]["targetRefs"]
    assert any(r["kind"] == "Gateway" and r["name"] in gateways for r in refs), \
        "the EnvoyExtensionPolicy should target the Gateway (every route authenticated)"


def test_envoy_gateway_clusters_named_by_the_plugin_are_added_by_a_patch() -> None:
    clusters = named_clusters(envoy_gateway_wasm()["config"])
    assert clusters, "the EnvoyExtensionPolicy's config names no cluster"
    added = patched_clusters(ENVOY_GATEWAY_DIR)
    for cluster in clusters:
        assert cluster in added, f"cluster {cluster!r} is not added by an EnvoyPatchPolicy"
    for policy in resources(ENVOY_GATEWAY_DIR, "EnvoyPatchPolicy"):
        assert policy["spec"]["targetRef"]["kind"] in ("Gateway", "GatewayClass")
        for patch in policy["spec"]["jsonPatches"]:
            assert patch["name"] == patch["operation"]["value"]["name"]


def test_envoy_gateway_messages_route_has_no_request_timeout() -> None:
    rules = [r for route in resources(ENVOY_GATEWAY_DIR, "HTTPRoute") for r in route["spec"]["rules"]]
    v1 = [r for r in rules if any(m.get("path", {}).get("value") == "/v1/" for m in r.get("matches", []))]
    assert v1, "no HTTPRoute rule matches the path prefix /v1/"
    for r in v1:
        assert r.get("timeouts", {}).get("request") == "0s"
