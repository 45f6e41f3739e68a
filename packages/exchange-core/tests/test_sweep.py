"""The reconciliation sweep finds cached bars that differ from REST and corrects them in place.

A Coinbase adapter streams from the simulator into the real pipeline on Redis. Then damage the
live path cannot see: trades held back past their minute's close and cut off by a reconnect, and
bars overwritten or deleted in the cache directly. The sweep, running beside the live stream,
must leave every settled bar equal to the simulator's truth, through the pipeline's revisions.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from redis.asyncio import Redis

from livermore_cache import keys
from livermore_cache.candles import CandleCache
from livermore_exchange_core.adapters.coinbase.adapter import CoinbaseAdapter
from livermore_exchange_core.adapters.coinbase.rest import CoinbaseRestClient
from livermore_exchange_core.backoff import BackoffPolicy
from livermore_exchange_core.config import default_exchange_config
from livermore_exchange_core.factory import create_rest_client
from livermore_exchange_core.sweep import ReconciliationSweep, SweepConfig
from livermore_exchange_core.telemetry import traffic
from livermore_exchange_core.websocket import SocketPolicy
from livermore_exchange_sim.faults import WsAction, WsActionKind
from livermore_exchange_sim.market import Venue
from livermore_exchange_sim.testing import running_sim
from livermore_schema.enums import ExchangeName, Timeframe
from livermore_schema.settings import CacheSettings
from livermore_schema.timeframes import duration_ms

from ._rest_support import RequestLog, recording_session
from ._streaming import gap_repairer, wired_pipeline

SPEED = 600.0
MIN = 60_000
START = 1_712_181_600_000
SYMBOLS = ["BTC-USD", "ETH-USD"]
TIMEFRAMES = (Timeframe.M1, Timeframe.M5)
SETTLE_MS = 2 * MIN
FAST = SocketPolicy(
    stall_timeout_s=0.5,
    open_timeout_s=5.0,
    close_timeout_s=0.5,
    backoff=BackoffPolicy(base_s=0.02, cap_s=0.3),
)


async def _mismatches(wired: Any, sim: Any, until_ms: int) -> list[tuple[str, str, int]]:
    """Return the settled cached bars (closed by `until_ms`) that differ from the truth."""
    wrong = []
    for symbol in SYMBOLS:
        for timeframe in TIMEFRAMES:
            step = duration_ms(timeframe)
            cached = await wired.candles.between(1, symbol, timeframe, START, until_ms - step)
            first = cached[0].open_time  # the stream's first bar: no history before it
            truth = {
                b.open_time: b
                for b in sim.truth(Venue.COINBASE, symbol, step, first, until_ms - step + 1)
            }
            have = {c.open_time for c in cached}
            wrong += [(symbol, timeframe.value, t) for t in truth if t not in have]
            wrong += [
                (symbol, timeframe.value, candle.open_time)
                for candle in cached
                if not _equal(candle, truth.get(candle.open_time))
            ]
    return wrong


def _equal(candle: Any, bar: Any) -> bool:
    """Return whether a cached bar is closed and carries the truth's values."""
    if bar is None or not candle.closed:
        return False
    pairs = zip(
        (candle.open, candle.high, candle.low, candle.close, candle.volume),
        (bar.open, bar.high, bar.low, bar.close, bar.volume),
        strict=True,
    )
    return all(abs(a - b) <= 1e-9 * max(1.0, abs(b)) for a, b in pairs)


async def test_sweep_corrects_late_trades_lost_across_a_reconnect_and_damaged_bars(
    redis: Redis,
) -> None:
    async with running_sim(seed=41, speed=SPEED, symbols=SYMBOLS, start_ms=START) as sim:
        config = default_exchange_config(
            ExchangeName.COINBASE,
            1,
            rest_url=sim.rest_url(Venue.COINBASE),
            ws_url=sim.ws_url(Venue.COINBASE),
        )
        rest = create_rest_client(config, clock_rate=SPEED)
        async with wired_pipeline(
            redis,
            exchange_id=1,
            exchange_name="coinbase",
            repairer=gap_repairer(redis, rest, 1, "coinbase"),
            rest_lag_ms=15_000,
        ) as wired:
            adapter = CoinbaseAdapter(
                config,
                wired.pipeline,
                policy=FAST,
                clock=wired.clock,
                rng=random.Random(5),
                trade_grace_ms=30_000,
                candle_grace_ms=30_000,
            )
            sweep = ReconciliationSweep(
                rest,
                wired.candles,
                wired.pipeline,
                exchange_id=1,
                exchange_name="coinbase",
                series=lambda: [(s, tf) for s in SYMBOLS for tf in TIMEFRAMES],
                now_ms=wired.clock.now_ms,
                config=SweepConfig(interval_s=0.01, bars=60, settle_ms=SETTLE_MS),
            )
            corrected_before = traffic("coinbase").reconcile_corrections
            await adapter.subscribe(SYMBOLS, TIMEFRAMES)
            await adapter.connect()
            try:
                socket = adapter.socket
                await asyncio.wait_for(wired.clock.wait_until(START + 10 * MIN), 20)
                # Trades run 3 minutes late, past their minutes' close; a reconnect then skips
                # what was held back (the new connection starts from a snapshot).
                sim.faults.delay_trades(Venue.COINBASE, 180, for_sim_seconds=240)
                await asyncio.wait_for(wired.clock.wait_until(START + 13 * MIN + 30_000), 20)
                sim.faults.inject_ws(Venue.COINBASE, WsAction(WsActionKind.DROP))
                await asyncio.wait_for(socket.wait_connections(2), 20)
                await asyncio.wait_for(wired.clock.wait_until(START + 25 * MIN), 20)
                await asyncio.wait_for(wired.pipeline.drain(), 30)  # the reconnect's repairs
                damaged_at = wired.clock.now_ms()
                damaged = await _damage(redis, wired, damaged_at)
                before = await _mismatches(wired, sim, damaged_at - SETTLE_MS)
                sweeper = asyncio.create_task(sweep.run())
                try:
                    await asyncio.wait_for(wired.clock.wait_until(damaged_at + SETTLE_MS), 20)
                    await asyncio.wait_for(sweep.wait_rounds(2), 30)
                finally:
                    sweeper.cancel()
                    await asyncio.gather(sweeper, return_exceptions=True)
            finally:
                await adapter.close()
            await asyncio.wait_for(wired.pipeline.drain(), 30)
            after = await _mismatches(wired, sim, damaged_at - SETTLE_MS)
            corrections = sweep.stats.corrections
            checks = sweep.stats.checks
            again = sum([await sweep.check(s, tf) for s in SYMBOLS for tf in TIMEFRAMES])
        await rest.aclose()
    assert damaged <= set(before), f"the damage did not take: {before}"
    assert after == [], f"still wrong after the sweep: {after}"
    assert corrections >= len(before) and checks >= 2 * len(SYMBOLS) * len(TIMEFRAMES)
    assert traffic("coinbase").reconcile_corrections - corrected_before == corrections
    assert again == 0, "a clean cache yields no corrections"
    # The minute closed before the reconnect whose held-back trades the reconnect skipped.
    late = [b for b in before if b not in damaged]
    assert late, "the late trades across the reconnect left no bar wrong: the fault did not bite"


async def _damage(redis: Redis, wired: Any, now_ms: int) -> set[tuple[str, str, int]]:
    """Overwrite one settled 1m bar with wrong values, delete another, store a third unfinished."""
    symbol = SYMBOLS[0]
    cached = await wired.candles.between(1, symbol, Timeframe.M1, now_ms - 8 * MIN, now_ms)
    wrong, gone, opened = cached[0], cached[2], cached[4]
    key = keys.candles_key(1, symbol, Timeframe.M1)
    await redis.zremrangebyscore(key, gone.open_time, gone.open_time)
    await redis.zremrangebyscore(key, wrong.open_time, wrong.open_time)
    await redis.zremrangebyscore(key, opened.open_time, opened.open_time)
    await wired.candles.write_many(
        [
            wrong.model_copy(update={"volume": wrong.volume / 2}),  # a lost trade's share
            opened.model_copy(update={"closed": False}),
        ]
    )
    return {(symbol, "1m", c.open_time) for c in (wrong, gone, opened)}


class _Sink:
    """A pipeline stand-in whose pending repairs the test sets; it must receive no revision."""

    def __init__(self, last_open_time: int) -> None:
        self.pending_repairs = 1
        self._last = last_open_time

    def last_open_time(self, symbol: str, timeframe: Timeframe) -> int | None:
        return self._last

    async def on_candle_revised(self, candle: Any) -> None:
        raise AssertionError(f"nothing cached, nothing to correct: {candle}")


async def test_sweep_waits_while_repairs_or_waves_run_then_takes_one_request_a_turn(
    redis: Redis,
) -> None:
    ready: asyncio.Queue[None] = asyncio.Queue()
    go: asyncio.Queue[None] = asyncio.Queue()

    async def paced(_seconds: float) -> None:  # the sweep's interval, stepped by the test
        ready.put_nowait(None)
        await go.get()

    async def turn() -> None:
        go.put_nowait(None)
        await asyncio.wait_for(ready.get(), 10)

    log = RequestLog()
    async with running_sim(seed=41, speed=SPEED, symbols=SYMBOLS, start_ms=START) as sim:
        config = default_exchange_config(
            ExchangeName.COINBASE, 1, rest_url=sim.rest_url(Venue.COINBASE)
        )
        rest = CoinbaseRestClient(config, session=recording_session(log), clock_rate=SPEED)
        now = await rest.server_time_ms()
        sink = _Sink(now - now % MIN - 5 * MIN)
        wave_running = [False]
        sweep = ReconciliationSweep(
            rest,
            CandleCache(redis, CacheSettings()),
            sink,
            exchange_id=1,
            exchange_name="coinbase",
            series=lambda: [(s, Timeframe.M1) for s in SYMBOLS],
            now_ms=lambda: now,
            config=SweepConfig(interval_s=1.0, bars=10, settle_ms=0),
            busy=lambda: wave_running[0],
            sleep=paced,
        )
        runner = asyncio.create_task(sweep.run())
        try:
            await asyncio.wait_for(ready.get(), 10)
            sent = len(log.sent)
            for _ in range(3):
                await turn()
            sink.pending_repairs = 0
            wave_running[0] = True  # other REST work (a boundary wave) goes first too
            for _ in range(2):
                await turn()
            busy = (sweep.stats.skipped_busy, sweep.stats.checks, len(log.sent) - sent)
            wave_running[0] = False
            for _ in range(3):
                await turn()
            idle = (sweep.stats.checks, sweep.stats.rounds, len(log.sent) - sent)
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            await rest.aclose()
            assert rest._session is not None
            await rest._session.close()
    assert busy == (5, 0, 0), "no request while repairs are pending or a wave runs"
    candles = [path for _, path in log.sent[sent:] if path.endswith("/candles")]
    assert idle == (3, 1, len(candles)) and len(candles) == 3, (idle, log.sent[sent:])
