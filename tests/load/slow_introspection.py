#!/usr/bin/env python3
"""The slow RFC 7662 endpoint of `make soak`, also its upstream: one asyncio process that holds many
connections cheaply (the threaded stand-ins of tests/standins would need a thread per held call).

  POST /introspect   token=soak-good-*: answered at once, active, sub = the token's suffix.
                     Any other token: held HOLD seconds, then {"active": false}, unless the caller
                     goes away first (Envoy cancelling the call of a reset stream closes the
                     connection), which is counted as `dropped`.
  GET  /counters     the counts as JSON: received, answered, dropped, holding (now), max_holding.
  anything else      200 with a small Messages API body (the soak's upstream).

Usage: slow_introspection.py PORT HOLD_SECONDS. Prints `ready <port>` when it listens."""

from __future__ import annotations

import asyncio
import json
import sys
from urllib.parse import parse_qs

COUNTS = {"received": 0, "answered": 0, "dropped": 0, "holding": 0, "max_holding": 0}
UPSTREAM_BODY = b'{"id":"msg_soak","type":"message","role":"assistant","content":[]}'


def response(status: int, body: bytes) -> bytes:
    reason = {200: "OK", 400: "Bad Request"}.get(status, "OK")
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n").encode() + body


async def hold(reader: asyncio.StreamReader, seconds: float) -> bool:
    """Waits `seconds`; False as soon as the peer closes the connection."""
    try:
        return await asyncio.wait_for(reader.read(1), seconds) != b""
    except asyncio.TimeoutError:
        return True


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, hold_s: float) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path = lines[0].split(" ")[:2]
            headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
            body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
            if method == "POST" and path.endswith("/introspect"):
                COUNTS["received"] += 1
                token = parse_qs(body.decode("latin-1")).get("token", [""])[0]
                if token.startswith("soak-good-"):
                    answer = {"active": True, "sub": token[len("soak-good-"):], "aud": "claude-gateway",
                              "exp": 4102444800}
                else:
                    COUNTS["holding"] += 1
                    COUNTS["max_holding"] = max(COUNTS["max_holding"], COUNTS["holding"])
                    try:
                        alive = await hold(reader, hold_s)
                    finally:
                        COUNTS["holding"] -= 1
                    if not alive:
                        COUNTS["dropped"] += 1
                        return
                    answer = {"active": False}
                COUNTS["answered"] += 1
                writer.write(response(200, json.dumps(answer).encode()))
            elif path == "/counters":
                writer.write(response(200, json.dumps(COUNTS).encode()))
            else:
                writer.write(response(200, UPSTREAM_BODY))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ValueError, IndexError):
        pass
    finally:
        writer.close()


async def main(port: int, hold_s: float) -> None:
    server = await asyncio.start_server(lambda r, w: serve(r, w, hold_s), "127.0.0.1", port, backlog=4096)
    print(f"ready {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), float(sys.argv[2])))
