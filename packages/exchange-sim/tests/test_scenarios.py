from __future__ import annotations

import itertools

import pytest

from livermore_exchange_sim.market import Bar, Market, SimClock, Venue
from livermore_exchange_sim.scenarios import Scenario, ScenarioLeg, demo_scenarios, macdv_excursion

START = 1_759_968_000_000  # 2025-10-09 00:00 UTC


def ema(values: list[float], period: int) -> list[float | None]:
    out: list[float | None] = [None] * len(values)
    if len(values) < period:
        return out
    alpha = 2 / (period + 1)
    current = sum(values[:period]) / period
    out[period - 1] = current
    for i in range(period, len(values)):
        current = alpha * values[i] + (1 - alpha) * current
        out[i] = current
    return out


def macdv(bars: list[Bar]) -> list[tuple[float, float] | None]:
    """MACD-V (12/26, ATR 26 Wilder, x100) and its 9-EMA signal, per bar (None while undefined)."""
    closes = [b.close for b in bars]
    fast, slow = ema(closes, 12), ema(closes, 26)
    trs = [bars[0].high - bars[0].low] + [
        max(b.high - b.low, abs(b.high - p.close), abs(b.low - p.close))
        for p, b in itertools.pairwise(bars)
    ]
    atr: list[float | None] = [None] * len(bars)
    current = sum(trs[:26]) / 26
    atr[25] = current
    for i in range(26, len(bars)):
        current = (current * 25 + trs[i]) / 26
        atr[i] = current
    values: list[float | None] = []
    for f, s, a in zip(fast, slow, atr, strict=True):
        values.append(None if f is None or s is None or not a else (f - s) / a * 100)
    defined = [v for v in values if v is not None]
    signal = ema(defined, 9)
    offset = len(values) - len(defined)
    out: list[tuple[float, float] | None] = [None] * offset
    for v, sig in zip(defined, signal, strict=True):
        out.append(None if sig is None else (v, sig))
    return out


def series(
    scenario: Scenario, symbol: str, venue: Venue, interval: int, bars_after: int
) -> list[tuple[int, float, float]]:
    clock = SimClock(start_ms=scenario.start_ms + bars_after * interval + interval, speed=60)
    market = Market(seed=7, clock=clock, scenarios=[scenario])
    bars = market.closed_bars(
        venue, symbol, interval, scenario.start_ms - 120 * interval, clock.now_ms()
    )
    return [(b.open_time, *v) for b, v in zip(bars, macdv(bars), strict=True) if v is not None]


@pytest.mark.parametrize("interval", [60_000, 300_000])
def test_up_excursion_crosses_plus_150_and_200_then_reverses(interval: int) -> None:
    scenario = macdv_excursion("BTC", START, direction=1)
    points = series(scenario, "BTCUSDT", Venue.BINANCE, interval, 100 if interval == 60_000 else 40)
    before = [v for t, v, _ in points if t < scenario.start_ms]
    during = [(t, v, s) for t, v, s in points if t >= scenario.start_ms]
    assert max(abs(v) for v in before[-20:]) < 150
    first_200 = next(i for i, (_, v, _) in enumerate(during) if v > 200)
    assert any(v > 150 for _, v, _ in during[:first_200])
    # reversal: still overbought but falling through its signal, and later back below 150
    after = during[first_200:]
    assert any(v > 150 and v < s for _, v, s in after)
    assert any(v < 150 for _, v, _ in after)


def test_down_excursion_crosses_minus_200_on_coinbase() -> None:
    scenario = macdv_excursion("ETH", START, direction=-1, venues=frozenset({Venue.COINBASE}))
    points = series(scenario, "ETH-USD", Venue.COINBASE, 300_000, 40)
    during = [(v, s) for t, v, s in points if t >= scenario.start_ms]
    assert min(v for v, _ in during) < -200
    assert any(v < -150 and v > s for v, s in during)


def test_scenario_is_limited_to_its_venues_and_window() -> None:
    scenario = macdv_excursion("ETH", START, venues=frozenset({Venue.COINBASE}))
    clock = SimClock(start_ms=scenario.end_ms + 3_600_000)
    shaped = Market(seed=7, clock=clock, scenarios=[scenario])
    plain = Market(seed=7, clock=clock)
    inside, outside = START + 3_600_000, scenario.end_ms + 600_000
    assert shaped.bar(Venue.COINBASE, "ETH-USD", 60_000, inside) != plain.bar(
        Venue.COINBASE, "ETH-USD", 60_000, inside
    )
    assert shaped.bar(Venue.BINANCE, "ETHUSDT", 60_000, inside) == plain.bar(
        Venue.BINANCE, "ETHUSDT", 60_000, inside
    )
    assert shaped.bar(Venue.COINBASE, "ETH-USD", 60_000, outside) == plain.bar(
        Venue.COINBASE, "ETH-USD", 60_000, outside
    )
    day = START - START % 86_400_000
    minutes = [
        shaped.bar(Venue.COINBASE, "ETH-USD", 60_000, t)
        for t in range(day, day + 86_400_000, 60_000)
    ]
    whole = shaped.bar(Venue.COINBASE, "ETH-USD", 86_400_000, day)
    assert whole.high == max(m.high for m in minutes) and whole.low == min(m.low for m in minutes)


def test_legs_must_return_to_zero() -> None:
    with pytest.raises(ValueError, match="zero"):
        Scenario(base="BTC", start_ms=START, legs=(ScenarioLeg(60_000, 0.1),))


def test_demo_scenario_crosses_on_1m_within_a_wall_minute_at_speed_60() -> None:
    btc, _eth = demo_scenarios(START)
    points = series(btc, "BTC-USD", Venue.COINBASE, 60_000, 60)
    crossing = next(t for t, v, _ in points if v > 150)
    assert (crossing + 60_000 - START) / 1000 / 60 <= 60  # wall seconds at speed 60
