from __future__ import annotations

import asyncio
import signal
import sys

import aiohttp

from livermore_exchange_sim.cli import main

NAMES = {
    "LIVERMORE_COINBASE_WS_URL",
    "LIVERMORE_COINBASE_REST_URL",
    "LIVERMORE_BINANCE_WS_URL",
    "LIVERMORE_BINANCE_REST_URL",
    "LIVERMORE_BINANCE_US_WS_URL",
    "LIVERMORE_BINANCE_US_REST_URL",
    "LIVERMORE_COINGECKO_URL",
    "LIVERMORE_DISCORD_WEBHOOK_URL",
}


async def test_cli_prints_env_overrides_serves_and_stops_on_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "livermore_exchange_sim.cli",
        "--port",
        "0",
        "--seed",
        "3",
        "--speed",
        "120",
        "--extra-assets",
        "3",
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    env: dict[str, str] = {}
    try:
        async with asyncio.timeout(20):
            while len(env) < len(NAMES):
                name, _, value = (await proc.stdout.readline()).decode().strip().partition("=")
                env[name] = value
        assert set(env) == NAMES
        rest = env["LIVERMORE_COINBASE_REST_URL"]
        assert env["LIVERMORE_COINBASE_WS_URL"].startswith("ws://127.0.0.1:")
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{rest}/api/v3/brokerage/time") as resp:
                assert resp.status == 200
            async with http.get(f"{env['LIVERMORE_BINANCE_REST_URL']}/api/v3/ping") as resp:
                assert resp.status == 200
            info_url = f"{env['LIVERMORE_BINANCE_REST_URL']}/api/v3/exchangeInfo"
            async with http.get(info_url) as resp:
                listed = [s["symbol"] for s in (await resp.json())["symbols"]]
                assert listed[-3:] == ["AA1USDT", "AA2USDT", "AA3USDT"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0


def test_cli_rejects_bad_input_with_one_line() -> None:
    assert main(["--speed", "0"]) == 2
    assert main(["--symbols", "NOPE"]) == 2
    assert main(["--extra-assets", "-1"]) == 2
