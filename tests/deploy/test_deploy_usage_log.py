"""Every shipped access log (envoy/dev.yaml, envoy/gateway.yaml, Istio's extension provider and
Envoy Gateway's EnvoyProxy) carries the whole usage record of the contract, spelled the same way."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from deploy_helpers import ENVOY_GATEWAY_DIR, ISTIO_DIR, REPO, one

FILTER_STATE = ["gateway_model", "gateway_input_tokens", "gateway_output_tokens",
                "gateway_cache_creation_input_tokens", "gateway_cache_read_input_tokens", "gateway_cost",
                "gateway_usage"]
HEADERS = ["x-gateway-user-id", "x-gateway-budget-group", "x-claude-code-session-id"]


def expected_fields() -> dict[str, str]:
    fields = {name.removeprefix("gateway_"): f"%FILTER_STATE(wasm.{name}:PLAIN)%" for name in FILTER_STATE}
    fields["budget_group"] = "%REQ(x-gateway-budget-group)%"
    return fields


def hcm_json_format(path: Path) -> dict[str, str]:
    doc = yaml.safe_load(path.read_text())
    hcm = doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    return hcm["access_log"][0]["typed_config"]["log_format"]["json_format"]


def istio_labels() -> dict[str, str]:
    """The meshConfig snippet is a comment in telemetry.yaml (it is not a Kubernetes object)."""
    text = (ISTIO_DIR / "telemetry.yaml").read_text()
    snippet = "\n".join(re.sub(r"^# ?", "", line) for line in text.splitlines()
                        if line.startswith("#") and ("  " in line or "meshConfig" in line))
    mesh = yaml.safe_load(snippet[snippet.index("meshConfig:"):])
    provider = mesh["meshConfig"]["extensionProviders"][0]
    assert provider["name"] == one(ISTIO_DIR, "Telemetry")["spec"]["accessLogging"][0]["providers"][0]["name"]
    return provider["envoyFileAccessLog"]["logFormat"]["labels"]


def envoy_gateway_json() -> dict[str, str]:
    proxy = one(ENVOY_GATEWAY_DIR, "EnvoyProxy")
    gateway = one(ENVOY_GATEWAY_DIR, "Gateway")
    assert gateway["spec"]["infrastructure"]["parametersRef"]["name"] == proxy["metadata"]["name"]
    return proxy["spec"]["telemetry"]["accessLog"]["settings"][0]["format"]["json"]


@pytest.mark.parametrize("source", ["dev.yaml", "gateway.yaml", "istio", "envoy-gateway"])
def test_access_logs_carry_the_usage_record(source: str) -> None:
    fmt = {"dev.yaml": lambda: hcm_json_format(REPO / "envoy" / "dev.yaml"),
           "gateway.yaml": lambda: hcm_json_format(REPO / "envoy" / "gateway.yaml"),
           "istio": istio_labels, "envoy-gateway": envoy_gateway_json}[source]()
    for key, value in expected_fields().items():
        assert fmt.get(key) == value, f"{source}: {key}"
    values = " ".join(fmt.values())
    for header in HEADERS:
        assert f"%REQ({header})%" in values, f"{source}: {header}"
    assert "authorization" not in values.lower() and "x-api-key" not in values.lower(), "never log the credential"
