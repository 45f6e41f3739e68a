"""`livermore-sim`: serve every simulated venue on one port and print the env overrides."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from aiohttp import web

from livermore_exchange_sim.app import create_app, env_overrides
from livermore_exchange_sim.clock import SimClock
from livermore_exchange_sim.config import CoinbaseAuthConfig, SimConfig
from livermore_exchange_sim.scenarios import demo_scenarios
from livermore_schema.commandline import (
    EXIT_CANNOT_START,
    EXIT_CODES_HELP,
    EXIT_OK,
    add_version_option,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="livermore-sim",
        description="Serve simulated Coinbase, Binance, Binance US, CoinGecko and a webhook sink.",
        epilog=EXIT_CODES_HELP,
    )
    add_version_option(parser, "livermore-exchange-sim")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 = any)")
    parser.add_argument("--seed", type=int, default=7, help="market seed (default 7)")
    parser.add_argument("--speed", type=float, default=60.0, help="sim seconds per real second")
    parser.add_argument("--symbols", nargs="*", help="base assets to list (default: all)")
    parser.add_argument(
        "--extra-assets",
        type=int,
        default=0,
        metavar="N",
        help="also list N synthetic long-tail assets AA1..AAN on every venue (default 0)",
    )
    parser.add_argument(
        "--start-ms", type=int, help="simulated start time, epoch ms (default: now)"
    )
    parser.add_argument(
        "--no-scenarios", action="store_true", help="disable the demo MACD-V excursions"
    )
    parser.add_argument("--coinbase-key-name", help="API key name the accounts endpoint accepts")
    parser.add_argument("--coinbase-public-key", type=Path, help="PEM public key of that key")
    return parser


def _config(args: argparse.Namespace) -> SimConfig:
    if args.speed <= 0:
        raise ValueError("--speed must be positive")
    if args.extra_assets < 0:
        raise ValueError("--extra-assets must not be negative")
    start_ms = args.start_ms if args.start_ms is not None else SimClock().start_ms
    auth = None
    if args.coinbase_key_name or args.coinbase_public_key:
        if not (args.coinbase_key_name and args.coinbase_public_key):
            raise ValueError("--coinbase-key-name and --coinbase-public-key go together")
        auth = CoinbaseAuthConfig(args.coinbase_key_name, args.coinbase_public_key.read_text())
    symbols = tuple(args.symbols) if args.symbols else None
    wanted = {s.upper() for s in symbols} if symbols else {"BTC", "ETH"}
    scenarios = () if args.no_scenarios else demo_scenarios(start_ms)
    return SimConfig(
        seed=args.seed,
        speed=args.speed,
        start_ms=start_ms,
        symbols=symbols,
        extra_assets=args.extra_assets,
        scenarios=tuple(s for s in scenarios if s.base in wanted),
        coinbase_auth=auth,
    )


async def serve(config: SimConfig, host: str, port: int) -> None:
    """Serve `config` on host:port, print the env overrides, run until SIGINT/SIGTERM."""
    runner = web.AppRunner(create_app(config), handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1]
        for name, value in env_overrides(f"http://{host}:{bound}", speed=config.speed).items():
            print(f"{name}={value}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    """Entry point of `livermore-sim`."""
    args = _parser().parse_args(argv)
    try:
        config = _config(args)
        asyncio.run(serve(config, args.host, args.port))
    except (ValueError, OSError) as exc:
        print(f"livermore-sim: {exc}", file=sys.stderr)
        return EXIT_CANNOT_START
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
