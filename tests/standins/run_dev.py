#!/usr/bin/env python3
"""`make run`: Envoy with the filter (envoy/dev.yaml), the IdP stand-in and the Messages API stand-in.

Ports (all on 127.0.0.1): Envoy 10000, admin 9901, IdP 18080, Messages API 18081. Ctrl-C stops all of
it; Envoy is stopped by PID whatever happens. Envoy's access log (one JSON line per request, who and
what) goes to stdout, its own log to stderr, both to this terminal.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))

from idp import IdP  # noqa: E402
from messages_api import MessagesAPI  # noqa: E402


def wait_ready(admin: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{admin}/ready", timeout=1) as answer:
                if answer.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envoy", default=os.environ.get("ENVOY_BIN") or "")
    args = parser.parse_args()
    # ENVOY_BIN, else an `envoy` on PATH, else func-e (which runs the Envoy it manages).
    if args.envoy:
        envoy_cmd = [args.envoy]
    elif shutil.which("envoy"):
        envoy_cmd = ["envoy"]
    elif shutil.which("func-e"):
        envoy_cmd = ["func-e", "run"]
    else:
        print("no Envoy: set ENVOY_BIN, run `make setup`, put envoy on PATH, or install func-e", file=sys.stderr)
        return 1

    idp = IdP(port=18080, issuer="http://127.0.0.1:18080", audience="claude-desktop").start()
    api = MessagesAPI(port=18081).start()
    envoy = subprocess.Popen(
        [*envoy_cmd, "-c", str(REPO / "envoy" / "dev.yaml"), "--concurrency", "2", "--log-level", "warn",
         "--component-log-level", "wasm:info",
         "--file-flush-interval-msec", "200"],   # access log lines as requests end, not 10 s later
        cwd=REPO,
    )
    try:
        if not wait_ready("http://127.0.0.1:9901", 30):
            print("envoy did not become ready; see its log above", file=sys.stderr)
            return 1
        token = idp.mint("RS256", claims={"sub": "alice", "email": "alice@example.com", "name": "Alice",
                                          "groups": ["eng"]})
        print(f"""
gateway ready on http://127.0.0.1:10000  (Ctrl-C to stop)

  TOKEN={token}

  curl -N http://127.0.0.1:10000/v1/messages -H "authorization: Bearer $TOKEN" \\
    -H 'content-type: application/json' -H 'anthropic-version: 2023-06-01' \\
    -d '{{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{{"role":"user","content":"hi"}}]}}'

  a fresh token:  .venv/bin/python tests/standins/idp.py mint --url http://127.0.0.1:18080
  API key:        -H 'x-api-key: sk-dev-local-key'

  Claude Code (another terminal; docs/claude-code.md has the apiKeyHelper variant):
    ANTHROPIC_BASE_URL=http://127.0.0.1:10000 ANTHROPIC_AUTH_TOKEN=$TOKEN .tools/bin/claude -p 'Say hello.'
    ANTHROPIC_BASE_URL=http://127.0.0.1:10000 ANTHROPIC_API_KEY=sk-dev-local-key .tools/bin/claude -p 'Say hello.'

  One JSON access log line per request follows (user, session, status, request-id).
""", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        envoy.wait()
        return envoy.returncode or 0
    except KeyboardInterrupt:
        return 0
    finally:
        if envoy.poll() is None:
            envoy.terminate()
            try:
                envoy.wait(timeout=10)
            except subprocess.TimeoutExpired:
                envoy.kill()
        api.stop()
        idp.stop()


if __name__ == "__main__":
    sys.exit(main())
