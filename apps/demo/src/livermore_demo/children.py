"""Child processes: started in their own process groups, output to log files, stopped cleanly.

Each child is a session leader, so a terminal's Ctrl-C reaches only the demo, which then stops
the children itself (SIGTERM to each group, a grace period, SIGKILL for stragglers). On Linux
each child also gets SIGTERM if the demo dies without cleaning up (`PR_SET_PDEATHSIG`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
import sys
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from livermore_demo.errors import ChildExitedError, SetupError

TAIL_LINES = 40
_PR_SET_PDEATHSIG = 1

LineHandler = Callable[[str], None]


def _parent_death_hook() -> Callable[[], None] | None:
    if not sys.platform.startswith("linux"):
        return None
    # Resolved in the parent: the hook runs between fork and exec and must not load anything.
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return hook


def resolve_command(name: str) -> str:
    """Return the path of console script `name`, preferring the demo's own environment.

    Raises:
        SetupError: the program is not installed.
    """
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise SetupError(f"{name} is not installed; run `uv sync` (or `make demo`)")
    return found


@dataclass(eq=False)
class Child:
    """One started program, its output tail and its log file."""

    name: str
    process: asyncio.subprocess.Process
    log_path: Path | None
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    pump: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        """The child's process id (also its process group id)."""
        return self.process.pid

    @property
    def running(self) -> bool:
        """Whether the process has not exited yet."""
        return self.process.returncode is None


class Supervisor:
    """Starts the demo's programs and stops them all; reports a long-running child's death."""

    def __init__(self, log_dir: Path, env: dict[str, str]) -> None:
        self.log_dir = log_dir
        self.env = env
        self._children: list[Child] = []
        self._watchers: list[asyncio.Task[None]] = []
        self._deaths: asyncio.Queue[Child] = asyncio.Queue()
        self._stopping = False
        self._hook = _parent_death_hook()

    @property
    def children(self) -> tuple[Child, ...]:
        """Every child started so far, in start order."""
        return tuple(self._children)

    async def start(
        self, name: str, argv: Sequence[str], *, on_line: LineHandler | None = None
    ) -> Child:
        """Start a long-running program; its exit before `stop_all` is reported by `death`."""
        child = await self._spawn(name, argv, on_line=on_line, log=True)
        self._watchers.append(asyncio.create_task(self._watch(child), name=f"watch-{name}"))
        return child

    async def run(
        self, name: str, argv: Sequence[str], *, timeout_s: float, log: bool = True
    ) -> tuple[int, list[str]]:
        """Run a program to completion; return its exit status and output lines.

        Args:
            name: Label for messages and the log file.
            argv: Program and arguments.
            timeout_s: Wall seconds before the program is killed and `SetupError` raised.
            log: Whether to copy the output to a log file (off for output holding a secret).
        """
        lines: list[str] = []
        child = await self._spawn(name, argv, on_line=lines.append, log=log)
        try:
            async with asyncio.timeout(timeout_s):
                returncode = await child.process.wait()
                if child.pump is not None:
                    await child.pump
        except TimeoutError:
            raise SetupError(f"{name} did not finish within {timeout_s:.0f} s") from None
        finally:
            if child.running:  # timed out or interrupted
                await self._stop([child], grace_s=2.0)
            self._children.remove(child)
        return returncode, lines

    async def death(self) -> ChildExitedError:
        """Wait until a long-running child exits on its own; return the error describing it."""
        child = await self._deaths.get()
        returncode = child.process.returncode
        return ChildExitedError(child.name, -1 if returncode is None else returncode, [*child.tail])

    async def stop_all(self, grace_s: float = 10.0) -> None:
        """SIGTERM every child (newest first), wait up to `grace_s`, then SIGKILL stragglers."""
        self._stopping = True
        await self._stop(list(reversed(self._children)), grace_s=grace_s)
        for watcher in self._watchers:
            watcher.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)

    async def _stop(self, children: Sequence[Child], *, grace_s: float) -> None:
        for child in children:
            if child.running:
                _signal_group(child.pid, signal.SIGTERM)
        waits = [child.process.wait() for child in children]
        try:
            async with asyncio.timeout(grace_s):
                await asyncio.gather(*waits)
        except TimeoutError:
            pass
        for child in children:
            # Also reaches anything a child left behind in its process group.
            _signal_group(child.pid, signal.SIGKILL)
        await asyncio.gather(*(child.process.wait() for child in children))
        pumps = [child.pump for child in children if child.pump is not None]
        await asyncio.gather(*pumps, return_exceptions=True)

    async def _spawn(
        self, name: str, argv: Sequence[str], *, on_line: LineHandler | None, log: bool
    ) -> Child:
        program, *args = argv
        process = await asyncio.create_subprocess_exec(
            resolve_command(program),
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
            preexec_fn=self._hook,
        )
        log_path = self.log_dir / f"{name}.log" if log else None
        child = Child(name=name, process=process, log_path=log_path)
        child.pump = asyncio.create_task(_pump(child, on_line), name=f"pump-{name}")
        self._children.append(child)
        return child

    async def _watch(self, child: Child) -> None:
        await child.process.wait()
        if child.pump is not None:
            await asyncio.gather(child.pump, return_exceptions=True)
        if not self._stopping:
            self._deaths.put_nowait(child)


async def _pump(child: Child, on_line: LineHandler | None) -> None:
    stream = child.process.stdout
    if stream is None:
        return
    sink: IO[str] | None = None
    if child.log_path is not None:
        sink = child.log_path.open("a", encoding="utf-8", buffering=1)
    try:
        async for raw in stream:
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            child.tail.append(line)
            if sink is not None:
                sink.write(line + "\n")
            if on_line is not None:
                on_line(line)
    finally:
        if sink is not None:
            sink.close()


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)
