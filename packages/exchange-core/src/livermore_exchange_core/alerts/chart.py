"""Alert charts for Discord: the last bars' candles over MACD-V and its signal, the alert marked.

`render_alert_chart` is pure and synchronous (matplotlib's object API on the Agg canvas, no
pyplot global state, so it is safe in a worker thread). `AlertChartRenderer` reads the series
from the candle cache, computes MACD-V with the batch reference over extra warm-up bars, and
renders in a thread with a timeout: the event loop never draws, and a chart that fails or is
late is simply left out (the embed goes without it).
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from datetime import UTC, datetime

import structlog

from livermore_cache.candles import CandleCache
from livermore_exchange_core.indicators.macdv import MacdVPoint, macd_v_series
from livermore_schema.alerts import AlertEvent
from livermore_schema.market import Candle
from livermore_schema.timeframes import duration_ms

log = structlog.get_logger(__name__)

CHART_BARS = 60
"""Bars drawn (the original's chart showed about an hour of 1m bars)."""
WARMUP_BARS = 120
"""Extra history read so the drawn MACD-V values are settled."""
LEVELS = (150, 200, 250, 300, 350, 400)
_UP, _DOWN = "#26a69a", "#ef5350"


def _bar_of(event: AlertEvent) -> int:
    """Open time of the bar that fired (triggered_at is that bar's close)."""
    return int(event.triggered_at.timestamp() * 1000) - duration_ms(event.timeframe)


def render_alert_chart(
    candles: Sequence[Candle], points: Sequence[MacdVPoint], event: AlertEvent
) -> bytes:
    """Return a PNG of `candles` over their MACD-V `points`, with the alert's bar marked."""
    # Imported here: a worker without a Discord webhook never loads matplotlib (~30 MB).
    from matplotlib.figure import Figure

    by_time = {p.open_time: p for p in points}
    xs = list(range(len(candles)))
    fig = Figure(figsize=(8, 4.5), dpi=100)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (3, 2)})
    for x, c in zip(xs, candles, strict=True):
        colour = _UP if c.close >= c.open else _DOWN
        top.vlines(x, c.low, c.high, color=colour, linewidth=0.8)
        top.bar(x, abs(c.close - c.open) or c.close * 1e-5, 0.7, min(c.open, c.close), color=colour)
    macd = [by_time[c.open_time].macd_v if c.open_time in by_time else None for c in candles]
    signal = [by_time[c.open_time].signal if c.open_time in by_time else None for c in candles]
    bottom.plot(xs, [float("nan") if v is None else v for v in macd], color="#2962ff", lw=1.4)
    bottom.plot(xs, [float("nan") if v is None else v for v in signal], color="#ff6d00", lw=1)
    for level in LEVELS:
        for y in (level, -level):
            bottom.axhline(y, color=_DOWN if y > 0 else _UP, lw=0.5, ls="--", alpha=0.5)
    bottom.axhline(0, color="#999999", lw=0.5)
    fired = _bar_of(event)
    marked = [x for x, c in zip(xs, candles, strict=True) if c.open_time == fired]
    if marked:
        x = marked[0]
        for axis in (top, bottom):
            axis.axvline(x, color="#f5a623", lw=1.2)
        bottom.scatter([x], [event.trigger_value], color="#f5a623", zorder=5, s=30)
    when = datetime.fromtimestamp(fired / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
    top.set_title(
        f"{event.source_exchange_name} {event.symbol} {event.timeframe.value} · "
        f"{event.trigger_label} · MACD-V {event.trigger_value:+.1f} · {when}",
        fontsize=9,
    )
    bottom.set_ylabel("MACD-V", fontsize=8)
    ticks = xs[:: max(1, len(xs) // 6)]
    bottom.set_xticks(ticks)
    bottom.set_xticklabels(
        [
            datetime.fromtimestamp(candles[x].open_time / 1000, UTC).strftime("%m-%d %H:%M")
            for x in ticks
        ]
    )
    for axis in (top, bottom):
        axis.tick_params(labelsize=7)
        axis.grid(alpha=0.2)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()


class AlertChartRenderer:
    """Renders an alert's chart from the candle cache, off the event loop, within a timeout."""

    def __init__(self, candles: CandleCache, *, timeout_s: float = 5.0) -> None:
        self._candles = candles
        self._timeout_s = timeout_s

    async def render(self, event: AlertEvent) -> bytes | None:
        """Return the alert's PNG, or None (no bars, rendering failed or timed out)."""
        try:
            async with asyncio.timeout(self._timeout_s):
                history = await self._candles.recent(
                    event.exchange_id, event.symbol, event.timeframe, CHART_BARS + WARMUP_BARS
                )
                closed = [c for c in history if c.closed and c.open_time <= _bar_of(event)]
                if not closed:
                    return None
                points = macd_v_series(closed)
                shown = closed[-CHART_BARS:]
                return await asyncio.to_thread(render_alert_chart, shown, points, event)
        except Exception as err:  # a chart is an extra: never let it stop the alert
            log.warning("discord.chart_failed", alert_id=str(event.id), error=repr(err))
            return None
