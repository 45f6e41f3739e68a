"""`livermore-api` as a process: help, create-user, revoke-token, serve, unreachable stores."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from importlib.metadata import version
from typing import Any

import pytest

from livermore_api.__main__ import main
from livermore_api.auth import hash_token
from livermore_schema.settings import DatabaseSettings, RedisSettings

from .helpers import free_port


def _env(pg: DatabaseSettings, redis: RedisSettings | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVERMORE_")}
    env |= {
        "LIVERMORE_DATABASE_HOST": pg.host,
        "LIVERMORE_DATABASE_PORT": str(pg.port),
        "LIVERMORE_DATABASE_USER": pg.user,
        "LIVERMORE_DATABASE_NAME": pg.name,
        "LIVERMORE_LOG_JSON": "true",
    }
    if redis is not None:
        env |= {"LIVERMORE_REDIS_HOST": redis.host, "LIVERMORE_REDIS_PORT": str(redis.port)}
    return env | extra


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "livermore_api", *args],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("args", [["--help"], ["create-user", "--help"], ["revoke-token", "-h"]])
def test_help(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 0 and "usage: livermore-api" in capsys.readouterr().out


def test_bad_arguments_exit_nonzero(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["revoke-token", "not-a-number"])
    assert exit_info.value.code == 2 and "invalid int value" in capsys.readouterr().err


def test_create_user_prints_token_once_and_revoke_token(pg_settings: DatabaseSettings) -> None:
    import psycopg

    env = _env(pg_settings)
    name = f"cli{time.time_ns()}"
    created = _run(["create-user", name, "--admin", "--email", f"{name}@example.org"], env)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    assert token.startswith("lvm_") and len(token) > 40
    token_id = int(created.stdout.split("token id ")[1].split()[0])
    dsn = f"host={pg_settings.host} port={pg_settings.port} user={pg_settings.user} "
    with psycopg.connect(dsn + f"dbname={pg_settings.name}") as conn:
        row: Any = conn.execute(
            "SELECT t.token_hash, u.role FROM api_tokens t JOIN users u ON u.id = t.user_id "
            "WHERE t.id = %s",
            (token_id,),
        ).fetchone()
    assert row == (hash_token(token), "admin")  # stored hashed, never the token
    again = _run(["create-user", name], env)
    assert again.returncode == 1 and "already taken" in again.stderr
    assert _run(["revoke-token", str(token_id)], env).stdout.strip() == f"token {token_id} revoked"
    missing = _run(["revoke-token", "987654321"], env)
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("username", "problem"),
    [
        ("bad name!", "invalid username may hold only letters, digits, '.', '_' and '-'"),
        ("x", "invalid username (string should have at least 2 characters)"),
    ],
)
def test_create_user_applies_the_api_username_rules(
    pg_settings: DatabaseSettings, username: str, problem: str
) -> None:
    refused = _run(["create-user", username], _env(pg_settings))
    assert refused.returncode == 2 and refused.stderr == f"livermore-api: {problem}\n"
    import psycopg

    dsn = f"host={pg_settings.host} port={pg_settings.port} user={pg_settings.user} "
    with psycopg.connect(dsn + f"dbname={pg_settings.name}") as conn:
        row = conn.execute("SELECT count(*) FROM users WHERE username = %s", (username,)).fetchone()
    assert row == (0,)


def test_unreachable_stores_give_one_line_and_nonzero_exit(
    pg_settings: DatabaseSettings, redis_settings: RedisSettings
) -> None:
    dead = str(free_port())
    pg_env = _env(pg_settings, LIVERMORE_DATABASE_PORT=dead, LIVERMORE_DATABASE_PASSWORD="hunter2")
    no_pg = _run(["create-user", "x1"], pg_env)
    assert no_pg.returncode == 2 and no_pg.stderr.count("\n") == 1
    assert "PostgreSQL unavailable" in no_pg.stderr and "hunter2" not in no_pg.stderr
    redis_env = _env(
        pg_settings, redis_settings, LIVERMORE_REDIS_PORT=dead, LIVERMORE_REDIS_SECRET="hunter3"
    )
    no_redis = _run(["--port", str(free_port())], redis_env)
    assert no_redis.returncode == 2 and no_redis.stderr.count("\n") == 1
    assert "Redis unavailable" in no_redis.stderr and "hunter3" not in no_redis.stderr


def test_serve_answers_health(pg_settings: DatabaseSettings, redis_settings: RedisSettings) -> None:
    port = free_port()
    with subprocess.Popen(
        [sys.executable, "-m", "livermore_api", "--host", "127.0.0.1", "--port", str(port)],
        env=_env(pg_settings, redis_settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    ) as proc:  # fmt: skip
        try:
            _wait_for_health(proc, port)
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    assert proc.returncode in (0, -15)


def _wait_for_health(proc: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 30
    while True:  # an external process: poll until it listens
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                body = resp.read().decode()
            break
        except OSError:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert '"postgres":true' in body and '"redis":true' in body
    assert f'"version":"{version("livermore-api")}"' in body
