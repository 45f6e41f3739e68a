"""The reads a burst's firing bars need (`AlertEvaluator.evaluate_many`): queued, then parsed.

For each firing Tier 1 value: its symbol's ticker and its readings on the other timeframes, as
single-key GETs queued on the burst's `WriteBatch`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from livermore_cache import keys
from livermore_cache.batch import WriteBatch
from livermore_exchange_core.alerts.rules import Trigger, compute_bias
from livermore_exchange_core.symbols.assets import AssetRef
from livermore_schema.alerts import AlertEvent, TimeframeContext
from livermore_schema.enums import Stage, Timeframe
from livermore_schema.indicators import IndicatorValue
from livermore_schema.market import Ticker
from livermore_schema.timeframes import duration_ms

ScriptCall = tuple[str, Sequence[Any]]
"""The one key and the arguments of a script call."""


def queue_reads(batch: WriteBatch, value: IndicatorValue, timeframes: Sequence[Timeframe]) -> int:
    """Queue the ticker GET and the other timeframes' indicator GETs; return the first position."""
    first = batch.add("GET", keys.ticker_key(value.exchange_id, value.symbol))
    for timeframe in timeframes:
        if timeframe != value.timeframe:
            key = keys.indicator_key(value.exchange_id, value.symbol, timeframe, value.type)
            batch.add("GET", key)
    return first


def parse_reads(
    replies: Sequence[Any], first: int, value: IndicatorValue, timeframes: Sequence[Timeframe]
) -> tuple[Ticker | None, dict[Timeframe, IndicatorValue | None]]:
    """Return the ticker and readings `queue_reads` queued at `first`."""
    raw = replies[first]
    ticker = None if raw is None else Ticker.model_validate_json(raw)
    others = [tf for tf in timeframes if tf != value.timeframe]
    readings = {
        tf: None if reply is None else IndicatorValue.model_validate_json(reply)
        for tf, reply in zip(others, replies[first + 1 : first + 1 + len(others)], strict=True)
    }
    return ticker, readings


def context_rows(
    value: IndicatorValue, found: Mapping[Timeframe, IndicatorValue | None]
) -> list[TimeframeContext]:
    """Return the context rows of `value`'s symbol, shortest timeframe first."""
    readings = {**found, value.timeframe: value}  # fresher than the cache, present if unlisted
    return [
        TimeframeContext(
            timeframe=tf,
            macd_v=reading.value.macd_v if reading else None,
            stage=reading.stage if reading else Stage.UNKNOWN,
        )
        for tf in sorted(readings, key=duration_ms)
        for reading in (readings[tf],)
    ]


def make_events(
    value: IndicatorValue,
    fired: Sequence[Trigger],
    price: float,
    contexts: list[TimeframeContext],
    delayed: bool,
    source: tuple[int, str],
    ref: AssetRef | None,
) -> list[tuple[AlertEvent, Trigger]]:
    """Return the AlertEvent of each fired trigger of one value (`source`: exchange id, name).

    `triggered_at` is the bar's close time, live or delayed (SPEC section 7).
    """
    bias = compute_bias((c.timeframe, c.stage) for c in contexts)
    triggered_at = datetime.fromtimestamp(
        (value.open_time + duration_ms(value.timeframe)) / 1000, UTC
    )
    return [
        (
            AlertEvent(
                exchange_id=value.exchange_id,
                symbol=value.symbol,
                timeframe=value.timeframe,
                trigger_label=trigger.label,
                trigger_value=value.value.macd_v or 0.0,
                signal_delta=value.value.histogram,
                price=price,
                triggered_at=triggered_at,
                timeframes=contexts,
                bias=bias,
                source_exchange_id=source[0],
                source_exchange_name=source[1],
                direction=trigger.direction,
                delayed=delayed,
                asset=ref.asset if ref else None,
                quote=ref.quote if ref else None,
            ),
            trigger,
        )
        for trigger in fired
    ]
