"""`livermore-worker --exchange NAME [--autostart] [--user USERNAME]`: one worker, one exchange.

Settings are read here and only here (env `LIVERMORE_*` or `.env`). Exit codes follow
`livermore_schema.commandline`: a bad argument or setting or an unreachable Redis/PostgreSQL
prints one line on stderr and exits 2; SIGTERM/SIGINT stop cleanly with exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from contextlib import AsyncExitStack

from livermore_schema.commandline import (
    EXIT_CANNOT_START,
    EXIT_CODES_HELP,
    EXIT_OK,
    SettingsError,
    add_version_option,
    load_settings,
)
from livermore_schema.logs import configure_logging
from livermore_schema.settings import (
    CacheSettings,
    DatabaseSettings,
    EndpointSettings,
    LogSettings,
    RedisSettings,
    WorkerSettings,
)
from livermore_worker.bootstrap import StartupError, WorkerOptions, build_supervisor
from livermore_worker.runner import install_signal_handlers
from livermore_worker.settings import WorkerProcessSettings


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="livermore-worker",
        description="Run the Livermore worker of one exchange (idle until started).",
        epilog=EXIT_CODES_HELP,
    )
    add_version_option(parser, "livermore-worker")
    parser.add_argument(
        "--exchange", required=True, help="exchange name: coinbase, binance, binance_us"
    )
    parser.add_argument("--autostart", action="store_true", help="run the start sequence at once")
    parser.add_argument(
        "--user",
        default=None,
        help="username whose account, watchlist and positions the worker serves "
        "(default: LIVERMORE_SYSTEM_USER)",
    )
    return parser.parse_args(argv)


def read_options(args: argparse.Namespace) -> WorkerOptions:
    """Build every settings object from the environment."""
    return WorkerOptions(
        exchange=args.exchange,
        autostart=args.autostart,
        username=args.user,
        redis=load_settings(RedisSettings),
        database=load_settings(DatabaseSettings),
        endpoints=load_settings(EndpointSettings),
        cache=load_settings(CacheSettings),
        worker=load_settings(WorkerSettings),
        process=load_settings(WorkerProcessSettings),
    )


async def serve(options: WorkerOptions) -> int:
    """Build the worker and run it until SIGTERM/SIGINT."""
    stop = asyncio.Event()
    install_signal_handlers(stop)
    async with AsyncExitStack() as stack:
        supervisor = await build_supervisor(options, stack)
        return await supervisor.run(stop)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `livermore-worker`."""
    args = parse_args(argv)
    try:
        options = read_options(args)
        configure_logging(load_settings(LogSettings))
    except SettingsError as err:
        print(f"livermore-worker: {err}", file=sys.stderr)
        return EXIT_CANNOT_START
    try:
        return asyncio.run(serve(options))
    except StartupError as err:
        print(f"livermore-worker: {err}", file=sys.stderr)
        return EXIT_CANNOT_START
    except KeyboardInterrupt:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
