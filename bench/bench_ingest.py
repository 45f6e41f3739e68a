"""Ingest throughput: Binance combined-stream frames through parse -> cache -> publish (SPEC 13).

Run: `uv run python bench/bench_ingest.py [--symbols 200] [--frames 200000]`.
Starts a private redis-server (never the configured one), builds recorded-format frames
(kline updates for 6 timeframes, a closing `x: true` frame once per bar, miniTickers) and
feeds them, in one process, through `BinanceAdapter`'s frame handler into a real
`CandlePipeline` (closed bars, a burst at a time, through `ClosedBarStage`: candle write +
close publish in one pipelined flush; tickers coalesced -> TickerCache + publish). Baseline in
the same run: bare `json.loads` of the frames.
The socket read itself is not included (loopback recv costs about as much as json.loads).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from bench_cache import start_redis, wait_ready
from redis.asyncio import Redis

from livermore_cache.candles import CandleCache
from livermore_cache.pubsub import Publisher
from livermore_cache.tickers import TickerCache
from livermore_exchange_core.adapters.binance.adapter import BinanceAdapter
from livermore_exchange_core.clock import ExchangeClock
from livermore_exchange_core.config import default_exchange_config
from livermore_exchange_core.pipeline import CandlePipeline
from livermore_schema.enums import RUNTIME_TIMEFRAMES, ExchangeName
from livermore_schema.settings import CacheSettings
from livermore_schema.timeframes import duration_ms

T0 = 1_712_232_000_000


def make_frames(symbols: list[str], count: int) -> list[str]:
    """Kline updates every 2 s per stream (closing frames at each bar end) plus miniTickers."""
    frames: list[str] = []
    now = T0
    while len(frames) < count:
        now += 2_000
        for symbol in symbols:
            price = f"{100 + (now // 2000) % 50:.8f}"
            for tf in RUNTIME_TIMEFRAMES:
                step = duration_ms(tf)
                opened = now - now % step
                closing = (now + 2_000) % step == 0
                k = {
                    "t": opened,
                    "T": opened + step - 1,
                    "s": symbol,
                    "i": tf.value,
                    "f": 1,
                    "L": 2,
                    "o": price,
                    "c": price,
                    "h": price,
                    "l": price,
                    "v": "1.00000000",
                    "n": 2,
                    "x": closing,
                    "q": "100.00000000",
                    "V": "0.5",
                    "Q": "50",
                    "B": "0",
                }
                data = {"e": "kline", "E": now, "s": symbol, "k": k}
                frames.append(
                    json.dumps({"stream": f"{symbol.lower()}@kline_{tf.value}", "data": data})
                )
            ticker = {
                "e": "24hrMiniTicker",
                "E": now,
                "s": symbol,
                "c": price,
                "o": "100",
                "h": "200",
                "l": "50",
                "v": "10",
                "q": "1000",
            }
            frames.append(json.dumps({"stream": f"{symbol.lower()}@miniTicker", "data": ticker}))
    return frames[:count]


async def run(symbol_count: int, frame_count: int) -> None:
    proc, port, _workdir = start_redis()
    try:
        redis = Redis(host="127.0.0.1", port=port, decode_responses=True)
        await wait_ready(redis)
        symbols = [f"S{i:03d}USDT" for i in range(symbol_count)]
        frames = make_frames(symbols, frame_count)

        started = time.perf_counter()
        for raw in frames:
            json.loads(raw)
        baseline = len(frames) / (time.perf_counter() - started)

        settings = CacheSettings()
        clock = ExchangeClock()
        pipeline = CandlePipeline(
            exchange_id=2,
            exchange_name="binance",
            candles=CandleCache(redis, settings),
            tickers=TickerCache(redis, settings),
            publisher=Publisher(redis, settings),
            repairer=None,
            clock=clock,
        )
        config = default_exchange_config(ExchangeName.BINANCE, 2)
        adapter = BinanceAdapter(config, pipeline, clock=clock)
        await adapter.subscribe(symbols, RUNTIME_TIMEFRAMES)
        conn: Any = adapter._connections[0]
        handle = adapter._on_frame
        runner = asyncio.create_task(pipeline.run())
        started = time.perf_counter()
        for raw in frames:
            await handle(conn, raw)
        await pipeline.drain()
        elapsed = time.perf_counter() - started
        await pipeline.stop()
        await runner
        rate = len(frames) / elapsed
        stats = pipeline.stats
        print(f"frames: {len(frames)} ({symbol_count} symbols x 6 kline streams + miniTicker)")
        print(f"baseline json.loads only: {baseline:12,.0f} msgs/s")
        print(f"parse -> cache -> publish: {rate:12,.0f} msgs/s  (target >= 50,000)")
        print(
            f"closed bars written+published: {stats.delivered}, "
            f"tickers flushed: {pipeline.ticker_coalescer.flushed}"
        )
        await redis.aclose()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=200)
    parser.add_argument("--frames", type=int, default=200_000)
    args = parser.parse_args()
    asyncio.run(run(args.symbols, args.frames))


if __name__ == "__main__":
    main()
