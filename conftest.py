"""Session fixtures shared by every member's tests: a private Redis and a fresh PostgreSQL database.

Tests never touch the configured app database or Redis DB: each session starts its own
`redis-server` on a free port and creates (then drops) its own PostgreSQL database.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from livermore_exchange_sim.testing import RunningSim
    from livermore_schema.settings import DatabaseSettings, RedisSettings


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)  # polling a process we just spawned, not synchronising a test
    raise RuntimeError(f"timed out waiting for {what}")


@pytest.fixture(scope="session")
def redis_settings() -> Iterator[RedisSettings]:
    """A private redis-server on a free port for this test session."""
    from livermore_schema.settings import RedisSettings

    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(
            "redis-server is not installed (run .ci/run or apt-get install redis-server)"
        )
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="livermore-redis-")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
            "--databases",
            "16",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def _ready() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    try:
        _wait_for(_ready, 10, "private redis-server")
        yield RedisSettings(
            host="127.0.0.1", port=port, db=0, secret=None, tls=False, cluster=False
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
async def redis(redis_settings: RedisSettings) -> AsyncIterator[Redis]:
    """A client on the private Redis, flushed before and after each test."""
    from livermore_cache.client import connect_redis

    client = connect_redis(redis_settings)
    await client.flushdb()
    try:
        yield client  # type: ignore[misc]
    finally:
        await client.flushdb()
        await client.aclose()


@pytest.fixture(scope="session")
def pg_server_settings() -> DatabaseSettings:
    """Settings of the PostgreSQL server the tests may create databases on."""
    from livermore_schema.settings import DatabaseSettings

    return DatabaseSettings()


@pytest.fixture(scope="session")
def pg_settings(pg_server_settings: DatabaseSettings) -> Iterator[DatabaseSettings]:
    """A fresh, migrated and seeded PostgreSQL database for this session, dropped afterwards."""
    import psycopg

    from livermore_schema.db import upgrade

    name = f"livermore_test_{uuid.uuid4().hex[:12]}"
    admin_url = pg_server_settings.url("postgres").render_as_string(hide_password=False)
    admin_dsn = admin_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    settings = pg_server_settings.model_copy(update={"name": name})
    try:
        upgrade(settings)
        yield settings
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def sim() -> AsyncIterator[RunningSim]:
    """An exchange simulator on a free loopback port (seed 7, speed 60, every venue)."""
    from livermore_exchange_sim.testing import running_sim

    async with running_sim(seed=7, speed=60.0) as running:
        yield running


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The workspace root."""
    return Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    # Never let a developer's real exchange credentials leak into SDK clients under test.
    for name in ("COINBASE_API_KEY", "COINBASE_API_SECRET"):
        os.environ.pop(name, None)
