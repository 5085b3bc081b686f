"""The objects the e2e tests work with: the default plugin configuration, a running gateway (one Envoy
with the filter, plus the stand-ins behind it), the result of one request, and a pool that stops every
Envoy it started. conftest.py turns these into fixtures; tests import from here, never from conftest."""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

import e2e_harness as harness
from e2e_harness import REPO, Envoy

if str(REPO / "tests") not in sys.path:   # the `standins` package (conftest does the same)
    sys.path.insert(0, str(REPO / "tests"))

from standins.idp import IdP, b64url, b64url_decode  # noqa: E402
from standins.messages_api import MessagesAPI, Recorded  # noqa: E402

AUDIENCE = "claude-desktop"
PROVIDER = "test-idp"
CI_KEY = "sk-ci-" + uuid.uuid4().hex          # the static API key of case f; only its sha256 is configured
CI_KEY_SHA256 = hashlib.sha256(CI_KEY.encode()).hexdigest()
TRACE = "x-e2e-id"                            # correlates a client request with what the upstream saw


def plugin_config(idp: IdP, **provider_overrides: Any) -> dict[str, Any]:
    """The plugin configuration of the shared gateway: one provider fetching JWKS from `idp` through
    cluster "idp", plus the static key `ci-bot`."""
    provider: dict[str, Any] = {"name": PROVIDER, "issuer": idp.issuer, "audiences": [AUDIENCE],
                                "jwks": {"uri": idp.jwks_uri, "cluster": "idp", "timeout_ms": 5000}}
    provider.update(provider_overrides)
    return {"providers": [provider],
            "api_keys": [{"name": "ci-bot", "sha256": CI_KEY_SHA256, "groups": ["a", "b"]}]}


def forged(token: str, sub: str) -> str:
    """`token` claiming to be `sub`, its signature untouched: what an attacker would send."""
    header, payload, signature = token.split(".")
    claims = json.loads(b64url_decode(payload))
    claims["sub"] = sub
    return ".".join([header, b64url(json.dumps(claims).encode()), signature])


# ---- results ---------------------------------------------------------------------------------------------
@dataclass
class Result:
    status: int
    headers: httpx.Headers
    body: bytes
    http_version: str
    trace: str
    upstream: list[Recorded] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def seen(self) -> Recorded:
        """The single request the upstream received for this call."""
        assert len(self.upstream) == 1, f"upstream saw {len(self.upstream)} requests, expected 1"
        return self.upstream[0]


class Gateway:
    """One running Envoy with the filter, and the stand-ins behind it."""

    def __init__(self, envoy: Envoy, api: MessagesAPI, idp: IdP | None) -> None:
        self.envoy = envoy
        self.api = api
        self.idp = idp
        self._h1: httpx.Client | None = None
        self._h2: httpx.Client | None = None

    @property
    def url(self) -> str:
        return self.envoy.url

    def client(self, http2: bool = False) -> httpx.Client:
        if http2:
            if self._h2 is None:  # h2c with prior knowledge
                self._h2 = httpx.Client(http1=False, http2=True, trust_env=False, timeout=60)
            return self._h2
        if self._h1 is None:
            self._h1 = httpx.Client(trust_env=False, timeout=60)
        return self._h1

    def request(self, method: str = "POST", path: str = "/v1/messages",
                headers: list[tuple[str, str]] | dict[str, str] | None = None,
                body: Any = None, content: Any = None, http2: bool = False, token: str | None = None,
                timeout: float = 60, client: httpx.Client | None = None) -> Result:
        """Send one request with a fresh x-e2e-id; `token` adds `Authorization: Bearer <token>`;
        `body` is sent as JSON (default: a small Messages request), `content` as raw bytes;
        `client` sends it on that client's connection (e.g. one pinned to an Envoy worker)."""
        trace = uuid.uuid4().hex
        hdrs: list[tuple[str, str]] = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
        hdrs.append((TRACE, trace))
        if token is not None:
            hdrs.append(("authorization", f"Bearer {token}"))
        if content is None and method in ("POST", "PUT"):
            payload = body if body is not None else {"model": "claude-sonnet-4-5", "max_tokens": 16,
                                                     "messages": [{"role": "user", "content": "hi"}]}
            content = json.dumps(payload).encode()
            hdrs.append(("content-type", "application/json"))
        resp = (client or self.client(http2)).request(method, self.url + path, headers=hdrs,
                                                      content=content, timeout=timeout)
        return Result(status=resp.status_code, headers=resp.headers, body=resp.content,
                      http_version=resp.http_version, trace=trace, upstream=self.api.find(TRACE, trace),
                      elapsed=resp.elapsed.total_seconds())

    def close(self) -> None:
        for c in (self._h1, self._h2):
            if c is not None:
                c.close()
        self._h1 = self._h2 = None
        self.envoy.stop()


class EnvoyPool:
    """Starts Envoys into a temp dir and stops every one of them (by PID) on close()."""

    def __init__(self, binary: Path, wasm: Path, base: Path) -> None:
        self.binary = binary
        self.wasm = wasm
        self.base = base
        self.items: list[Envoy] = []
        self.gateways: list[Gateway] = []

    def envoy(self, name: str, config: dict[str, Any], wait: bool = True, timeout: float = 30) -> Envoy:
        e = Envoy(self.binary, Path(tempfile.mkdtemp(prefix=name[:40] + "-", dir=self.base)), name)
        self.items.append(e)
        return e.start(config, wait=wait, timeout=timeout)

    def gateway(self, name: str, api: MessagesAPI, idp: IdP | None, plugin: Any, form: str = "struct",
                clusters: dict[str, int] | None = None, wait: bool = True,
                vm_env: dict[str, str] | None = None, access_log: bool = False,
                protocol_options: dict[str, Any] | None = None) -> Gateway:
        """An Envoy with the filter configured by `plugin`; cluster `idp` points at `idp` unless
        `clusters` says otherwise; `vm_env` becomes vm_config.environment_variables; `access_log`
        adds envoy/dev.yaml's access log (read back with `gw.envoy.access_log()`);
        `protocol_options` the HTTP connection manager's common_http_protocol_options."""
        if clusters is None:
            clusters = {"idp": idp.port} if idp is not None else {}
        cfg = harness.envoy_config(upstream_port=api.port, plugin_config=plugin, form=form, wasm=self.wasm,
                                   clusters=clusters, vm_env=vm_env,
                                   access_log=harness.dev_access_log() if access_log else None,
                                   protocol_options=protocol_options)
        gw = Gateway(self.envoy(name, cfg, wait=wait), api, idp)
        self.gateways.append(gw)
        return gw

    def close(self) -> None:
        for gw in self.gateways:
            gw.close()
        for e in self.items:
            e.stop()
