"""End to end: a Coinbase worker and a Binance worker side by side, one alert subscriber for both.

Once both workers stream, the simulator scripts a BTC excursion on every venue that drives the
1m MACD-V through +150 a few seconds later; one subscriber on `channel:alerts:*` must hear both
exchanges, each alert naming its source. The two streams stay separate: each exchange's candle
keys hold that exchange's own bars (equal to its venue's truth, which differs from the other's),
and each alert carries the MACD-V of its own exchange's candles, not the other's.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from livermore_cache import channels, keys
from livermore_cache.candles import CandleCache
from livermore_cache.scan import iter_matching
from livermore_exchange_core.indicators.macdv import latest_macd_v
from livermore_exchange_sim.market import Venue
from livermore_exchange_sim.scenarios import macdv_excursion
from livermore_exchange_sim.testing import running_sim
from livermore_schema.alerts import AlertEvent
from livermore_schema.enums import ConnectionState, Timeframe
from livermore_schema.market import Candle
from livermore_schema.settings import CacheSettings
from livermore_schema.timeframes import duration_ms

COINBASE, BINANCE = 1, 2
MINUTE_MS = 60_000
HOURS = 3 * 3_600_000
"""Truth reaches this far back: the 60-bar 1m backfill starts an hour before the sim's start."""


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
    async with running_sim(seed=5, speed=60.0, symbols=["BTC", "ETH"], start_ms=start_ms) as sim:
        spawn_worker("coinbase", "--autostart", sim=sim)
        spawn_worker("binance", "--autostart", sim=sim)
        await lifecycle.wait_for(_connected(COINBASE), 60, "coinbase connected")
        await lifecycle.wait_for(_connected(BINANCE), 60, "binance connected")
        next_minute = (sim.clock.now_ms() // MINUTE_MS + 1) * MINUTE_MS
        excursion = macdv_excursion("BTC", next_minute, timeframe_ms=MINUTE_MS)
        sim.market.scenarios = (*sim.market.scenarios, excursion)

        def from_exchange(exchange_id: int) -> Callable[[AlertEvent], bool]:
            return lambda a: a.source_exchange_id == exchange_id and a.symbol.startswith("BTC")

        coinbase = await alerts.wait_for(from_exchange(COINBASE), 60, "a Coinbase alert")
        binance = await alerts.wait_for(from_exchange(BINANCE), 60, "a Binance alert")
        fired = [event for _, event in alerts.items]  # their bars are cached by now
        cached = {  # read before `now`: every bar in it closed before then
            exchange_id: await _closed(redis, exchange_id, symbol, Timeframe.M1)
            for exchange_id, symbol in ((COINBASE, "BTC-USD"), (BINANCE, "BTCUSDT"))
        }
        histories = {  # each alert's series on its own exchange and on the other one
            event.id: [
                await _closed(redis, exchange_id, symbol, event.timeframe)
                for exchange_id, symbol in _own_and_other(event)
            ]
            for event in fired
        }
        now = sim.clock.now_ms()
        truths = {
            exchange_id: {
                b.open_time: b for b in sim.truth(venue, symbol, MINUTE_MS, start_ms - HOURS, now)
            }
            for exchange_id, venue, symbol in (
                (COINBASE, Venue.COINBASE, "BTC-USD"),
                (BINANCE, Venue.BINANCE, "BTCUSDT"),
            )
        }

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

    _assert_own_venue(truths, cached)
    exact: set[int] = set()
    for event in fired:  # every alert carries its own exchange's MACD-V, not the other's
        own_history, other_history = histories[event.id]
        own = _macd_v_at(own_history, event)
        assert own is not None, event
        other = _macd_v_at(other_history, event)
        if other is not None:
            assert abs(event.trigger_value - own) < abs(event.trigger_value - other), (own, other)
        if math.isclose(event.trigger_value, own, rel_tol=1e-6):
            exact.add(event.exchange_id)  # (a bar revised after its alert moves it a little)
    assert exact == {COINBASE, BINANCE}, fired
    for exchange_id in (COINBASE, BINANCE):
        for key in [k async for k in iter_matching(redis, keys.candles_pattern(exchange_id))]:
            member = await redis.zrange(key, -1, -1)
            candle = Candle.model_validate_json(member[0])
            assert (candle.exchange_id, keys.parse_candles_key(key).exchange_id) == (
                exchange_id,
                exchange_id,
            )


async def _closed(
    redis: Redis, exchange_id: int, symbol: str, timeframe: Timeframe
) -> list[Candle]:
    candles = CandleCache(redis, CacheSettings())
    stored = await candles.between(exchange_id, symbol, timeframe, 0, 2**62)
    return [c for c in stored if c.closed]


def _own_and_other(event: AlertEvent) -> list[tuple[int, str]]:
    """The alert's (exchange, symbol), then the same asset on the other exchange."""
    base = event.symbol.removesuffix("-USD").removesuffix("USDT")
    names = {COINBASE: f"{base}-USD", BINANCE: f"{base}USDT"}
    other = COINBASE + BINANCE - event.exchange_id
    return [(event.exchange_id, names[event.exchange_id]), (other, names[other])]


def _assert_own_venue(truths: dict[int, dict[int, Any]], cached: dict[int, list[Candle]]) -> None:
    """Each exchange's BTC 1m key holds its venue's bars, and the two venues' bars differ."""
    differ = 0
    for exchange_id, bars in cached.items():
        other = truths[COINBASE + BINANCE - exchange_id]
        assert len(bars) >= 60, (exchange_id, len(bars))
        for bar in bars[:-1]:  # the newest may still take a late Coinbase trade
            want = truths[exchange_id][bar.open_time]
            assert (bar.open, bar.high, bar.low, bar.close) == (
                want.open,
                want.high,
                want.low,
                want.close,
            ), (exchange_id, bar.open_time)
            twin = other.get(bar.open_time)
            differ += twin is not None and twin.close != bar.close
    assert differ >= 60, "the venues' prices do not tell the streams apart"


def _macd_v_at(history: list[Candle], event: AlertEvent) -> float | None:
    """MACD-V of `history` at the bar the alert fired on (None: no such bar or no value)."""
    bar_open = int(event.triggered_at.timestamp() * 1000) - duration_ms(event.timeframe)
    point = latest_macd_v([c for c in history if c.open_time <= bar_open])
    return point.macd_v if point is not None and point.open_time == bar_open else None
