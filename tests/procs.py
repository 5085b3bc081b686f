"""Processes the test tools start (end-to-end harness, load test, benchmark): each in its own
session and told by Linux to die with its runner, listening on 127.0.0.1 ports picked free, and
stopped by PID, also when a run fails."""

from __future__ import annotations

import ctypes
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
# Every child started and not yet stopped, by PID, for stop_all().
CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _child_setup(cpu: int | None) -> Callable[[], None]:
    def setup() -> None:
        if cpu is not None:
            try:
                os.sched_setaffinity(0, {cpu})
            except OSError:
                pass
        try:  # SIGTERM to the child if its runner dies without cleaning up
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except Exception:  # noqa: BLE001 - best effort, not on every libc
            pass
    return setup


def spawn(cmd: list[str], out: Any, env: dict[str, str] | None = None,
          cpu: int | None = None) -> subprocess.Popen[bytes]:
    """`cmd` from the repository root, stdout and stderr to `out`, pinned to `cpu` if given. Its own
    session: a Ctrl-C reaches only the runner, which then stops its children by PID."""
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            cwd=str(REPO), env=env, start_new_session=True,
                            preexec_fn=_child_setup(cpu))
    CHILDREN[proc.pid] = proc
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 5 s."""
    if proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        except ProcessLookupError:
            pass
    CHILDREN.pop(proc.pid, None)


def stop_all() -> None:
    for proc in list(CHILDREN.values()):
        stop(proc)


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def interrupt_on_signals() -> None:
    """SIGINT, SIGTERM and SIGHUP raise KeyboardInterrupt in the runner, whose clean-up then stops its
    children by PID. Installed explicitly: a shell starts background jobs with SIGINT ignored, which
    Python keeps."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)


def run_main(main: Callable[[], int]) -> None:
    """A tool's entry point: signals interrupt it, and its children are stopped however it ends."""
    interrupt_on_signals()
    try:
        sys.exit(main())
    finally:
        stop_all()


def free_port() -> int:
    """A 127.0.0.1 port that was free a moment ago (and has nothing listening)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, timeout: float = 20, proc: subprocess.Popen[bytes] | None = None) -> bool:
    """Whether something listens on 127.0.0.1:`port` within `timeout` seconds; False at once when
    `proc` (the server that should) has exited."""
    deadline = time.monotonic() + timeout
    while proc is None or proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
    return False


def wasm_memory(pid: int) -> dict[str, int]:
    """Each Wasm instance's linear memory, as V8 lays it out on Linux x86-64: one reservation of
    about 8 GiB, whose accessible start (the module's current memory.size) is a read-write
    anonymous mapping and whose rest stays PROT_NONE. For every PROT_NONE anonymous mapping of at
    least 7 GiB, the read-write mapping that ends where it starts is that instance's memory: its
    Size is the linear memory, its Rss the part touched. Envoy runs one instance per thread that
    uses the plugin plus one for configuration; `sizes` lists each instance's. Best effort: another
    layout shows as count 0."""
    maps: list[list[Any]] = []
    try:
        text = Path(f"/proc/{pid}/smaps").read_text()
    except OSError:
        return {"count": 0, "size": 0, "rss": 0, "sizes": []}
    for line in text.splitlines():
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            parts = line.split()
            start, end = (int(x, 16) for x in parts[0].split("-"))
            maps.append([start, end, parts[1], len(parts) < 6, 0])
        elif line.startswith("Rss:") and maps:
            maps[-1][4] = int(line.split()[1]) * 1024
    sizes: list[int] = []
    rss = 0
    for prev, cur in zip(maps, maps[1:]):
        if (cur[2] == "---p" and cur[3] and cur[1] - cur[0] >= 7 << 30 and prev[1] == cur[0]
                and prev[2] == "rw-p" and prev[3]):
            sizes.append(prev[1] - prev[0])
            rss += prev[4]
    return {"count": len(sizes), "size": sum(sizes), "rss": rss, "sizes": sorted(sizes)}
