"""The Istio cluster-name rule at run time: with the WasmPlugin's pluginConfig, a running Envoy 1.40
sends the filter's key fetch into a cluster literally named `outbound|443||login.microsoftonline.com`
(here a stand-in on 127.0.0.1), with the JWKS URL's host as :authority and its path. This is what
the gateway does once the ServiceEntry has created that cluster (Istio adds TLS via the
DestinationRule; the stand-in speaks plain HTTP)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from deploy_helpers import envoy_config, find_envoy, find_wasm, istio_plugin_config, named_clusters, static_cluster
import procs  # noqa: E402 - tests/ is on sys.path once deploy_helpers is imported


class _Recorder(BaseHTTPRequestHandler):
    seen: list[tuple[str, str, str]] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        type(self).seen.append((self.command, self.path, self.headers.get("host", "")))
        body = json.dumps({"keys": []}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_key_fetch_goes_to_the_istio_named_cluster(tmp_path: Path) -> None:
    envoy, wasm = find_envoy(), find_wasm()
    config = istio_plugin_config()
    [cluster] = named_clusters(config)
    jwks = urlsplit(config["providers"][0]["jwks"]["uri"])

    _Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    proc = None
    log = (tmp_path / "envoy.log").open("w")
    try:
        cfg = envoy_config(wasm, config, [static_cluster(cluster, server.server_address[1])])
        path = tmp_path / "envoy.json"
        path.write_text(json.dumps(cfg), encoding="utf-8")
        proc = procs.spawn(
            [str(envoy), "-c", str(path), "--concurrency", "1", "--disable-hot-restart", "--log-level", "warn"],
            log,
        )
        deadline = time.monotonic() + 30
        while not _Recorder.seen and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        output = (tmp_path / "envoy.log").read_text()
        assert _Recorder.seen, f"no key fetch arrived through cluster {cluster!r}; Envoy log:\n{output[-4000:]}"
        method, got_path, host = _Recorder.seen[0]
        assert (method, got_path, host) == ("GET", jwks.path, jwks.netloc)
        assert "refused (BadArgument)" not in output, output[-4000:]
    finally:
        if proc is not None:
            procs.stop(proc)
        log.close()
        server.shutdown()
        server.server_close()
