"""`livermore-worker --exchange NAME [--autostart] [--user USERNAME]`: one worker, one exchange.

Settings are read here and only here (env `LIVERMORE_*` or `.env`). A bad argument or an
unreachable Redis/PostgreSQL prints one line on stderr and exits 2; SIGTERM/SIGINT stop cleanly
with exit 0 (3 if the worker lost its lease to another one).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from contextlib import AsyncExitStack

from pydantic import ValidationError

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

EXIT_STARTUP = 2


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="livermore-worker",
        description="Run the Livermore worker of one exchange (idle until started).",
    )
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
        redis=RedisSettings(),
        database=DatabaseSettings(),
        endpoints=EndpointSettings(),
        cache=CacheSettings(),
        worker=WorkerSettings(),
        process=WorkerProcessSettings(),
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
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        print(f"livermore-worker: invalid setting {where}: {first['msg']}", file=sys.stderr)
        return EXIT_STARTUP
    configure_logging(LogSettings())
    try:
        return asyncio.run(serve(options))
    except StartupError as err:
        print(f"livermore-worker: {err}", file=sys.stderr)
        return EXIT_STARTUP
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
