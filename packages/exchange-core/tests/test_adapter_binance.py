from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

from livermore_exchange_core.adapters.binance.adapter import BinanceAdapter
from livermore_exchange_core.backoff import BackoffPolicy
from livermore_exchange_core.config import default_exchange_config
from livermore_exchange_core.factory import create_rest_client
from livermore_exchange_core.websocket import ConnectionAttemptLimiter, SocketPolicy
from livermore_exchange_sim.faults import WsAction, WsActionKind
from livermore_exchange_sim.market import Venue
from livermore_exchange_sim.testing import running_sim
from livermore_schema.enums import RUNTIME_TIMEFRAMES, ExchangeName, Timeframe
from livermore_schema.timeframes import duration_ms

from ._streaming import assert_matches_truth, gap_repairer, wired_pipeline

SPEED = 600.0
HOUR = 3_600_000
START = 1_712_181_600_000  # 2024-04-03 22:00 UTC: the window crosses 4h and 1d boundaries
SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
FAST = SocketPolicy(
    stall_timeout_s=0.5,
    open_timeout_s=5.0,
    close_timeout_s=0.5,
    backoff=BackoffPolicy(base_s=0.02, cap_s=0.3),
)


def _adapter(sim: Any, sink: Any, clock: Any, **kw: Any) -> tuple[BinanceAdapter, Any]:
    config = default_exchange_config(
        ExchangeName.BINANCE,
        2,
        rest_url=sim.rest_url(Venue.BINANCE),
        ws_url=sim.ws_url(Venue.BINANCE),
    )
    adapter = BinanceAdapter(config, sink, clock=clock, rng=random.Random(5), **kw)
    return adapter, config


FAULTS = [
    WsAction(WsActionKind.CLOSE, 1000),
    WsAction(WsActionKind.MALFORMED),
    WsAction(WsActionKind.CLOSE, 1001),
    WsAction(WsActionKind.DROP),
    WsAction(WsActionKind.SERVER_SHUTDOWN),
    WsAction(WsActionKind.CLOSE, 1011),
    WsAction(WsActionKind.SKIP_SEQUENCE),
    WsAction(WsActionKind.CLOSE, 1008),
]


async def test_binance_cache_equals_truth_through_every_fault(redis: Any) -> None:
    async with running_sim(seed=21, speed=SPEED, symbols=SYMBOLS, start_ms=START) as sim:
        rest = None
        config = default_exchange_config(
            ExchangeName.BINANCE, 2, rest_url=sim.rest_url(Venue.BINANCE)
        )
        rest = create_rest_client(config, clock_rate=SPEED)
        repairer = gap_repairer(redis, rest, 2, "binance")
        async with wired_pipeline(
            redis, exchange_id=2, exchange_name="binance", repairer=repairer, rest_lag_ms=15_000
        ) as wired:
            adapter, _ = _adapter(sim, wired.pipeline, wired.clock, policy=FAST)
            socket_reconnects = 0
            await adapter.subscribe(SYMBOLS, RUNTIME_TIMEFRAMES)
            await adapter.connect()
            try:
                conn = adapter._connections[0].socket
                await asyncio.wait_for(conn.wait_connections(1), 10)
                await asyncio.wait_for(wired.clock.wait_until(START + 1), 10)
                begun = wired.clock.now_ms()
                rng = random.Random(3)
                faults = [*FAULTS, "stall"]
                rng.shuffle(faults)
                for fault in faults:
                    target = wired.clock.now_ms() + rng.randint(8, 20) * 60_000
                    await asyncio.wait_for(wired.clock.wait_until(target), 20)
                    if fault == "stall":
                        sim.faults.stall(Venue.BINANCE, sim_seconds=600)
                    else:
                        sim.faults.inject_ws(Venue.BINANCE, fault)
                    if fault != WsAction(WsActionKind.MALFORMED) and fault != WsAction(
                        WsActionKind.SKIP_SEQUENCE
                    ):
                        socket_reconnects += 1
                        await asyncio.wait_for(conn.wait_connections(socket_reconnects + 1), 20)
                await asyncio.wait_for(wired.clock.wait_until(begun + 3 * HOUR), 30)
            finally:
                await adapter.close()
            await asyncio.wait_for(wired.pipeline.drain(), 30)
        await rest.aclose()
        stats = wired.pipeline.stats
        assert stats.repairs > 0, "reconnects must have caused REST repairs"
        assert stats.repaired > 0 and stats.repair_failures == 0
        assert conn.connections >= socket_reconnects + 1  # a stall may outlast one reconnect
        for symbol in SYMBOLS:
            for timeframe in RUNTIME_TIMEFRAMES:
                cached = await wired.candles.between(2, symbol, timeframe, 0, 2**62)
                label = f"{symbol} {timeframe.value}"
                assert cached, label
                step = duration_ms(timeframe)
                first, last = cached[0].open_time, cached[-1].open_time
                truth = sim.truth(Venue.BINANCE, symbol, step, first, last + 1)
                assert_matches_truth(cached, truth, label)
                if step <= HOUR:
                    assert last - first >= 2 * HOUR, f"{label}: window too short"


async def _until(clock: Any, predicate: Callable[[], bool], within_s: float) -> None:
    """Return once `predicate()` holds, checking each time the exchange clock moves a second."""
    async with asyncio.timeout(within_s):
        while not predicate():
            await clock.wait_until(clock.now_ms() + 1_000)


async def test_resubscribe_storm_is_paced_and_streams_split_across_connections(redis: Any) -> None:
    async with running_sim(seed=5, speed=SPEED, symbols=SYMBOLS, start_ms=START) as sim:
        async with wired_pipeline(
            redis, exchange_id=2, exchange_name="binance", repairer=None
        ) as wired:
            events: list[Any] = []
            original = wired.pipeline.on_lifecycle

            async def record(event: Any) -> None:
                events.append(event)
                await original(event)

            wired.pipeline.on_lifecycle = record  # type: ignore[method-assign]
            adapter, _ = _adapter(
                sim,
                wired.pipeline,
                wired.clock,
                policy=FAST,
                max_streams_per_connection=8,
                streams_per_message=1,  # one SUBSCRIBE per stream: a worst-case burst
                attempt_limiter=ConnectionAttemptLimiter(240, 300.0),
            )
            await adapter.subscribe(SYMBOLS, RUNTIME_TIMEFRAMES)
            assert adapter.connection_count == 3  # 21 streams, 8 per connection
            await adapter.connect()
            try:
                sockets = [c.socket for c in adapter._connections]
                streams = [len(c.streams) for c in adapter._connections]
                for round_ in range(1, 5):
                    if round_ > 1:
                        sim.faults.inject_ws(Venue.BINANCE, WsAction(WsActionKind.CLOSE, 1000))
                    for socket in sockets:
                        await asyncio.wait_for(socket.wait_connections(round_), 20)
                    # Every connection re-sends its streams, paced (8 take about 2 s of wall time).
                    await _until(
                        wired.clock,
                        lambda n=round_: all(
                            s.frames_sent >= n * k for s, k in zip(sockets, streams, strict=True)
                        ),
                        20,
                    )
                    await asyncio.wait_for(adapter.wait_ready(), 20)
                # Let bars close on the resubscribed streams.
                await asyncio.wait_for(
                    wired.clock.wait_until(wired.clock.now_ms() + 30 * 60_000), 20
                )
            finally:
                await adapter.close()
            await asyncio.wait_for(wired.pipeline.drain(), 10)
        reasons = [e.reason or "" for e in events]
        assert not any("1008" in r for r in reasons), reasons
        assert all(s.connections == 4 for s in sockets)
        assert sum(s.frames_sent for s in sockets) == 4 * 21, [s.frames_sent for s in sockets]
        for symbol in SYMBOLS:
            assert wired.pipeline.last_open_time(symbol, Timeframe.M1) is not None
