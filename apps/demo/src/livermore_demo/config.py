"""Command-line options, the demo's typed configuration and the environment every child gets."""

from __future__ import annotations

import argparse
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from livermore_demo.errors import BadOptionError
from livermore_schema.commandline import (
    EXIT_CODES_HELP,
    SettingsError,
    add_version_option,
    load_settings,
)
from livermore_schema.settings import DatabaseSettings, RedisSettings

DEFAULT_PORT_BASE = 8790
DEFAULT_DATABASE = "livermore_demo"
DEFAULT_REDIS_DB = 15
DEFAULT_REDIS_NAMESPACE = "livermore-demo"
DEFAULT_SYMBOLS = ("BTC", "ETH", "SOL", "XRP")
DEMO_EXCHANGES = ("coinbase", "binance")
"""The exchanges the demo runs a worker for, in start order."""


@dataclass(frozen=True, slots=True)
class DemoConfig:
    """Everything one demo run needs; built once from the command line and the environment."""

    sim_port: int
    api_port: int
    speed: float
    duration_s: float | None
    database: DatabaseSettings
    redis: RedisSettings
    seed: int
    symbols: tuple[str, ...]
    startup_timeout_s: float
    excursion_every_s: float

    @property
    def sim_url(self) -> str:
        """Base URL of the simulator."""
        return f"http://127.0.0.1:{self.sim_port}"

    @property
    def api_url(self) -> str:
        """Base URL of the api."""
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def admin_url(self) -> str:
        """The admin page the demo prints."""
        return f"{self.api_url}/admin"


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of `livermore-demo`."""
    parser = argparse.ArgumentParser(
        prog="livermore-demo",
        description=(
            "Run the simulator, a Coinbase and a Binance worker and the api against a local "
            "Redis and PostgreSQL; print the admin URL, a token and live alerts. Ctrl-C stops."
        ),
        epilog=(
            "The demo uses its own PostgreSQL database and Redis DB index (flushed at start), "
            f"never the ones LIVERMORE_DATABASE_NAME / LIVERMORE_REDIS_DB name. {EXIT_CODES_HELP}."
        ),
    )
    add_version_option(parser, "livermore-demo")
    parser.add_argument(
        "--port-base",
        type=int,
        default=DEFAULT_PORT_BASE,
        help=f"simulator on N, api on N+1 (default {DEFAULT_PORT_BASE}; 0 = any free ports)",
    )
    parser.add_argument(
        "--speed", type=float, default=60.0, help="simulated seconds per real second (default 60)"
    )
    parser.add_argument(
        "--duration", type=float, help="stop after this many seconds (default: run until Ctrl-C)"
    )
    parser.add_argument(
        "--database", default=DEFAULT_DATABASE, help=f"demo database (default {DEFAULT_DATABASE})"
    )
    parser.add_argument(
        "--redis-db",
        type=int,
        default=DEFAULT_REDIS_DB,
        help=f"demo Redis DB index, flushed at start (default {DEFAULT_REDIS_DB})",
    )
    parser.add_argument(
        "--redis-namespace",
        default=DEFAULT_REDIS_NAMESPACE,
        help="prefix of every demo key and channel, so the demo never reaches a trader's "
        f"subscribers (pub/sub ignores DB indexes; default {DEFAULT_REDIS_NAMESPACE})",
    )
    parser.add_argument("--seed", type=int, default=7, help="simulator market seed (default 7)")
    parser.add_argument(
        "--symbols",
        nargs="+",
        default=list(DEFAULT_SYMBOLS),
        help=f"base assets the simulator lists (default {' '.join(DEFAULT_SYMBOLS)})",
    )
    parser.add_argument(
        "--startup-timeout",
        type=float,
        default=180.0,
        help="seconds to wait for both workers to connect (default 180)",
    )
    parser.add_argument(
        "--excursion-every",
        type=float,
        default=120.0,
        help="seconds between scripted MACD-V excursions after connecting (default 120)",
    )
    return parser


def parse_config(argv: Sequence[str] | None = None) -> DemoConfig:
    """Parse `argv` (and the LIVERMORE_* environment) into a `DemoConfig`.

    Raises:
        BadOptionError: an option is out of range, a setting is invalid, or the demo would
            share the database or Redis DB a trader's Livermore is configured to use.
    """
    args = build_parser().parse_args(argv)
    _check_ranges(args)
    try:
        trader_redis, trader_db = load_settings(RedisSettings), load_settings(DatabaseSettings)
    except SettingsError as err:
        raise BadOptionError(str(err)) from None
    if trader_redis.cluster:
        raise BadOptionError("the demo needs a single Redis node (LIVERMORE_REDIS_CLUSTER is on)")
    if args.redis_db == trader_redis.db:
        raise BadOptionError(
            f"--redis-db {args.redis_db} is the DB LIVERMORE_REDIS_DB names and the demo flushes "
            "it; pick another index"
        )
    if args.redis_namespace == trader_redis.namespace:
        raise BadOptionError(
            f"--redis-namespace {args.redis_namespace!r} is the one LIVERMORE_REDIS_NAMESPACE "
            "names: the demo's alerts would reach that deployment's subscribers"
        )
    if args.database == trader_db.name:
        raise BadOptionError(
            f"--database {args.database} is the database LIVERMORE_DATABASE_NAME names; "
            "pick another name"
        )
    sim_port, api_port = _ports(args.port_base)
    return DemoConfig(
        sim_port=sim_port,
        api_port=api_port,
        speed=args.speed,
        duration_s=args.duration,
        database=trader_db.model_copy(update={"name": args.database}),
        redis=trader_redis.model_copy(
            update={"db": args.redis_db, "namespace": args.redis_namespace}
        ),
        seed=args.seed,
        symbols=tuple(symbol.upper() for symbol in args.symbols),
        startup_timeout_s=args.startup_timeout,
        excursion_every_s=args.excursion_every,
    )


def _check_ranges(args: argparse.Namespace) -> None:
    if not (args.port_base == 0 or 1024 <= args.port_base <= 65534):
        raise BadOptionError(f"--port-base must be 0 or 1024..65534, not {args.port_base}")
    if args.speed <= 0:
        raise BadOptionError(f"--speed must be positive, not {args.speed}")
    if args.duration is not None and args.duration <= 0:
        raise BadOptionError(f"--duration must be positive, not {args.duration}")
    if not 0 <= args.redis_db <= 15:
        raise BadOptionError(f"--redis-db must be 0..15, not {args.redis_db}")
    if not args.redis_namespace or not all(
        ch.isascii() and (ch.isalnum() or ch in "_.-") for ch in args.redis_namespace
    ):
        raise BadOptionError(
            f"--redis-namespace must be letters, digits, _ . -, not {args.redis_namespace!r}"
        )
    if not args.database.replace("_", "").isalnum():
        raise BadOptionError(f"--database must be letters, digits and _, not {args.database!r}")
    if args.startup_timeout <= 0 or args.excursion_every <= 0:
        raise BadOptionError("--startup-timeout and --excursion-every must be positive")


def _ports(port_base: int) -> tuple[int, int]:
    if port_base:
        return port_base, port_base + 1
    return _free_port(), _free_port()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def child_env(
    base: Mapping[str, str], config: DemoConfig, sim_overrides: Mapping[str, str]
) -> dict[str, str]:
    """Return the environment of every child: `base`, the simulator's overrides, the demo stores.

    The worker's user context is removed: demo workers stream Tier 1 from public data.
    """
    env = dict(base)
    env.pop("LIVERMORE_SYSTEM_USER", None)
    env.update(sim_overrides)
    env["LIVERMORE_DATABASE_NAME"] = config.database.name
    env["LIVERMORE_REDIS_DB"] = str(config.redis.db)
    env["LIVERMORE_REDIS_NAMESPACE"] = config.redis.namespace
    env["PYTHONUNBUFFERED"] = "1"
    return env
