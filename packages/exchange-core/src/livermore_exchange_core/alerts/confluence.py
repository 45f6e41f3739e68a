"""Confluence: one asset firing the same kind of signal, the same way, on two or more exchanges.

Which process computes it: a `ConfluenceWatcher` follows every exchange's alert channel
(`channel:alerts:*`), so it needs no worker beside it; the api runs one. Each watcher keeps, per
group (asset, timeframe, signal kind, direction), the latest trigger of every exchange in memory
(`ConfluenceDetector`, pure). When two or more exchanges' triggers lie within the window (setting;
default one bar of the timeframe, in exchange time) it asks Redis for the claim
(`ConfluenceClaim`): one script compares the group's last published confluence time
(`confluence_claim_key`) with this one, so several api processes, each seeing the same alerts,
publish it exactly once. A later confluence of the group within the quiet period (setting; default
ten bars) of the last one is the same excursion still spreading over venues or reaching deeper
levels: it moves that time on instead of publishing again, so one excursion gives one confluence
even when the venues' crossings leave a bar or two between them. The event goes to
`channel:alerts:confluence`.

Signal kinds: every `level_*` label is one kind (`level`); each reversal is its own kind; the
event's `direction` completes the group. Alerts without an `asset` (published before asset
mapping) are ignored.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from redis.exceptions import RedisError

from livermore_cache import keys
from livermore_cache.client import RedisClient
from livermore_cache.pubsub import Publisher, alert_stream
from livermore_exchange_core.alerts.evaluator import AlertSink
from livermore_schema.alerts import AlertEvent, ConfluenceVenue
from livermore_schema.enums import AlertType, Timeframe
from livermore_schema.timeframes import duration_ms

log = structlog.get_logger(__name__)

CLAIM_TTL_SLACK_MS = 3_600_000
"""Claim keys outlive their quiet period by this much (garbage collection only)."""
_SWEEP_EVERY = 1000

# KEYS[1] claim key; ARGV: confluence time (exchange ms), quiet period ms, ttl ms.
# Returns 1 when this caller publishes, 0 when one of the group was within the quiet period.
_CLAIM = """
local last = redis.call('GET', KEYS[1])
local at = tonumber(ARGV[1])
if last and at <= tonumber(last) + tonumber(ARGV[2]) then
  if at > tonumber(last) then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3]) end
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
"""


@dataclass(frozen=True, slots=True)
class ConfluenceGroup:
    """What makes triggers on different exchanges "the same signal"."""

    asset: str
    timeframe: Timeframe
    kind: str
    direction: str


@dataclass(frozen=True, slots=True)
class Confluence:
    """Triggers of one group on two or more exchanges within one window, oldest first."""

    group: ConfluenceGroup
    triggers: tuple[AlertEvent, ...]
    window_ms: int
    quiet_ms: int

    @property
    def at_ms(self) -> int:
        """Exchange time of the newest trigger (the same whichever alert arrived last)."""
        return _ms(self.triggers[-1].triggered_at)


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def signal_of(event: AlertEvent) -> tuple[str, str] | None:
    """Return the (kind, direction) of an exchange alert, or None for a confluence alert."""
    if event.alert_type is AlertType.CONFLUENCE:
        return None
    label = event.trigger_label
    kind = "level" if label.startswith("level_") else label
    return kind, event.direction.value


def group_of(event: AlertEvent) -> ConfluenceGroup | None:
    """Return the confluence group of an exchange alert (None without an asset)."""
    signal = signal_of(event)
    if signal is None or not event.asset:
        return None
    return ConfluenceGroup(event.asset, event.timeframe, *signal)


class ConfluenceDetector:
    """Remembers each group's latest trigger per exchange and reports confluences (pure)."""

    def __init__(self, *, window_bars: float = 1.0, quiet_bars: float = 10.0) -> None:
        if window_bars <= 0 or quiet_bars < window_bars:
            raise ValueError("window_bars must be positive and quiet_bars at least as long")
        self._window_bars = window_bars
        self._quiet_bars = quiet_bars
        self._latest: dict[ConfluenceGroup, dict[int, AlertEvent]] = {}
        self._added = 0

    def window_ms(self, timeframe: Timeframe) -> int:
        """The confluence window of a timeframe, in ms of exchange time."""
        return int(self._window_bars * duration_ms(timeframe))

    def add(self, event: AlertEvent) -> Confluence | None:
        """Record an exchange alert; return the confluence it completes, if any."""
        group = group_of(event)
        if group is None:
            return None
        window = self.window_ms(group.timeframe)
        at = _ms(event.triggered_at)
        venues = self._latest.setdefault(group, {})
        known = venues.get(event.exchange_id)
        if known is None or _ms(known.triggered_at) <= at:
            venues[event.exchange_id] = event
        self._added += 1
        if self._added % _SWEEP_EVERY == 0:
            self._sweep(at)
        near = [e for e in venues.values() if abs(_ms(e.triggered_at) - at) <= window]
        if len(near) < 2 or event not in near:
            return None
        # Exchange-time order, never arrival order: one venue's worker may lag another's.
        triggers = sorted(near, key=lambda e: (_ms(e.triggered_at), e.exchange_id))
        quiet = int(self._quiet_bars * duration_ms(group.timeframe))
        return Confluence(group, tuple(triggers), window, quiet)

    def _sweep(self, now_ms: int) -> None:
        """Forget groups whose newest trigger is older than the largest window."""
        horizon = now_ms - int(self._window_bars * duration_ms(Timeframe.D1))
        stale = [
            group
            for group, venues in self._latest.items()
            if max(_ms(e.triggered_at) for e in venues.values()) < horizon
        ]
        for group in stale:
            del self._latest[group]

    def __len__(self) -> int:
        return len(self._latest)


class ConfluenceClaim:
    """Decides, in Redis, which of several racing processes publishes a confluence."""

    def __init__(self, redis: RedisClient) -> None:
        self._script = redis.register_script(_CLAIM)

    async def claim(self, confluence: Confluence) -> bool:
        """Return True for one caller per group and quiet period (else extend the period)."""
        group = confluence.group
        key = keys.confluence_claim_key(group.asset, group.timeframe, group.kind, group.direction)
        ttl = 2 * confluence.quiet_ms + CLAIM_TTL_SLACK_MS
        won = await self._script(keys=[key], args=[confluence.at_ms, confluence.quiet_ms, ttl])
        return int(won) == 1


def confluence_event(confluence: Confluence) -> AlertEvent:
    """Return the `confluence` AlertEvent naming every venue; its own fields are the last one's."""
    last = confluence.triggers[-1]
    venues = [
        ConfluenceVenue(
            alert_id=e.id,
            exchange_id=e.exchange_id,
            exchange=e.source_exchange_name,
            symbol=e.symbol,
            trigger_label=e.trigger_label,
            trigger_value=e.trigger_value,
            price=e.price,
            triggered_at=e.triggered_at,
        )
        for e in confluence.triggers
    ]
    fields = last.model_dump(exclude={"id", "alert_type", "venues", "local"})
    return AlertEvent(**fields, alert_type=AlertType.CONFLUENCE, venues=venues)


def confluence_details(event: AlertEvent) -> dict[str, Any]:
    """Return the `alert_history.details` JSON of a confluence alert."""
    return {
        "direction": event.direction.value,
        "delayed": event.delayed,
        "venues": [v.model_dump(mode="json") for v in event.venues or []],
    }


class ConfluenceWatcher:
    """Follows every exchange's alerts and publishes each confluence once (see module doc)."""

    def __init__(
        self,
        redis: RedisClient,
        publisher: Publisher,
        *,
        window_bars: float = 1.0,
        quiet_bars: float = 10.0,
        sink: AlertSink | None = None,
        retry_s: float = 1.0,
    ) -> None:
        self._redis = redis
        self._publisher = publisher
        self._detector = ConfluenceDetector(window_bars=window_bars, quiet_bars=quiet_bars)
        self._claim = ConfluenceClaim(redis)
        self._sink = sink
        self._retry_s = retry_s

    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Follow the alert channels until cancelled, resubscribing after a Redis failure."""
        while True:
            try:
                async with alert_stream(self._redis) as alerts:
                    if ready is not None:
                        ready.set()
                    async for _, event in alerts:
                        await self.handle(event)
            except (RedisError, OSError) as exc:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise asyncio.CancelledError from exc  # a client turned the cancel into this
                log.warning("confluence.resubscribe", error=repr(exc), delay_s=self._retry_s)
                await asyncio.sleep(self._retry_s)

    async def handle(self, event: AlertEvent) -> AlertEvent | None:
        """Feed one alert in; publish and return the confluence it completes, if this one won."""
        confluence = self._detector.add(event)
        if confluence is None or not await self._claim.claim(confluence):
            return None
        published = confluence_event(confluence)
        await self._publisher.publish_alert(published)
        log.info(
            "confluence.published",
            asset=confluence.group.asset,
            timeframe=confluence.group.timeframe.value,
            kind=confluence.group.kind,
            direction=confluence.group.direction,
            venues=[v.exchange for v in published.venues or []],
            alert_id=str(published.id),
        )
        if self._sink is not None:
            try:
                await self._sink.submit(published, confluence_details(published))
            except Exception as exc:  # the publish happened; storage retries on its own
                log.error("confluence.sink_failed", alert_id=str(published.id), error=repr(exc))
        return published
