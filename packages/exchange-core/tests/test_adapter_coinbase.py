from __future__ import annotations

import asyncio
import json
import random
from typing import Any

from livermore_exchange_core.adapters.coinbase.adapter import CoinbaseAdapter
from livermore_exchange_core.backoff import BackoffPolicy
from livermore_exchange_core.config import default_exchange_config
from livermore_exchange_core.factory import create_rest_client
from livermore_exchange_core.websocket import SocketPolicy
from livermore_exchange_sim.faults import WsAction, WsActionKind
from livermore_exchange_sim.market import Venue
from livermore_exchange_sim.testing import running_sim
from livermore_schema.enums import RUNTIME_TIMEFRAMES, ExchangeName, Timeframe
from livermore_schema.market import Candle
from livermore_schema.timeframes import duration_ms

from ._streaming import RestRangeRepairer, assert_matches_truth, wired_pipeline


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


SPEED = 600.0
HOUR = 3_600_000
START = 1_712_181_600_000
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


async def test_coinbase_1m_and_5m_equal_truth_through_every_fault(redis: Any) -> None:
    async with running_sim(seed=33, speed=SPEED, symbols=SYMBOLS, start_ms=START) as sim:
        config = default_exchange_config(
            ExchangeName.COINBASE,
            1,
            rest_url=sim.rest_url(Venue.COINBASE),
            ws_url=sim.ws_url(Venue.COINBASE),
        )
        rest = create_rest_client(config, clock_rate=SPEED)
        repairer = RestRangeRepairer(rest)
        async with wired_pipeline(
            redis, exchange_id=1, exchange_name="coinbase", repairer=repairer, rest_lag_ms=15_000
        ) as wired:
            # At 600x the sim batches 12 simulated seconds per frame, heartbeats first: the
            # grace must cover that batching, as 2 s covers Coinbase's real-time delivery.
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
            expected_connections = 1
            try:
                await asyncio.wait_for(adapter.socket.wait_connections(1), 10)
                await asyncio.wait_for(wired.clock.wait_until(START + 1), 10)
                begun = wired.clock.now_ms()
                rng = random.Random(4)
                faults = list(FAULTS)
                rng.shuffle(faults)
                for fault in faults:
                    target = wired.clock.now_ms() + rng.randint(8, 20) * 60_000
                    await asyncio.wait_for(wired.clock.wait_until(target), 20)
                    if isinstance(fault, str):
                        sim.faults.stall(Venue.COINBASE, sim_seconds=600)
                    else:
                        sim.faults.inject_ws(Venue.COINBASE, fault)
                    if fault not in _NO_RECONNECT:
                        expected_connections += 1
                        await asyncio.wait_for(
                            adapter.socket.wait_connections(expected_connections), 20
                        )
                await asyncio.wait_for(wired.clock.wait_until(begun + 3 * HOUR), 30)
            finally:
                await adapter.close()
            await asyncio.wait_for(wired.pipeline.drain(), 30)
        await rest.aclose()
        assert adapter.gaps_detected >= 2  # skipped sequence and skipped heartbeat
        assert wired.pipeline.stats.repair_failures == 0
        assert wired.pipeline.stats.repaired > 0
        for symbol in SYMBOLS:
            for timeframe in (Timeframe.M1, Timeframe.M5):
                cached = await wired.candles.between(1, symbol, timeframe, 0, 2**62)
                label = f"{symbol} {timeframe.value}"
                assert cached, label
                first, last = cached[0].open_time, cached[-1].open_time
                truth = sim.truth(Venue.COINBASE, symbol, duration_ms(timeframe), first, last + 1)
                assert_matches_truth(cached, truth, label)
                assert last - first >= 2 * HOUR, f"{label}: window too short"
