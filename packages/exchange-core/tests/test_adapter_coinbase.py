from __future__ import annotations

import asyncio
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
from livermore_schema.timeframes import duration_ms

from ._streaming import RestRangeRepairer, assert_matches_truth, wired_pipeline

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
