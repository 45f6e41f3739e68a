"""`livermore-symbols`: help, bad input, unreachable PostgreSQL, and a real refresh of the sim."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest
from sqlalchemy import delete
from sqlmodel import col, select

from livermore_exchange_core.symbols.cli import main
from livermore_exchange_sim.testing import running_sim
from livermore_schema.db import async_session_factory, create_async_engine
from livermore_schema.settings import DatabaseSettings
from livermore_schema.tables import ExchangeSymbol

SCRIPT = Path(sys.executable).parent / "livermore-symbols"


def unused_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def database_env(settings: DatabaseSettings) -> dict[str, str]:
    """The LIVERMORE_DATABASE_* variables naming `settings`."""
    env = {
        "LIVERMORE_DATABASE_HOST": settings.host,
        "LIVERMORE_DATABASE_PORT": str(settings.port),
        "LIVERMORE_DATABASE_USER": settings.user,
        "LIVERMORE_DATABASE_NAME": settings.name,
    }
    if settings.password is not None:
        env["LIVERMORE_DATABASE_PASSWORD"] = settings.password.get_secret_value()
    return env


def clean_env(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without LIVERMORE_* settings, plus `extra`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("LIVERMORE_")}
    return {**base, "LIVERMORE_LOG_JSON": "true", **extra}


@pytest.fixture
async def empty_symbols(pg_settings: DatabaseSettings) -> AsyncIterator[DatabaseSettings]:
    """The test database with exchange_symbols emptied before and after."""
    engine = create_async_engine(pg_settings)
    factory = async_session_factory(engine)

    async def wipe() -> None:
        async with factory() as session:
            await session.exec(delete(ExchangeSymbol))
            await session.commit()

    await wipe()
    try:
        yield pg_settings
    finally:
        await wipe()
        await engine.dispose()


def test_help_describes_refresh(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["refresh", "--help"])
    assert exited.value.code == 0
    assert "--exchange NAME" in capsys.readouterr().out


def test_unknown_exchange_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["refresh", "--exchange", "nope"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "unknown exchange 'nope'" in lines[0] and "coinbase" in lines[0]


def test_missing_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "refresh" in capsys.readouterr().err


def test_unreachable_postgres_is_one_line_and_exit_2() -> None:
    port = str(unused_port())
    env = clean_env({"LIVERMORE_DATABASE_HOST": "127.0.0.1", "LIVERMORE_DATABASE_PORT": port})
    done = subprocess.run(
        [str(SCRIPT), "refresh"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "127.0.0.1" in lines[0], done.stderr
    assert done.stdout == ""


async def test_refresh_coinbase_against_sim_prints_summary(
    empty_symbols: DatabaseSettings,
) -> None:
    async with running_sim(seed=9, speed=1.0) as sim:
        env = clean_env({**sim.env, **database_env(empty_symbols)})
        proc = await asyncio.create_subprocess_exec(
            str(SCRIPT),
            "refresh",
            "--exchange",
            "coinbase",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 0, stderr.decode()
    assert stdout.decode().splitlines() == [
        "coinbase: 17 active symbols (added 17, updated 0, deactivated 0)"
    ]
    engine = create_async_engine(empty_symbols)
    try:
        async with async_session_factory(engine)() as session:
            rows = (
                await session.exec(
                    select(ExchangeSymbol).where(col(ExchangeSymbol.exchange_id) == 1)
                )
            ).all()
    finally:
        await engine.dispose()
    assert len(rows) == 17 and all(r.is_active and r.global_rank for r in rows)
