"""`livermore-demo`: the simulator, a Coinbase and a Binance worker and the api in one command."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

from livermore_demo.config import parse_config
from livermore_demo.console import Console
from livermore_demo.errors import ChildExitedError, DemoError
from livermore_demo.runner import run_demo
from livermore_schema.commandline import EXIT_INTERRUPTED


def main(argv: Sequence[str] | None = None) -> int:
    """Run `livermore-demo` and return its exit status (0 after Ctrl-C, SIGTERM or --duration)."""
    console = Console()
    try:
        config = parse_config(argv)
        return asyncio.run(run_demo(config, console))
    except ChildExitedError as err:
        console.fail(f"{err}; its last output is above", err.tail[-15:])
        return err.exit_code
    except DemoError as err:
        console.fail(str(err))
        return err.exit_code
    except KeyboardInterrupt:  # before the signal handlers are installed
        console.fail("interrupted")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
