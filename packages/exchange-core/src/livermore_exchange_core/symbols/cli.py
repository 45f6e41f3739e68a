"""`livermore-symbols refresh [--exchange NAME]`: refresh `exchange_symbols` from the exchanges.

Settings come from the environment here, at the edge: `LIVERMORE_DATABASE_*`, the endpoint
overrides `LIVERMORE_{NAME}_REST_URL` and `LIVERMORE_COINGECKO_URL` / `LIVERMORE_COINGECKO_API_KEY`,
and `LIVERMORE_LOG_*`. One summary line per exchange goes to stdout; logs go to stderr.

Exit codes (`livermore_schema.commandline`): 0 every exchange refreshed or skipped; 1 at least
one exchange failed (its line says why); 2 bad input, a bad setting or PostgreSQL unreachable
(one line on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

import aiohttp

from livermore_exchange_core.symbols.coingecko import CoinGeckoClient
from livermore_exchange_core.symbols.refresh import RefreshReport, SymbolRefresh
from livermore_schema.commandline import (
    EXIT_CANNOT_START,
    EXIT_CODES_HELP,
    EXIT_FAILURE,
    EXIT_OK,
    SettingsError,
    add_version_option,
    load_settings,
)
from livermore_schema.db import async_session_factory, check_connection, create_async_engine
from livermore_schema.enums import ExchangeName
from livermore_schema.errors import DatabaseError
from livermore_schema.logs import configure_logging
from livermore_schema.settings import DatabaseSettings, EndpointSettings, LogSettings

PROG = "livermore-symbols"
_HTTP_TIMEOUT = aiohttp.ClientTimeout(total=30)


class UsageError(Exception):
    """Bad command-line input: print one line and exit 2."""


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser (`refresh` sub-command)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Maintain exchange_symbols (the tradable universe and its ranks).",
        epilog=EXIT_CODES_HELP,
    )
    add_version_option(parser, "livermore-exchange-core")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    refresh = commands.add_parser(
        "refresh",
        help="refresh exchange_symbols from CoinGecko and the exchanges' product lists",
        description=(
            "Fetch each exchange's products and 24h volumes and the CoinGecko market-cap "
            "ranking, upsert exchange_symbols and deactivate symbols no longer listed."
        ),
    )
    names = ", ".join(name.value for name in ExchangeName)
    refresh.add_argument(
        "--exchange", metavar="NAME", help=f"only this exchange ({names}); default: every active"
    )
    return parser


def parse_exchange(raw: str | None) -> ExchangeName | None:
    """Return the exchange named on the command line (None: all).

    Raises:
        UsageError: the name is not an exchange Livermore knows.
    """
    if raw is None:
        return None
    try:
        return ExchangeName(raw.strip().lower())
    except ValueError:
        known = ", ".join(name.value for name in ExchangeName)
        raise UsageError(f"unknown exchange {raw!r}; known: {known}") from None


async def run_refresh(
    exchange: ExchangeName | None, database: DatabaseSettings, endpoints: EndpointSettings
) -> RefreshReport:
    """Run one refresh with engines and sessions owned for its duration."""
    engine = create_async_engine(database)
    try:
        async with aiohttp.ClientSession(timeout=_HTTP_TIMEOUT) as http:
            coingecko = CoinGeckoClient(http, endpoints.coingecko_url, endpoints.coingecko_api_key)
            refresh = SymbolRefresh(async_session_factory(engine), http, endpoints, coingecko)
            return await refresh.refresh(exchange)
    finally:
        await engine.dispose()


def _fail(message: str) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return EXIT_CANNOT_START


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `livermore-symbols`; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command != "refresh":
        parser.print_help(sys.stderr)
        return EXIT_CANNOT_START
    try:
        exchange = parse_exchange(args.exchange)
        database = load_settings(DatabaseSettings)
        endpoints = load_settings(EndpointSettings)
        configure_logging(load_settings(LogSettings))
        check_connection(database)
        report = asyncio.run(run_refresh(exchange, database, endpoints))
    except (UsageError, SettingsError) as error:
        return _fail(str(error))
    except (DatabaseError, LookupError) as error:
        return _fail(str(error).splitlines()[0])
    for item in report.exchanges:
        print(item.summary())
    if report.coingecko_error is not None:
        print(f"coingecko: failed (global ranks left unchanged): {report.coingecko_error}")
    return EXIT_FAILURE if any(name != "coingecko" for name in report.errors) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
