#!/usr/bin/env python3
"""`make run`: Envoy with the filter (envoy/dev.yaml), the IdP stand-in and the Messages API stand-in.
`make run BUDGETS=1` (--budgets) adds budgets: redis-server and gateway-ratelimit with the demo budgets
of tests/standins/dev-budgets.yaml, and Envoy's ratelimit filter as in envoy/examples/budgets.yaml.

Ports (all on 127.0.0.1): Envoy 10000, admin 9901, IdP 18080, Messages API 18081, gateway-ratelimit
18082, Redis 18083; --free-ports picks free ones instead (tests). Ctrl-C stops all of it; every process
started here is stopped by PID whatever happens. Envoy's access log (one JSON line per request, who
and what) and its own log, and gateway-ratelimit's over-limit lines, go to this terminal.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import procs  # noqa: E402
from dev_budgets import DEMO_BUDGETS, DevPorts, dev_config  # noqa: E402
from idp import IdP  # noqa: E402
from messages_api import MessagesAPI  # noqa: E402

RATELIMIT_BIN = REPO / "target" / "debug" / "gateway-ratelimit"


def wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes]) -> bool:
    """True once `url` answers 200; False after `timeout` or when `proc` has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def envoy_command(given: str) -> list[str] | None:
    """ENVOY_BIN, else an `envoy` on PATH, else func-e (which runs the Envoy it manages)."""
    if given:
        return [given]
    if shutil.which("envoy"):
        return ["envoy"]
    if shutil.which("func-e"):
        return ["func-e", "run"]
    return None


def start_budgets(ports: DevPorts, tmp: Path) -> None:
    """redis-server (no persistence, its files in `tmp`) and gateway-ratelimit; raises SystemExit with
    what is missing or failed."""
    if not shutil.which("redis-server"):
        raise SystemExit("BUDGETS=1 needs redis-server: `make setup` installs Debian's (apt-get install redis-server)")
    for what, port in (("Redis", ports.redis), ("gateway-ratelimit", ports.rls)):
        # Checked first: a Redis already listening there would otherwise answer in place of ours.
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError as exc:
                raise SystemExit(f"port 127.0.0.1:{port} for {what} is taken ({exc.strerror})") from None
    print("cargo build -p gateway-ratelimit", flush=True)
    if subprocess.run(["cargo", "build", "--quiet", "-p", "gateway-ratelimit"], cwd=REPO).returncode != 0:
        raise SystemExit("cargo build -p gateway-ratelimit failed")
    redis = procs.spawn(["redis-server", "--port", str(ports.redis), "--bind", "127.0.0.1", "--save", "",
                         "--appendonly", "no", "--dir", str(tmp), "--logfile", str(tmp / "redis.log")], None)
    if not procs.wait_listening(ports.redis, 20, redis):
        raise SystemExit(f"redis-server did not listen on 127.0.0.1:{ports.redis} (port taken?)")
    rls = procs.spawn([str(RATELIMIT_BIN), "--config", str(DEMO_BUDGETS),
                       "--redis", f"redis://127.0.0.1:{ports.redis}", "--listen", f"127.0.0.1:{ports.rls}"], None)
    if not wait_http(f"http://127.0.0.1:{ports.rls}/healthz", 30, rls):
        raise SystemExit(f"gateway-ratelimit did not answer on 127.0.0.1:{ports.rls}/healthz; see its log above")


def banner(ports: DevPorts, token: str, budgets: bool) -> str:
    url = f"http://127.0.0.1:{ports.gateway}"
    text = f"""
gateway ready on {url}  (Ctrl-C to stop)

  TOKEN={token}

  curl -N {url}/v1/messages -H "authorization: Bearer $TOKEN" \\
    -H 'content-type: application/json' -H 'anthropic-version: 2023-06-01' \\
    -d '{{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{{"role":"user","content":"hi"}}]}}'

  a fresh token:  .venv/bin/python tests/standins/idp.py mint --url http://127.0.0.1:{ports.idp}
  API key:        -H 'x-api-key: sk-dev-local-key'

  Claude Code (another terminal; docs/claude-code.md has the apiKeyHelper variant):
    ANTHROPIC_BASE_URL={url} ANTHROPIC_AUTH_TOKEN=$TOKEN .tools/bin/claude -p 'Say hello.'
    ANTHROPIC_BASE_URL={url} ANTHROPIC_API_KEY=sk-dev-local-key .tools/bin/claude -p 'Say hello.'
"""
    if budgets:
        text += f"""
  Budgets (docs/budgets.md): gateway-ratelimit on 127.0.0.1:{ports.rls}, Redis on 127.0.0.1:{ports.redis},
  demo budgets in tests/standins/dev-budgets.yaml: 5 requests a minute and 3000 cost units a day per user.

  The request rate: the sixth request within a minute gets 429 "Too many requests ...":
    for i in 1 2 3 4 5 6; do curl -s -w '  <- %{{http_code}}\\n' {url}/v1/messages/count_tokens \\
      -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \\
      -d '{{"model":"claude-sonnet-4-5","messages":[{{"role":"user","content":"hi"}}]}}'; done

  The daily token budget: each request reports 2000 tokens used (the stand-in answers the usage in
  x-standin-usage), charged when its stream ends; the third gets 429 "Your budget ... is used up"
  with retry-after (seconds to 00:00 UTC) and x-should-retry: false:
    for i in 1 2 3; do curl -s -D - -o /dev/null {url}/v1/messages -H 'x-api-key: sk-dev-local-key' \\
      -H 'content-type: application/json' -H 'x-standin-usage: 1500,500,0,0' \\
      -d '{{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{{"role":"user","content":"hi"}}]}}' \\
      | grep -iE '^(HTTP|retry-after|x-should-retry|x-ratelimit)'; done
    curl -s {url}/v1/messages -H 'x-api-key: sk-dev-local-key' -H 'content-type: application/json' -d '{{}}'; echo

  The counters:  redis-cli -p {ports.redis} --scan --pattern 'budgets_*'   (values: redis-cli -p {ports.redis} get <key>)
  Start over:    redis-cli -p {ports.redis} flushall
"""
    return text + "\n  One JSON access log line per request follows (user, session, status, request-id, cost).\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envoy", default=os.environ.get("ENVOY_BIN") or "")
    parser.add_argument("--budgets", action="store_true",
                        help="also redis-server and gateway-ratelimit, with Envoy's ratelimit filter")
    parser.add_argument("--free-ports", action="store_true", help="free 127.0.0.1 ports instead of the fixed ones")
    args = parser.parse_args()
    envoy_cmd = envoy_command(args.envoy)
    if envoy_cmd is None:
        print("no Envoy: set ENVOY_BIN, run `make setup`, put envoy on PATH, or install func-e", file=sys.stderr)
        return 1
    ports = DevPorts()
    if args.free_ports:
        ports = DevPorts(*(procs.free_port() for _ in range(6)))
    # Ctrl-C (also SIGTERM, SIGHUP) raises KeyboardInterrupt here; the children run in their own
    # sessions, so only this runner gets it and stops them by PID below.
    procs.interrupt_on_signals()
    tmp = tempfile.TemporaryDirectory(prefix="gateway-run-")
    idp = api = None
    try:
        config = str(REPO / "envoy" / "dev.yaml")
        if args.budgets or args.free_ports:
            config = str(Path(tmp.name) / "envoy.json")
            Path(config).write_text(json.dumps(dev_config(ports, args.budgets), indent=1))
        if args.budgets:
            start_budgets(ports, Path(tmp.name))
        idp = IdP(port=ports.idp, issuer=f"http://127.0.0.1:{ports.idp}", audience="claude-desktop").start()
        api = MessagesAPI(port=ports.api).start()
        envoy = procs.spawn(
            [*envoy_cmd, "-c", config, "--concurrency", "2", "--log-level", "warn",
             "--component-log-level", "wasm:info", "--use-dynamic-base-id",
             "--file-flush-interval-msec", "200"],   # access log lines as requests end, not 10 s later
            None)
        if not wait_http(f"http://127.0.0.1:{ports.admin}/ready", 30, envoy):
            print("envoy did not become ready; see its log above", file=sys.stderr)
            return 1
        token = idp.mint("RS256", claims={"sub": "alice", "email": "alice@example.com", "name": "Alice",
                                          "groups": ["eng"]})
        print(banner(ports, token, args.budgets), flush=True)
        while envoy.poll() is None:
            time.sleep(0.5)
        return envoy.returncode or 0
    except KeyboardInterrupt:
        return 0
    finally:
        procs.stop_all()
        for server in (api, idp):
            if server is not None:
                server.stop()
        tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
