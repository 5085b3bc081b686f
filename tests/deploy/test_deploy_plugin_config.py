"""The plugin configuration shipped in the Istio WasmPlugin and in the Envoy Gateway
EnvoyExtensionPolicy goes through the filter's own validation: it is loaded into a real Envoy (1.40)
as JSON text in a google.protobuf.StringValue, which is what both control planes hand the filter,
and `envoy --mode validate` must accept it. A negative control checks that a broken copy is
refused with the filter's message, so a passing run means the configuration was really examined."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import pytest

from deploy_helpers import (
    ENVOY_GATEWAY_DIR,
    envoy_config,
    envoy_gateway_wasm,
    envoy_validate,
    find_envoy,
    find_wasm,
    free_port,
    istio_plugin_config,
    named_clusters,
    patched_clusters,
    static_cluster,
)

REFUSED = "invalid plugin configuration"


def istio_case() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """pluginConfig, plus stand-ins for the clusters Istio would generate from the ServiceEntries,
    under their literal names (outbound|443||login.microsoftonline.com, ...)."""
    config = istio_plugin_config()
    return config, [static_cluster(name, free_port()) for name in named_clusters(config)]


def envoy_gateway_case() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """config, plus the clusters exactly as the EnvoyPatchPolicy adds them (so their definitions are
    checked against Envoy's schema too)."""
    config = envoy_gateway_wasm()["config"]
    added = patched_clusters(ENVOY_GATEWAY_DIR)
    return config, [copy.deepcopy(added[name]) for name in named_clusters(config)]


CASES: dict[str, Callable[[], tuple[dict[str, Any], list[dict[str, Any]]]]] = {
    "istio-wasmplugin": istio_case,
    "envoy-gateway-extension-policy": envoy_gateway_case,
}


def _output(result: Any) -> str:
    return (result.stdout or "") + (result.stderr or "")


@pytest.mark.parametrize("case", list(CASES))
def test_plugin_config_is_accepted_by_the_filter(case: str, tmp_path: Path) -> None:
    envoy, wasm = find_envoy(), find_wasm()
    config, clusters = CASES[case]()
    result = envoy_validate(envoy, envoy_config(wasm, config, clusters), tmp_path)
    out = _output(result)
    assert REFUSED not in out, f"the filter refused the {case} configuration:\n{out[-4000:]}"
    assert result.returncode == 0, f"envoy --mode validate exited {result.returncode}:\n{out[-4000:]}"


@pytest.mark.parametrize("case", list(CASES))
def test_broken_plugin_config_is_refused(case: str, tmp_path: Path) -> None:
    envoy, wasm = find_envoy(), find_wasm()
    config, clusters = CASES[case]()
    broken = copy.deepcopy(config)
    del broken["providers"][0]["issuer"]
    result = envoy_validate(envoy, envoy_config(wasm, broken, clusters), tmp_path)
    out = _output(result)
    assert result.returncode != 0, f"Envoy accepted a configuration without issuer:\n{out[-4000:]}"
    assert "invalid plugin configuration: providers[0].issuer: required" in out, out[-4000:]
