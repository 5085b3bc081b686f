"""Fixtures for the end-to-end suite: a real Envoy with dist/gateway_filter.wasm between a client and
the stand-ins in tests/standins/ (an OIDC/JWKS IdP and the Anthropic Messages API).

Run from the repo root:  .venv/bin/python -m pytest tests/e2e -q
Envoy is found through ENVOY_BIN, then `envoy` on PATH, then <repo>/.venv/bin/envoy; the session fails
(never skips) when there is none, or when the filter has not been built (`make build`).

Layout: e2e_harness.py (find Envoy and the filter, write configs, start/stop Envoy by PID), e2e_gateway.py
(plugin config, Gateway, Result, EnvoyPool: what tests import), e2e_expect.py (the exact texts of
docs/requests.md and the contract as assertions), one test module per area. Tests never import this conftest. Every request carries
a fresh `x-e2e-id` header, which is how a test finds what the Messages API stand-in received for it.
Envoys are shared where the configuration is the same (session: the default config in both forms;
module: per-module configs; function: configs a single test steers). When a test fails, the tail of the
log of every running Envoy is added to its report. The `extended` mark selects the contract's
presets / access-token / opaque-token section (`-m extended` or `-m "not extended"`).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ -> `standins` package
sys.path.insert(0, str(Path(__file__).resolve().parent))      # tests/e2e -> e2e_* modules

import e2e_harness as harness  # noqa: E402
from e2e_gateway import AUDIENCE, EnvoyPool, Gateway, plugin_config  # noqa: E402
from e2e_harness import HarnessError  # noqa: E402
from standins.idp import IdP, Keys  # noqa: E402
from standins.messages_api import MessagesAPI  # noqa: E402

# ---- session preflight ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def envoy_bin() -> Path:
    try:
        return harness.find_envoy()
    except HarnessError as exc:
        pytest.fail(f"e2e preflight: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def wasm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of dist/gateway_filter.wasm taken at session start, so a rebuild during the run cannot
    hand different Envoys different filters (or a half-written file)."""
    try:
        built = harness.find_wasm()
    except HarnessError as exc:
        pytest.fail(f"e2e preflight: {exc}", pytrace=False)
    copy = tmp_path_factory.mktemp("wasm") / built.name
    shutil.copyfile(built, copy)
    return copy


@pytest.fixture(scope="session", autouse=True)
def _preflight(envoy_bin: Path, wasm: Path) -> Iterator[None]:
    """Every test needs Envoy and the built filter: fail the whole session (never skip) without them."""
    out = subprocess.run([str(envoy_bin), "--version"], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        pytest.fail(f"e2e preflight: `{envoy_bin} --version` failed: {out.stderr[-2000:]}", pytrace=False)
    yield
    harness.stop_all()


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys()


@pytest.fixture(scope="session")
def idp(keys: Keys) -> Iterator[IdP]:
    """The shared IdP, always in normal mode (cases that steer an IdP start their own)."""
    with IdP(audience=AUDIENCE, keys=keys) as server:
        yield server


@pytest.fixture(scope="session")
def api() -> Iterator[MessagesAPI]:
    with MessagesAPI() as server:
        yield server


@pytest.fixture
def new_idp(keys: Keys) -> Iterator[Any]:
    """Factory for a private IdP (same keys as the shared one), stopped after the test."""
    made: list[IdP] = []

    def make(**kw: Any) -> IdP:
        server = IdP(audience=AUDIENCE, keys=keys, **kw).start()
        made.append(server)
        return server

    yield make
    for server in made:
        server.stop()


@pytest.fixture(scope="session")
def session_pool(envoy_bin: Path, wasm: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EnvoyPool]:
    pool = EnvoyPool(envoy_bin, wasm, tmp_path_factory.mktemp("envoy-session"))
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def module_pool(envoy_bin: Path, wasm: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EnvoyPool]:
    """Envoys shared by the tests of one module, stopped when the module is done."""
    p = EnvoyPool(envoy_bin, wasm, tmp_path_factory.mktemp("envoy-module"))
    yield p
    p.close()


@pytest.fixture
def pool(envoy_bin: Path, wasm: Path, tmp_path: Path) -> Iterator[EnvoyPool]:
    """Envoys that live for one test."""
    p = EnvoyPool(envoy_bin, wasm, tmp_path)
    yield p
    p.close()


_SHARED: dict[str, Gateway] = {}


@pytest.fixture(scope="session")
def shared_gateway(session_pool: EnvoyPool, api: MessagesAPI, idp: IdP) -> Any:
    """gateway(form) -> the one Envoy of the session running plugin_config(idp) in that form."""
    def get(form: str = "struct") -> Gateway:
        if form not in _SHARED:
            _SHARED[form] = session_pool.gateway(f"shared-{form}", api, idp, plugin_config(idp), form=form)
        return _SHARED[form]

    yield get
    _SHARED.clear()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "extended: the contract's presets / access-token / opaque-token section "
                   "(deselect with -m 'not extended' while it is being built; never skipped)")


# ---- Envoy's log on failure ------------------------------------------------------------------------------
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed and report.when == "call":   # a failed start already carries the log summary
        for envoy in list(harness.RUNNING):
            report.sections.append((f"envoy log: {envoy.name}", envoy.log_tail(50)))
