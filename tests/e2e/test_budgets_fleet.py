"""Token budgets across a fleet: two Envoy replicas (the built filter, envoy/examples/budgets.yaml's rate
limiting) share one real gateway-ratelimit and one real redis-server. Each request's cost
(wasm.gateway_cost) is charged when its stream ends, so the next check on either replica sees it; what
was charged equals the usage records in the replicas' access logs; Claude Code and the `anthropic` SDK
stop at once on an exhausted budget. The overshoot with streams in flight is measured and printed.
"""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import anthropic
import pytest

from e2e_budgets import (BUDGET_MESSAGE, COST, Budgets, User, assert_budget_refusal, away_from_midnight,
                         budgets_plugin, jwt_user, lines_of, logged_costs, rls_config, start_gateway, stream, users)
from e2e_gateway import EnvoyPool, Gateway, Result
from standins.idp import IdP
from standins.messages_api import MessagesAPI
from test_claude_code import claude, run_claude  # noqa: F401 - claude: the CLI fixture

USER_BUDGET = 1000           # tokens_user, per UTC day
GROUP_BUDGET = 600           # tokens_group without a value of its own
BIG = 1_000_000              # research's group budget: only the user budget bites for its members
BUDGET_GROUPS = ["research", "squad", "other"]
IN_FLIGHT = 4                # clients streaming at once in the overshoot case


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Budgets]:
    away_from_midnight()
    b = Budgets(tmp_path_factory.mktemp("budgets-fleet"), rls_config({
        ("tokens_user", None): USER_BUDGET, ("tokens_group", None): GROUP_BUDGET,
        ("tokens_group", "research"): BIG, ("requests_user", None): 10_000}))
    yield b
    b.stop()


@pytest.fixture(scope="module")
def people(idp: IdP) -> dict[str, User]:
    """API-key users, and bob, a JWT user (the module's Redis starts empty: fixed ids are fresh)."""
    people = users({"ann": "research", "ben": "research", "dana": "research", "gus": "research",
                    "erin": "research", "fran": "research", "alice": "squad", "carol": "other"})
    people["bob"] = jwt_user(idp, "bob", "squad")
    return people


@pytest.fixture(scope="module")
def replicas(module_pool: EnvoyPool, api: MessagesAPI, idp: IdP, svc: Budgets,
             people: dict[str, User]) -> list[Gateway]:
    plugin = budgets_plugin(idp, people, BUDGET_GROUPS)
    return [start_gateway(module_pool, f"replica-{i}", api, idp, svc, plugin) for i in (1, 2)]


def assert_counters_match_logs(svc: Budgets, replicas: list[Gateway], *who: User) -> None:
    """Each user's and group's Redis counter equals the costs in both replicas' usage records (both
    reach their place just after the answer: compared until they agree, for a few seconds)."""
    pairs = [("tokens_user", "user", u.name) for u in who] + \
            [("tokens_group", "budget_group", g) for g in sorted({u.group for u in who})]
    for key, field, value in pairs:
        deadline = time.monotonic() + 5
        while (got := (svc.counter(key, value), sum(logged_costs(replicas, field, value))))[0] != got[1]:
            assert time.monotonic() < deadline, f"{key} {value}: Redis {got[0]} != access logs {got[1]}"
            time.sleep(0.05)


def test_user_budget_holds_across_two_replicas(svc: Budgets, replicas: list[Gateway],
                                               people: dict[str, User]) -> None:
    ann, ben = people["ann"], people["ben"]
    spent = 0
    for i in range(USER_BUDGET // COST + 1):   # alternating replicas; the last one crosses the budget
        r = stream(replicas[i % 2], ann)
        assert r.status == 200, (i, r.status, r.text)
        assert b"message_stop" in r.body
        spent += COST
        assert svc.wait_counter("tokens_user", ann.name, spent) == spent, f"request {i} was not charged"
    assert spent > USER_BUDGET
    for gw in replicas:   # over the budget: refused on both replicas, nothing charged for it
        assert_budget_refusal(stream(gw, ann))
    assert svc.counter("tokens_user", ann.name) == spent
    for gw in replicas:   # another user of the same group is unaffected
        assert stream(gw, ben).status == 200
    lines = lines_of(replicas, "user", ann.name, USER_BUDGET // COST + 3)
    assert sorted((line["status"], line["flags"]) for line in lines) == \
        [(200, "-")] * (USER_BUDGET // COST + 1) + [(429, "RL")] * 2, lines
    assert_counters_match_logs(svc, replicas, ann, ben)


@pytest.mark.parametrize("pause", [0.0, 0.5], ids=["back-to-back", "reading"])
def test_overshoot_is_bounded_by_the_streams_in_flight(svc: Budgets, replicas: list[Gateway],
                                                       people: dict[str, User], pause: float,
                                                       record_property: Any) -> None:
    """IN_FLIGHT clients of one user stream at once (alternating replicas), each pausing `pause`
    seconds between an answer and its next request, until each is refused. A stream is charged when
    it ends, so every stream that passed its check before the counter crossed the budget is
    charged: the overshoot is the cost of the streams that had passed their check but were not yet
    charged when it crossed. Each client has one stream in flight; back to back, its next request
    can also pass its check in the few milliseconds before the last answer's charge lands."""
    user = people["dana" if pause else "gus"]
    seq = itertools.count()
    results: list[Result] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def client() -> None:
        try:
            while True:
                r = stream(replicas[next(seq) % 2], user, delay_ms=40)
                with lock:
                    results.append(r)
                if r.status != 200:
                    return
                time.sleep(pause)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=client) for _ in range(IN_FLIGHT)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert all(not t.is_alive() for t in threads)
    passed = [r for r in results if r.status == 200]
    for refused in (r for r in results if r.status != 200):
        assert_budget_refusal(refused)
    final = svc.wait_counter("tokens_user", user.name, len(passed) * COST)
    assert final == len(passed) * COST, "every stream that passed was charged, once"
    # What each passing check saw: x-ratelimit-remaining is the budget minus the user's counter (the
    # descriptor closest to its limit). The last check to pass saw the most; every stream not in
    # that value was in flight (or its charge was) when the counter crossed the budget.
    seen = max(USER_BUDGET - int(r.headers["x-ratelimit-remaining"]) for r in passed)
    assert seen <= USER_BUDGET
    uncharged = (final - seen) // COST
    overshoot = final - USER_BUDGET
    bound = (1 if pause else 2) * IN_FLIGHT
    figures = (f"{IN_FLIGHT} clients of one user, {pause} s between an answer and the next request, streams of "
               f"cost {COST} alternating two replicas, daily budget {USER_BUDGET}: {len(passed)} streams passed, "
               f"final counter {final}, overshoot {overshoot}; {uncharged} passed streams were not yet charged "
               f"when the last check passed (at {seen}); bound {bound} x {COST}")
    print("\n" + figures)
    record_property("budget_overshoot", figures)
    assert 0 < overshoot <= uncharged * COST <= bound * COST, figures
    for gw in replicas:
        assert_budget_refusal(stream(gw, user))
    assert_counters_match_logs(svc, replicas, user)


def test_team_budget_holds_across_its_members(svc: Budgets, replicas: list[Gateway],
                                              people: dict[str, User]) -> None:
    alice, bob, carol = people["alice"], people["bob"], people["carol"]   # bob: a JWT user
    members = [alice, bob]
    spent = 0
    n = GROUP_BUDGET // COST + 1
    for i in range(n):
        r = stream(replicas[(i // 2) % 2], members[i % 2])
        assert r.status == 200, (i, r.status, r.text)
        spent += COST
        assert svc.wait_counter("tokens_group", "squad", spent) == spent, f"request {i} was not charged"
    # Each member is far below the user budget; their sum is over the group's.
    assert svc.counter("tokens_user", alice.name) + svc.counter("tokens_user", bob.name) == spent
    assert max(svc.counter("tokens_user", u.name) for u in members) < USER_BUDGET < BIG
    for gw in replicas:
        for user in members:
            assert_budget_refusal(stream(gw, user))
    for gw in replicas:   # another group's member is unaffected
        assert stream(gw, carol).status == 200
    assert svc.counter("tokens_group", "squad") == spent
    assert_counters_match_logs(svc, replicas, alice, bob, carol)


def test_sdk_stops_at_once_on_an_exhausted_budget(svc: Budgets, replicas: list[Gateway], people: dict[str, User],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL", "HTTP_PROXY", "HTTPS_PROXY",
                 "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    fran = people["fran"]
    svc.preset_counter("tokens_user", fran.name, USER_BUDGET + 1)
    client = anthropic.Anthropic(base_url=replicas[1].url, api_key=fran.key, max_retries=2, timeout=30)
    started = time.monotonic()
    with pytest.raises(anthropic.RateLimitError) as raised:
        client.messages.create(model="claude-sonnet-4-5", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
    elapsed = time.monotonic() - started
    assert elapsed < 3, f"the SDK took {elapsed:.1f} s: it retried"
    err = raised.value
    assert err.status_code == 429
    assert err.body["error"]["type"] == "rate_limit_error"
    assert err.body["error"]["message"].startswith(BUDGET_MESSAGE)
    assert BUDGET_MESSAGE in str(err)
    lines = lines_of(replicas, "user", fran.name, 1, settle=1)
    assert [(ln["status"], ln["path"]) for ln in lines] == [(429, "/v1/messages")], "the SDK retried"


def test_claude_code_stops_at_once_on_an_exhausted_budget(claude: Path, svc: Budgets, replicas: list[Gateway],
                                                          people: dict[str, User], api: MessagesAPI,
                                                          tmp_path: Path) -> None:
    erin = people["erin"]
    svc.preset_counter("tokens_user", erin.name, USER_BUDGET + 1)
    run = run_claude(claude, replicas[0].url, tmp_path, api, timeout=60, ANTHROPIC_API_KEY=erin.key)
    output = run.stdout + run.stderr
    assert run.code != 0, run.stdout
    assert run.seconds < 10, f"took {run.seconds:.1f} s: Claude Code retried the 429\n{output[-1500:]}"
    assert BUDGET_MESSAGE in output, output[-1500:]
    assert run.upstream == []
    lines = lines_of(replicas, "user", erin.name, 1, settle=1)
    assert [(ln["status"], ln["path"]) for ln in lines] == [(429, "/v1/messages?beta=true")], "Claude Code retried"


def test_redis_counters_equal_the_usage_records(svc: Budgets, replicas: list[Gateway]) -> None:
    """Every token counter in Redis against the sum of the access logs' costs for its user or group
    (plus what a test set by hand); runs last, over whatever the module charged."""
    keys = svc.redis_cli("--scan", "--pattern", "budgets_tokens_*").split()
    assert keys, "nothing was charged"
    for key in keys:
        _, _, kind, rest = key.split("_", 3)
        value, _ = rest.rsplit("_", 1)
        field = "user" if kind == "user" else "budget_group"
        expected = sum(logged_costs(replicas, field, value)) + svc.preset.get((f"tokens_{kind}", value), 0)
        assert int(svc.redis_cli("get", key)) == expected, key
    logged_users = {ln["user"] for gw in replicas for ln in gw.envoy.access_log() if ln.get("cost")}
    assert {f"budgets_tokens_user_{u}" for u in logged_users} <= {k.rsplit("_", 1)[0] for k in keys}
