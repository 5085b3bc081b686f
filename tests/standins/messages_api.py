#!/usr/bin/env python3
"""Anthropic Messages API stand-in, for tests and `make run`. Binds 127.0.0.1 only.

Endpoints:
  POST /v1/messages               JSON body; with "stream": true answers text/event-stream with
                                  message_start, content_block_start, ping, content_block_delta x N,
                                  content_block_stop, message_delta, message_stop (each event written as
                                  its own HTTP chunk and flushed, `event_delay` seconds between events);
                                  otherwise a JSON message whose "standin_echo" repeats what was received
                                  (method, path, headers, body sha256) - handy to see the identity headers.
  POST /v1/messages/count_tokens  {"input_tokens": n}
  GET  /v1/models                 a one-model list
Request bodies may come with content-length or `transfer-encoding: chunked` (Envoy sends chunked upstream
when an HTTP/2 client gave no content-length); both are read fully (up to 64 MiB).

Steering headers a test may send (they pass through the gateway like any other header):
  x-standin-echo-body: 1          the response body is the request body, byte for byte
  x-standin-event-delay-ms: 300   pause between SSE events (default: the server's event_delay)
  x-standin-deltas: 3             number of content_block_delta events
  x-standin-usage: 25,9,3,1000    input, output, cache creation, cache read tokens of the answer
                                  (streamed: message_start carries input and cache, message_delta output)
  x-standin-delta-bytes: 40       each content_block_delta's text is 40 bytes (default: one short word)
  x-standin-split: 7              the SSE stream is written in pieces of 7 bytes (cutting events, numbers,
                                  escapes and UTF-8 sequences), each flushed on its own
  x-standin-crlf: 1               SSE lines end with \r\n; comments and `data:` without a space too
  x-standin-status: 529           answer this status with a Messages API error body
  x-standin-gzip: 1               the answer is gzip-encoded (content-encoding: gzip), asked for or not
  x-standin-error-after: 4        streamed: after 4 events, `event: error` (overloaded) and the end
  x-standin-reset-after: 4        streamed: after 4 events, the connection is closed mid-stream

Every request with a complete body is recorded (`MessagesAPI.records`, list of `Recorded`): method, path
with query, headers as a list of (name, value) in arrival order, body sha256/length (and the bytes when
<= 1 MiB), whether it came chunked, and what was answered (status, body sha256, SSE events with their
send times). A request whose body never completed (the connection or stream was reset first) is in
`MessagesAPI.incomplete` instead (headers and path only): `find` counts complete bodies, `find_incomplete`
the cut-off ones.

Command line (make run):  python tests/standins/messages_api.py --port 18081 [--event-delay-ms 50]
In-process:  api = MessagesAPI().start(); ...; api.find("x-e2e-id", "abc"); api.stop()
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import socket
import sys
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

# A script (`python tests/standins/messages_api.py`) or the `standins` package.
if __package__:
    from .serving import Served
else:
    from serving import Served

MAX_BODY = 64 * 1024 * 1024
KEEP_BODY = 1024 * 1024


@dataclass
class Recorded:
    seq: int
    time: float                        # time.monotonic() when the request head arrived
    method: str
    path: str                          # with query
    headers: list[tuple[str, str]]
    body_sha256: str = ""
    body_len: int = 0
    body: bytes | None = None          # kept when <= 1 MiB
    chunked: bool = False
    status: int = 0
    response_sha256: str = ""
    response_len: int = 0
    response_body: bytes | None = None  # kept when <= 1 MiB (non-streamed) or the whole SSE stream
    events: list[tuple[float, bytes]] = field(default_factory=list)  # (monotonic send time, bytes)
    usage: dict[str, int] = field(default_factory=dict)   # the usage the answer reported (if complete)
    done: threading.Event = field(default_factory=threading.Event)   # set once the answer is sent

    def header(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive), or None."""
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def header_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def header_names(self) -> set[str]:
        return {k.lower() for k, _ in self.headers}


DEFAULT_USAGE = (25, 0, 0, 0)   # input, output (0: 1 + deltas), cache creation, cache read


def sse_events(model: str, deltas: int, msg_id: str, usage: tuple[int, int, int, int] = DEFAULT_USAGE,
               crlf: bool = False, delta_bytes: int = 0) -> list[bytes]:
    """A realistic Messages API event sequence (https://docs.anthropic.com streaming format).
    `crlf`: lines end with \\r\\n, a comment precedes each event and `data:` has no space."""
    def ev(name: str, data: dict[str, Any]) -> bytes:
        payload = json.dumps(data, separators=(',', ':'))
        if crlf:
            return f": c\r\nevent: {name}\r\ndata:{payload}\r\n\r\n".encode()
        return f"event: {name}\ndata: {payload}\n\n".encode()

    input_tokens, output_tokens, cache_creation, cache_read = usage

    words = ["Hello", " from", " the", " stand", "-in", " — ", "streaming", " ✓", "."]
    if delta_bytes:
        words = [("lorem ipsum dolor sit amet " * (delta_bytes // 27 + 1))[:delta_bytes]]
    out = [ev("message_start", {"type": "message_start", "message": {
        "id": msg_id, "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "cache_creation_input_tokens": cache_creation,
                  "cache_read_input_tokens": cache_read, "output_tokens": 1}}}),
        ev("content_block_start", {"type": "content_block_start", "index": 0,
                                   "content_block": {"type": "text", "text": ""}})]
    if crlf:
        out.append(ev("ping", {"type": "ping"}))
    for i in range(deltas):
        out.append(ev("content_block_delta", {"type": "content_block_delta", "index": 0,
                                              "delta": {"type": "text_delta", "text": words[i % len(words)]}}))
    out.append(ev("content_block_stop", {"type": "content_block_stop", "index": 0}))
    out.append(ev("message_delta", {"type": "message_delta",
                                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                    "usage": {"output_tokens": output_tokens or 1 + deltas}}))
    out.append(ev("message_stop", {"type": "message_stop"}))
    return out


class MessagesAPI(Served):
    name = "messages-api"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, event_delay: float = 0.05,
                 deltas: int = 3) -> None:
        self.host = host
        self.port = port
        self.event_delay = event_delay
        self.deltas = deltas
        self.records: list[Recorded] = []
        self.incomplete: list[Recorded] = []
        self._lock = threading.Lock()

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        return _Handler

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def find(self, header: str, value: str) -> list[Recorded]:
        """Every recorded request whose header `header` has `value`."""
        with self._lock:
            recs = list(self.records)
        return [r for r in recs if value in r.header_all(header)]

    def find_incomplete(self, header: str, value: str) -> list[Recorded]:
        """Every request whose body did not complete and whose header `header` has `value`."""
        with self._lock:
            recs = list(self.incomplete)
        return [r for r in recs if value in r.header_all(header)]

    def clear(self) -> None:
        with self._lock:
            self.records.clear()
            self.incomplete.clear()


class _Handler(BaseHTTPRequestHandler):
    owner: MessagesAPI
    protocol_version = "HTTP/1.1"
    server_version = "messages-api-standin/1"

    def log_message(self, fmt: str, *args: Any) -> None:
        pass

    # ---- request -----------------------------------------------------------------------------------
    def _read_body(self) -> tuple[bytes, bool]:
        te = (self.headers.get("transfer-encoding") or "").lower()
        if "chunked" in te:
            out = bytearray()
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionError("eof inside chunked body")
                size = int(line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while True:  # trailers, up to the empty line
                        t = self.rfile.readline(65537)
                        if t in (b"\r\n", b"\n", b""):
                            break
                    return bytes(out), True
                if len(out) + size > MAX_BODY:
                    raise ValueError("body too large")
                chunk = self.rfile.read(size)
                if len(chunk) != size:
                    raise ConnectionError("eof inside chunk")
                out += chunk
                self.rfile.readline(65537)  # CRLF after the chunk
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY:
            raise ValueError("body too large")
        body = self.rfile.read(length) if length else b""
        if len(body) != length:
            raise ConnectionError("eof inside body")
        return body, False

    def _handle(self) -> None:
        api = self.owner
        t0 = time.monotonic()
        try:
            body, chunked = self._read_body()
        except (ValueError, ConnectionError, OSError) as e:
            self.close_connection = True
            if isinstance(e, ValueError):
                self._plain(400, b'{"type":"error","error":{"type":"invalid_request_error","message":"bad body"}}')
                return
            with api._lock:  # the peer went away mid-body: nobody to answer
                api.incomplete.append(Recorded(seq=0, time=t0, method=self.command, path=self.path,
                                               headers=list(self.headers.items())))
            return
        rec = Recorded(seq=0, time=t0, method=self.command, path=self.path,
                       headers=list(self.headers.items()), body_sha256=hashlib.sha256(body).hexdigest(),
                       body_len=len(body), body=body if len(body) <= KEEP_BODY else None, chunked=chunked)
        with api._lock:
            api.records.append(rec)
            rec.seq = len(api.records)
        try:
            self._route(rec, body)
        finally:
            rec.done.set()

    def _route(self, rec: Recorded, body: bytes) -> None:
        path = urlsplit(self.path).path
        if self.headers.get("x-standin-echo-body") == "1":
            ctype = self.headers.get("content-type") or "application/octet-stream"
            self._answer(rec, 200, body, ctype)
            return
        if self.headers.get("x-standin-status"):
            status = int(self.headers["x-standin-status"])
            kind = {429: "rate_limit_error", 529: "overloaded_error"}.get(status, "api_error")
            self._answer(rec, status, _error(kind, f"stand-in status {status}"))
            return
        if path == "/v1/messages" and self.command == "POST":
            try:
                req = json.loads(body) if body else {}
            except ValueError:
                req = None
            if not isinstance(req, dict):
                self._answer(rec, 400, _error("invalid_request_error", "body is not a JSON object"))
                return
            if req.get("stream") is True:
                self._stream(rec, req)
                return
            given = self._usage()
            usage = {"input_tokens": given[0] if given else max(1, len(body) // 4),
                     "output_tokens": given[1] if given else 9}
            if given:
                usage.update(cache_creation_input_tokens=given[2], cache_read_input_tokens=given[3])
            rec.usage = {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0,
                         "cache_read_input_tokens": 0, **usage}
            msg = {"id": f"msg_standin_{rec.seq:06d}", "type": "message", "role": "assistant",
                   "model": req.get("model", "claude-sonnet-4-5"),
                   "content": [{"type": "text", "text": "Hello from the Messages API stand-in."}],
                   "stop_reason": "end_turn", "stop_sequence": None,
                   "usage": usage,
                   "standin_echo": {"method": rec.method, "path": rec.path, "headers": _header_dict(rec.headers),
                                    "body_sha256": rec.body_sha256, "body_len": rec.body_len}}
            self._answer(rec, 200, json.dumps(msg).encode())
        elif path == "/v1/messages/count_tokens" and self.command == "POST":
            self._answer(rec, 200, json.dumps({"input_tokens": max(1, len(body) // 4)}).encode())
        elif path == "/v1/models" and self.command == "GET":
            models = {"data": [{"type": "model", "id": "claude-sonnet-4-5", "display_name": "Claude Sonnet 4.5",
                                "created_at": "2025-09-29T00:00:00Z"}],
                      "has_more": False, "first_id": "claude-sonnet-4-5", "last_id": "claude-sonnet-4-5"}
            self._answer(rec, 200, json.dumps(models).encode())
        else:
            self._answer(rec, 404, _error("not_found_error", "Not found"))

    # ---- answers -----------------------------------------------------------------------------------
    def _plain(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _usage(self) -> tuple[int, int, int, int] | None:
        given = self.headers.get("x-standin-usage")
        if not given:
            return None
        a, b, c, d = (int(x) for x in given.split(","))
        return a, b, c, d

    def _answer(self, rec: Recorded, status: int, body: bytes, ctype: str = "application/json") -> None:
        rec.status = status
        rec.response_sha256 = hashlib.sha256(body).hexdigest()
        rec.response_len = len(body)
        rec.response_body = body if len(body) <= KEEP_BODY else None
        if self.headers.get("x-standin-gzip") == "1":
            body = gzip.compress(body)
        self.send_response(status)
        self.send_header("content-type", ctype)
        if self.headers.get("x-standin-gzip") == "1":
            self.send_header("content-encoding", "gzip")
        self.send_header("content-length", str(len(body)))
        self.send_header("request-id", f"req_standin_{rec.seq:06d}")
        self.send_header("x-standin-seq", str(rec.seq))
        self.end_headers()
        self.wfile.write(body)

    def _stream(self, rec: Recorded, req: dict[str, Any]) -> None:
        api = self.owner
        delay = api.event_delay
        if self.headers.get("x-standin-event-delay-ms"):
            delay = int(self.headers["x-standin-event-delay-ms"]) / 1000.0
        deltas = int(self.headers.get("x-standin-deltas") or api.deltas)
        given = self._usage() or DEFAULT_USAGE
        events = sse_events(str(req.get("model", "claude-sonnet-4-5")), deltas, f"msg_standin_{rec.seq:06d}",
                            given, crlf=self.headers.get("x-standin-crlf") == "1",
                            delta_bytes=int(self.headers.get("x-standin-delta-bytes") or 0))
        split = int(self.headers.get("x-standin-split") or 0)
        error_after = int(self.headers.get("x-standin-error-after") or 0)
        reset_after = int(self.headers.get("x-standin-reset-after") or 0)
        gzipped = self.headers.get("x-standin-gzip") == "1"
        if error_after:
            events = events[:error_after] + [b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
                                             b'"message":"Overloaded"}}\n\n']
        rec.status = 200
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        if gzipped:
            self.send_header("content-encoding", "gzip")
        self.send_header("request-id", f"req_standin_{rec.seq:06d}")
        self.send_header("x-standin-seq", str(rec.seq))
        self.end_headers()
        self.wfile.flush()
        sent = bytearray()
        compressor = zlib.compressobj(wbits=31) if gzipped else None
        for i, ev in enumerate(events):
            if reset_after and i == reset_after:
                # An upstream reset: the connection goes away with the chunked body unfinished.
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                break
            if i:
                time.sleep(delay)
            wire = compressor.compress(ev) + compressor.flush(zlib.Z_SYNC_FLUSH) if compressor else ev
            pieces = [wire[j:j + split] for j in range(0, len(wire), split)] if split else [wire]
            for j, piece in enumerate(pieces):
                if j:
                    time.sleep(0.002)   # apart, so that Envoy reads them as separate chunks
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.flush()
            rec.events.append((time.monotonic(), ev))
            sent += ev
        else:
            if compressor:
                tail = compressor.flush()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(tail), tail))
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            if not error_after:
                rec.usage = {"input_tokens": given[0], "output_tokens": given[1] or 1 + deltas,
                             "cache_creation_input_tokens": given[2], "cache_read_input_tokens": given[3]}
        rec.response_body = bytes(sent)
        rec.response_sha256 = hashlib.sha256(sent).hexdigest()
        rec.response_len = len(sent)

    def do_GET(self) -> None:  # noqa: N802
        self._handle()

    def do_POST(self) -> None:  # noqa: N802
        self._handle()

    do_PUT = do_POST
    do_DELETE = do_GET


def _header_dict(headers: list[tuple[str, str]]) -> dict[str, str]:
    """Headers as an object for the echo (names lowercased, repeated headers joined with ", ")."""
    out: dict[str, str] = {}
    for k, v in headers:
        k = k.lower()
        out[k] = f"{out[k]}, {v}" if k in out else v
    return out


def _error(kind: str, message: str) -> bytes:
    return json.dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Anthropic Messages API stand-in (serves until interrupted)")
    p.add_argument("--port", type=int, default=18081)
    p.add_argument("--event-delay-ms", type=int, default=50)
    p.add_argument("--deltas", type=int, default=5)
    args = p.parse_args(argv)
    api = MessagesAPI(port=args.port, event_delay=args.event_delay_ms / 1000.0, deltas=args.deltas).start()
    print(f"messages api stand-in on {api.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        api.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
