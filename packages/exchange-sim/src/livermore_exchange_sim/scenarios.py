"""Scripted price paths that drive MACD-V through its alert levels and back.

A `Scenario` adds a piecewise-linear offset to the log price of one base asset over a time
window. A steady strong trend with a true range that stays small relative to it drives
|MACD-V| (12/26, ATR 26 Wilder, x100) far past 150/200; the following hold leg makes the trend
stall, so MACD-V reverses through its signal while still extreme; a slow return leg brings the
offset back to zero so the path is continuous when the window ends.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from livermore_exchange_sim.assets import ASSETS_BY_BASE, Venue
from livermore_exchange_sim.generator import DAY_MS, M5_MS


@dataclass(frozen=True, slots=True)
class ScenarioLeg:
    """A straight segment of the offset: `log_move` added to log price over `duration_ms`."""

    duration_ms: int
    log_move: float


@dataclass(frozen=True, slots=True)
class Scenario:
    """An override of one base asset's price path over [start_ms, end_ms)."""

    base: str
    start_ms: int
    legs: tuple[ScenarioLeg, ...]
    venues: frozenset[Venue] | None = None
    label: str = ""

    def __post_init__(self) -> None:
        if abs(sum(leg.log_move for leg in self.legs)) > 1e-9:
            raise ValueError("scenario legs must return the offset to zero")
        if any(leg.duration_ms <= 0 for leg in self.legs):
            raise ValueError("scenario legs need positive durations")

    @property
    def end_ms(self) -> int:
        """The end of the window (exclusive)."""
        return self.start_ms + sum(leg.duration_ms for leg in self.legs)

    def applies(self, venue: Venue, base: str) -> bool:
        """Return whether this scenario shapes `base` on `venue`."""
        return base == self.base and (self.venues is None or venue in self.venues)

    def overlaps(self, start_ms: int, end_ms: int) -> bool:
        """Return whether [start_ms, end_ms) intersects the window."""
        return start_ms < self.end_ms and self.start_ms < end_ms

    def offset(self, time_ms: int) -> float:
        """Return the log-price offset at `time_ms` (0 outside the window)."""
        if not self.start_ms <= time_ms < self.end_ms:
            return 0.0
        level, pos = 0.0, self.start_ms
        for leg in self.legs:
            if time_ms < pos + leg.duration_ms:
                return level + leg.log_move * (time_ms - pos) / leg.duration_ms
            level += leg.log_move
            pos += leg.duration_ms
        return level


def macdv_excursion(
    base: str,
    start_ms: int,
    *,
    direction: int = 1,
    timeframe_ms: int = M5_MS,
    trend_bars: int = 12,
    strength: float = 2.5,
    venues: frozenset[Venue] | None = None,
) -> Scenario:
    """Return a scenario pushing MACD-V on `timeframe_ms` past +/-200, then reversing it.

    Args:
        base: Base asset (e.g. "BTC").
        start_ms: When the trend starts (simulated epoch ms).
        direction: +1 drives MACD-V up (overbought), -1 down (oversold).
        timeframe_ms: The timeframe whose bars the trend is sized for; shorter timeframes
            see a gentler but longer trend that crosses as well.
        trend_bars: Bars of steady trend.
        strength: Trend per bar in units of the asset's per-bar volatility.
        venues: Venues to shape (None: every venue listing the asset).
    """
    asset = ASSETS_BY_BASE[base]
    per_bar = strength * asset.daily_vol * math.sqrt(timeframe_ms / DAY_MS)
    move = direction * per_bar * trend_bars
    legs = (
        ScenarioLeg(trend_bars * timeframe_ms, move),
        ScenarioLeg(trend_bars // 2 * timeframe_ms, 0.0),
        ScenarioLeg(20 * trend_bars * timeframe_ms, -move),
    )
    label = f"{base} {'up' if direction > 0 else 'down'} excursion"
    return Scenario(base=base, start_ms=start_ms, legs=legs, venues=venues, label=label)


def demo_scenarios(start_ms: int, *, lead_ms: int = 2 * 60_000) -> tuple[Scenario, ...]:
    """Return the default demo: BTC overbought and ETH oversold, starting `lead_ms` after start.

    With speed 60 the 1m MACD-V of both crosses +/-150 within about 15 wall seconds of the
    trend's start, and the 5m one within about a wall minute.
    """
    begin = start_ms + lead_ms
    return (
        macdv_excursion("BTC", begin, direction=1),
        macdv_excursion("ETH", begin, direction=-1),
    )
