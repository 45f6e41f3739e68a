"""A symbol the exchange refuses at subscribe time is reported; the others stream.

Both venues refuse a subscribe request whole when it names an unknown symbol; the adapters
isolate the unknown one, report it in `rejected` and count the refusal as an answer, so
`wait_ready` returns instead of timing out.
"""

from __future__ import annotations

import asyncio
import random

from livermore_exchange_core.adapters.binance.adapter import BinanceAdapter
from livermore_exchange_core.adapters.coinbase.adapter import CoinbaseAdapter
from livermore_exchange_core.clock import ExchangeClock
from livermore_exchange_core.config import default_exchange_config
from livermore_exchange_core.refusals import Refusals
from livermore_exchange_sim.market import Venue
from livermore_exchange_sim.testing import running_sim
from livermore_schema.enums import RUNTIME_TIMEFRAMES, ExchangeName, Timeframe

from .test_adapter_ready import NullSink, sim_binance_streams, sim_coinbase_subscriptions


def test_a_named_symbol_is_rejected_and_the_rest_retried_together() -> None:
    refusals = Refusals("coinbase")
    retries = refusals.narrow(["BTC-USD", "NOPE-USD", "ETH-USD"], "NOPE-USD is not a valid product")
    assert retries == [["BTC-USD", "ETH-USD"]]
    assert refusals.rejected == {"NOPE-USD": "NOPE-USD is not a valid product"}


def test_an_unnamed_refusal_retries_symbol_by_symbol_and_rejects_a_lone_one() -> None:
    refusals = Refusals("binance")
    assert refusals.narrow(["BTCUSDT", "NOPEUSDT"], "2: invalid stream") == [
        ["BTCUSDT"],
        ["NOPEUSDT"],
    ]
    assert refusals.rejected == {}
    assert refusals.narrow(["NOPEUSDT"], "2: invalid stream") == []
    assert refusals.rejected == {"NOPEUSDT": "2: invalid stream"}
    refusals.forgive(["NOPEUSDT"])
    assert refusals.rejected == {}


async def test_coinbase_reports_an_unknown_product_and_streams_the_rest() -> None:
    async with running_sim(seed=3, speed=60.0, symbols=["BTC", "ETH"]) as sim:
        config = default_exchange_config(
            ExchangeName.COINBASE,
            1,
            rest_url=sim.rest_url(Venue.COINBASE),
            ws_url=sim.ws_url(Venue.COINBASE),
        )
        adapter = CoinbaseAdapter(config, NullSink(), clock=ExchangeClock(), rng=random.Random(1))
        await adapter.subscribe(["BTC-USD", "NOPE-USD", "ETH-USD"], [Timeframe.M1, Timeframe.M5])
        try:
            await adapter.connect()
            await asyncio.wait_for(adapter.wait_ready(), 10)
            assert set(adapter.rejected) == {"NOPE-USD"}
            assert "not a valid product" in adapter.rejected["NOPE-USD"]
            [subs] = await sim_coinbase_subscriptions(sim)
            for channel in ("candles", "market_trades", "ticker"):
                assert sorted(subs.get(channel, [])) == ["BTC-USD", "ETH-USD"], channel
            assert {s for s, _ in adapter.subscriptions} == {"BTC-USD", "ETH-USD"}
        finally:
            await adapter.close()


async def test_binance_isolates_an_unknown_symbol_and_streams_the_rest() -> None:
    async with running_sim(seed=3, speed=60.0, symbols=["BTC", "ETH"]) as sim:
        config = default_exchange_config(
            ExchangeName.BINANCE,
            2,
            rest_url=sim.rest_url(Venue.BINANCE),
            ws_url=sim.ws_url(Venue.BINANCE),
        )
        adapter = BinanceAdapter(config, NullSink(), clock=ExchangeClock(), rng=random.Random(1))
        await adapter.subscribe(["BTCUSDT", "NOPEUSDT", "ETHUSDT"], RUNTIME_TIMEFRAMES)
        try:
            await adapter.connect()
            await asyncio.wait_for(adapter.wait_ready(), 10)
            assert set(adapter.rejected) == {"NOPEUSDT"}
            served = sim_binance_streams(sim)
            assert {name.split("@")[0] for name in served} == {"btcusdt", "ethusdt"}
            assert len(served) == 2 * (len(RUNTIME_TIMEFRAMES) + 1)
            assert {s for s, _ in adapter.subscriptions} == {"BTCUSDT", "ETHUSDT"}
        finally:
            await adapter.close()
