"""One Envoy started by a test tool (`make bench`, `make loadtest`, `make soak`): listener and admin on
ports the kernel picks, the admin address read from --admin-address-path, ready when /ready answers
200 and the named listener has a port; stopped by PID (tests/procs.py). Also what the tools read from
it (admin, stats, log, CPU time, memory) and the pieces of Envoy configuration they share."""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from procs import spawn, stop, wasm_memory

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class EnvoyError(RuntimeError):
    """Envoy exited or never became ready; the message ends with its log's last lines."""


class Envoy:
    def __init__(self, binary: str | Path, workdir: Path, listener: str, concurrency: int = 1,
                 args: list[str] | None = None, cpu: int | None = None) -> None:
        """`workdir` holds envoy.yaml, envoy.log and the admin address; `listener` is the listener
        whose port `port` becomes; `cpu` pins the process to one core."""
        self.binary, self.dir, self.listener, self.cpu = str(binary), workdir, listener, cpu
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config = self.dir / "envoy.yaml"
        self.log = self.dir / "envoy.log"
        self.admin_file = self.dir / "admin-address.txt"
        self.concurrency = concurrency
        self.args = list(args or [])
        self.proc: subprocess.Popen[bytes] | None = None
        self.admin = ""
        self.port = 0

    def command(self) -> list[str]:
        return [self.binary, "-c", str(self.config), "--concurrency", str(self.concurrency),
                "--use-dynamic-base-id", "--admin-address-path", str(self.admin_file),
                "--drain-time-s", "0", "--parent-shutdown-time-s", "1", *self.args]

    def start(self, config_text: str, timeout: float = 60.0) -> "Envoy":
        self.config.write_text(config_text)
        with open(self.log, "wb") as out:
            self.proc = spawn(self.command(), out, cpu=self.cpu)
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                raise EnvoyError(f"Envoy ({self.dir.name}) exited with code {self.proc.returncode}\n"
                                 f"{self.log_tail()}")
            if time.monotonic() > deadline:
                raise EnvoyError(f"Envoy ({self.dir.name}) not ready after {timeout}s\n{self.log_tail()}")
            try:
                if not self.admin and self.admin_file.exists():
                    text = self.admin_file.read_text().strip()
                    if text:
                        self.admin = "http://" + text
                if self.admin and self.admin_get("/ready")[0] == 200:
                    listeners = json.loads(self.admin_get("/listeners?format=json")[1])
                    for st in listeners.get("listener_statuses", []):
                        if st.get("name") == self.listener:
                            self.port = int(st["local_address"]["socket_address"]["port_value"])
                    if self.port:
                        return self
            except (OSError, ValueError):
                pass
            time.sleep(0.05)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)

    # -- what the tools read
    def admin_get(self, path: str, timeout: float = 5.0) -> tuple[int, str]:
        try:
            with _OPENER.open(self.admin + path, timeout=timeout) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def stats(self, regex: str = "") -> dict[str, int]:
        """Counters and gauges (not histograms) whose name matches `regex`."""
        q = "/stats?format=json" + (f"&filter={urllib.parse.quote(regex)}" if regex else "")
        return {s["name"]: s["value"] for s in json.loads(self.admin_get(q)[1]).get("stats", [])
                if "value" in s}

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_text().splitlines()
        return f"---- last lines of {self.log} ----\n" + "\n".join(text[-lines:])

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def cpu_ns(self) -> int:
        """CPU time of all the process's threads in nanoseconds (/proc/<pid>/task/*/schedstat): the
        same time as `cpu_seconds` without its 10 ms tick, for measurements of a few seconds."""
        assert self.proc is not None
        total = 0
        for stat in Path(f"/proc/{self.proc.pid}/task").glob("*/schedstat"):
            try:
                total += int(stat.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                pass   # a thread that ended meanwhile
        return total

    def rss(self) -> dict[str, int]:
        """VmRSS and VmHWM of the process, in bytes (0 when unreadable)."""
        assert self.proc is not None
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            status = ""
        out = {}
        for key in ("VmRSS", "VmHWM"):
            m = re.search(rf"^{key}:\s+(\d+) kB", status, re.M)
            out[key] = int(m.group(1)) * 1024 if m else 0
        return out

    def memory(self) -> dict[str, Any]:
        """Memory as Envoy and the kernel see it: admin /memory (tcmalloc: `allocated`,
        `heap_size`, ...), VmRSS/VmHWM, and V8's Wasm linear memories (procs.wasm_memory)."""
        assert self.proc is not None
        snap: dict[str, Any] = {}
        try:
            snap["memory"] = {k: int(v) for k, v in json.loads(self.admin_get("/memory")[1]).items()}
        except (OSError, ValueError):
            snap["memory"] = {}
        snap.update(self.rss())
        snap["wasm_memory"] = wasm_memory(self.proc.pid)
        return snap


# ---- configuration pieces ----------------------------------------------------------------------------
ROUTER = {"name": "envoy.filters.http.router", "typed_config": {
    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}


def wasm_filter(wasm: Path, configuration: dict[str, Any] | None) -> dict[str, Any]:
    """The Wasm HTTP filter running `wasm` as the shipped configs do (V8, FAIL_CLOSED);
    `configuration`: its plugin configuration, an `Any`."""
    config: dict[str, Any] = {
        "name": "llm_gateway_auth", "root_id": "llm_gateway_auth", "failure_policy": "FAIL_CLOSED",
        "vm_config": {"vm_id": "llm_gateway_auth", "runtime": "envoy.wasm.runtime.v8",
                      "code": {"local": {"filename": str(wasm)}}}}
    if configuration is not None:
        config["configuration"] = configuration
    return {"name": "envoy.filters.http.wasm", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm", "config": config}}


def struct_configuration(plugin_config: dict[str, Any]) -> dict[str, Any]:
    """A plugin configuration as Envoy YAML carries it: a google.protobuf.Struct."""
    return {"@type": "type.googleapis.com/google.protobuf.Struct", "value": plugin_config}


# ---- requests --------------------------------------------------------------------------------------------
MESSAGES_BODY = b'{"model":"claude-sonnet-4-5","max_tokens":1,"messages":[{"role":"user","content":"hi"}]}'


def one_request(port: int, headers: dict[str, str] | None = None, path: str = "/v1/messages",
                timeout: float = 10) -> tuple[int, str]:
    """One POST of a small Messages API request to 127.0.0.1:`port`, on its own connection: the
    status and the body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body=MESSAGES_BODY,
                     headers={"content-type": "application/json", "anthropic-version": "2023-06-01",
                              **(headers or {})})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()


# ---- settings --------------------------------------------------------------------------------------------
def env_int(tool: str, name: str, default: int, minimum: int = 1) -> int:
    """An integer setting from the environment; a bad value ends the run with a message naming it."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        sys.exit(f"{tool}: {name}={raw!r} is not an integer")
    if value < minimum:
        sys.exit(f"{tool}: {name}={value} is below {minimum}")
    return value


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
