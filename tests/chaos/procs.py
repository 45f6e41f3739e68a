"""The soak's own processes: a restartable redis-server with an AOF, and worker processes.

The Redis restart fault is kill -9 of redis-server, a few seconds down, then a start on the same
port from the same directory. With `appendonly yes` and `appendfsync always` every write the
worker was told succeeded is on disk, so the cache, the lease, the alert state and the alert
outbox come back intact: the fault is the outage (connections lost, commands failing and
retried, a lease that may lapse meanwhile), not a data loss.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from livermore_schema.settings import DatabaseSettings, RedisSettings


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class PersistentRedis:
    """A redis-server on a fixed free port whose data survives kill -9 (AOF, fsync always)."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self.binary = binary
        self.port = free_port()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def settings(self) -> RedisSettings:
        """Settings pointing at this server."""
        return RedisSettings(host="127.0.0.1", port=self.port, db=0, secret=None, tls=False)

    async def start(self) -> None:
        """Start (again) on the same port and directory; return once it answers PING."""
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "yes", "--appendfsync", "always"]
        args += ["--dir", str(self.workdir)]
        log = (self.workdir / "redis.log").open("ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)  # noqa: ASYNC220
        log.close()
        deadline = time.monotonic() + 20
        while not _pong(self.port):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"redis-server on {self.port} did not start")
            await asyncio.sleep(0.05)  # polling a process we just spawned

    def kill(self) -> None:
        """kill -9 (what was acknowledged is in the AOF already)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        """End the server for good."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def worker_env(
    redis: RedisSettings, database: DatabaseSettings, sim_env: dict[str, str], clock_rate: float
) -> dict[str, str]:
    """A worker's environment: the soak's stores and simulator, nothing LIVERMORE_ inherited."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVERMORE_")}
    env |= {k: v for k, v in sim_env.items() if k != "LIVERMORE_DISCORD_WEBHOOK_URL"}
    env |= {
        "LIVERMORE_REDIS_HOST": redis.host,
        "LIVERMORE_REDIS_PORT": str(redis.port),
        "LIVERMORE_DATABASE_HOST": database.host,
        "LIVERMORE_DATABASE_PORT": str(database.port),
        "LIVERMORE_DATABASE_USER": database.user,
        "LIVERMORE_DATABASE_NAME": database.name,
        "LIVERMORE_HEARTBEAT_INTERVAL_S": "1",
        "LIVERMORE_BACKFILL_CANDLES": "60",
        "LIVERMORE_EXCHANGE_CLOCK_RATE": f"{clock_rate:g}",
        "LIVERMORE_LOG_JSON": "true",
        "LIVERMORE_LOG_LEVEL": "INFO",
    }
    if database.password is not None:
        env["LIVERMORE_DATABASE_PASSWORD"] = database.password.get_secret_value()
    return env


@dataclass
class Worker:
    """One `livermore-worker` process of the soak."""

    exchange: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def alive(self) -> bool:
        """Whether the process still runs."""
        return self.proc.poll() is None

    def tail(self, lines: int = 30) -> str:
        """The last lines of its output."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Workers:
    """Spawns workers with one environment per exchange and ends them all at the end."""

    workdir: Path
    envs: dict[str, dict[str, str]]
    started: list[Worker] = field(default_factory=list)

    def spawn(self, exchange: str, *, autostart: bool) -> Worker:
        """Start `livermore-worker --exchange X [--autostart]`."""
        log_path = self.workdir / f"worker-{exchange}-{len(self.started)}.log"
        args = [sys.executable, "-m", "livermore_worker", "--exchange", exchange]
        args += ["--autostart"] if autostart else []
        with log_path.open("wb") as out:
            proc = subprocess.Popen(
                args, env=self.envs[exchange], stdout=out, stderr=subprocess.STDOUT
            )
        worker = Worker(exchange, proc, log_path)
        self.started.append(worker)
        return worker

    async def stop_all(self, within_s: float = 20.0) -> dict[str, int | None]:
        """SIGTERM every live worker, wait for the exits (kill -9 past `within_s`)."""
        for worker in self.started:
            if worker.alive():
                worker.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + within_s
        while any(w.alive() for w in self.started) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)  # polling external processes
        codes: dict[str, int | None] = {}
        for worker in self.started:
            if worker.alive():
                worker.proc.kill()
                worker.proc.wait(10)
                codes[worker.log_path.name] = None
            else:
                codes[worker.log_path.name] = worker.proc.returncode
        return codes
