from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest
import structlog

from livermore_schema.cli import main
from livermore_schema.db import head_revision
from livermore_schema.settings import DatabaseSettings

PASSWORD = "cli-secret-9f3a"
SCRIPT = Path(sys.executable).with_name("livermore-db")  # what `uv run livermore-db` executes


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    """`main` configures structlog globally; put back what other tests in the session expect."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def _use_env(monkeypatch: pytest.MonkeyPatch, cwd: Path, env: dict[str, str]) -> None:
    monkeypatch.chdir(cwd)
    for key in [k for k in os.environ if k.startswith("LIVERMORE_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def _run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LIVERMORE_")}
    return subprocess.run(
        [str(SCRIPT), *args],
        cwd=cwd,  # an empty directory: no developer .env is read
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _db_env(settings: DatabaseSettings) -> dict[str, str]:
    return {
        "LIVERMORE_DATABASE_HOST": settings.host,
        "LIVERMORE_DATABASE_PORT": str(settings.port),
        "LIVERMORE_DATABASE_USER": settings.user,
        "LIVERMORE_DATABASE_NAME": settings.name,
    }


def test_upgrade_creates_a_fresh_database_and_is_repeatable(
    absent_db: DatabaseSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first = _run(["upgrade"], tmp_path, **_db_env(absent_db))
    second = _run(["upgrade"], tmp_path, **_db_env(absent_db))
    _use_env(monkeypatch, tmp_path, _db_env(absent_db))
    current_code = main(["current"])
    current = capsys.readouterr()

    where = f"database {absent_db.name} at {absent_db.host}:{absent_db.port}"
    assert (first.returncode, first.stderr) == (0, "")
    assert first.stdout == f"{where} (created): at head {head_revision()}, 6 exchanges\n"
    assert (second.returncode, second.stderr) == (0, "")
    assert second.stdout == f"{where}: at head {head_revision()}, 6 exchanges\n"
    assert (current_code, current.err) == (0, "")
    assert current.out == f"{where}: revision {head_revision()}, at head, 6 exchanges\n"


def test_unreachable_postgres_exits_2_with_one_secret_free_line(
    tmp_path: Path, closed_port: int
) -> None:
    result = _run(
        ["upgrade"],
        tmp_path,
        LIVERMORE_DATABASE_PORT=str(closed_port),
        LIVERMORE_DATABASE_PASSWORD=PASSWORD,
        LIVERMORE_DATABASE_NAME="livermore_schema_unreachable",
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("livermore-db: PostgreSQL unavailable at ")
    assert f":{closed_port}/livermore_schema_unreachable" in lines[0]
    assert PASSWORD not in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_configuration_exits_2_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _use_env(monkeypatch, tmp_path, {"LIVERMORE_DATABASE_PORT": "not-a-port"})
    assert main(["current"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "livermore-db: invalid setting LIVERMORE_DATABASE_PORT: "
        "Input should be a valid integer, unable to parse string as an integer"
    ]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"livermore-db {version('livermore-schema')}"


def test_help_explains_that_upgrade_creates_the_database(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["upgrade", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "Create the database if it does not exist" in out
    assert "LIVERMORE_DATABASE_PASSWORD" in out


def test_current_on_missing_database_exits_2(
    absent_db: DatabaseSettings,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _use_env(monkeypatch, tmp_path, {**_db_env(absent_db), "LIVERMORE_DATABASE_PASSWORD": PASSWORD})

    assert main(["current"]) == 2
    captured = capsys.readouterr()
    assert captured.err == (
        f"livermore-db: database {absent_db.name} does not exist at "
        f"{absent_db.host}:{absent_db.port} (livermore-db upgrade creates it)\n"
    )
    assert PASSWORD not in captured.out + captured.err


def test_missing_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([])
    assert exited.value.code == 2
    assert "required: COMMAND" in capsys.readouterr().err
