"""End to end: a worker that cannot start says why in one line and exits non-zero."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from livermore_schema.settings import DatabaseSettings


def _closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


CASES: list[tuple[tuple[str, ...], dict[str, str], str]] = [
    (("nope",), {}, "unknown exchange 'nope'"),
    (("kraken",), {}, "kraken has no Livermore client"),
    (("coinbase", "--user", "ghost"), {}, "unknown or inactive user 'ghost'"),
    (("coinbase",), {"LIVERMORE_REDIS_PORT": "closed"}, "Redis unavailable"),
    (("coinbase",), {"LIVERMORE_DATABASE_PORT": "closed"}, "PostgreSQL unavailable"),
]
"""Unknown exchange, unsupported exchange, unknown user, no Redis, no PostgreSQL."""


async def test_startup_failures_are_one_line_and_non_zero(
    spawn_worker: Callable[..., Any], pg_settings: DatabaseSettings
) -> None:
    workers = []
    for args, env, expected in CASES:  # all at once: process start-up dominates the wall time
        overrides = {k: _closed_port() if v == "closed" else v for k, v in env.items()}
        worker = spawn_worker(*args, LIVERMORE_DATABASE_PASSWORD="hunter2", **overrides)
        workers.append((worker, expected))
    for worker, expected in workers:
        code = await worker.wait_exit(30)
        output = worker.log_path.read_text()
        lines = [line for line in output.splitlines() if line.strip()]
        assert code == 2, output
        assert len(lines) == 1, output
        assert expected in lines[0]
        assert "Traceback" not in output and "hunter2" not in output
    help_run = spawn_worker("coinbase", "--help")
    assert await help_run.wait_exit(20) == 0
    assert "--autostart" in help_run.log_path.read_text()
