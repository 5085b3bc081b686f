"""Plugin configuration: a bad one makes Envoy exit non-zero, logging one error line with the JSON path;
the shipped Envoy configs in envoy/ validate."""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from e2e_gateway import EnvoyPool, plugin_config
from e2e_harness import REPO, envoy_config
from standins.idp import IdP
from standins.messages_api import MessagesAPI

EXIT_TIMEOUT = 30


def _good(idp: IdP) -> dict[str, Any]:
    return copy.deepcopy(plugin_config(idp))


def _edit(path: str, value: Any = None, delete: bool = False):
    """A function idp -> a good config with one change at `path` (dotted, [n] for list items)."""
    def make(idp: IdP) -> Any:
        cfg = _good(idp)
        parts = re.findall(r"[^.\[\]]+|\[\d+\]", path)
        node: Any = cfg
        for p in parts[:-1]:
            node = node[int(p[1:-1])] if p.startswith("[") else node[p]
        last = parts[-1]
        key: Any = int(last[1:-1]) if last.startswith("[") else last
        if delete:
            del node[key]
        else:
            node[key] = value
        return cfg
    return make


def _replace(value: Any):
    return lambda idp: value


# (id, form, config maker, regex the error line must match); ids in EXTENDED belong to the contract's
# presets / opaque-token section and carry the `extended` mark.
EXTENDED = {"unknown-preset", "google-preset-without-hosted-domains", "groups-overage-bad-value",
            "opaque-tokens-on-two-providers", "opaque-tokens-bad-style"}
BAD: list[tuple[str, str, Any, str]] = [
    ("missing-issuer", "struct", _edit("providers[0].issuer", delete=True), r"providers\[0\]\.issuer: required"),
    ("missing-issuer-string-form", "string", _edit("providers[0].issuer", delete=True),
     r"providers\[0\]\.issuer: required"),
    ("jwks-inline-and-uri", "struct",
     lambda idp: _edit("providers[0].jwks.inline", idp.jwks_json())(idp), r"providers\[0\]\.jwks: "),
    ("jwks-none-of-three", "struct", _edit("providers[0].jwks", {"cluster": "idp"}), r"providers\[0\]\.jwks: "),
    ("unknown-top-level-key", "struct", _edit("providerz", [{"name": "x"}]), r"providerz: "),
    ("unknown-provider-key", "struct", _edit("providers[0].issuerz", "x"),
     r"providers\[0\]\.issuerz: "),
    ("missing-audiences", "struct", _edit("providers[0].audiences", delete=True), r"providers\[0\]\.audiences: "),
    ("missing-name", "struct", _edit("providers[0].name", delete=True), r"providers\[0\]\.name: "),
    ("uri-without-cluster", "struct", _edit("providers[0].jwks.cluster", delete=True),
     r"providers\[0\]\.jwks\.cluster: "),
    ("hmac-algorithm", "struct", _edit("providers[0].algorithms", ["RS256", "HS256"]),
     r"providers\[0\]\.algorithms\[1\]: "),
    ("api-key-not-hex", "struct", _edit("api_keys[0].sha256", "not-a-sha256"), r"api_keys\[0\]\.sha256: "),
    ("issuer-with-discovery-suffix", "struct",
     lambda idp: _edit("providers[0].issuer", idp.issuer + "/.well-known/openid-configuration")(idp),
     r"providers\[0\]\.issuer: .*remove"),
    ("no-providers-no-keys", "struct", _replace({}), r"providers: "),
    ("wrong-type", "struct", _edit("providers[0].audiences", "claude-desktop-not-a-list"),
     r"providers\[0\]\.audiences: "),
    ("string-form-not-json", "string", _replace("{this is not json"), r""),
    ("unknown-preset", "struct", _edit("providers[0].preset", "auth0"), r"providers\[0\]\.preset: "),
    ("google-preset-without-hosted-domains", "struct",
     _replace({"providers": [{"name": "g", "preset": "google", "client_id": "c", "jwks": {"cluster": "idp"}}]}),
     r"providers\[0\]\.hosted_domains: "),
    ("groups-overage-bad-value", "struct", _edit("providers[0].groups_overage", "ignore"),
     r"providers\[0\]\.groups_overage: "),
    ("opaque-tokens-on-two-providers", "struct", lambda idp: {"providers": [
        {"name": f"p{i}", "issuer": f"{idp.issuer}/{i}", "audiences": ["a"], "jwks": {"inline": idp.jwks_json()},
         "opaque_tokens": {"style": "rfc7662", "uri": "http://127.0.0.1/introspect", "cluster": "idp"}}
        for i in range(2)]}, r"providers(\[1\]\.opaque_tokens)?: .*opaque_tokens"),
    ("opaque-tokens-bad-style", "struct", _edit("providers[0].opaque_tokens",
                                                {"style": "magic", "uri": "http://x/i", "cluster": "idp"}),
     r"providers\[0\]\.opaque_tokens\.style: "),
]


@pytest.mark.parametrize("form,make,pattern", [
    pytest.param(f, m, p, id=i, marks=[pytest.mark.extended] if i in EXTENDED else []) for i, f, m, p in BAD])
def test_bad_config_refuses_to_start(pool: EnvoyPool, api: MessagesAPI, idp: IdP, form: str, make: Any,
                                     pattern: str) -> None:
    plugin = make(idp)
    cfg = envoy_config(upstream_port=api.port, plugin_config=plugin, form=form, wasm=pool.wasm,
                       clusters={"idp": idp.port})
    envoy = pool.envoy("bad-config", cfg, wait=False)
    code = envoy.wait_exit(EXIT_TIMEOUT)
    assert code is not None, f"Envoy still running {EXIT_TIMEOUT}s after a bad plugin configuration"
    assert code != 0
    lines = [ln for ln in envoy.log_text().splitlines() if "invalid plugin configuration: " in ln]
    assert lines, "no `invalid plugin configuration:` line in Envoy's log"
    assert "[error]" in lines[0], lines[0]
    message = lines[0].split("invalid plugin configuration: ", 1)[1]
    assert re.match(pattern, message), f"{message!r} does not match {pattern!r}"


@pytest.mark.parametrize("form", ["struct", "string"])
def test_good_config_starts(pool: EnvoyPool, api: MessagesAPI, idp: IdP, form: str) -> None:
    """Control for the cases above: the unchanged config starts and logs no configuration error."""
    gw = pool.gateway(f"good-{form}", api, idp, plugin_config(idp), form=form)
    assert gw.envoy.proc is not None and gw.envoy.proc.poll() is None
    assert "invalid plugin configuration" not in gw.envoy.log_text()


SHIPPED = sorted((REPO / "envoy").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_envoy_config_validates(envoy_bin: Path, path: Path) -> None:
    """`envoy --mode validate` loads the filter and runs its configuration (from the repo root, as
    `make run` does, so dist/gateway_filter.wasm resolves)."""
    out = subprocess.run([str(envoy_bin), "--mode", "validate", "-c", str(path), "--use-dynamic-base-id",
                          "--log-level", "warn"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert "invalid plugin configuration" not in out.stdout + out.stderr
