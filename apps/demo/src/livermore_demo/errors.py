"""The demo's failures, named for what the person at the terminal should do, with exit codes."""

from __future__ import annotations

from livermore_schema.commandline import EXIT_CANNOT_START, EXIT_FAILURE


class DemoError(Exception):
    """A failure reported as one line on stderr; `exit_code` is the process's exit status."""

    exit_code: int = EXIT_FAILURE


class ServiceUnavailableError(DemoError):
    """Redis or PostgreSQL is not reachable (or misconfigured): start them and run again."""

    exit_code = EXIT_CANNOT_START


class BadOptionError(DemoError):
    """An option or setting is invalid or unsafe (e.g. the demo would flush a trader's Redis DB)."""

    exit_code = EXIT_CANNOT_START


class SetupError(DemoError):
    """A setup step (migration, symbol refresh, user creation, a child's readiness) failed."""


class ChildExitedError(DemoError):
    """A long-running child process died while the demo was running."""

    def __init__(self, name: str, returncode: int, tail: list[str]) -> None:
        super().__init__(f"{name} exited unexpectedly with status {returncode}")
        self.name = name
        self.returncode = returncode
        self.tail = tail
