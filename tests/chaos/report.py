"""The soak's report: figures to print and the list of failed checks (empty: green)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis

from livermore_exchange_sim.testing import RunningSim
from livermore_schema.alerts import AlertEvent
from livermore_schema.enums import Timeframe
from livermore_schema.timeframes import duration_ms

from .checks import (
    Published,
    Window,
    check_cache,
    judge_alerts,
    reference_alerts,
)

if TYPE_CHECKING:
    from livermore_exchange_sim.market import Venue

    from .run import SoakConfig


@dataclass
class Report:
    """What a soak run saw."""

    lines: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def text(self) -> str:
        """The figures, then every failure."""
        out = list(self.lines)
        out.append(f"FAILURES: {len(self.failures)}" if self.failures else "all checks passed")
        out += [f"  - {f}" for f in self.failures]
        return "\n".join(out)


def _published(live: Sequence[AlertEvent], history: Sequence[dict[str, Any]]) -> list[Published]:
    items: dict[str, Published] = {}
    for event in live:
        step = duration_ms(event.timeframe)
        bar = int(event.triggered_at.timestamp() * 1000) - step
        key = (event.exchange_id, event.symbol, event.timeframe.value, event.trigger_label, bar)
        items[str(event.id)] = Published(str(event.id), key, event.delayed, event.trigger_value)
    for row in history:
        if row["uid"] in items:
            continue
        step = duration_ms(Timeframe(row["timeframe"]))
        bar = int(row["triggered_at"].timestamp() * 1000) - step
        key = (row["exchange_id"], row["symbol"], row["timeframe"], row["label"], bar)
        items[row["uid"]] = Published(row["uid"], key, row["delayed"], row["trigger_value"])
    return list(items.values())


async def build_report(
    *,
    config: SoakConfig,
    sim: RunningSim,
    redis: Redis,
    cut_ms: int,
    started_ms: dict[Venue, int],
    connected_ms: dict[Venue, int],
    windows: list[Window],
    injected: Counter[str],
    takeovers: list[float],
    live_alerts: Sequence[AlertEvent],
    history: Sequence[dict[str, Any]],
    rest_stats: dict[str, dict[str, Any]],
    exits: dict[str, int | None],
    settled_s: float,
    wall_s: float,
    listener_reconnects: int,
    problems: list[str],
    notes: list[str],
    timeline: list[str],
) -> Report:
    """Run every check and format the figures."""
    report = Report()
    report.failures += problems
    series = await check_cache(redis, sim, config.bases, cut_ms)
    for check in series:
        report.failures += check.problems()
    reference = reference_alerts(sim, series, cut_ms, started_ms, connected_ms)
    published = [p for p in _published(live_alerts, history) if _closed_by(p, cut_ms)]
    verdict = judge_alerts(reference, published, windows, int(config.edge_sim_s * 1000))
    report.failures += verdict.problems
    too_many = {venue: body.get("http_429", 0) for venue, body in rest_stats.items()}
    for venue, count in too_many.items():
        if count:
            report.failures.append(f"{venue}: {count} HTTP 429 answered by the simulator")
    hours = (cut_ms - min(started_ms.values())) / 3_600_000
    live_ids = {str(a.id) for a in live_alerts}
    only_history = sum(1 for row in history if row["uid"] not in live_ids)
    report.lines += [
        f"chaos soak seed {config.seed}: {hours:.2f} simulated hours at speed {config.speed:g} "
        f"in {wall_s:.0f} s wall (settled {settled_s:.1f} s after the last fault)",
        "faults injected: "
        + ", ".join(f"{k} {v}" for k, v in sorted(injected.items()))
        + f", clock_skew 1 ({config.skewed_venue.value} rate x{config.clock_skew:g})",
        f"bars compared: {sum(c.compared for c in series)} over {len(series)} series "
        f"(missing {sum(len(c.missing) for c in series)}, "
        f"duplicate {sum(len(c.duplicate) for c in series)}, "
        f"unfinished {sum(len(c.unfinished) for c in series)}, "
        f"differing {sum(len(c.differing) for c in series)}, "
        f"extra {sum(len(c.extra) for c in series)})",
        f"alerts: expected {verdict.expected} (+{verdict.optional} optional), published "
        f"{verdict.published} ({only_history} seen only in alert_history), "
        f"delayed {verdict.delayed}; {verdict.tolerated} differing on 1m bars damaged by late "
        "trades before the sweep corrected them (tolerated); delayed flag held to true on "
        f"{verdict.flag_checked[True]}, to false on {verdict.flag_checked[False]}",
        "429s: "
        + ", ".join(f"{venue} {count}" for venue, count in too_many.items())
        + "; REST requests: "
        + ", ".join(f"{venue} {body.get('requests')}" for venue, body in rest_stats.items()),
        "takeovers (kill -9 -> standby connected): "
        + (", ".join(f"{t:.1f} s" for t in takeovers) or "none"),
        f"listener resubscribed {listener_reconnects} time(s); worker exits: "
        + ", ".join(f"{name} {code}" for name, code in exits.items()),
        *(f"note: {note}" for note in notes),
        "fault timeline (simulated UTC):",
        *(f"  {line}" for line in timeline),
    ]
    return report


def _closed_by(item: Published, cut_ms: int) -> bool:
    return item.key[4] + duration_ms(Timeframe(item.key[2])) <= cut_ms
