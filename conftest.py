"""Session fixtures shared by every member's tests: a private Redis and a fresh PostgreSQL database.

Tests never touch the configured app database or Redis DB: each session starts its own
`redis-server` on a free port and creates (then drops) its own PostgreSQL database.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster

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


CLUSTER_NODE_TIMEOUT_MS = 3000
"""`cluster-node-timeout` of the test cluster: a killed master is failed over after about this."""


def free_cluster_port(taken: set[int]) -> int:
    """Return a loopback port below 55536 whose cluster bus port (+10000) is free too."""
    rng = random.Random()  # any free port will do; nothing asserted depends on which
    for _ in range(500):
        port = rng.randrange(20000, 55536)
        if port in taken or port + 10000 in taken:
            continue
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


@dataclass
class RedisClusterNodes:
    """A running 6-node test cluster: its settings and a handle on every node process."""

    settings: RedisSettings
    ports: list[int]
    procs: dict[int, subprocess.Popen[bytes]]
    workdir: str

    def kill(self, port: int) -> None:
        """kill -9 the node on `port` (a failover, when it is a master)."""
        proc = self.procs[port]
        proc.kill()
        proc.wait(10)

    def restart(self, port: int) -> None:
        """Start the node on `port` again with its saved cluster config (it rejoins as replica)."""
        self.procs[port] = _cluster_node(port, self.workdir)


def _cluster_node(port: int, workdir: str) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(
            "redis-server is not installed (run .ci/run or apt-get install redis-server)"
        )
    node_dir = os.path.join(workdir, str(port))
    os.makedirs(node_dir, exist_ok=True)
    return subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--cluster-enabled",
            "yes",
            "--cluster-node-timeout",
            str(CLUSTER_NODE_TIMEOUT_MS),
            # a replica of a freshly created cluster may not have synced yet: let it take over
            "--cluster-replica-validity-factor",
            "0",
            "--cluster-config-file",
            os.path.join(node_dir, "nodes.conf"),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            node_dir,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _cli(port: int, *args: str) -> str:
    done = subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return done.stdout


def _pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def cluster_ok(ports: list[int]) -> bool:
    """Whether every node answers `cluster_state:ok` and sees every slot served."""
    for port in ports:
        info = _cli(port, "cluster", "info")
        if "cluster_state:ok" not in info or "cluster_slots_ok:16384" not in info:
            return False
    return True


def _replicas_synced(ports: list[int]) -> bool:
    """Whether every node sees 3 masters and 3 replicas, and every replica's link is up."""
    for port in ports:
        roles = [line.split()[2] for line in _cli(port, "cluster", "nodes").splitlines()]
        if sum("master" in r for r in roles) != 3 or sum("slave" in r for r in roles) != 3:
            return False
        info = _cli(port, "info", "replication")
        if "role:slave" in info and "master_link_status:up" not in info:
            return False
    return True


@pytest.fixture(scope="session")
def redis_cluster_nodes() -> Iterator[RedisClusterNodes]:
    """A private 6-node Redis Cluster (3 masters + 3 replicas) on loopback, for this session."""
    from livermore_schema.settings import RedisSettings

    if shutil.which("redis-cli") is None:
        raise RuntimeError(
            "redis-cli is not installed (run .ci/run or apt-get install redis-tools)"
        )
    ports: list[int] = []
    taken: set[int] = set()
    for _ in range(6):
        port = free_cluster_port(taken)
        ports.append(port)
        taken.update({port, port + 10000})
    workdir = tempfile.mkdtemp(prefix="livermore-cluster-")
    nodes = RedisClusterNodes(
        settings=RedisSettings(
            host="127.0.0.1",
            port=ports[0],
            cluster=True,
            cluster_nodes=",".join(f"127.0.0.1:{port}" for port in ports[1:3]),
            secret=None,
            tls=False,
        ),
        ports=ports,
        procs={port: _cluster_node(port, workdir) for port in ports},
        workdir=workdir,
    )
    try:
        for port in ports:
            _wait_for(lambda port=port: _pong(port), 10, f"cluster node {port}")
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{port}" for port in ports),
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        _wait_for(lambda: cluster_ok(ports) and _replicas_synced(ports), 30, "cluster formed")
        yield nodes
    finally:
        for proc in nodes.procs.values():
            proc.terminate()
        for proc in nodes.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_cluster_settings(redis_cluster_nodes: RedisClusterNodes) -> RedisSettings:
    """Settings of the session's test cluster (three seed nodes)."""
    return redis_cluster_nodes.settings


@pytest.fixture
async def redis_cluster(redis_cluster_nodes: RedisClusterNodes) -> AsyncIterator[RedisCluster]:
    """A client on the test cluster, every master flushed before and after each test."""
    from livermore_cache.client import connect_redis

    _wait_for(lambda: cluster_ok(_live(redis_cluster_nodes)), 30, "cluster_state:ok")
    client = connect_redis(redis_cluster_nodes.settings)
    await client.flushall(target_nodes="primaries")  # type: ignore[call-arg]
    try:
        yield client  # type: ignore[misc]
    finally:
        await client.flushall(target_nodes="primaries")  # type: ignore[call-arg]
        await client.aclose()


def _live(nodes: RedisClusterNodes) -> list[int]:
    return [port for port, proc in nodes.procs.items() if proc.poll() is None]


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
