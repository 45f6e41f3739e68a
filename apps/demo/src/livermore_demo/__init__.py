"""livermore-demo: one command running the simulator, two workers and the api, printing alerts.

The programs run as child processes (`livermore-sim`, `livermore-db`, `livermore-symbols`,
`livermore-api`, `livermore-worker`); this package only orchestrates them and reads Redis.
"""

from livermore_demo.config import DemoConfig, child_env, parse_config
from livermore_demo.console import format_alert, format_progress
from livermore_demo.errors import (
    BadOptionError,
    ChildExitedError,
    DemoError,
    ServiceUnavailableError,
    SetupError,
)
from livermore_demo.runner import run_demo

__all__ = (  # noqa: RUF022 - grouped by purpose
    # configuration
    "DemoConfig",
    "child_env",
    "parse_config",
    # running
    "run_demo",
    # output
    "format_alert",
    "format_progress",
    # errors
    "BadOptionError",
    "ChildExitedError",
    "DemoError",
    "ServiceUnavailableError",
    "SetupError",
)
