"""`livermore-demo` end to end: real Redis, PostgreSQL, simulator, api and two workers."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import psutil
import psycopg
import pytest
from redis.asyncio import Redis

from livermore_schema.settings import DatabaseSettings, RedisSettings

DEMO = str(Path(sys.executable).parent / "livermore-demo")
DEMO_REDIS_DB = 9
ALERT = re.compile(
    r"^\d\d:\d\d:\d\d\s+(?P<exchange>coinbase|binance)\s+\S+\s+\d+[mhd]\s+"
    r"(?P<label>level_-?\d+|reversal_\w+)\s+(?P<direction>up|down)\s+[+-]\d+\.\d\s+[\d,.]+"
    r"(?:\s+delayed)?$"
)
CONFLUENCE = re.compile(
    r"^\d\d:\d\d:\d\d\s+CONFLUENCE\s+\S+\s+\d+[mhd]\s+(?:up|down): "
    r"coinbase \S+ \S+ [+-]\d+\.\d, binance \S+ \S+ [+-]\d+\.\d$"
    r"|^\d\d:\d\d:\d\d\s+CONFLUENCE\s+\S+\s+\d+[mhd]\s+(?:up|down): "
    r"binance \S+ \S+ [+-]\d+\.\d, coinbase \S+ \S+ [+-]\d+\.\d$"
)
DEADLINE_S = 70.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def demo_database(pg_server_settings: DatabaseSettings) -> Iterator[str]:
    """A database name for the demo to create; dropped afterwards."""
    name = f"livermore_demo_test_{uuid.uuid4().hex[:10]}"
    yield name
    admin = pg_server_settings.url("postgres").render_as_string(hide_password=False)
    dsn = admin.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _env(redis_settings: RedisSettings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVERMORE_")}
    env["LIVERMORE_REDIS_HOST"] = redis_settings.host
    env["LIVERMORE_REDIS_PORT"] = str(redis_settings.port)
    return env


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _value(lines: list[str], prefix: str) -> str:
    return next(line.removeprefix(prefix).strip() for line in lines if line.startswith(prefix))


async def _read_until_both_exchanges_alert(
    stdout: asyncio.StreamReader, lines: list[str], deadline: float
) -> dict[str, list[str]]:
    alerts: dict[str, list[str]] = {"coinbase": [], "binance": []}
    while not all(alerts.values()):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            raw = await asyncio.wait_for(stdout.readline(), remaining)
        except TimeoutError:
            break
        if not raw:
            break  # the demo exited
        line = raw.decode().rstrip("\n")
        lines.append(line)
        if "CONFLUENCE" in line:  # when one occurs (not awaited): both venues on one line
            assert CONFLUENCE.match(line), line
        match = ALERT.match(line)
        if match:
            if match["label"].startswith("level_"):  # levels only fire entering an extreme
                rising = not match["label"].startswith("level_-")
                assert match["direction"] == ("up" if rising else "down"), line
            alerts[match["exchange"]].append(line)
    return alerts


async def _check_token(admin_url: str, token: str) -> None:
    base = admin_url.removesuffix("/admin")
    async with aiohttp.ClientSession() as http:
        async with http.get(admin_url) as page:
            assert page.status == 200
        async with http.get(f"{base}/api/me") as anonymous:
            assert anonymous.status == 401
        headers = {"Authorization": f"Bearer {token}"}
        async with http.get(f"{base}/api/me", headers=headers) as me:
            assert me.status == 200
            body = await me.json()
    assert "admin" in str(body)


@pytest.mark.slow
async def test_demo_prints_token_and_alerts_from_both_exchanges_and_stops_on_sigint(
    redis_settings: RedisSettings, demo_database: str
) -> None:
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *(DEMO, "--duration", "60", "--port-base", "0"),
        *("--database", demo_database, "--redis-db", str(DEMO_REDIS_DB)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_env(redis_settings),
        start_new_session=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    stderr = asyncio.create_task(proc.stderr.read())
    lines: list[str] = []
    try:
        alerts = await _read_until_both_exchanges_alert(proc.stdout, lines, started + DEADLINE_S)
        output = "\n".join(lines)
        assert all(alerts.values()), f"alerts seen: {alerts}\n{output}"
        children = psutil.Process(proc.pid).children(recursive=True)
        names = " ".join(" ".join(child.cmdline()) for child in children)
        for program in ("livermore-sim", "livermore-api", "--exchange coinbase"):
            assert program in names
        assert "--exchange binance" in names
        admin_url = _value(lines, "  admin page:")
        token = _value(lines, "  admin token:")
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/admin", admin_url)
        assert f"token: {token}" in output  # printed when the user was created, too
        await _check_token(admin_url, token)

        proc.send_signal(signal.SIGINT)
        rest = await asyncio.wait_for(proc.stdout.read(), 30)
        await asyncio.wait_for(proc.wait(), 30)
        assert proc.returncode == 0, f"{output}\n{rest.decode()}\n{(await stderr).decode()}"
        assert "stopping (signal received)" in rest.decode()
        assert [child.pid for child in children if not _gone(child.pid)] == []
        assert time.monotonic() - started < 75
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
        stderr.cancel()
        client = Redis(host=redis_settings.host, port=redis_settings.port, db=DEMO_REDIS_DB)
        await client.flushdb()
        await client.aclose()


async def test_demo_exits_with_one_line_when_postgres_is_unreachable(
    redis_settings: RedisSettings,
) -> None:
    env = _env(redis_settings) | {"LIVERMORE_DATABASE_PORT": str(free_port())}
    proc = await asyncio.create_subprocess_exec(
        *(DEMO, "--port-base", "0", "--database", "livermore_demo_unreachable"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert out == b""
    message = err.decode().splitlines()
    assert len(message) == 1, message
    assert message[0].startswith("livermore-demo: PostgreSQL at 127.0.0.1:")
    assert message[0].endswith("is not reachable; start it with `make services`")
