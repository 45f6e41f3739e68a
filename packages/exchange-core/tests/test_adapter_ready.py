"""`wait_ready()`: it returns only once the exchange side holds every subscription.

The worker reports `connected` after it, so "connected" means data is flowing, not merely that a
socket is being opened in the background.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import aiohttp
from aiohttp.web_urldispatcher import PrefixedSubAppResource

from livermore_exchange_core.adapters.binance.adapter import BinanceAdapter
from livermore_exchange_core.adapters.coinbase.adapter import CoinbaseAdapter
from livermore_exchange_core.clock import ExchangeClock
from livermore_exchange_core.config import default_exchange_config
from livermore_exchange_sim.binance import BINANCE_HUB
from livermore_exchange_sim.faults import WsAction, WsActionKind
from livermore_exchange_sim.market import Venue
from livermore_exchange_sim.testing import RunningSim, running_sim
from livermore_schema.enums import RUNTIME_TIMEFRAMES, ExchangeName, Timeframe


class NullSink:
    """Accepts whatever the adapter delivers."""

    async def on_candle(self, candle: Any) -> None:
        pass

    async def on_candle_revised(self, candle: Any) -> None:
        pass

    def on_ticker(self, ticker: Any) -> None:
        pass

    def on_order_book(self, book: Any) -> None:
        pass

    async def on_gap(self, notice: Any) -> None:
        pass

    async def on_lifecycle(self, event: Any) -> None:
        pass


def sim_binance_streams(sim: RunningSim) -> set[str]:
    """The streams the simulator serves to live Binance connections."""
    for resource in sim.app.router.resources():
        if isinstance(resource, PrefixedSubAppResource):
            info = resource.get_info()
            if info["prefix"] == "/binance":
                hub = info["app"][BINANCE_HUB]
                return {name for conn in hub.connections for name in conn.streams.streams}
    raise AssertionError("no /binance sub-app")


async def sim_coinbase_subscriptions(sim: RunningSim) -> list[dict[str, list[str]]]:
    """Each live Coinbase connection's channels and products, as the simulator holds them."""
    url = f"{sim.rest_url(Venue.COINBASE)}/_sim/subscriptions"
    async with aiohttp.ClientSession() as http, http.get(url) as reply:
        body: dict[str, list[dict[str, list[str]]]] = await reply.json()
        return body["connections"]


async def test_binance_ready_means_every_stream_is_served() -> None:
    symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    async with running_sim(seed=3, speed=60.0, symbols=["BTC", "ETH", "SOL"]) as sim:
        config = default_exchange_config(
            ExchangeName.BINANCE,
            2,
            rest_url=sim.rest_url(Venue.BINANCE),
            ws_url=sim.ws_url(Venue.BINANCE),
        )
        adapter = BinanceAdapter(
            config,
            NullSink(),
            clock=ExchangeClock(),
            rng=random.Random(1),
            max_streams_per_connection=8,
            streams_per_message=3,  # several paced SUBSCRIBE frames per connection
        )
        await adapter.subscribe(symbols, RUNTIME_TIMEFRAMES)
        expected = {f"{s.lower()}@kline_{tf.value}" for s in symbols for tf in RUNTIME_TIMEFRAMES}
        expected |= {f"{s.lower()}@miniTicker" for s in symbols}
        try:
            await adapter.connect()
            await asyncio.wait_for(adapter.wait_ready(), 20)
            assert sim_binance_streams(sim) == expected  # no window between "ready" and served

            # A reconnect makes the adapter unready until the new connection is resubscribed.
            sim.faults.inject_ws(Venue.BINANCE, WsAction(WsActionKind.CLOSE, 1011))
            for conn in adapter._connections:
                await asyncio.wait_for(conn.socket.wait_connections(2), 20)
            await asyncio.wait_for(adapter.wait_ready(), 20)
            assert sim_binance_streams(sim) == expected
        finally:
            await adapter.close()


async def test_coinbase_ready_means_every_channel_is_subscribed() -> None:
    products = ["BTC-USD", "ETH-USD"]
    async with running_sim(seed=3, speed=60.0, symbols=["BTC", "ETH"]) as sim:
        config = default_exchange_config(
            ExchangeName.COINBASE,
            1,
            rest_url=sim.rest_url(Venue.COINBASE),
            ws_url=sim.ws_url(Venue.COINBASE),
        )
        adapter = CoinbaseAdapter(
            config,
            NullSink(),
            clock=ExchangeClock(),
            rng=random.Random(1),
            products_per_message=1,  # one paced message per product and channel
        )
        await adapter.subscribe(products, [Timeframe.M1, Timeframe.M5])
        try:
            await adapter.connect()
            await asyncio.wait_for(adapter.wait_ready(), 20)
            [subs] = await sim_coinbase_subscriptions(sim)
            for channel in ("candles", "market_trades", "ticker"):
                assert subs.get(channel) == products, channel
            assert "heartbeats" in subs
        finally:
            await adapter.close()
