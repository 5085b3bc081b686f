"""What the budgets tests share: a real redis-server and target/debug/gateway-ratelimit on free loopback
ports (stopped by PID), rate-limit service configs derived from ratelimit/config/budgets.yaml, and
Envoy configs whose rate limiting (`rate_limits`, the ratelimit filter, `local_reply_config`, the access
log) is read from envoy/examples/budgets.yaml, so the tests test what ships. Nothing here is a test."""

from __future__ import annotations

import hashlib
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

import budgets_example
import e2e_harness as harness
import procs
from e2e_gateway import TRACE, EnvoyPool, Gateway, Result, plugin_config
from standins.idp import IdP
from standins.messages_api import MessagesAPI

REPO = Path(__file__).resolve().parents[2]
SHIPPED_RLS = REPO / "ratelimit/config/budgets.yaml"
RLS_BIN = REPO / "target/debug/gateway-ratelimit"
# The shipped filter waits 0.1 s for the service; on this 2-core machine shared by parallel builds an
# answer can take longer, which would turn a refusal into a fail-open pass and hide the behaviour.
RLS_TIMEOUT = "2s"
# Default cost weights (contract: usage.cost_weights): input + output + cache creation.
USAGE = "100,50,0,0"
COST = 150
STREAM = {"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": True,
          "messages": [{"role": "user", "content": "stream please"}]}
BUDGET_MESSAGE = "Your budget on this gateway is used up; it resets in "


def rls_config(limits: dict[tuple[str, str | None], int], extra: list[dict[str, Any]] | None = None) -> str:
    """ratelimit/config/budgets.yaml with each rule's `requests_per_unit` replaced by `limits`
    [(key, value)] (every shipped rule must be given one: a changed file shows here), plus `extra`
    descriptors."""
    doc = yaml.safe_load(SHIPPED_RLS.read_text())
    rules = {(d["key"], d.get("value")): d for d in doc["descriptors"]}
    assert set(rules) == set(limits), f"shipped rules {sorted(rules, key=str)} != {sorted(limits, key=str)}"
    for rule, n in limits.items():
        rules[rule]["rate_limit"]["requests_per_unit"] = n
    doc["descriptors"] += extra or []
    return yaml.safe_dump(doc)


def day_start() -> int:
    return int(time.time()) // 86400 * 86400


def away_from_midnight(margin: float = 90) -> None:
    """Daily counters must not reset in the middle of a test: wait out the last `margin` seconds of
    a UTC day (a test module takes less than that)."""
    left = 86400 - time.time() % 86400
    if left < margin:
        time.sleep(left + 0.5)


def wait_port(port: int, what: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    if not procs.wait_listening(port, 20, proc):
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
        pytest.fail(f"{what} did not listen on {port}")


class Budgets:
    """redis-server and gateway-ratelimit (config `rls_yaml`), on free loopback ports."""

    def __init__(self, tmp: Path, rls_yaml: str) -> None:
        self.tmp = tmp
        self.redis_port = procs.free_port()
        self.rls_port = procs.free_port()
        self.rls_log = tmp / "rls.log"
        (tmp / "rls.yaml").write_text(rls_yaml)
        built = subprocess.run(["cargo", "build", "--quiet", "-p", "gateway-ratelimit"], cwd=REPO)
        assert built.returncode == 0, "cargo build -p gateway-ratelimit failed"
        self.redis: subprocess.Popen[bytes] | None = None
        self.rls: subprocess.Popen[bytes] | None = None
        self.preset: dict[tuple[str, str], int] = {}   # today's counters set by hand, not by charges
        self.start_redis()
        self.start_rls()

    def start_redis(self) -> None:
        log = self.tmp / "redis.log"
        self.redis = procs.spawn(["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                                  "--save", "", "--appendonly", "no", "--dir", str(self.tmp)], open(log, "ab"))
        wait_port(self.redis_port, "redis-server", self.redis, log)

    def start_rls(self) -> None:
        self.rls = procs.spawn([str(RLS_BIN), "--config", str(self.tmp / "rls.yaml"),
                                "--redis", f"redis://127.0.0.1:{self.redis_port}",
                                "--listen", f"127.0.0.1:{self.rls_port}"], open(self.rls_log, "ab"))
        wait_port(self.rls_port, "gateway-ratelimit", self.rls, self.rls_log)

    def stop_redis(self) -> None:
        if self.redis is not None:
            procs.stop(self.redis)
            self.redis = None

    def stop_rls(self) -> None:
        if self.rls is not None:
            procs.stop(self.rls)
            self.rls = None

    def stop(self) -> None:
        self.stop_rls()
        self.stop_redis()

    def redis_cli(self, *args: str) -> str:
        return subprocess.run(["redis-cli", "-p", str(self.redis_port), *args], capture_output=True,
                              text=True, check=True, timeout=10).stdout.strip()

    def counter(self, key: str, value: str, window_start: int | None = None) -> int:
        """The counter `budgets_<key>_<value>_<window start>` (default: today's), 0 if absent."""
        start = day_start() if window_start is None else window_start
        got = self.redis_cli("get", f"budgets_{key}_{value}_{start}")
        return int(got) if got else 0

    def preset_counter(self, key: str, value: str, n: int) -> None:
        """Sets today's counter, as spending `n` would have (e.g. to exhaust a budget)."""
        self.redis_cli("set", f"budgets_{key}_{value}_{day_start()}", str(n))
        self.preset[(key, value)] = n

    def wait_counter(self, key: str, value: str, expected: int, timeout: float = 10) -> int:
        """The counter once it equals `expected` (stream-end charges reach Redis just after the
        answer), else its value after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.counter(key, value)
            if got == expected or time.monotonic() > deadline:
                return got
            time.sleep(0.02)

    def rls_lines(self, text: str) -> list[str]:
        return [ln for ln in self.rls_log.read_text(errors="replace").splitlines() if text in ln]


@dataclass
class User:
    """A user with a static API key, or (`token` set) a JWT of the test IdP."""
    name: str
    group: str
    key: str
    token: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"} if self.token else {"x-api-key": self.key}

    @property
    def fingerprint(self) -> str:
        """How gateway-ratelimit's log names this user (docs/budgets.md, Logs)."""
        return hashlib.sha256(self.name.encode()).hexdigest()[:12]


def users(groups: dict[str, str]) -> dict[str, User]:
    """API-key users {name: group}, each with a fresh key."""
    return {name: User(name, group, "sk-budget-" + uuid.uuid4().hex) for name, group in groups.items()}


def jwt_user(idp: IdP, name: str, group: str) -> User:
    """A JWT user of the test IdP (user id = `sub`) in `group`; not an API key."""
    return User(name, group, "", token=idp.mint(claims={"sub": name, "groups": [group]}))


def budgets_plugin(idp: IdP, people: dict[str, User], budget_groups: list[str]) -> dict[str, Any]:
    """The shared gateway's plugin config with `people` as API keys, usage metering on (the
    default) and `budget_groups`."""
    config = plugin_config(idp)
    config["api_keys"] = [{"name": u.name, "sha256": hashlib.sha256(u.key.encode()).hexdigest(),
                           "groups": [u.group]} for u in people.values() if u.token is None]
    config["budget_groups"] = budget_groups
    config["usage"] = {"enabled": True}
    return config


def envoy_config(api: MessagesAPI, idp: IdP, wasm: Path, rls_port: int, plugin: dict[str, Any],
                 deny: bool = False, status_on_error: int | None = None) -> dict[str, Any]:
    """A test gateway with the shipped budgets: the filter, envoy/examples/budgets.yaml's ratelimit
    filter (its timeout RLS_TIMEOUT, `failure_mode_deny` = `deny`), its `rate_limits` on the route,
    its local replies and its access log (plus the test's correlation id)."""
    shipped = budgets_example.pieces()
    access_log = shipped["access_log"]
    access_log[0]["typed_config"]["log_format"]["json_format"]["trace"] = f"%REQ({TRACE})%"
    cfg = harness.envoy_config(upstream_port=api.port, plugin_config=plugin, wasm=wasm,
                               clusters={"idp": idp.port}, access_log=access_log)
    cfg["static_resources"]["clusters"].append(budgets_example.local_cluster(rls_port))
    hcm = budgets_example.hcm(cfg)
    hcm["local_reply_config"] = shipped["local_reply_config"]
    rl_filter = shipped["filter"]
    rl_filter["typed_config"].update(failure_mode_deny=deny, timeout=RLS_TIMEOUT)
    assert rl_filter["typed_config"]["rate_limit_service"]["grpc_service"]["envoy_grpc"]["cluster_name"] == "ratelimit"
    if status_on_error is not None:
        rl_filter["typed_config"]["status_on_error"] = {"code": status_on_error}
    hcm["http_filters"].insert(-1, rl_filter)   # after the filter, before the router
    hcm["route_config"]["virtual_hosts"][0]["routes"][0]["typed_per_filter_config"] = shipped["per_route"]
    return cfg


def start_gateway(pool: EnvoyPool, name: str, api: MessagesAPI, idp: IdP, budgets: Budgets,
                  plugin: dict[str, Any], **kw: Any) -> Gateway:
    gw = Gateway(pool.envoy(name, envoy_config(api, idp, pool.wasm, budgets.rls_port, plugin, **kw)), api, idp)
    pool.gateways.append(gw)
    return gw


def stream(gw: Gateway, user: User, delay_ms: int = 0) -> Result:
    """One streamed Messages request of `user` whose answer reports USAGE (cost COST), `delay_ms`
    between its events."""
    return gw.request(body=STREAM, headers={**user.headers, "x-standin-usage": USAGE,
                                            "x-standin-event-delay-ms": str(delay_ms)})


def assert_budget_refusal(r: Result) -> None:
    """The shipped 429 for a budget that resets later than a minute from now."""
    assert r.status == 429, (r.status, r.text)
    assert r.headers["x-should-retry"] == "false"
    left = 86400 - int(time.time()) % 86400
    assert left - 5 <= int(r.headers["retry-after"]) <= left + 1, (r.headers["retry-after"], left)
    assert r.json() == {"type": "error", "error": {"type": "rate_limit_error", "message":
        f"{BUDGET_MESSAGE}{r.headers['retry-after']} seconds (windows are UTC days). "
        "Ask your administrator for a larger budget."}}
    assert r.upstream == [], "a refused request reached the upstream"


def lines_of(gateways: list[Gateway], field: str, value: str, at_least: int = 0,
             settle: float = 0) -> list[dict[str, Any]]:
    """The access log lines (all `gateways`) whose `field` is `value`, once there are `at_least`
    (Envoy writes them just after the answer), and `settle` seconds later (so that one too many, a
    retry, shows)."""
    deadline = time.monotonic() + 5
    while True:
        lines = [ln for gw in gateways for ln in gw.envoy.access_log() if ln.get(field) == value]
        if len(lines) >= at_least:
            break
        assert time.monotonic() < deadline, f"{len(lines)} access log lines with {field} {value}, not {at_least}"
        time.sleep(0.05)
    time.sleep(settle)
    return [ln for gw in gateways for ln in gw.envoy.access_log() if ln.get(field) == value]


def logged_costs(gateways: list[Gateway], field: str, value: str, at_least: int = 0) -> list[int]:
    """The `cost` of every access log line whose `field` is `value` (refused requests cost 0;
    requests refused before the filter metered them have none and are left out)."""
    return [int(ln["cost"]) for ln in lines_of(gateways, field, value, at_least) if ln.get("cost") is not None]
