from __future__ import annotations

import itertools
import time

import pytest

from livermore_exchange_sim.generator import MINUTE_MS
from livermore_exchange_sim.market import Bar, Market, SimClock, Venue

START = 1_759_968_000_000  # 2025-10-09 00:00 UTC
DAY = 86_400_000


def make_market(seed: int = 7, speed: float = 60.0) -> Market:
    return Market(seed=seed, clock=SimClock(start_ms=START, speed=speed))


def ohlcv(bars: list[Bar]) -> list[tuple[float, ...]]:
    return [(b.open_time, b.open, b.high, b.low, b.close, b.volume, b.trades) for b in bars]


def test_same_seed_gives_same_bars_and_different_seed_differs() -> None:
    window = (START - 300 * 60_000, START)
    a = make_market(7).closed_bars(Venue.COINBASE, "BTC-USD", 60_000, *window)
    b = make_market(7).closed_bars(Venue.COINBASE, "BTC-USD", 60_000, *window)
    c = make_market(8).closed_bars(Venue.COINBASE, "BTC-USD", 60_000, *window)
    assert len(a) == 300
    assert ohlcv(a) == ohlcv(b)
    assert ohlcv(a) != ohlcv(c)


def test_history_far_back_is_available_and_cheap() -> None:
    market = make_market()
    began = time.perf_counter()
    bars = market.closed_bars(Venue.BINANCE, "BTCUSDT", DAY, START - 1000 * DAY, START)
    assert len(bars) == 1000
    assert time.perf_counter() - began < 2.0
    assert all(b.low <= min(b.open, b.close) <= max(b.open, b.close) <= b.high for b in bars)
    assert all(prev.close == cur.open for prev, cur in itertools.pairwise(bars))


@pytest.mark.parametrize(
    "interval_ms", [180_000, 300_000, 900_000, 3_600_000, 14_400_000, 21_600_000, DAY, 7 * DAY]
)
def test_longer_bars_are_exact_aggregations_of_minute_bars(interval_ms: int) -> None:
    market = make_market()
    open_time = (START - 10 * interval_ms) // interval_ms * interval_ms
    bar = market.bar(Venue.BINANCE, "SOLUSDT", interval_ms, open_time)
    minutes = [
        market.bar(Venue.BINANCE, "SOLUSDT", MINUTE_MS, t)
        for t in range(open_time, open_time + interval_ms, MINUTE_MS)
    ]
    assert bar.open == minutes[0].open
    assert bar.close == minutes[-1].close
    assert bar.high == max(m.high for m in minutes)
    assert bar.low == min(m.low for m in minutes)
    assert bar.trades == sum(m.trades for m in minutes)
    assert bar.volume == pytest.approx(sum(m.volume for m in minutes), rel=1e-12, abs=1e-8)


def test_minute_bars_are_exact_aggregations_of_trades() -> None:
    market = make_market()
    start = START - 30 * MINUTE_MS
    for minute in range(start, START, MINUTE_MS):
        bar = market.bar(Venue.COINBASE, "ETH-USD", MINUTE_MS, minute)
        trades = market.trades(Venue.COINBASE, "ETH-USD", minute, minute + MINUTE_MS)
        assert len(trades) == bar.trades >= 4
        assert trades[0].price == bar.open and trades[-1].price == bar.close
        assert max(t.price for t in trades) == bar.high
        assert min(t.price for t in trades) == bar.low
        assert round(sum(t.size for t in trades), 8) == bar.volume
        assert [t.time_ms for t in trades] == sorted(t.time_ms for t in trades)
        assert len({t.trade_id for t in trades}) == len(trades)


def test_thin_products_have_empty_bars_that_coinbase_omits() -> None:
    market = make_market()
    start, end = START - 600 * MINUTE_MS, START
    binance = market.closed_bars(Venue.BINANCE, "FORTUSDT", MINUTE_MS, start, end)
    coinbase = market.closed_bars(Venue.COINBASE, "FORT-USD", MINUTE_MS, start, end)
    empty = [b for b in binance if b.trades == 0]
    assert len(binance) == 600
    assert 60 < len(empty) < 540
    assert all(b.open == b.high == b.low == b.close and b.volume == 0 for b in empty)
    assert len(coinbase) < 600 and all(b.trades > 0 for b in coinbase)
    liquid = market.closed_bars(Venue.COINBASE, "BTC-USD", MINUTE_MS, start, end)
    assert len(liquid) == 600


def test_partial_bar_grows_into_the_closed_bar() -> None:
    market = make_market()
    open_time = START - START % 300_000
    partials = [
        market.partial_bar(Venue.COINBASE, "BTC-USD", 300_000, open_time + s * 1000)
        for s in range(1, 300, 37)
    ]
    final = market.bar(Venue.COINBASE, "BTC-USD", 300_000, open_time)
    assert all(p.open_time == open_time for p in partials)
    assert [p.trades for p in partials] == sorted(p.trades for p in partials)
    assert partials[-1].volume <= final.volume
    assert all(final.low <= p.low and p.high <= final.high for p in partials)


def test_speed_factor_closes_a_five_minute_bar_within_half_a_second() -> None:
    clock = SimClock(speed=600.0)
    market = Market(seed=7, clock=clock)
    now = clock.now_ms()
    boundary = now - now % 300_000 + 300_000
    assert clock.wall_until(boundary) <= 0.5
    assert clock.wall_seconds(300_000) == pytest.approx(0.5)
    began = time.monotonic()
    while clock.now_ms() < boundary:  # the clock itself is what is under test
        time.sleep(clock.wall_until(boundary))
    assert time.monotonic() - began <= 0.75  # 0.5 s plus scheduling slack on a busy machine
    closed = market.closed_bars(Venue.BINANCE, "BTCUSDT", 300_000, boundary - 300_000, boundary)
    assert [b.open_time for b in closed] == [boundary - 300_000]


def test_products_use_venue_native_symbols_and_ticker_is_consistent() -> None:
    market = make_market()
    coinbase = {p.symbol for p in market.products(Venue.COINBASE)}
    binance = {p.symbol for p in market.products(Venue.BINANCE_US)}
    assert {"BTC-USD", "ETH-USD", "FORT-USD"} <= coinbase
    assert {"BTCUSDT", "ETHUSDT"} <= binance
    assert market.product(Venue.COINBASE, "BTCUSDT") is None
    snap = market.ticker(Venue.COINBASE, "BTC-USD", START)
    assert snap.best_bid < snap.price < snap.best_ask
    assert snap.low_24h <= snap.price <= snap.high_24h
    assert snap.price == market.partial_bar(Venue.COINBASE, "BTC-USD", 60_000, START).close
    btc = market.product(Venue.BINANCE, "BTCUSDT")
    assert (
        btc is not None
        and btc.quote_volume_24h > market.products(Venue.BINANCE)[-1].quote_volume_24h
    )


def test_caches_stay_bounded() -> None:
    market = make_market()
    for day in range(40):
        market.closed_bars(
            Venue.BINANCE, "ETHUSDT", 300_000, START - (day + 1) * DAY, START - day * DAY
        )
    gen = market._gen
    assert len(gen._children) <= 4_096
    assert len(gen._trades) <= 1_024
