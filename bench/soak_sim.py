"""Memory soak of one `livermore-sim` process with clients attached (SPEC 13: memory flat).

Run: `uv run python bench/soak_sim.py [--minutes 5] [--speed 60] [--every 30]`.
Starts `livermore-sim` as a subprocess (so its RSS is measured alone), attaches:

* a Coinbase WS client subscribed to candles, ticker, market_trades, level2 and heartbeats
  for every product, reconnecting if closed;
* Binance and Binance US combined-stream clients (1m/5m/1h klines + miniTicker of a few symbols);
* a REST poller paging Coinbase candles and Binance klines (inside the venues' limits);

then prints the sim's RSS every `--every` seconds, with the sim-time covered, and the growth
between the first sample after warm-up and the last.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time

import aiohttp
import psutil

COINBASE = ["BTC-USD", "ETH-USD", "SOL-USD", "XRP-USD", "DOGE-USD", "ADA-USD", "FORT-USD"]
BINANCE = ["btcusdt", "ethusdt", "solusdt", "fortusdt"]


async def start_sim(speed: float) -> tuple[asyncio.subprocess.Process, dict[str, str]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "livermore_exchange_sim.cli",
        "--port",
        "0",
        "--speed",
        str(speed),
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    env: dict[str, str] = {}
    while len(env) < 8:
        name, _, value = (await proc.stdout.readline()).decode().strip().partition("=")
        env[name] = value
    return proc, env


async def coinbase_ws(url: str, counts: dict[str, int]) -> None:
    async with aiohttp.ClientSession() as http:
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.ws_connect(url, max_msg_size=0) as ws:
                    for channel in ("candles", "ticker", "market_trades", "level2"):
                        await ws.send_json(
                            {"type": "subscribe", "product_ids": COINBASE, "channel": channel}
                        )
                    await ws.send_json(
                        {"type": "subscribe", "product_ids": [], "channel": "heartbeats"}
                    )
                    async for _ in ws:
                        counts["coinbase"] += 1
            await asyncio.sleep(1)


async def binance_ws(url: str, name: str, counts: dict[str, int]) -> None:
    streams = [f"{s}@kline_{i}" for s in BINANCE for i in ("1m", "5m", "1h")]
    streams += [f"{s}@miniTicker" for s in BINANCE]
    async with aiohttp.ClientSession() as http:
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.ws_connect(f"{url}/stream?streams={'/'.join(streams)}") as ws:
                    async for _ in ws:
                        counts[name] += 1
            await asyncio.sleep(1)


async def rest_poller(env: dict[str, str], counts: dict[str, int]) -> None:
    coinbase = env["LIVERMORE_COINBASE_REST_URL"] + "/api/v3/brokerage"
    binance = env["LIVERMORE_BINANCE_REST_URL"] + "/api/v3"
    async with aiohttp.ClientSession() as http:
        while True:
            async with http.get(f"{coinbase}/time") as resp:
                now_s = int((await resp.json())["epochSeconds"])
            for product in COINBASE:
                params = {
                    "start": str(now_s - 300 * 300),
                    "end": str(now_s),
                    "granularity": "FIVE_MINUTE",
                }
                async with http.get(
                    f"{coinbase}/market/products/{product}/candles", params=params
                ) as resp:
                    await resp.read()
                counts["rest"] += 1
                await asyncio.sleep(0.2)
            for symbol in BINANCE:
                params = {"symbol": symbol.upper(), "interval": "1m", "limit": "1000"}
                async with http.get(f"{binance}/klines", params=params) as resp:
                    await resp.read()
                counts["rest"] += 1
                await asyncio.sleep(0.2)


async def soak(minutes: float, speed: float, every: float) -> None:
    proc, env = await start_sim(speed)
    sim = psutil.Process(proc.pid)
    counts = {"coinbase": 0, "binance": 0, "binance_us": 0, "rest": 0}
    began = time.monotonic()
    samples: list[tuple[float, float]] = []
    async with asyncio.TaskGroup() as tasks:
        clients = [
            tasks.create_task(coinbase_ws(env["LIVERMORE_COINBASE_WS_URL"], counts)),
            tasks.create_task(binance_ws(env["LIVERMORE_BINANCE_WS_URL"], "binance", counts)),
            tasks.create_task(binance_ws(env["LIVERMORE_BINANCE_US_WS_URL"], "binance_us", counts)),
            tasks.create_task(rest_poller(env, counts)),
        ]
        header = f"{'wall s':>7} {'sim min':>8} {'RSS MiB':>8}"
        print(f"{header}  messages (coinbase/binance/binance_us/rest)")
        while (elapsed := time.monotonic() - began) < minutes * 60:
            await asyncio.sleep(min(every, minutes * 60 - elapsed))
            elapsed = time.monotonic() - began
            rss = sim.memory_info().rss / 2**20
            samples.append((elapsed, rss))
            print(
                f"{elapsed:7.0f} {elapsed * speed / 60:8.0f} {rss:8.1f}  "
                f"{counts['coinbase']}/{counts['binance']}/{counts['binance_us']}/{counts['rest']}",
                flush=True,
            )
        for client in clients:
            client.cancel()
    proc.terminate()
    await proc.wait()
    warm = samples[min(1, len(samples) - 1)][1]
    end = samples[-1][1]
    print(f"RSS after warm-up {warm:.1f} MiB, at end {end:.1f} MiB, growth {end - warm:+.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--speed", type=float, default=60.0)
    parser.add_argument("--every", type=float, default=30.0)
    args = parser.parse_args()
    asyncio.run(soak(args.minutes, args.speed, args.every))


if __name__ == "__main__":
    main()
