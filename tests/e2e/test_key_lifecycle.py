"""Key lifecycle through a real Envoy with two workers (`--concurrency 2`, so three Wasm VMs: the main
thread's and one per worker): rotation and the unknown-`kid` refresh, its rate limit under a flood,
an identity provider down at start-up, failing refreshes that keep the last good keys, staleness,
discovery with the JWKS on another host, one fetch per refresh for the whole Envoy, and the metrics.

Every test steers its own JWKS stand-in and reads the fetch counts there. Tests that must reach a
given worker use clients pinned to one: a kept-alive connection stays on the worker that accepted
it, and Envoy's per-worker listener counters (`worker_N.downstream_cx_active`) tell which one that is.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from typing import Any, Callable, Iterator

import httpx
import pytest
from e2e_gateway import AUDIENCE, CI_KEY, PROVIDER, EnvoyPool, Gateway, Result, plugin_config
from e2e_expect import USER_ID, assert_401, assert_503_keys_unavailable, assert_identity
from standins.idp import IdP
from standins.messages_api import MessagesAPI

WORKERS = 2                      # e2e_harness starts Envoy with --concurrency 2
WITHOUT_RSA = ["ec-1", "ec-384", "ed-1"]
# The retry schedule as docs/operations.md "Keys: refresh, rotation, outages, workers" documents it.
CAP_NEVER_FETCHED = 30          # longest backoff (before jitter) while no keys were ever fetched
TICK_SLACK = 2.0                 # fetches start on the root context's 1-second tick; whole-second clocks


# ---- helpers ---------------------------------------------------------------------------------------------
def _plugin(idp: IdP, **jwks: Any) -> dict[str, Any]:
    """plugin_config(idp) with these jwks settings added to the uri + cluster `idp` source."""
    return plugin_config(idp, jwks={"uri": idp.jwks_uri, "cluster": "idp", **jwks})


def _metrics(gw: Gateway) -> dict[str, int]:
    """The filter's metrics on /stats, without the `wasmcustom.gateway_auth.` prefix."""
    prefix = "wasmcustom.gateway_auth."
    return {k[len(prefix):]: v for k, v in gw.envoy.stats(r"^wasmcustom\.gateway_auth\.").items()
            if k.startswith(prefix)}


def _until(check: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    """Polls `check` until it returns something truthy (returned) or `timeout` passes (None)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value or None
        time.sleep(interval)


def _quiet(idp: IdP, quiet: float = 0.6, timeout: float = 5.0) -> int:
    """Waits until the stand-in saw no JWKS fetch for `quiet` seconds; the fetch count then."""
    deadline = time.monotonic() + timeout
    last, since = idp.jwks_fetches, time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = idp.jwks_fetches
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return last


def _next_second() -> None:
    """Sleeps into the next wall-clock second plus a little (the filter's clocks are whole seconds)."""
    time.sleep(1.05 - (time.time() % 1.0))


def _per_worker(gw: Gateway, stat: str) -> dict[str, int]:
    """`downstream_cx_active` or `downstream_cx_total` of the listener, by worker."""
    out = {}
    for name, value in gw.envoy.stats(stat).items():
        m = re.match(rf"listener\..*\.(worker_\d+)\.{stat}$", name)
        if m:
            out[m.group(1)] = value
    return out


def _on(gw: Gateway, client: httpx.Client, token: str) -> Result:
    """GET /v1/models with `token` on `client`'s connection. A request without a body: after a local
    reply to a POST whose body was still arriving, Envoy closes the connection, and the client's next
    connection could land on the other worker."""
    return gw.request("GET", "/v1/models", token=token, client=client)


class Pinned(list):  # type: ignore[type-arg]
    """One kept-alive client per Envoy worker, in worker order."""

    def __init__(self, gw: Gateway, clients: list[httpx.Client]) -> None:
        super().__init__(clients)
        self.gw = gw
        self.totals = _per_worker(gw, "downstream_cx_total")

    def check(self) -> None:
        """No client opened another connection since pinning (so each stayed on its worker)."""
        assert _per_worker(self.gw, "downstream_cx_total") == self.totals, "a pinned connection was replaced"


@pytest.fixture
def pinned() -> Iterator[Callable[[Gateway], Pinned]]:
    """pinned(gw) -> Pinned: one kept-alive client per Envoy worker."""
    made: list[httpx.Client] = []

    def pin(gw: Gateway) -> Pinned:
        found: dict[str, httpx.Client] = {}
        for _ in range(40):
            # httpx drops connections idle for 5 s by default; the next one could land elsewhere.
            client = httpx.Client(trust_env=False, timeout=30, limits=httpx.Limits(keepalive_expiry=3600))
            made.append(client)
            before = _per_worker(gw, "downstream_cx_active")
            client.get(gw.url + "/pin-probe")   # any request: opens and keeps the connection
            after = _per_worker(gw, "downstream_cx_active")
            grew = [w for w in after if after[w] > before.get(w, 0)]
            if len(grew) == 1 and grew[0] not in found:
                found[grew[0]] = client
            else:
                client.close()
            if len(found) == WORKERS:
                return Pinned(gw, [found[w] for w in sorted(found)])
        pytest.fail(f"could not pin a connection to each of {WORKERS} workers: "
                    f"{_per_worker(gw, 'downstream_cx_active')}")

    yield pin
    for client in made:
        client.close()


def _same_process(gw: Gateway, pid: int) -> None:
    assert gw.envoy.proc is not None and gw.envoy.proc.pid == pid and gw.envoy.proc.poll() is None, \
        "Envoy restarted or exited"


# ---- 1. rotation -----------------------------------------------------------------------------------------
UNKNOWN_KID_INTERVAL = 2


def test_rotation_published_key_is_fetched_at_once_on_every_worker(
        pool: EnvoyPool, api: MessagesAPI, new_idp: Callable[..., IdP], pinned: Any) -> None:
    """A token signed by a key the IdP does not publish yet is refused (its unknown `kid` triggers a
    refresh, which does not find it). Once the key is published and the rate limit
    (`unknown_kid_refresh_seconds`, here 2) has passed, the same token is accepted at once on every
    worker: each request that brings the unknown `kid` waits for a refresh that can see the new key,
    no restart and long before `refresh_seconds` (600)."""
    idp = new_idp()
    idp.jwks_kids = WITHOUT_RSA
    gw = pool.gateway("rotation-publish", api, idp,
                      _plugin(idp, refresh_seconds=600, unknown_kid_refresh_seconds=UNKNOWN_KID_INTERVAL))
    pid = gw.envoy.proc.pid
    workers = pinned(gw)
    first, second = workers
    # Start-up fetch and refreshes below fall in different wall-clock seconds, as they do in practice
    # (the filter compares fetch times in whole seconds).
    fetched = _quiet(idp)
    _next_second()
    token = idp.mint("RS256", claims={"sub": "rotated-user"})

    r = _on(gw, first, token)
    assert_401(r, "token signing key not found", secrets=(token,))
    assert idp.jwks_fetches == fetched + 1, "the unknown kid should have triggered exactly one refresh"
    assert r.elapsed < 1 + TICK_SLACK, f"the refresh took {r.elapsed:.2f}s"

    time.sleep(UNKNOWN_KID_INTERVAL + 1.1)   # past the rate limit of the refresh above
    idp.jwks_kids = None                     # the IdP publishes rsa-1
    published = time.monotonic()
    for worker, client in (("worker_1", second), ("worker_0", first)):
        r = _on(gw, client, token)
        assert r.status == 200, (f"{worker}: the published key was not used: {r.text} "
                                 f"(stand-in fetches: {idp.jwks_fetches - fetched} since start-up)")
        assert r.elapsed < 1 + TICK_SLACK, f"{worker}: waited {r.elapsed:.2f}s for the refresh"
        assert_identity(r.seen, "rotated-user", PROVIDER, email="user@example.com", name="Test User")
    assert time.monotonic() - published < 2 * (1 + TICK_SLACK)
    _same_process(gw, pid)
    workers.check()
    # Each VM records the gauge on its own tick (last writer wins): poll.
    assert _until(lambda: _metrics(gw).get("jwks.test-idp.keys") == 4, TICK_SLACK), _metrics(gw)


def test_rotation_unpublished_key_is_refused_after_next_refresh_even_when_cached(
        pool: EnvoyPool, api: MessagesAPI, new_idp: Callable[..., IdP], pinned: Any) -> None:
    """A key the IdP stops publishing is refused after the next scheduled refresh (refresh_seconds 2),
    on every worker, including tokens each worker had verified and cached before."""
    refresh = 2
    idp = new_idp()
    gw = pool.gateway("rotation-unpublish", api, idp, _plugin(idp, refresh_seconds=refresh))
    workers = pinned(gw)
    cached = idp.mint("RS256", claims={"sub": "cached-user"})
    for client in workers:
        for _ in range(2):   # the second answer comes from the worker's token cache
            r = _on(gw, client, cached)
            assert r.status == 200, r.text
    still_good = idp.mint("ES256", claims={"sub": "ec-user"})

    idp.jwks_kids = WITHOUT_RSA
    removed = time.monotonic()
    assert _until(lambda: any(t > removed for t in list(idp.jwks_answered_at)), refresh + TICK_SLACK), \
        "no scheduled refresh after the key was removed"

    def refused_everywhere() -> bool:
        return all(_on(gw, c, cached).status == 401 for c in workers)

    assert _until(refused_everywhere, refresh + 2 * TICK_SLACK, interval=0.2), \
        "a cached token signed by the removed key is still accepted after the next refresh"
    took = time.monotonic() - removed
    assert took < refresh + 2 * TICK_SLACK + 1, f"refused only {took:.1f}s after the key was removed"
    for i, client in enumerate(workers):
        assert_401(_on(gw, client, cached), "token signing key not found")
        assert_401(_on(gw, client, idp.mint("PS256", claims={"sub": f"fresh-{i}"})),
                   "token signing key not found")
        r = _on(gw, client, still_good)
        assert r.status == 200, r.text
        assert r.seen.header_all(USER_ID) == ["ec-user"]
    assert _until(lambda: _metrics(gw).get("jwks.test-idp.keys") == 3, TICK_SLACK), _metrics(gw)
    workers.check()


# ---- 2. unknown-kid flood ----------------------------------------------------------------------------
FLOOD = 500


def test_unknown_kid_flood_is_rate_limited(pool: EnvoyPool, api: MessagesAPI, new_idp: Callable[..., IdP],
                                           pinned: Any) -> None:
    """500 well-formed tokens, signed by a real key but naming random `kid`s, sent to both workers at
    once: every one is a 401 `token signing key not found`, none reaches the upstream, and the stand-in
    sees at most one fetch per `unknown_kid_refresh_seconds` (30) for the provider (docs/operations.md: "a flood of
    tokens with random kids costs the provider at most one fetch per interval"); refresh_seconds is 600,
    so no scheduled refresh falls in the flood. Only the requests that waited for that one refresh are
    slow; the rest get fast 401s."""
    interval, refresh = 30, 600
    idp = new_idp()
    gw = pool.gateway("kid-flood", api, idp,
                      _plugin(idp, refresh_seconds=refresh, unknown_kid_refresh_seconds=interval))
    workers = pinned(gw)
    tokens = [idp.mint("ES256", kid=f"kid-{uuid.uuid4().hex}", key=idp.keys.private["ec-1"],
                       claims={"sub": f"flood-{i}"}) for i in range(FLOOD)]
    before = _quiet(idp)
    _next_second()   # the start-up fetch lies in an earlier second than any refresh below
    denied_before = _metrics(gw).get("denied.key_not_found", 0)
    results: list[list[Result]] = [[] for _ in workers]

    def send(n: int) -> None:
        for token in tokens[n::len(workers)]:
            results[n].append(_on(gw, workers[n], token))

    started = time.monotonic()
    threads = [threading.Thread(target=send, args=(n,)) for n in range(len(workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    duration = time.monotonic() - started
    _quiet(idp, quiet=1.2)

    every = [r for rs in results for r in rs]
    assert len(every) == FLOOD
    for r in every:
        assert_401(r, "token signing key not found")
    assert duration < interval, f"the flood took {duration:.1f}s, longer than the rate-limit interval"
    scheduled = int(duration // refresh)        # 0 here
    fetches = idp.jwks_fetches - before
    assert 1 <= fetches <= 1 + scheduled, (
        f"{fetches} JWKS fetches during a {duration:.1f}s flood of unknown kids; at most one per "
        f"{interval}s interval for the provider (+{scheduled} scheduled) is documented")
    slow = sorted(r.elapsed for r in every if r.elapsed > 0.5)
    assert len(slow) <= len(workers), f"more than one waiting request per worker: {slow}"
    assert _metrics(gw).get("denied.key_not_found", 0) - denied_before == FLOOD
    workers.check()
    r = gw.request(token=idp.mint("RS256", claims={"sub": "after-flood"}))
    assert r.status == 200, r.text


# ---- 3. provider down at start-up ---------------------------------------------------------------------
def test_provider_down_at_startup_becomes_usable_without_restart(
        pool: EnvoyPool, api: MessagesAPI, new_idp: Callable[..., IdP], pinned: Any) -> None:
    """The IdP's port is closed when Envoy starts: 503 api_error (never 401). Once it answers, every
    worker gets the keys within the retry schedule (1, 2, 4, ... s + up to 100 % jitter, capped at 30 s
    while no keys were ever fetched), without a restart."""
    idp = new_idp()
    idp.set_mode("down")
    gw = pool.gateway("down-at-start", api, idp, _plugin(idp, timeout_ms=1000))
    pid = gw.envoy.proc.pid
    workers = pinned(gw)
    token = idp.mint("EdDSA", claims={"sub": "patient-user"})
    for client in workers:
        assert_503_keys_unavailable(_on(gw, client, token))
    r = gw.request("GET", "/v1/models", headers=[("x-api-key", CI_KEY)], client=workers[0])  # no IdP needed
    assert r.status == 200, r.text
    m = _metrics(gw)
    assert m.get("jwks.test-idp.fetch_failed", 0) >= 1 and m.get("jwks.test-idp.fetch_ok", 0) == 0, m
    assert m.get("jwks.test-idp.keys") == 0 and m.get("unavailable.keys_unavailable", 0) >= WORKERS, m

    time.sleep(max(0.0, 3.0 - (time.monotonic() - gw.envoy.started_at)))
    idp.set_mode("normal")
    up = time.monotonic()
    # After k failures at least 1 + 2 + ... + 2^(k-1) = 2^k - 1 s have passed since start, so the next
    # backoff (2^k s, doubled by jitter at most) is at most 2 * (u + 1) for an IdP back after u s.
    u = up - gw.envoy.started_at
    bound = min(2 * (u + 1), 2 * CAP_NEVER_FETCHED) + TICK_SLACK
    recovered: dict[int, float] = {}
    deadline = up + 40
    while len(recovered) < len(workers) and time.monotonic() < deadline:
        for n, client in enumerate(workers):
            if n not in recovered:
                r = _on(gw, client, token)
                if r.status == 200:
                    recovered[n] = time.monotonic() - up
                    assert_identity(r.seen, "patient-user", PROVIDER, email="user@example.com",
                                    name="Test User")
                else:
                    assert_503_keys_unavailable(r)
        time.sleep(0.2)
    assert len(recovered) == len(workers), f"workers never recovered within 40 s: {recovered}"
    assert max(recovered.values()) <= bound, (
        f"recovery took {recovered} s after the IdP came back {u:.1f}s after start; the retry schedule "
        f"allows {bound:.1f}s")
    _same_process(gw, pid)
    # Every VM records the keys gauge on its tick (the last one wins), so it reads 4 once every VM,
    # the main thread's too, has the keys: within the same schedule.
    assert _until(lambda: _metrics(gw).get("jwks.test-idp.keys") == 4, bound), _metrics(gw)
    assert _metrics(gw).get("jwks.test-idp.fetch_ok", 0) >= 1
    workers.check()


# ---- 4. failing refreshes keep the last good keys -----------------------------------------------------
FAILURES = [("error500", None), ("garbage", None), ("empty", None), ("delay", 2.0)]


def test_failed_refreshes_keep_last_good_keys(pool: EnvoyPool, api: MessagesAPI, new_idp: Callable[..., IdP],
                                              pinned: Any) -> None:
    """Keys loaded, then every refresh fails: 500, a non-JSON 200, `{"keys": []}`, then answers slower
    than timeout_ms (500 ms), each for several refresh periods (refresh_seconds 1). Fresh tokens (never
    served from the token cache) keep getting 200 on both workers throughout; fetch_failed grows in
    every phase, fetch_ok does not, the keys gauge stays 4 and age_seconds counts from the last good
    fetch."""
    refresh, phase = 1, 2.5
    idp = new_idp()
    gw = pool.gateway("refresh-failures", api, idp, _plugin(idp, refresh_seconds=refresh, timeout_ms=500))
    workers = pinned(gw)
    assert _on(gw, workers[0], idp.mint()).status == 200
    good_until = time.monotonic()
    ok_before = _metrics(gw).get("jwks.test-idp.fetch_ok", 0)
    n = 0
    for mode, delay in FAILURES:
        failed_before = _metrics(gw).get("jwks.test-idp.fetch_failed", 0)
        idp.set_mode(mode, delay=delay)
        end = time.monotonic() + phase
        while time.monotonic() < end:
            n += 1
            client = workers[n % len(workers)]
            r = _on(gw, client, idp.mint("ES256", claims={"sub": f"steady-{n}"}))
            assert r.status == 200, f"{mode}: request {n} refused while the last good keys are kept: {r.text}"
            assert r.seen.header_all(USER_ID) == [f"steady-{n}"]
            time.sleep(0.05)
        m = _metrics(gw)
        assert m.get("jwks.test-idp.fetch_failed", 0) > failed_before, f"{mode}: no failed fetch counted: {m}"
        assert m.get("jwks.test-idp.keys") == 4, m
    m = _metrics(gw)
    # One refresh may have succeeded between the first request and the switch to error500.
    assert m.get("jwks.test-idp.fetch_ok", 0) <= ok_before + 1, m
    assert m.get("jwks.test-idp.age_seconds", 0) >= int(time.monotonic() - good_until) - 2, m
    assert m.get("unavailable.keys_unavailable", 0) == 0, m
    workers.check()


def test_keys_past_max_stale_are_dropped_then_recovered(
        pool: EnvoyPool, api: MessagesAPI, new_idp: Callable[..., IdP], pinned: Any) -> None:
    """`max_stale_seconds` 3 (refresh 1): with every refresh failing, keys older than 3 s are dropped and
    requests get 503 (not 401); when the IdP answers again the keys come back without a restart."""
    refresh, stale = 1, 3
    idp = new_idp()
    gw = pool.gateway("max-stale", api, idp, _plugin(idp, refresh_seconds=refresh, max_stale_seconds=stale))
    workers = pinned(gw)
    assert _on(gw, workers[0], idp.mint()).status == 200
    idp.set_mode("error500")
    failing = time.monotonic()

    def all_503() -> bool:
        return all(_on(gw, c, idp.mint("ES256")).status == 503 for c in workers)

    assert _until(all_503, stale + 1 + 2 * TICK_SLACK, interval=0.2), "stale keys were never dropped"
    took = time.monotonic() - failing
    assert took >= stale - 1, f"keys dropped after {took:.1f}s, before max_stale_seconds {stale}"
    for client in workers:
        assert_503_keys_unavailable(_on(gw, client, idp.mint("ES256")))
    # The gauge is recorded on each VM's next tick.
    assert _until(lambda: _metrics(gw).get("jwks.test-idp.keys") == 0, TICK_SLACK), _metrics(gw)
    assert _metrics(gw).get("unavailable.keys_unavailable", 0) >= WORKERS

    idp.set_mode("normal")
    assert _until(lambda: all(_on(gw, c, idp.mint("ES256")).status == 200 for c in workers),
                  refresh * 2 + 2 * TICK_SLACK, interval=0.2), "keys did not come back"
    workers.check()


# ---- 5. discovery, JWKS on another host ---------------------------------------------------------------
JWKS_HOST = "jwks.example.test:8443"


def _host(recorded: dict[str, Any]) -> str | None:
    """The Host header (HTTP/1.1 form of `:authority`) of a request the IdP stand-in recorded."""
    return dict((k.lower(), v) for k, v in recorded["headers"]).get("host")


def test_discovery_with_jwks_on_another_host(pool: EnvoyPool, api: MessagesAPI,
                                             new_idp: Callable[..., IdP]) -> None:
    """Host A's discovery document names a jwks_uri on host B. With `jwks.clusters` naming B's cluster
    the keys come from B (the fetch carries B's host as `:authority`, the cluster decides the address):
    200. Without it: 503, and Envoy's log says which host lacks a cluster. A discovery document for
    another issuer is refused too (OpenID Connect Discovery 1.0 §4.3)."""
    host_b = new_idp()
    host_a = new_idp(jwks_uri=f"http://{JWKS_HOST}/oauth2/v3/certs")
    discovery = {"discovery": True, "cluster": "idp"}
    mapped = plugin_config(host_a, jwks={**discovery, "clusters": {JWKS_HOST: "jwks_b"}})
    unmapped = plugin_config(host_a, jwks=discovery)
    foreign = plugin_config(host_a, issuer=host_a.issuer + "/tenant", jwks=discovery)
    clusters = {"idp": host_a.port, "jwks_b": host_b.port}
    gws = [pool.gateway(name, api, host_a, plugin, clusters=clusters, wait=False)
           for name, plugin in (("discovery-mapped", mapped), ("discovery-unmapped", unmapped),
                                ("discovery-foreign-issuer", foreign))]
    for gw in gws:
        gw.envoy.wait_ready()
    gw_mapped, gw_unmapped, gw_foreign = gws

    r = gw_mapped.request(token=host_a.mint("ES384", claims={"sub": "two-hosts"}))
    assert r.status == 200, r.text
    assert_identity(r.seen, "two-hosts", PROVIDER, email="user@example.com", name="Test User")
    assert host_b.jwks_fetches >= 1 and host_b.discovery_fetches == 0
    assert host_a.jwks_fetches == 0 and host_a.discovery_fetches >= 1
    b_requests = [(q["path"], _host(q)) for q in host_b.requests]
    assert set(b_requests) == {("/oauth2/v3/certs", JWKS_HOST)}
    a_hosts = {_host(q) for q in host_a.requests}
    assert a_hosts == {f"127.0.0.1:{host_a.port}"}

    r = gw_unmapped.request(token=host_a.mint(claims={"sub": "no-cluster"}))
    assert_503_keys_unavailable(r)
    line = (f"jwks_uri is on host '{JWKS_HOST}', which has no cluster: add it under jwks.clusters")
    assert _until(lambda: line in gw_unmapped.envoy.log_text(), 3), \
        f"Envoy's log does not say {line!r}:\n{gw_unmapped.envoy.log_tail(20)}"
    assert _metrics(gw_unmapped).get("jwks.test-idp.fetch_failed", 0) >= 1

    r = gw_foreign.request(token=host_a.mint(claims={"sub": "x", "iss": host_a.issuer + "/tenant"}))
    assert_503_keys_unavailable(r)
    mismatch = "discovery: document's issuer differs from the configured issuer"
    assert _until(lambda: mismatch in gw_foreign.envoy.log_text(), 3), gw_foreign.envoy.log_tail(20)
    # Neither misconfigured gateway reached B.
    assert len(host_b.requests) == len(b_requests), host_b.requests


# ---- 6. one fetch per refresh for all VMs --------------------------------------------------------------
def test_one_fetch_per_refresh_with_two_workers(pool: EnvoyPool, api: MessagesAPI,
                                                new_idp: Callable[..., IdP], pinned: Any) -> None:
    """refresh_seconds 2 and ~10 s of steady traffic on both workers: the stand-in sees about one fetch
    per refresh period (<= 10/2 + 2), not one per VM (three VMs would make ~15)."""
    refresh, window = 2, 10.0
    idp = new_idp()
    gw = pool.gateway("one-fetch-per-refresh", api, idp, _plugin(idp, refresh_seconds=refresh))
    workers = pinned(gw)
    for client in workers:
        assert _on(gw, client, idp.mint()).status == 200
    ok_before = _metrics(gw).get("jwks.test-idp.fetch_ok", 0)
    before = idp.jwks_fetches
    started = time.monotonic()
    statuses: list[int] = []

    def traffic(n: int) -> None:
        i = 0
        while time.monotonic() - started < window:
            i += 1
            r = _on(gw, workers[n], idp.mint("ES256", claims={"sub": f"w{n}-{i}"}))
            statuses.append(r.status)
            time.sleep(0.05)

    threads = [threading.Thread(target=traffic, args=(n,)) for n in range(len(workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    fetches = idp.jwks_fetches - before
    assert statuses and set(statuses) == {200}, f"statuses seen: {sorted(set(statuses))}"
    assert fetches <= elapsed / refresh + 2, (
        f"{fetches} JWKS fetches in {elapsed:.1f}s with refresh_seconds {refresh}: the VMs do not share "
        f"one fetch per refresh")
    assert fetches >= elapsed / refresh - 2, f"only {fetches} fetches in {elapsed:.1f}s: keys not refreshed"
    ok = _metrics(gw).get("jwks.test-idp.fetch_ok", 0) - ok_before
    assert abs(ok - fetches) <= 1, f"fetch_ok grew by {ok}, the stand-in answered {fetches} fetches"
    workers.check()


# ---- 7. metrics --------------------------------------------------------------------------------------------
def test_metrics_count_exactly(pool: EnvoyPool, api: MessagesAPI, new_idp: Callable[..., IdP]) -> None:
    """A dedicated Envoy; two providers naming the same JWKS source (they share one fetch and key set).
    After n allowed, m expired and k missing-credential requests, /stats has exactly those counters
    and no other denial; fetch_ok counts the one fetch the stand-in saw (on the first provider naming
    the source), no fetch failed, both providers show 4 keys and a young key set. /stats/prometheus has
    the same numbers."""
    idp = new_idp()
    second_issuer = "https://second-issuer.example"
    base = plugin_config(idp)
    shared_source = {"uri": idp.jwks_uri, "cluster": "idp", "timeout_ms": 5000}
    base["providers"].append({"name": "second-idp", "issuer": second_issuer, "audiences": [AUDIENCE],
                              "jwks": dict(shared_source)})
    gw = pool.gateway("metrics", api, idp, base)
    started = time.monotonic()
    n_jwt, n_key, m, k = 4, 2, 3, 2
    for i in range(n_jwt):
        iss = idp.issuer if i % 2 == 0 else second_issuer
        r = gw.request(token=idp.mint("RS256", claims={"sub": f"allowed-{i}", "iss": iss}))
        assert r.status == 200, r.text
    for _ in range(n_key):
        assert gw.request(headers=[("x-api-key", CI_KEY)]).status == 200
    for i in range(m):
        expired = idp.mint(claims={"sub": f"late-{i}", "exp": int(time.time()) - 3600})
        assert_401(gw.request(token=expired), "token expired")
    for _ in range(k):
        assert_401(gw.request(), "missing credential", presented=False)

    def settled() -> dict[str, int] | None:
        got = _metrics(gw)
        return got if got.get("jwks.test-idp.age_seconds") is not None else None

    got = _until(settled, 3) or _metrics(gw)
    # The usage metrics of these requests are checked in test_usage.py.
    counters = {name: v for name, v in got.items()
                if not name.endswith((".keys", ".age_seconds")) and not name.startswith("usage.")}
    assert counters == {
        "allowed": n_jwt + n_key,
        "denied.expired": m,
        "denied.missing_credential": k,
        "jwks.test-idp.fetch_ok": idp.jwks_fetches,
    }, got
    assert idp.jwks_fetches == 1, f"two providers naming one source made {idp.jwks_fetches} fetches"
    assert got.get("jwks.test-idp.keys") == 4 and got.get("jwks.second-idp.keys") == 4, got
    age = got.get("jwks.test-idp.age_seconds")
    assert age is not None and 0 <= age <= time.monotonic() - started + 2, got
    assert got.get("jwks.second-idp.age_seconds") == age, got

    _, prom = gw.envoy.admin_get("/stats/prometheus")
    samples = dict(re.findall(r"^(gateway_auth_[a-z_]+)\{\} (\d+)$", prom, re.M))
    assert samples.get("gateway_auth_allowed") == str(n_jwt + n_key), prom[-2000:]
    assert samples.get("gateway_auth_denied_expired") == str(m)
    assert samples.get("gateway_auth_denied_missing_credential") == str(k)
    assert samples.get("gateway_auth_jwks_test_idp_fetch_ok") == "1"
    assert samples.get("gateway_auth_jwks_test_idp_keys") == "4"
