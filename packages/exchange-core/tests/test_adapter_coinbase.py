from __future__ import annotations

import asyncio
import json
import random
from typing import Any

from livermore_cache import channels
from livermore_cache.candles import CandleCache
from livermore_exchange_core.adapters.coinbase.adapter import CoinbaseAdapter
from livermore_exchange_core.backfill import StartupBackfill
from livermore_exchange_core.backoff import BackoffPolicy
from livermore_exchange_core.boundary import HIGHER_TIMEFRAMES, BoundaryRestService
from livermore_exchange_core.config import default_exchange_config
from livermore_exchange_core.factory import create_rest_client
from livermore_exchange_core.websocket import SocketPolicy
from livermore_exchange_sim.faults import WsAction, WsActionKind
from livermore_exchange_sim.market import Venue
from livermore_exchange_sim.testing import running_sim
from livermore_schema.enums import RUNTIME_TIMEFRAMES, ExchangeName, Timeframe
from livermore_schema.market import Candle
from livermore_schema.settings import CacheSettings
from livermore_schema.timeframes import duration_ms

from ._streaming import assert_matches_truth, gap_repairer, wired_pipeline


class RecordingSink:
    """Keeps what the adapter delivers, in order."""

    def __init__(self) -> None:
        self.items: list[tuple[str, Any]] = []

    async def on_candle(self, candle: Candle) -> None:
        self.items.append(("close", candle))

    async def on_candle_revised(self, candle: Candle) -> None:
        self.items.append(("revise", candle))

    def on_ticker(self, ticker: Any) -> None:
        pass

    def on_order_book(self, book: Any) -> None:
        pass

    async def on_gap(self, notice: Any) -> None:
        self.items.append(("gap", notice))

    async def on_lifecycle(self, event: Any) -> None:
        pass


def _envelope(channel: str, seq: int, stamp: str, events: list[dict[str, Any]]) -> str:
    body = {"channel": channel, "client_id": "", "timestamp": stamp, "sequence_num": seq}
    return json.dumps(body | {"events": events})


def _heartbeat(seq: int, counter: int, hms: str) -> str:
    current = f"2024-04-04 {hms}.000000000 +0000 UTC m=+10.0"
    event = {"current_time": current, "heartbeat_counter": counter}
    return _envelope("heartbeats", seq, f"2024-04-04T{hms}Z", [event])


def _trades(seq: int, hms: str, trades: list[tuple[int, str, str, str]]) -> str:
    rows = [
        {
            "trade_id": str(i),
            "product_id": "BTC-USD",
            "price": p,
            "size": q,
            "side": "BUY",
            "time": f"2024-04-04T{t}Z",
        }
        for i, t, p, q in trades
    ]
    return _envelope(
        "market_trades", seq, f"2024-04-04T{hms}Z", [{"type": "update", "trades": rows}]
    )


def _candle(seq: int, hms: str, start_s: int, ohlcv: tuple[str, ...]) -> str:
    bucket = dict(zip(("open", "high", "low", "close", "volume"), ohlcv, strict=True))
    bucket |= {"start": str(start_s), "product_id": "BTC-USD"}
    return _envelope(
        "candles", seq, f"2024-04-04T{hms}Z", [{"type": "update", "candles": [bucket]}]
    )


async def test_late_frames_after_an_on_time_close_revise_the_closed_bars() -> None:
    """A heartbeat past the minute closes it; trades of that minute arriving after revise it."""
    config = default_exchange_config(ExchangeName.COINBASE, 1)
    sink = RecordingSink()
    adapter = CoinbaseAdapter(config, sink, trade_grace_ms=2_000, candle_grace_ms=5_000)
    await adapter.subscribe(["BTC-USD"], [Timeframe.M1, Timeframe.M5])
    five = 1_712_232_000  # 12:00:00 UTC, seconds
    frames = [
        _trades(
            1, "12:00:30", [(1002, "12:00:20", "101.5", "0.2"), (1001, "12:00:01", "100", "1")]
        ),
        _candle(2, "12:00:30", five, ("100", "101.5", "100", "101.5", "1.2")),
        _heartbeat(3, 1, "12:05:06"),  # closes 12:00 (1m and 5m) on exchange time
        _candle(4, "12:05:06", five, ("100", "103", "99", "99.5", "1.7")),  # 5m final values
        _trades(
            5,
            "12:05:06",
            [
                (1005, "12:05:01", "99.5", "0.1"),
                (1004, "12:00:59", "99.5", "0.4"),  # late for the closed 12:00 minute
                (1003, "12:00:45", "103", "0.1"),
            ],
        ),
        _trades(6, "12:05:06", [(1004, "12:00:59", "99.5", "0.4")]),  # a re-delivery
    ]
    for raw in frames:
        await adapter._on_frame(raw)
    kinds = [(kind, c.timeframe.value, c.open_time, c.close, c.volume) for kind, c in sink.items]
    t0 = five * 1000
    assert kinds == [
        ("close", "1m", t0, 101.5, 1.2),
        ("close", "5m", t0, 101.5, 1.2),
        ("revise", "5m", t0, 99.5, 1.7),
        ("revise", "1m", t0, 99.5, 1.7),
    ]
    [revised_1m] = [c for kind, c in sink.items if kind == "revise" and c.timeframe is Timeframe.M1]
    assert (revised_1m.open, revised_1m.high, revised_1m.low) == (100.0, 103.0, 99.5)
    assert adapter._minutes.revised == 1 and adapter._fives.revised == 1
    assert adapter.gaps_detected == 0


SPEED = 1000.0
MINUTE = 60_000
HOUR = 3_600_000
START = 1_712_185_200_000  # 2024-04-03 23:00 UTC: 4h boundaries at 00:00 and 04:00, 1d at 00:00
END = START + 5 * HOUR  # 04:00 UTC
BACKFILL_BARS = 4
STALL_S = 1_500
SYMBOLS = ["BTC-USD", "ETH-USD", "SOL-USD"]
FAST = SocketPolicy(
    stall_timeout_s=0.5,
    open_timeout_s=5.0,
    close_timeout_s=0.5,
    messages_per_second=6.0,
    backoff=BackoffPolicy(base_s=0.02, cap_s=0.3),
)
FAULTS: list[WsAction | str] = [
    WsAction(WsActionKind.CLOSE, 1000),
    WsAction(WsActionKind.CLOSE, 1001),
    WsAction(WsActionKind.CLOSE, 1011),
    WsAction(WsActionKind.DROP),
    WsAction(WsActionKind.SKIP_SEQUENCE),
    WsAction(WsActionKind.SKIP_HEARTBEAT),
    WsAction(WsActionKind.MALFORMED),
    WsAction(WsActionKind.OMIT_CLIENT_ID),
    "stall",
]
_NO_RECONNECT = {
    WsAction(WsActionKind.SKIP_SEQUENCE),
    WsAction(WsActionKind.SKIP_HEARTBEAT),
    WsAction(WsActionKind.MALFORMED),
    WsAction(WsActionKind.OMIT_CLIENT_ID),
}


async def test_coinbase_every_timeframe_equals_truth_through_every_fault(redis: Any) -> None:
    """1m/5m streamed and 15m/1h/4h/1d from boundary waves, wired as the worker wires them.

    As in `livermore_worker.wiring`: startup backfill, then connect, then the boundary service
    (5m close -> one wave per boundary -> the same pipeline: write, publish), the real
    `GapRepairer` behind the pipeline. The whole cached history, backfilled and streamed, must
    equal the simulator's truth: no missing bar, no duplicate, no unfinished bar.
    """
    async with running_sim(seed=33, speed=SPEED, symbols=SYMBOLS, start_ms=START) as sim:
        config = default_exchange_config(
            ExchangeName.COINBASE,
            1,
            rest_url=sim.rest_url(Venue.COINBASE),
            ws_url=sim.ws_url(Venue.COINBASE),
        )
        rest = create_rest_client(config, clock_rate=SPEED)
        settings = CacheSettings()
        cache = CandleCache(redis, settings)
        closes = redis.pubsub()
        await closes.subscribe(
            *(channels.candle_close_channel(1, s, tf) for s in SYMBOLS for tf in HIGHER_TIMEFRAMES)
        )

        backfill = StartupBackfill(
            rest,
            cache,
            exchange_id=1,
            exchange_name="coinbase",
            candles_per_series=BACKFILL_BARS,
        )
        report = await backfill.run(SYMBOLS, RUNTIME_TIMEFRAMES)
        assert report.ok, report
        backfilled = {
            (symbol, tf): {c.open_time for c in await cache.between(1, symbol, tf, 0, 2**62)}
            for symbol in SYMBOLS
            for tf in HIGHER_TIMEFRAMES
        }
        async with wired_pipeline(
            redis,
            exchange_id=1,
            exchange_name="coinbase",
            repairer=gap_repairer(redis, rest, 1, "coinbase"),
            rest_lag_ms=15_000,
        ) as wired:
            boundary = BoundaryRestService(  # as the worker's start_boundary: the same pipeline
                rest,
                cache,
                exchange_id=1,
                exchange_name="coinbase",
                sink=wired.pipeline,
                symbols=SYMBOLS,
            )
            wired.pipeline.stage.followers.append(boundary)
            # At 1000x the sim batches 20 simulated seconds per frame, heartbeats first: the
            # grace covers that batching (as 2 s covers Coinbase's real-time delivery); what a
            # loaded machine delays beyond it arrives as revisions of the closed bars.
            adapter = CoinbaseAdapter(
                config,
                wired.pipeline,
                policy=FAST,
                clock=wired.clock,
                rng=random.Random(5),
                trade_grace_ms=30_000,
                candle_grace_ms=30_000,
            )
            await adapter.subscribe(SYMBOLS, RUNTIME_TIMEFRAMES)
            assert {tf for _, tf in adapter.subscriptions} == {Timeframe.M1, Timeframe.M5}
            await adapter.connect()
            try:
                await asyncio.wait_for(adapter.socket.wait_connections(1), 10)
                await asyncio.wait_for(wired.clock.wait_until(START + 1), 10)
                started = wired.clock.now_ms()
                boundary.start_after(started)  # as the worker's start_boundary
                await _inject_faults(sim, adapter, wired.clock)
                # Past 04:00 + the 5m grace: the wave of the second 4h boundary has started.
                await asyncio.wait_for(wired.clock.wait_until(END + 5 * MINUTE), 30)
            finally:
                await adapter.close()
            while True:  # a flushed 5m close may start a wave, whose bars join the pipeline
                waves = boundary.waves
                await asyncio.wait_for(wired.pipeline.drain(), 30)
                await asyncio.wait_for(boundary.drain(), 30)
                await asyncio.wait_for(wired.pipeline.drain(), 30)
                if boundary.waves == waves:  # no wave started meanwhile: all of it is stored
                    break
        await rest.aclose()
        published = await asyncio.wait_for(_published_until_marker(redis, closes), 10)
        await closes.aclose()
        stats = wired.pipeline.stats
        assert adapter.gaps_detected >= 2  # skipped sequence and skipped heartbeat
        assert stats.repair_failures == 0 and stats.repaired > 0
        for symbol in SYMBOLS:
            for timeframe in RUNTIME_TIMEFRAMES:
                cached = await wired.candles.between(1, symbol, timeframe, 0, 2**62)
                label = f"{symbol} {timeframe.value}"
                assert cached, label
                step = duration_ms(timeframe)
                first, last = cached[0].open_time, cached[-1].open_time
                truth = sim.truth(Venue.COINBASE, symbol, step, first, last + 1)
                assert_matches_truth(cached, truth, label)
                assert first < started, f"{label}: the backfilled history is gone"
                assert last >= END // step * step - step, f"{label}: ends early"
                if timeframe in HIGHER_TIMEFRAMES:  # each written bar was published once
                    sent = [c for c in published if (c.symbol, c.timeframe) == (symbol, timeframe)]
                    streamed = [c.open_time for c in cached]
                    streamed = [t for t in streamed if t not in backfilled[symbol, timeframe]]
                    assert sorted(c.open_time for c in sent) == streamed, label
        fifteen = duration_ms(Timeframe.M15)
        assert boundary.waves == END // fifteen - started // fifteen  # one per boundary


async def _inject_faults(sim: Any, adapter: CoinbaseAdapter, clock: Any) -> None:
    """Every fault once, in a seeded order, 8 to 16 simulated minutes apart.

    A stall freezes the exchange clock, so the fault after it waits until the stream has been
    flowing again for a while: a skipped heartbeat before a connection's first heartbeat would
    be invisible (and harmless: a new connection is untrusted anyway).
    """
    rng = random.Random(4)
    faults = list(FAULTS)
    rng.shuffle(faults)
    expected_connections = 1
    not_before = 0
    for fault in faults:
        target = max(clock.now_ms() + rng.randint(8, 16) * MINUTE, not_before)
        await asyncio.wait_for(clock.wait_until(target), 20)
        if isinstance(fault, str):
            # 1.5 s of wall time at 1000x: three times the watchdog's 0.5 s, so a loaded
            # machine still sees the silence.
            not_before = clock.now_ms() + (STALL_S * 1000 + 3 * MINUTE)
            sim.faults.stall(Venue.COINBASE, sim_seconds=STALL_S)
        else:
            sim.faults.inject_ws(Venue.COINBASE, fault)
        if fault not in _NO_RECONNECT:
            expected_connections += 1
            await asyncio.wait_for(adapter.socket.wait_connections(expected_connections), 20)


async def _published_until_marker(redis: Any, pubsub: Any) -> list[Candle]:
    """Every candle-close received on `pubsub` (subscribed before anything was published)."""
    marker = channels.candle_close_channel(1, SYMBOLS[0], Timeframe.D1)
    await redis.publish(marker, "end")
    got: list[Candle] = []
    while True:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
        if message is None:
            continue
        if message["data"] in ("end", b"end"):
            return got
        got.append(Candle.model_validate_json(message["data"]))
