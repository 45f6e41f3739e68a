"""What every Livermore command shares: exit codes, `--version` and settings read from the env.

Exit codes, the same for every command: 0 done (a long-running program stopped by Ctrl-C or
SIGTERM included), 1 the work failed (the message says which part), 2 the command could not
start: bad arguments, a bad `LIVERMORE_*` setting, or Redis/PostgreSQL unreachable. 130: Ctrl-C
before a program was ready to stop cleanly.
"""

from __future__ import annotations

import argparse
from importlib.metadata import PackageNotFoundError, version
from typing import TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

S = TypeVar("S", bound=BaseSettings)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CANNOT_START = 2
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = (
    "exit codes: 0 ok, 1 failure, 2 bad arguments or settings, or Redis/PostgreSQL unreachable"
)


class SettingsError(ValueError):
    """A `LIVERMORE_*` variable holds a value its setting rejects; the message names it."""


def livermore_version(distribution: str = "livermore-schema") -> str:
    """Return the installed version of a Livermore distribution (`0+unknown` from a bare tree)."""
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "0+unknown"


def add_version_option(parser: argparse.ArgumentParser, distribution: str) -> None:
    """Give `parser` a `--version` option printing `PROG VERSION`."""
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {livermore_version(distribution)}"
    )


def load_settings(settings_class: type[S]) -> S:
    """Build `settings_class` from the environment (and `.env`).

    Raises:
        SettingsError: a variable's value is invalid; names every offending variable.
    """
    try:
        return settings_class()
    except ValidationError as exc:
        raise SettingsError(describe_settings_error(exc, settings_class)) from None


def describe_settings_error(exc: ValidationError, settings_class: type[BaseSettings]) -> str:
    """Return `invalid setting NAME: reason[; ...]` naming each variable, never its value."""
    prefix = str(settings_class.model_config.get("env_prefix", ""))
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        field = str(error["loc"][0]) if error["loc"] else ""
        name = field if field.upper().startswith("LIVERMORE_") else prefix + field
        problems.append(f"{name.upper()}: {error['msg']}")
    label = "setting" if len(problems) == 1 else "settings"
    return f"invalid {label} " + "; ".join(problems)
