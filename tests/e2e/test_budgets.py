"""Budgets in the real Envoy: the built filter sets x-gateway-user-id, envoy.filters.http.ratelimit asks
the real gateway-ratelimit (counters in a real redis-server), and refused requests get the 429 of
envoy/examples/budgets.yaml (its local_reply_config is read from that file, so this tests the shipped
mapper). The charge at stream end (wasm.gateway_cost) is not covered here.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
import yaml

import e2e_harness as harness
import procs
from e2e_gateway import CI_KEY, plugin_config
from standins.idp import IdP
from standins.messages_api import MessagesAPI

REPO = Path(__file__).resolve().parents[2]
RLS_CONFIG = """
domain: budgets
descriptors:
  - key: requests_user
    rate_limit: {unit: minute, requests_per_unit: 2}
  - key: tokens_user
    rate_limit: {unit: day, requests_per_unit: 1000}
"""
BODY = {"model": "claude-sonnet-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


def _wait_port(port: int, what: str) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"{what} did not listen on {port}")
            time.sleep(0.05)


def _shipped_local_reply_config() -> dict[str, Any]:
    doc = yaml.safe_load((REPO / "envoy/examples/budgets.yaml").read_text())
    hcm = doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    return hcm["local_reply_config"]


class Budgets:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.redis_port = procs.free_port()
        self.rls_port = procs.free_port()
        (tmp / "rls.yaml").write_text(RLS_CONFIG)
        built = subprocess.run(["cargo", "build", "--quiet", "-p", "gateway-ratelimit"], cwd=REPO)
        assert built.returncode == 0, "cargo build -p gateway-ratelimit failed"
        self.redis = procs.spawn(["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                                  "--save", "", "--appendonly", "no", "--dir", str(tmp)],
                                 open(tmp / "redis.log", "wb"))
        _wait_port(self.redis_port, "redis-server")
        self.rls: subprocess.Popen[bytes] | None = None
        self.start_rls()

    def start_rls(self) -> None:
        self.rls = procs.spawn([str(REPO / "target/debug/gateway-ratelimit"), "--config", str(self.tmp / "rls.yaml"),
                                "--redis", f"redis://127.0.0.1:{self.redis_port}",
                                "--listen", f"127.0.0.1:{self.rls_port}"], open(self.tmp / "rls.log", "ab"))
        _wait_port(self.rls_port, "gateway-ratelimit")

    def redis_cli(self, *args: str) -> str:
        return subprocess.run(["redis-cli", "-p", str(self.redis_port), *args], capture_output=True,
                              text=True, check=True).stdout.strip()

    def stop(self) -> None:
        for p in (self.rls, self.redis):
            if p is not None:
                procs.stop(p)


def _envoy_config(api: MessagesAPI, idp: IdP, wasm: Path, rls_port: int, deny: bool) -> dict[str, Any]:
    cfg = harness.envoy_config(upstream_port=api.port, plugin_config=plugin_config(idp), wasm=wasm,
                               clusters={"idp": idp.port})
    rls = harness.static_cluster("ratelimit", rls_port)
    rls["typed_extension_protocol_options"] = {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "explicit_http_config": {"http2_protocol_options": {}}}}
    cfg["static_resources"]["clusters"].append(rls)
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    hcm["local_reply_config"] = _shipped_local_reply_config()
    hcm["http_filters"].insert(-1, {"name": "envoy.filters.http.ratelimit", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit",
        "domain": "budgets", "enable_x_ratelimit_headers": "DRAFT_VERSION_03",
        "failure_mode_deny": deny, "timeout": "1s",
        "rate_limit_service": {"transport_api_version": "V3",
                               "grpc_service": {"envoy_grpc": {"cluster_name": "ratelimit"}}}}})
    route = hcm["route_config"]["virtual_hosts"][0]["routes"][0]
    route["typed_per_filter_config"] = {"envoy.filters.http.ratelimit": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimitPerRoute",
        "rate_limits": [
            {"actions": [{"request_headers": {"header_name": "x-gateway-user-id", "descriptor_key": "requests_user"}}]},
            {"actions": [{"request_headers": {"header_name": "x-gateway-user-id", "descriptor_key": "tokens_user"}}],
             "hits_addend": {"number": 0}}]}}
    return cfg


@pytest.fixture
def budgets(tmp_path: Path) -> Iterator[Budgets]:
    b = Budgets(tmp_path)
    yield b
    b.stop()


def _start(tmp: Path, name: str, envoy_bin: Path, cfg: dict[str, Any]) -> harness.Envoy:
    return harness.Envoy(envoy_bin, tmp / name, name).start(cfg)


def _post(envoy: harness.Envoy, key: str | None = CI_KEY) -> httpx.Response:
    headers = {"x-api-key": key} if key else {}
    return httpx.post(envoy.url + "/v1/messages", json=BODY, headers=headers, timeout=30)


def test_request_rate_and_budget_refusals_have_the_messages_api_shape(
        budgets: Budgets, api: MessagesAPI, idp: IdP, wasm: Path, envoy_bin: Path, tmp_path: Path) -> None:
    with _start(tmp_path, "budgets", envoy_bin, _envoy_config(api, idp, wasm, budgets.rls_port, False)) as envoy:
        if 60 - time.time() % 60 < 5:  # all three requests in one minute window
            time.sleep(60 - time.time() % 60 + 0.5)
        now = time.time()
        assert [_post(envoy).status_code for _ in range(2)] == [200, 200]
        r = _post(envoy)
        assert r.status_code == 429
        assert r.json() == {"type": "error", "error": {
            "type": "rate_limit_error", "message": f"Too many requests on this gateway; retry in {r.headers['retry-after']} seconds."}}
        assert r.headers["content-type"] == "application/json"
        assert 1 <= int(r.headers["retry-after"]) <= 60
        assert r.headers["retry-after"] == r.headers["x-ratelimit-reset"]
        assert "x-should-retry" not in r.headers
        # An unauthenticated request is refused by the filter before any counting.
        assert _post(envoy, key=None).status_code == 401
        day = int(now) // 86400 * 86400
        assert budgets.redis_cli("get", f"budgets_requests_user_ci-bot_{int(now) // 60 * 60}") == "3"
        # The token budget check (hits 0) counts nothing; over the budget it refuses for the day.
        assert budgets.redis_cli("exists", f"budgets_tokens_user_ci-bot_{day}") == "0"
        budgets.redis_cli("set", f"budgets_tokens_user_ci-bot_{day}", "1001")
        budgets.redis_cli("del", f"budgets_requests_user_ci-bot_{int(time.time()) // 60 * 60}")
        r = _post(envoy)
        assert r.status_code == 429
        assert r.headers["x-should-retry"] == "false"
        reset = int(r.headers["retry-after"])
        assert reset == 86400 - int(time.time()) % 86400 or reset == 86400 - int(now) % 86400
        assert r.json()["error"]["type"] == "rate_limit_error"
        assert r.json()["error"]["message"].startswith("Your budget on this gateway is used up; it resets in")


def test_rate_limit_service_down_fails_open_or_closed(
        budgets: Budgets, api: MessagesAPI, idp: IdP, wasm: Path, envoy_bin: Path, tmp_path: Path) -> None:
    with _start(tmp_path, "open", envoy_bin, _envoy_config(api, idp, wasm, budgets.rls_port, False)) as open_, \
         _start(tmp_path, "closed", envoy_bin, _envoy_config(api, idp, wasm, budgets.rls_port, True)) as closed:
        assert _post(open_).status_code == 200 and _post(closed).status_code == 200
        assert budgets.rls is not None
        procs.stop(budgets.rls)
        assert _post(open_).status_code == 200       # failure_mode_deny: false passes
        assert _post(closed).status_code == 500      # failure_mode_deny: true refuses
        assert open_.stats("ratelimit").get("cluster.messages_api.ratelimit.failure_mode_allowed", 0) >= 1
        budgets.start_rls()
        budgets.redis_cli("flushall")  # ci-bot's request rate is used up by now
        deadline = time.monotonic() + 10
        while _post(closed).status_code != 200:
            assert time.monotonic() < deadline, "Envoy did not recover with the rate-limit service back"
            time.sleep(0.2)
