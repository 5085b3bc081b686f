"""The real Claude Code CLI (the pinned npm release `make setup` installs) against the filter in Envoy.

Each case runs `claude -p` once, with a fresh HOME, CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 and
ANTHROPIC_BASE_URL at the test's Envoy, bounded by a timeout, and checks what the Messages API
stand-in received (found through the `x-e2e-id` that ANTHROPIC_CUSTOM_HEADERS adds) and what Envoy's
access log (envoy/dev.yaml's block) says, not only Claude Code's exit code.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from e2e_expect import GATEWAY_REQUEST_ID, assert_identity
from e2e_gateway import CI_KEY, PROVIDER, TRACE, EnvoyPool, Gateway, forged, plugin_config
from e2e_harness import REPO
from standins.idp import IdP
from standins.messages_api import MessagesAPI, Recorded

CLAUDE_CODE_VERSION = "2.1.332"   # Makefile's CLAUDE_CODE_VERSION
DEFAULT_BIN = (REPO / ".tools" / "claude-code" / "node_modules" / "@anthropic-ai"
               / "claude-code-linux-x64" / "claude")
STANDIN_TEXT = "Hello from the"    # the first words the stand-in streams
CREDENTIALS = ["authorization", "x-api-key"]


@pytest.fixture(scope="module")
def claude() -> Path:
    """The CLI (CLAUDE_BIN, as the Makefile exports it, else setup's install path); fails without it."""
    path = Path(os.environ.get("CLAUDE_BIN") or DEFAULT_BIN)
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"no Claude Code CLI at {path}: run `make setup`", pytrace=False)
    out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=60)
    assert out.stdout.split()[:1] == [CLAUDE_CODE_VERSION], out.stdout + out.stderr
    return path


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    seconds: float
    upstream: list[Recorded]


def run_claude(claude: Path, base_url: str, home: Path, api: MessagesAPI, timeout: float = 60,
               model: str | None = None, **env: str) -> Run:
    """`claude -p` (with `--model` when given) with only what is passed in its environment; HOME is
    `home` (settings go in home/.claude/settings.json)."""
    trace = uuid.uuid4().hex
    work = home / "work"
    work.mkdir(exist_ok=True)
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
                "ANTHROPIC_BASE_URL": base_url, "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                "ANTHROPIC_CUSTOM_HEADERS": f"{TRACE}: {trace}", **env}
    started = time.monotonic()
    args = [str(claude), "-p", "Say hello."] + (["--model", model] if model else [])
    out = subprocess.run(args, cwd=work, env=full_env, capture_output=True,
                         text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return Run(out.returncode, out.stdout, out.stderr, time.monotonic() - started, api.find(TRACE, trace))


def key_helper(home: Path, *tokens: str) -> Path:
    """An apiKeyHelper that prints tokens[n] on its n-th call (the last one from then on), counting
    its calls in home/helper-calls; written into home/.claude/settings.json."""
    for i, token in enumerate(tokens):
        (home / f"token-{i}").write_text(token)
    helper = home / "key-helper.sh"
    helper.write_text(f"""#!/bin/sh
n=$(cat '{home}/helper-calls' 2>/dev/null || echo 0)
echo $((n + 1)) > '{home}/helper-calls'
i=$n; [ "$i" -ge {len(tokens)} ] && i={len(tokens) - 1}
cat "{home}/token-$i"
""")
    helper.chmod(0o755)
    (home / ".claude").mkdir(exist_ok=True)
    (home / ".claude" / "settings.json").write_text(json.dumps({"apiKeyHelper": str(helper)}))
    return helper


def helper_calls(home: Path) -> int:
    return int((home / "helper-calls").read_text())


def access_log(gw: Gateway, count: int) -> list[dict[str, Any]]:
    """Envoy's access log once it has `count` lines, and a moment later, so a line too many shows."""
    gw.envoy.access_log(count)
    time.sleep(0.3)
    return gw.envoy.access_log()


def assert_succeeded(run: Run) -> Recorded:
    """Claude Code printed the stand-in's answer, which got exactly one Messages request."""
    assert run.code == 0, f"exit {run.code}\nstdout: {run.stdout[-1500:]}\nstderr: {run.stderr[-1500:]}"
    assert STANDIN_TEXT in run.stdout, run.stdout
    assert [(r.method, r.path, r.status) for r in run.upstream] == [("POST", "/v1/messages?beta=true", 200)]
    seen = run.upstream[0]
    assert not seen.header_names() & set(CREDENTIALS), "a credential reached the upstream"
    assert seen.header("user-agent").startswith(f"claude-cli/{CLAUDE_CODE_VERSION}")
    return seen


def assert_attributed(line: dict[str, Any], seen: Recorded, user_id: str, provider: str) -> None:
    """The access log line of a request that went through names its user and its Claude Code session."""
    assert line["status"] == 200 and line["method"] == "POST" and line["path"] == "/v1/messages?beta=true"
    assert (line["user_id"], line["provider"]) == (user_id, provider)
    assert line["session_id"] == seen.header("x-claude-code-session-id") and line["session_id"]
    assert line["user_agent"] == seen.header("user-agent")
    assert line["request_id"] == f"req_standin_{seen.seq:06d}"


def test_bearer_id_token(claude: Path, pool: EnvoyPool, api: MessagesAPI, idp: IdP, tmp_path: Path) -> None:
    gw = pool.gateway("cc-token", api, idp, plugin_config(idp), access_log=True)
    token = idp.mint(claims={"sub": "alice", "email": "alice@example.com", "groups": ["eng", "ops"]})
    run = run_claude(claude, gw.url, tmp_path, api, ANTHROPIC_AUTH_TOKEN=token)
    seen = assert_succeeded(run)
    assert_identity(seen, "alice", PROVIDER, email="alice@example.com", name="Test User", groups="eng,ops")
    [line] = access_log(gw, 1)
    assert_attributed(line, seen, "alice", PROVIDER)
    assert (line["email"], line["groups"]) == ("alice@example.com", "eng,ops")


def test_api_key(claude: Path, pool: EnvoyPool, api: MessagesAPI, idp: IdP, tmp_path: Path) -> None:
    gw = pool.gateway("cc-key", api, idp, plugin_config(idp), access_log=True)
    run = run_claude(claude, gw.url, tmp_path, api, ANTHROPIC_API_KEY=CI_KEY)
    seen = assert_succeeded(run)
    assert_identity(seen, "ci-bot", "api-key", groups="a,b")
    [line] = access_log(gw, 1)
    assert_attributed(line, seen, "ci-bot", "api-key")


def test_api_key_helper_sends_both_headers_and_neither_reaches_the_upstream(
        claude: Path, pool: EnvoyPool, api: MessagesAPI, idp: IdP, tmp_path: Path) -> None:
    token = idp.mint(claims={"sub": "helper-user"})
    # Straight at the stand-in: what Claude Code sends with a helper (the filter must handle both).
    direct_home = tmp_path / "direct"
    direct_home.mkdir()
    key_helper(direct_home, token)
    direct = run_claude(claude, api.url, direct_home, api)
    assert direct.code == 0, direct.stdout + direct.stderr
    [sent] = direct.upstream
    assert (sent.header_all("authorization"), sent.header_all("x-api-key")) == ([f"Bearer {token}"], [token])
    # Through the gateway.
    gw = pool.gateway("cc-helper", api, idp, plugin_config(idp), access_log=True)
    home = tmp_path / "gateway"
    home.mkdir()
    key_helper(home, token)
    run = run_claude(claude, gw.url, home, api)
    seen = assert_succeeded(run)
    assert_identity(seen, "helper-user", PROVIDER, email="user@example.com", name="Test User")
    assert helper_calls(home) == 1
    [line] = access_log(gw, 1)
    assert_attributed(line, seen, "helper-user", PROVIDER)


def test_forged_token_fails_at_once_with_the_filters_reason(claude: Path, pool: EnvoyPool, api: MessagesAPI,
                                                             idp: IdP, tmp_path: Path) -> None:
    gw = pool.gateway("cc-forged", api, idp, plugin_config(idp), access_log=True)
    token = forged(idp.mint(claims={"sub": "mallory"}), "admin")
    run = run_claude(claude, gw.url, tmp_path, api, timeout=30, ANTHROPIC_AUTH_TOKEN=token)
    assert run.code != 0, run.stdout
    assert run.seconds < 10, f"took {run.seconds:.1f} s: Claude Code retried the 401"
    assert "401" in run.stdout + run.stderr and "token signature invalid" in run.stdout + run.stderr, \
        f"stdout: {run.stdout[-1500:]}\nstderr: {run.stderr[-1500:]}"
    assert run.upstream == []
    lines = access_log(gw, 1)
    assert [(line["status"], line["user_id"]) for line in lines] == [(401, None)], lines
    assert GATEWAY_REQUEST_ID.fullmatch(lines[0]["request_id"]), lines
    assert lines[0]["session_id"], "the refused request is still attributed to its Claude Code session"


def test_expired_token_from_helper_recovers_with_a_fresh_one(claude: Path, pool: EnvoyPool, api: MessagesAPI,
                                                             idp: IdP, tmp_path: Path) -> None:
    gw = pool.gateway("cc-refresh", api, idp, plugin_config(idp), access_log=True)
    now = int(time.time())
    expired = idp.mint(claims={"sub": "bob", "iat": now - 7200, "exp": now - 3600})
    fresh = idp.mint(claims={"sub": "bob"})
    key_helper(tmp_path, expired, fresh)
    run = run_claude(claude, gw.url, tmp_path, api)
    seen = assert_succeeded(run)
    assert_identity(seen, "bob", PROVIDER, email="user@example.com", name="Test User")
    assert helper_calls(tmp_path) == 2
    lines = access_log(gw, 2)
    assert [line["status"] for line in lines] == [401, 200], lines
    assert GATEWAY_REQUEST_ID.fullmatch(lines[0]["request_id"]), lines
    assert_attributed(lines[1], seen, "bob", PROVIDER)
    assert lines[0]["session_id"] == lines[1]["session_id"]


# models.catalog for the models case: one model for everyone, one for the `ml` group only.
MODELS = {"catalog": [
    {"id": "claude-haiku-4-5", "display_name": "Claude Haiku 4.5", "created_at": "2025-10-01T00:00:00Z"},
    {"id": "claude-opus-4-5", "display_name": "Claude Opus 4.5", "created_at": "2025-11-01T00:00:00Z",
     "groups": ["ml"]},
], "serve_list": True, "enforce": True}


def test_model_discovery_lists_the_users_models_and_a_refused_model_fails_at_once(
        claude: Path, pool: EnvoyPool, api: MessagesAPI, idp: IdP, tmp_path: Path) -> None:
    gw = pool.gateway("cc-models", api, idp, {**plugin_config(idp), "models": MODELS}, access_log=True)
    token = idp.mint(claims={"sub": "eve", "groups": ["eng"]})
    discovery = {"ANTHROPIC_AUTH_TOKEN": token, "CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY": "1"}
    allowed_home, refused_home = tmp_path / "allowed", tmp_path / "refused"
    allowed_home.mkdir()
    refused_home.mkdir()
    # With discovery on, Claude Code asks the gateway for the models first: the filter answers it (the
    # upstream only ever sees the Messages request), then the allowed model goes through.
    run = run_claude(claude, gw.url, allowed_home, api, model="claude-haiku-4-5", **discovery)
    seen = assert_succeeded(run)
    assert json.loads(seen.body)["model"] == "claude-haiku-4-5"
    lines = access_log(gw, 2)
    assert [(line["method"], line["path"], line["status"], line["user_id"]) for line in lines] == [
        ("GET", "/v1/models?limit=1000", 200, "eve"), ("POST", "/v1/messages?beta=true", 200, "eve")], lines
    assert GATEWAY_REQUEST_ID.fullmatch(lines[0]["request_id"] or ""), lines[0]
    # What the filter answers that very request: only the models eve may use.
    listed = httpx.get(f"{gw.url}/v1/models?limit=1000", headers={"authorization": f"Bearer {token}"})
    assert [m["id"] for m in listed.json()["data"]] == ["claude-haiku-4-5"], listed.text
    # A model of the `ml` group only: the filter's 403 and its reason at once, nothing upstream.
    run = run_claude(claude, gw.url, refused_home, api, timeout=30, model="claude-opus-4-5", **discovery)
    output = run.stdout + run.stderr
    assert run.code != 0, run.stdout
    assert run.seconds < 10, f"took {run.seconds:.1f} s: Claude Code retried the 403"
    assert "403" in output and "model claude-opus-4-5 is not available to you" in output, output[-1500:]
    assert run.upstream == []
