"""What the stand-ins share: an HTTP server on its own thread, started and stopped by the owner
(also as a context manager). Binds the owner's host and port; port 0 picks a free one, which is
then kept, so a stand-in stopped and started again comes back on the same port."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

S = TypeVar("S", bound="Served")


class Served:
    """Subclasses give `name` (the thread's), `host` and `port` (set before `start`), and their
    request handler class, whose `self.owner` is then the stand-in."""

    name: str
    host: str
    port: int
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def start(self: S) -> S:
        handler = type("Handler", (self.handler_class(),), {"owner": self})
        server = ThreadingHTTPServer((self.host, self.port), handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"{self.name}:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self: S) -> S:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
