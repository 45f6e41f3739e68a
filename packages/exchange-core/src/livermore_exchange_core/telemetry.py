"""Process-wide counters per exchange: stream traffic, REST calls, closed bars, alerts and lag.

Plain numbers bumped at the one place each thing happens (`websocket.ReconnectingWebSocket` for
frames and reconnects, `http.http_get` for REST requests and throttled replies, `ClosedBarStage`
for closed bars, alerts and the close->alert lag, `ReconciliationSweep` for bars re-read and
corrected), so the library needs no metrics dependency; a process that exports metrics (the
worker's `/metrics`) reads `snapshot()` when it is scraped.
Counters only grow for the life of the process, across streaming sessions.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field, replace

THROTTLED_STATUSES = frozenset({418, 429})
"""REST statuses counted as throttled (Binance answers 418 once it bans an IP)."""
LAG_BUCKETS_S: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
"""Upper bounds of the close->alert lag buckets, around the 10 ms p99 budget (SPEC 13)."""


@dataclass(slots=True)
class LagHistogram:
    """Observations per bucket (the last one is +Inf) and their sum, in seconds."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(LAG_BUCKETS_S) + 1))
    total_s: float = 0.0

    def observe(self, seconds: float, times: int = 1) -> None:
        """Record `times` observations of `seconds`."""
        self.counts[bisect.bisect_left(LAG_BUCKETS_S, seconds)] += times
        self.total_s += seconds * times

    def copy(self) -> LagHistogram:
        """Return an independent copy."""
        return LagHistogram(list(self.counts), self.total_s)


@dataclass(slots=True)
class ExchangeTraffic:
    """What one exchange's connections, REST calls and closed bars have done in this process."""

    messages: int = 0
    reconnects: int = 0
    rest_requests: int = 0
    rest_throttled: int = 0
    closed_bars: int = 0
    alerts: int = 0
    reconciled_bars: int = 0
    reconcile_corrections: int = 0
    close_to_alert: LagHistogram = field(default_factory=LagHistogram)


_TRAFFIC: dict[str, ExchangeTraffic] = {}


def traffic(exchange: str) -> ExchangeTraffic:
    """Return the live counters of `exchange` (an `ExchangeName` value), created on first use."""
    found = _TRAFFIC.get(exchange)
    if found is None:
        found = _TRAFFIC[exchange] = ExchangeTraffic()
    return found


def snapshot() -> dict[str, ExchangeTraffic]:
    """Return a copy of every exchange's counters."""
    return {
        name: replace(counts, close_to_alert=counts.close_to_alert.copy())
        for name, counts in _TRAFFIC.items()
    }
