"""Budgets in the real Envoy, one replica at a time: the built filter sets x-gateway-user-id,
envoy.filters.http.ratelimit asks the real gateway-ratelimit (counters in a real redis-server), and
refused requests get the 429 of envoy/examples/budgets.yaml (its rate limiting is read from that file,
so this tests what ships). Per-user request rate, shadow mode, the rate-limit service or Redis down
(fail open, fail closed with 500 or `status_on_error`), Redis back without restarting the service.
Budgets across two replicas: test_budgets_fleet.py.
"""

from __future__ import annotations

import time
from typing import Iterator

import pytest

from e2e_budgets import (COST, Budgets, User, assert_budget_refusal, away_from_midnight, budgets_plugin,
                         lines_of, logged_costs, rls_config, start_gateway, stream, users)
from e2e_gateway import EnvoyPool, Gateway
from standins.idp import IdP
from standins.messages_api import MessagesAPI

USER_BUDGET = 1000
RATE = 2          # requests per minute of rate-user
SHADOW = 1        # requests per minute of shadow-user, in shadow mode


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Budgets]:
    away_from_midnight()
    b = Budgets(tmp_path_factory.mktemp("budgets"), rls_config(
        {("tokens_user", None): USER_BUDGET, ("tokens_group", None): 100_000,
         ("tokens_group", "research"): 100_000, ("requests_user", None): 10_000},
        extra=[{"key": "requests_user", "value": "rate-user",
                "rate_limit": {"unit": "minute", "requests_per_unit": RATE}},
               {"key": "requests_user", "value": "shadow-user", "shadow_mode": True,
                "rate_limit": {"unit": "minute", "requests_per_unit": SHADOW, "name": "shadow rate"}}]))
    yield b
    b.stop()


@pytest.fixture(scope="module")
def people() -> dict[str, User]:
    return users({"rate-user": "research", "shadow-user": "research", "spent-user": "research",
                  "outage-user": "research", "back-user": "research"})


@pytest.fixture(scope="module")
def gateways(module_pool: EnvoyPool, api: MessagesAPI, idp: IdP, svc: Budgets,
             people: dict[str, User]) -> dict[str, Gateway]:
    """The same gateway failing open (as shipped), closed (500) and closed with status_on_error 429."""
    plugin = budgets_plugin(idp, people, ["research"])
    return {"open": start_gateway(module_pool, "budgets-open", api, idp, svc, plugin),
            "closed": start_gateway(module_pool, "budgets-closed", api, idp, svc, plugin, deny=True),
            "closed-429": start_gateway(module_pool, "budgets-closed-429", api, idp, svc, plugin, deny=True,
                                        status_on_error=429)}


def one_minute_window(requests: int) -> int:
    """Waits until `requests` quick requests fit in the current UTC minute; its start."""
    if 60 - time.time() % 60 < 1 + requests:
        time.sleep(60 - time.time() % 60 + 0.2)
    return int(time.time()) // 60 * 60


def test_request_rate_and_budget_refusals_have_the_messages_api_shape(
        svc: Budgets, gateways: dict[str, Gateway], people: dict[str, User]) -> None:
    gw, user = gateways["open"], people["rate-user"]
    minute = one_minute_window(RATE + 2)
    assert [gw.request(headers=user.headers).status for _ in range(RATE)] == [200] * RATE
    r = gw.request(headers=user.headers)
    assert r.status == 429
    assert r.json() == {"type": "error", "error": {
        "type": "rate_limit_error", "message": f"Too many requests on this gateway; retry in {r.headers['retry-after']} seconds."}}
    assert r.headers["content-type"] == "application/json"
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert r.headers["retry-after"] == r.headers["x-ratelimit-reset"]
    assert "x-should-retry" not in r.headers
    assert r.upstream == []
    # An unauthenticated request is refused by the filter before any counting.
    assert gw.request(headers={"x-api-key": "sk-not-a-key"}).status == 401
    assert svc.counter("requests_user", user.name, minute) == RATE + 1
    # The token budget check (hits 0) counts nothing: only the stream-end charges of the answered
    # requests do (a non-streamed answer has a cost too), and the refused one costs 0.
    costs = logged_costs([gw], "user", user.name, at_least=RATE + 1)
    assert len(costs) == RATE + 1 and costs[-1] == 0 and all(c > 0 for c in costs[:-1]), costs
    assert svc.wait_counter("tokens_user", user.name, sum(costs)) == sum(costs)
    # Over the budget it refuses until the UTC day ends, with x-should-retry: false.
    spent = people["spent-user"]
    svc.preset_counter("tokens_user", spent.name, USER_BUDGET + 1)
    assert_budget_refusal(gw.request(headers=spent.headers))
    assert svc.counter("tokens_user", spent.name) == USER_BUDGET + 1, "a refused request is not charged"


def test_shadow_mode_logs_but_does_not_refuse(svc: Budgets, gateways: dict[str, Gateway],
                                              people: dict[str, User]) -> None:
    gw, user = gateways["open"], people["shadow-user"]
    minute = one_minute_window(SHADOW + 2)
    assert [gw.request(headers=user.headers).status for _ in range(SHADOW + 2)] == [200] * (SHADOW + 2)
    assert svc.counter("requests_user", user.name, minute) == SHADOW + 2
    lines = svc.rls_lines(f"requests_user=sha256:{user.fingerprint}")
    assert lines == [f"gateway-ratelimit: over limit: domain=budgets answer=OK descriptor=requests_user="
                     f"sha256:{user.fingerprint} limit={SHADOW}/minute name=\"shadow rate\" shadow_mode"] * 2, lines
    assert user.name not in svc.rls_log.read_text(), "the service logged a user id"


def assert_failure_modes(gateways: dict[str, Gateway], user: User) -> None:
    """While the service cannot answer: the open gateway passes, counted only in Envoy's
    failure_mode_allowed statistic (Envoy sets the RLSE flag only on requests it refuses); the
    closed ones refuse, with 500 or status_on_error, flag RLSE."""
    stat = "cluster.messages_api.ratelimit.failure_mode_allowed"
    allowed = gateways["open"].envoy.stats(stat).get(stat, 0)
    passed = gateways["open"].request(headers=user.headers)
    assert passed.status == 200, passed.text
    assert gateways["open"].envoy.stats(stat)[stat] == allowed + 1
    refused = [gateways["closed"].request(headers=user.headers), gateways["closed-429"].request(headers=user.headers)]
    assert [r.status for r in refused] == [500, 429]
    assert all(r.upstream == [] for r in refused)
    for r in refused:  # the shipped RLSE mapper: the Messages API's shape, retried a little later
        assert r.json() == {"type": "error", "error": {
            "type": "api_error", "message": "The gateway's budget service is unavailable; retry shortly."}}
        assert (r.headers["retry-after"], r.headers["x-should-retry"]) == ("5", "true")
    flags = [line["flags"] for name, r in zip(("open", "closed", "closed-429"), [passed, *refused])
             for line in lines_of([gateways[name]], "trace", r.trace, at_least=1)]
    assert flags == ["-", "RLSE", "RLSE"], flags


def wait_closed_passes(gateways: dict[str, Gateway], user: User) -> None:
    deadline = time.monotonic() + 15
    while gateways["closed"].request(headers=user.headers).status != 200:
        assert time.monotonic() < deadline, "the fail-closed gateway did not recover"
        time.sleep(0.2)


def test_rate_limit_service_down_fails_open_or_closed(svc: Budgets, gateways: dict[str, Gateway],
                                                      people: dict[str, User]) -> None:
    user = people["outage-user"]
    assert all(gw.request(headers=user.headers).status == 200 for gw in gateways.values())
    svc.stop_rls()
    try:
        assert_failure_modes(gateways, user)
    finally:
        svc.start_rls()
    wait_closed_passes(gateways, user)


def test_redis_restart_is_survived_without_restarting_the_service(svc: Budgets, gateways: dict[str, Gateway],
                                                                  people: dict[str, User]) -> None:
    user = people["outage-user"]
    rls = svc.rls
    assert rls is not None
    svc.stop_redis()
    try:
        assert_failure_modes(gateways, user)
        assert svc.rls_lines("gateway-ratelimit: redis unavailable, answering errors"), "outage not logged"
    finally:
        svc.start_redis()   # the same port, empty (no persistence)
    wait_closed_passes(gateways, user)
    assert svc.rls is rls and rls.poll() is None, "the service was restarted"
    assert svc.rls_lines("gateway-ratelimit: redis reachable again")
    # It counts again: a request, and a streamed answer's cost at its end.
    back = people["back-user"]
    minute = one_minute_window(1)
    assert stream(gateways["open"], back).status == 200
    assert svc.counter("requests_user", back.name, minute) == 1
    assert svc.wait_counter("tokens_user", back.name, COST) == COST
