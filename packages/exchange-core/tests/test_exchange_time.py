"""A wrong `LIVERMORE_EXCHANGE_CLOCK_RATE` can delay a close, never lose or misplace a bar.

A Binance adapter streams from the simulator into the real pipeline on Redis, its gaps repaired
over REST by a client configured with a rate half, twice or nothing like (1.0) the simulator's
speed; reconnects and a stall force repairs whose newest bars are judged closed by that client's
`ServerClock`. The cache must end equal to the simulator's ground truth.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from livermore_exchange_core.adapters.binance.adapter import BinanceAdapter
from livermore_exchange_core.backoff import BackoffPolicy
from livermore_exchange_core.config import default_exchange_config
from livermore_exchange_core.factory import create_rest_client
from livermore_exchange_core.websocket import SocketPolicy
from livermore_exchange_sim.faults import WsAction, WsActionKind
from livermore_exchange_sim.market import Venue
from livermore_exchange_sim.testing import running_sim
from livermore_schema.enums import ExchangeName, Timeframe
from livermore_schema.timeframes import duration_ms

from ._streaming import assert_matches_truth, gap_repairer, wired_pipeline

SPEED = 600.0
MIN = 60_000
START = 1_712_181_600_000
SYMBOLS = ["BTCUSDT", "ETHUSDT"]
TIMEFRAMES = (Timeframe.M1, Timeframe.M5)
FAST = SocketPolicy(
    stall_timeout_s=0.5,
    open_timeout_s=5.0,
    close_timeout_s=0.5,
    backoff=BackoffPolicy(base_s=0.02, cap_s=0.3),
)


@pytest.mark.parametrize(
    ("rate", "follow_events"),
    [
        (SPEED / 2, True),
        (SPEED * 2, True),
        (1.0, True),
        (SPEED / 2, False),
        (SPEED * 2, False),
        (1.0, False),
    ],
    ids=["half-events", "double-events", "unset-events", "half", "double", "unset"],
)
async def test_cache_equals_truth_whatever_rate_was_configured(
    redis: Any, rate: float, follow_events: bool
) -> None:
    async with running_sim(seed=31, speed=SPEED, symbols=SYMBOLS, start_ms=START) as sim:
        config = default_exchange_config(
            ExchangeName.BINANCE,
            2,
            rest_url=sim.rest_url(Venue.BINANCE),
            ws_url=sim.ws_url(Venue.BINANCE),
        )
        rest = create_rest_client(config, clock_rate=rate)
        await rest.server_time_ms()  # anchored at the start, as the startup backfill does
        repairer = gap_repairer(redis, rest, 2, "binance")
        async with wired_pipeline(
            redis, exchange_id=2, exchange_name="binance", repairer=repairer, rest_lag_ms=1_000
        ) as wired:
            if follow_events:
                rest.clock.follow(wired.clock.now_ms)  # type: ignore[attr-defined]
            adapter = BinanceAdapter(
                config, wired.pipeline, clock=wired.clock, rng=random.Random(5), policy=FAST
            )
            await adapter.subscribe(SYMBOLS, TIMEFRAMES)
            await adapter.connect()
            try:
                socket = adapter._connections[0].socket
                await asyncio.wait_for(wired.clock.wait_until(START + 1), 10)
                begun = wired.clock.now_ms()
                for round_, fault in enumerate(("drop", "stall", "close"), start=1):
                    target = wired.clock.now_ms() + 12 * MIN
                    await asyncio.wait_for(wired.clock.wait_until(target), 20)
                    if fault == "stall":
                        sim.faults.stall(Venue.BINANCE, sim_seconds=400)
                    else:
                        kind = WsActionKind.DROP if fault == "drop" else WsActionKind.CLOSE
                        sim.faults.inject_ws(Venue.BINANCE, WsAction(kind, 1000))
                    await asyncio.wait_for(socket.wait_connections(round_ + 1), 20)
                await asyncio.wait_for(wired.clock.wait_until(begun + 60 * MIN), 30)
                newest = {s: await rest.get_candles(s, Timeframe.M1, limit=3) for s in SYMBOLS}
                asked_at = sim.clock.now_ms()
            finally:
                await adapter.close()
            await asyncio.wait_for(wired.pipeline.drain(), 60)
        await rest.aclose()
        stats = wired.pipeline.stats
        for symbol, bars in newest.items():  # the newest bars REST calls closed really are
            assert all(b.closed and b.open_time + MIN <= asked_at for b in bars), bars
            truth = sim.truth(Venue.BINANCE, symbol, MIN, bars[0].open_time, asked_at)
            assert_matches_truth(bars, truth[: len(bars)], f"{symbol} newest at rate {rate:g}")
        assert stats.repairs > 0 and stats.repair_failures == 0, stats
        for symbol in SYMBOLS:
            for timeframe in TIMEFRAMES:
                cached = await wired.candles.between(2, symbol, timeframe, 0, 2**62)
                label = f"{symbol} {timeframe.value} at rate {rate:g}"
                step = duration_ms(timeframe)
                first, last = cached[0].open_time, cached[-1].open_time
                assert last - first >= 50 * MIN, f"{label}: window too short"
                truth = sim.truth(Venue.BINANCE, symbol, step, first, last + 1)
                assert_matches_truth(cached, truth, label)
