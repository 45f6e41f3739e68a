"""End to end: a Coinbase worker and a Binance worker side by side, one alert subscriber for both.

The simulator scripts a BTC excursion on every venue that drives the 1m MACD-V through +150 a
few seconds after both workers stream; one subscriber on `channel:alerts:*` must hear both
exchanges, each alert naming its source, and the two exchanges' candles never share a key.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from livermore_cache import channels, keys
from livermore_cache.scan import iter_matching
from livermore_exchange_sim.scenarios import macdv_excursion
from livermore_exchange_sim.testing import running_sim
from livermore_schema.alerts import AlertEvent
from livermore_schema.enums import ConnectionState

COINBASE, BINANCE = 1, 2
MINUTE_MS = 60_000


def _connected(exchange_id: int) -> Callable[[Any], bool]:
    return lambda e: (
        e.exchange_id == exchange_id
        and e.state is ConnectionState.CONNECTED
        and e.progress is not None
        and e.progress.phase == "complete"
    )


async def test_alerts_from_both_exchanges_reach_one_subscriber(
    seeded_symbols: dict[int, tuple[str, ...]],
    spawn_worker: Callable[..., Any],
    redis: Redis,
    lifecycle: Any,
    alerts: Any,
) -> None:
    start_ms = int(time.time() * 1000) // MINUTE_MS * MINUTE_MS
    excursion = macdv_excursion("BTC", start_ms + 8 * MINUTE_MS, timeframe_ms=MINUTE_MS)
    async with running_sim(
        seed=5, speed=60.0, symbols=["BTC", "ETH"], scenarios=[excursion], start_ms=start_ms
    ) as sim:
        spawn_worker("coinbase", "--autostart", sim=sim)
        spawn_worker("binance", "--autostart", sim=sim)
        await lifecycle.wait_for(_connected(COINBASE), 60, "coinbase connected")
        await lifecycle.wait_for(_connected(BINANCE), 60, "binance connected")

        def from_exchange(exchange_id: int) -> Callable[[AlertEvent], bool]:
            return lambda a: a.source_exchange_id == exchange_id and a.symbol.startswith("BTC")

        coinbase = await alerts.wait_for(from_exchange(COINBASE), 60, "a Coinbase alert")
        binance = await alerts.wait_for(from_exchange(BINANCE), 60, "a Binance alert")

    assert (coinbase.source_exchange_name, coinbase.symbol) == ("coinbase", "BTC-USD")
    assert (binance.source_exchange_name, binance.symbol) == ("binance", "BTCUSDT")
    for channel, event in alerts.items:
        assert channel == channels.alerts_channel(event.exchange_id)
        assert event.source_exchange_id == event.exchange_id and event.price > 0
    seen = [
        (a.exchange_id, a.symbol, a.timeframe, a.trigger_label, a.triggered_at)
        for _, a in alerts.items
    ]
    assert len(seen) == len(set(seen)), "an alert fired twice"

    coinbase_keys = {k async for k in iter_matching(redis, keys.candles_pattern(COINBASE))}
    binance_keys = {k async for k in iter_matching(redis, keys.candles_pattern(BINANCE))}
    assert coinbase_keys and binance_keys and not coinbase_keys & binance_keys
    assert all(keys.parse_candles_key(k).symbol.endswith("-USD") for k in coinbase_keys)
    assert all(keys.parse_candles_key(k).symbol.endswith("USDT") for k in binance_keys)
