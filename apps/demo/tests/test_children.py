from __future__ import annotations

import asyncio
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from livermore_demo.children import Supervisor, resolve_command
from livermore_demo.errors import SetupError


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_gone(pids: list[int], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # polling external processes, with a deadline
        if all(_gone(pid) for pid in pids):
            return True
        time.sleep(0.05)
    return False


def _python(code: str) -> list[str]:
    return ["python", "-c", textwrap.dedent(code)]


def test_console_scripts_resolve_beside_the_interpreter() -> None:
    assert Path(resolve_command("python")).parent == Path(sys.executable).parent
    with pytest.raises(SetupError, match="not installed"):
        resolve_command("livermore-no-such-program")


async def test_run_returns_status_and_output_and_logs_it(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path, {"PATH": "/usr/bin:/bin"})
    code, lines = await supervisor.run(
        "hello", _python("print('one'); print('two'); raise SystemExit(3)"), timeout_s=30
    )
    assert (code, lines) == (3, ["one", "two"])
    assert (tmp_path / "hello.log").read_text() == "one\ntwo\n"
    code, lines = await supervisor.run("secret", _python("print('tok')"), timeout_s=30, log=False)
    assert (code, lines) == (0, ["tok"])
    assert not (tmp_path / "secret.log").exists()
    assert supervisor.children == ()


async def test_run_kills_a_program_that_overstays(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path, {})
    code = "import os, time; print(os.getpid(), flush=True); time.sleep(60)"
    with pytest.raises(SetupError, match="did not finish within 1 s"):
        await supervisor.run("slow", _python(code), timeout_s=1)
    assert supervisor.children == ()
    assert _wait_gone([int((tmp_path / "slow.log").read_text())])


async def test_death_reports_a_child_that_exits_on_its_own_with_its_tail(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path, {})
    await supervisor.start("api", _python("print('bind failed'); raise SystemExit(2)"))
    error = await asyncio.wait_for(supervisor.death(), 10)
    assert (error.name, error.returncode, error.tail) == ("api", 2, ["bind failed"])
    assert "api exited unexpectedly with status 2" in str(error)
    await supervisor.stop_all(grace_s=1)


async def test_stop_all_kills_stubborn_children_and_their_process_group(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path, {})
    ready = asyncio.Event()
    pids: list[int] = []

    def on_line(line: str) -> None:
        pids.extend(int(part) for part in line.split())
        ready.set()

    stubborn = """
        import os, signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print(os.getpid(), grandchild.pid, flush=True)
        time.sleep(60)
    """
    polite = "import time\ntry:\n    time.sleep(60)\nexcept KeyboardInterrupt:\n    pass\n"
    child = await supervisor.start("stubborn", _python(stubborn), on_line=on_line)
    other = await supervisor.start("polite", _python(polite))
    await asyncio.wait_for(ready.wait(), 10)
    assert pids[0] == child.pid
    began = time.monotonic()
    await supervisor.stop_all(grace_s=1.0)
    assert time.monotonic() - began < 5
    assert not child.running and not other.running
    assert other.process.returncode == -15  # SIGTERM was enough for it
    assert child.process.returncode == -9
    assert _wait_gone(pids)
    with pytest.raises(TimeoutError):  # a stop is not a death
        await asyncio.wait_for(supervisor.death(), 0.2)


async def test_children_die_with_the_demo_even_when_it_is_killed(tmp_path: Path) -> None:
    parent = f"""
        import asyncio, pathlib
        from livermore_demo.children import Supervisor

        async def main():
            supervisor = Supervisor(pathlib.Path({str(tmp_path)!r}), {{}})
            sleeper = ["python", "-c", "import time; time.sleep(60)"]
            child = await supervisor.start("sleeper", sleeper)
            print(child.pid, flush=True)
            await asyncio.sleep(60)

        asyncio.run(main())
    """
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", textwrap.dedent(parent), stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    child_pid = int(await asyncio.wait_for(proc.stdout.readline(), 20))
    assert not _gone(child_pid)
    proc.kill()
    await proc.wait()
    assert _wait_gone([child_pid])
