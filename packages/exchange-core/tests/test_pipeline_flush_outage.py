"""A flush failing while Redis is down (longer than its retry budget) loses no bar."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest

from livermore_cache.candles import CandleCache
from livermore_cache.client import connect_redis
from livermore_cache.indicators import IndicatorCache
from livermore_cache.pubsub import Publisher
from livermore_cache.repairs import RepairStore
from livermore_cache.tickers import TickerCache
from livermore_exchange_core.alerts.claims import NONE_DELAYED, Delayed
from livermore_exchange_core.backoff import BackoffPolicy
from livermore_exchange_core.clock import ExchangeClock
from livermore_exchange_core.indicators.calculator import IndicatorCalculator
from livermore_exchange_core.indicators.macdv import MacdVState
from livermore_exchange_core.pipeline import CandlePipeline
from livermore_exchange_core.stage import BurstFailed, ClosedBarStage
from livermore_schema.market import Candle
from livermore_schema.settings import CacheSettings, RedisSettings

from .test_calculator import SYMBOL, TF, make_bars
from .test_pipeline import ListRepairer
from .test_pipeline_repairs import Profile


class Server:
    """A redis-server of this test only, with an fsync'd append-only file: a restart keeps data."""

    def __init__(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port: int = sock.getsockname()[1]
        self.workdir = tempfile.mkdtemp(prefix="livermore-flush-")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "yes", "--appendfsync", "always"),
                *("--dir", self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)  # polling a process we just spawned
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    own = Server()
    own.start()
    try:
        yield own
    finally:
        own.kill()
        shutil.rmtree(own.workdir, ignore_errors=True)


def _revised(candle: Candle) -> Candle:
    close = candle.close * 1.01
    return candle.model_copy(update={"close": close, "high": max(candle.high, close)})


async def _until(predicate: Callable[[], bool], within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within_s} s: {what}")
        await asyncio.sleep(0.02)


async def test_bars_of_flushes_failing_while_redis_is_down_are_kept_and_written_in_order(
    server: Server,
) -> None:
    redis = connect_redis(RedisSettings(port=server.port, retry_budget_s=0.3))
    settings = CacheSettings()
    candles = CandleCache(redis, settings)
    publisher = Publisher(redis, settings)
    calculator = IndicatorCalculator(
        candles, IndicatorCache(redis, settings), publisher, exchange_id=1
    )
    stage = ClosedBarStage(candles=candles, publisher=publisher, calculator=calculator)
    pipeline = CandlePipeline(
        exchange_id=1,
        exchange_name="coinbase",
        candles=candles,
        tickers=TickerCache(redis, settings),
        publisher=publisher,
        repairer=None,
        clock=ExchangeClock(),
        stage=stage,
        flush_retry=BackoffPolicy(base_s=0.05, cap_s=0.2, jitter=0.0),
    )
    bars = make_bars(60)
    await candles.write_many(bars[:40])
    await calculator.warmup(SYMBOL, TF)
    runner = asyncio.create_task(pipeline.run())
    try:
        for bar in bars[40:45]:
            await pipeline.on_candle(bar)
        await asyncio.wait_for(pipeline.drain(), 10)
        server.kill()  # Redis gone for several retries of the burst
        for bar in bars[45:55]:
            await pipeline.on_candle(bar)
        await _until(lambda: pipeline.stats.burst_failures >= 3, 20, "three failed tries")
        for bar in bars[55:]:
            await pipeline.on_candle(bar)  # later bars queue behind the held ones
        corrected = {i: _revised(bars[i]) for i in (42, 50)}  # one flushed, one still held
        for candle in corrected.values():
            await pipeline.on_candle_revised(candle)
        assert pipeline.stats.delivered == 5 and pipeline.stats.held >= 10
        server.start()
        await asyncio.wait_for(pipeline.drain(), 20)
        bars = [corrected.get(i, bar) for i, bar in enumerate(bars)]
        assert await candles.recent(1, SYMBOL, TF, 100) == bars, "a bar was lost or reordered"
        # 20 bars, plus the flushed bar's correction carried with the held ones (the held bar's
        # correction replaced its first copy)
        assert pipeline.stats.delivered == 21 and pipeline.stats.held == 0
        state = calculator.state(SYMBOL, TF)
        assert state is not None and state.last is not None
        reference = MacdVState(TF)
        point = reference.seed(bars)
        assert point is not None and state.last.open_time == bars[-1].open_time
        assert state.last.macd_v == pytest.approx(point.macd_v, rel=1e-9)
    finally:
        await pipeline.stop()
        await runner
        await redis.aclose()


class RefusingStage(ClosedBarStage):
    """A stage whose writes are refused (as the lease's fence refuses a stepping-down worker's)."""

    async def process(self, bars: Sequence[Candle], delayed: Delayed = NONE_DELAYED) -> None:
        raise BurstFailed(bars, RuntimeError("write refused"))


async def test_bars_unflushed_at_stop_become_a_pending_repair_the_next_worker_completes(
    redis: Any,
) -> None:
    settings = CacheSettings()
    candles, publisher = CandleCache(redis, settings), Publisher(redis, settings)
    bars = make_bars(10)

    def pipeline(stage: ClosedBarStage | None, repairer: Any) -> CandlePipeline:
        return CandlePipeline(
            exchange_id=1,
            exchange_name="coinbase",
            candles=candles,
            tickers=TickerCache(redis, settings),
            publisher=publisher,
            repairer=repairer,
            clock=ExchangeClock(bars[-1].open_time + 10 * 300_000),
            stage=stage,
            repair_store=RepairStore(redis, 1),
            rest_lag_ms=0,
            flush_retry=BackoffPolicy(base_s=0.01, cap_s=0.05, jitter=0.0),
        )

    old = pipeline(RefusingStage(candles=candles, publisher=publisher), None)
    runner = asyncio.create_task(old.run())
    for bar in bars[5:]:
        await old.on_candle(bar)
    await _until(lambda: old.stats.burst_failures >= 2, 10, "two refused flushes")
    await old.stop()
    await runner
    assert old.stats.delivered == 0 and await candles.recent(1, SYMBOL, TF, 20) == []
    [pending] = await RepairStore(redis, 1).load()
    assert (pending.symbol, pending.timeframe, pending.since_ms, pending.until_ms) == (
        SYMBOL,
        TF,
        bars[5].open_time,
        bars[-1].open_time + 300_000,
    )
    await candles.write_many(bars[:5])
    new = pipeline(None, ListRepairer(bars))
    runner = asyncio.create_task(new.run())
    await new.repairs.adopt([SYMBOL], Profile((TF,)), {})
    await new.resume()
    await asyncio.wait_for(new.drain(), 10)
    await new.stop()
    await runner
    assert await candles.recent(1, SYMBOL, TF, 20) == bars
    assert await RepairStore(redis, 1).load() == []
