"""Where published alerts go next: the `AlertSink` protocol, fan-out, and the stored details."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import structlog

from livermore_exchange_core.alerts.rules import LevelCrossing, Trigger
from livermore_schema.alerts import AlertEvent, TimeframeContext
from livermore_schema.enums import Bias
from livermore_schema.indicators import IndicatorValue

log = structlog.get_logger(__name__)


class AlertSink(Protocol):
    """Where a published alert goes next (history, notification); `submit` must not block long."""

    async def submit(self, event: AlertEvent, details: Mapping[str, Any]) -> None:
        """Accept a published event and its stored details."""


class FanOutSink:
    """Hands each event to several sinks in order; one failing does not stop the others."""

    def __init__(self, *sinks: AlertSink) -> None:
        self._sinks = sinks

    async def submit(self, event: AlertEvent, details: Mapping[str, Any]) -> None:
        """Submit to every sink, logging (not raising) failures."""
        for sink in self._sinks:
            try:
                await sink.submit(event, details)
            except Exception as exc:  # one bad sink never blocks the others
                log.error("alert.sink_failed", sink=type(sink).__name__, error=repr(exc))


def alert_details(
    trigger: Trigger,
    value: IndicatorValue,
    contexts: Sequence[TimeframeContext],
    bias: Bias,
    *,
    delayed: bool = False,
) -> dict[str, Any]:
    """Return the `alert_history.details` JSON of a fired trigger."""
    common: dict[str, Any] = {
        "direction": trigger.direction.value,
        "delayed": delayed,
        "histogram": value.value.histogram,
        "signal": value.value.signal,
        "timeframes": [c.model_dump(mode="json") for c in contexts],
        "bias": bias.value,
        "bar_open_time": value.open_time,
    }
    if isinstance(trigger, LevelCrossing):
        return {"level": trigger.level, **common}
    return {
        "zone": trigger.zone.value,
        "buffer": trigger.buffer,
        "buffer_pct": trigger.buffer_pct,
        **common,
    }
