"""Every command: `--version`, and exit 2 with one line naming the variable for a bad setting.

An unreachable store exits 2 too; each command's own tests prove that.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from livermore_exchange_sim.cli import main as sim_main

BIN = Path(sys.executable).parent
DISTRIBUTIONS = {
    "livermore-db": "livermore-schema",
    "livermore-sim": "livermore-exchange-sim",
    "livermore-symbols": "livermore-exchange-core",
    "livermore-worker": "livermore-worker",
    "livermore-api": "livermore-api",
    "livermore-demo": "livermore-demo",
}
STORE_USERS = {
    "livermore-db": ["current"],
    "livermore-symbols": ["refresh"],
    "livermore-worker": ["--exchange", "coinbase"],
    "livermore-api": ["create-user", "alice"],
    "livermore-demo": ["--port-base", "0", "--duration", "1"],
}
"""A command line of each program that reads PostgreSQL settings before doing anything."""


def _run_all(commands: dict[str, list[str]], cwd: Path, **env: str) -> dict[str, tuple[int, str]]:
    """Run the commands side by side (start-up dominates); return each one's (code, output)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LIVERMORE_")}
    procs = {
        name: subprocess.Popen(
            [str(BIN / name), *args],
            cwd=cwd,
            env=clean | env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for name, args in commands.items()
    }
    results = {}
    for name, proc in procs.items():
        output, _ = proc.communicate(timeout=120)
        results[name] = (proc.returncode, output)
    return results


def test_every_command_prints_its_version(tmp_path: Path) -> None:
    results = _run_all({name: ["--version"] for name in DISTRIBUTIONS}, tmp_path)
    for name, distribution in DISTRIBUTIONS.items():
        assert results[name] == (0, f"{name} {version(distribution)}\n"), name


def test_a_bad_setting_exits_2_naming_the_variable(tmp_path: Path) -> None:
    results = _run_all(STORE_USERS, tmp_path, LIVERMORE_DATABASE_PORT="5432x")
    for name, (code, output) in results.items():
        lines = output.splitlines()
        assert code == 2 and len(lines) == 1, (name, output)
        assert lines[0].startswith(f"{name}: invalid setting LIVERMORE_DATABASE_PORT: "), output
        assert "Input should be a valid integer" in lines[0] and "5432x" not in output


def test_a_bad_argument_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert sim_main(["--speed", "0"]) == 2
    assert capsys.readouterr().err == "livermore-sim: --speed must be positive\n"
