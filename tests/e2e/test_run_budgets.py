"""`make run BUDGETS=1` as a newcomer uses it: tests/standins/run_dev.py --budgets (on free ports) starts
the stand-ins, redis-server, gateway-ratelimit and Envoy with the budget pieces of
envoy/examples/budgets.yaml; the request rate and the daily token budget of
tests/standins/dev-budgets.yaml answer their 429s within a few requests; Ctrl-C (SIGINT) stops every
process it started.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import procs

REPO = Path(__file__).resolve().parents[2]
BODY = {"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": True,
        "messages": [{"role": "user", "content": "hi"}]}
COUNT_BODY = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]}
DEV_KEY = "sk-dev-local-key"   # envoy/dev.yaml's API key, user id dev-key
COST = 2000                    # what x-standin-usage: 1500,500,0,0 costs with the default weights


def _children(pid: int) -> dict[int, str]:
    """The processes whose parent is `pid`, with their command lines."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            if ppid == pid:
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def _wait_banner(proc: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + 240   # includes `cargo build -p gateway-ratelimit`
    while True:
        text = log.read_text(errors="replace")
        if "Start over:" in text:
            return text
        if proc.poll() is not None:
            pytest.fail(f"run_dev.py --budgets exited with {proc.returncode}:\n{text[-4000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"run_dev.py --budgets printed no banner in 240 s:\n{text[-4000:]}")
        time.sleep(0.2)


def _redis_get(port: int, key: str) -> str:
    return subprocess.run(["redis-cli", "-p", str(port), "get", key], capture_output=True, text=True,
                          check=True, timeout=10).stdout.strip()


def test_make_run_budgets_shows_the_429s_and_stops_everything(envoy_bin: Path, wasm: Path, tmp_path: Path) -> None:
    # `wasm`: the session's check that the filter is built; run_dev.py loads dist/ as `make run` does.
    log = tmp_path / "run_dev.log"
    with log.open("wb") as out:
        runner = procs.spawn([sys.executable, str(REPO / "tests/standins/run_dev.py"), "--envoy", str(envoy_bin),
                              "--budgets", "--free-ports"], out)
    started: dict[int, str] = {}
    try:
        text = _wait_banner(runner, log)
        url = re.search(r"gateway ready on (http://127\.0\.0\.1:\d+)", text).group(1)  # type: ignore[union-attr]
        token = re.search(r"^  TOKEN=(\S+)$", text, re.M).group(1)  # type: ignore[union-attr]
        rls_port, redis_port = (int(p) for p in re.search(  # type: ignore[union-attr]
            r"gateway-ratelimit on 127\.0\.0\.1:(\d+), Redis on 127\.0\.0\.1:(\d+)", text).groups())
        gateway_port = int(url.rsplit(":", 1)[1])
        started = _children(runner.pid)
        for name in ("envoy", "redis-server", "gateway-ratelimit"):
            assert any(name in cmd for cmd in started.values()), f"no {name} among run_dev's children: {started}"

        with httpx.Client(base_url=url, timeout=30) as client:
            # The request rate (5 a minute): the sixth request in one minute window is refused.
            if 60 - time.time() % 60 < 5:
                time.sleep(60 - time.time() % 60 + 0.5)
            rate = [client.post("/v1/messages/count_tokens", json=COUNT_BODY,
                                headers={"authorization": f"Bearer {token}"}) for _ in range(6)]
            assert [r.status_code for r in rate] == [200] * 5 + [429], [r.text for r in rate]
            assert rate[5].json()["error"]["message"].startswith("Too many requests on this gateway; retry in")
            assert "x-should-retry" not in rate[5].headers

            # The daily token budget (3000): each request costs 2000, charged when its stream ends.
            day = int(time.time()) // 86400 * 86400
            if day + 86400 - time.time() < 10:
                pytest.fail("too close to 00:00 UTC, when the daily budget resets: run again")
            headers = {"x-api-key": DEV_KEY, "x-standin-usage": "1500,500,0,0"}
            for n in (1, 2):
                r = client.post("/v1/messages", json=BODY, headers=headers)
                assert r.status_code == 200 and "message_stop" in r.text, r.text
                deadline = time.monotonic() + 10
                while _redis_get(redis_port, f"budgets_tokens_user_dev-key_{day}") != str(n * COST):
                    assert time.monotonic() < deadline, "the stream-end charge did not reach Redis"
                    time.sleep(0.05)
            r = client.post("/v1/messages", json=BODY, headers=headers)
            assert r.status_code == 429, r.text
            assert r.json()["error"]["message"].startswith("Your budget on this gateway is used up; it resets in")
            assert r.headers["x-should-retry"] == "false"
            assert abs(int(r.headers["retry-after"]) - (day + 86400 - time.time())) < 5
            assert _redis_get(redis_port, f"budgets_tokens_user_dev-key_{day}") == str(2 * COST)

        # Ctrl-C: the runner stops what it started, by PID, and exits 0.
        os.kill(runner.pid, signal.SIGINT)
        try:
            assert runner.wait(timeout=30) == 0
        except subprocess.TimeoutExpired:
            pytest.fail(f"run_dev.py did not exit within 30 s of SIGINT:\n{log.read_text()[-4000:]}")
        deadline = time.monotonic() + 5
        while any(_alive(pid) for pid in started) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = {pid: cmd for pid, cmd in started.items() if _alive(pid)}
        assert not left, f"still running after run_dev.py stopped: {left}"
        for port in (gateway_port, rls_port, redis_port):
            assert not _listening(port), f"something still listens on {port}"
    finally:
        procs.stop(runner)   # SIGTERM: the runner stops its children itself ...
        for pid in started:  # ... and whatever a failed runner left is killed here
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
