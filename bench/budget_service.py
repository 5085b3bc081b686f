"""The rate-limit service of the `budgets` variant: a real redis-server and target/release/gateway-ratelimit
(bench/budgets.yaml), both on free 127.0.0.1 ports, started once per run and stopped by PID."""

from __future__ import annotations

import subprocess
from pathlib import Path

from procs import free_port, spawn, stop, wait_listening
from settings import REPO, RLS_CONFIG, BenchError

RLS_BIN = REPO / "target" / "release" / "gateway-ratelimit"


def wait_port(port: int, what: str, log: Path) -> None:
    if not wait_listening(port):
        raise BenchError(f"{what} did not listen on 127.0.0.1:{port} (log: {log})")


class BudgetService:
    def __init__(self, workdir: Path, cpu: int | None) -> None:
        if not RLS_BIN.is_file():
            raise BenchError(f"{RLS_BIN} is missing: `make bench` builds it "
                             "(cargo build --release -p gateway-ratelimit)")
        self.redis_port, self.port = free_port(), free_port()
        self.redis_log, self.rls_log = workdir / "redis.log", workdir / "gateway-ratelimit.log"
        with open(self.redis_log, "wb") as out:
            self.redis = spawn(["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                                "--save", "", "--appendonly", "no", "--dir", str(workdir)], out, cpu=cpu)
        self.rls: subprocess.Popen[bytes] | None = None
        wait_port(self.redis_port, "redis-server", self.redis_log)
        with open(self.rls_log, "wb") as out:
            self.rls = spawn([str(RLS_BIN), "--config", str(RLS_CONFIG), "--redis",
                              f"redis://127.0.0.1:{self.redis_port}", "--listen", f"127.0.0.1:{self.port}"],
                             out, cpu=cpu)
        wait_port(self.port, "gateway-ratelimit", self.rls_log)

    def pids(self) -> dict[str, int]:
        assert self.rls is not None
        return {"gateway-ratelimit": self.rls.pid, "redis-server": self.redis.pid}

    def tokens_charged(self) -> int:
        """The sum of every user's token counter in Redis (what the stream-end charges added)."""
        cli = ["redis-cli", "-p", str(self.redis_port)]
        keys = subprocess.run([*cli, "--scan", "--pattern", "budgets_tokens_user_*"], capture_output=True,
                              text=True, check=True).stdout.split()
        if not keys:
            return 0
        values = subprocess.run([*cli, "mget", *keys], capture_output=True, text=True, check=True).stdout.split()
        return sum(int(x) for x in values if x.isdigit())

    def stop(self) -> None:
        for proc in (self.rls, self.redis):
            if proc is not None:
                stop(proc)
