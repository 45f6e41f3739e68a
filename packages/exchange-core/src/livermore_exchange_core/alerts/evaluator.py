"""AlertEvaluator: SPEC section 7 rules over IndicatorValues, with state and cooldowns in Redis.

Per series the previous MACD-V, the bar it came from, the MACD-V of the bar before that and the
reversal arming live in one hash (`alert_state_key`); a Lua compare-and-set claims each bar once,
so evaluators racing on the same value (or a restarted one re-reading it) fire at most once. The
evaluator remembers the state it last claimed and sends the claim straight away (one round trip
per bar); the script compares the whole stored state with it and answers "moved" when another
evaluator or a restart changed it, and only then is the hash re-read. Redis stays the only
authority. Each label's cooldown is its own key (`alert_cooldown_key`) holding the exchange time
it last fired, checked and set by one script; a label never fires twice for the same bar.

A *corrected* value of the bar last claimed (late data revised it, the indicator re-published it)
is judged again against the bar before, and becomes `prev` for the next bar: what it triggers
that the first version did not fires with `delayed: true`, anything already fired for that bar
stays silent. An identical value is a re-delivery and judged no more. Older bars never are.

Cooldowns are measured in **exchange time**, the indicator bar's open time, never the wall clock
(SPEC section 4): a replay at 100x behaves like real time, and a restart mid-cooldown still sees
the stored time. Key TTLs are only garbage collection.

Delivery is at most once: the event is published on `channel:alerts:{exchange_id}` first, then
handed to the sink (storage, notification); a sink failure is logged and never undoes the publish.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

from livermore_cache import keys
from livermore_cache.candles import CandleCache
from livermore_cache.client import RedisClient
from livermore_cache.indicators import IndicatorCache
from livermore_cache.pubsub import Publisher
from livermore_cache.tickers import TickerCache
from livermore_exchange_core.alerts.rules import (
    LevelCrossing,
    Reversal,
    RuleOutcome,
    Trigger,
    compute_bias,
    evaluate_rules,
)
from livermore_schema.alerts import AlertEvent, TimeframeContext
from livermore_schema.enums import RUNTIME_TIMEFRAMES, Bias, Stage, Timeframe
from livermore_schema.indicators import IndicatorValue
from livermore_schema.timeframes import duration_ms

log = structlog.get_logger(__name__)

STATE_TTL_MS = 8 * 24 * 3600 * 1000
"""Series state outlives a week without bars (1d series update daily)."""
COOLDOWN_TTL_SLACK_MS = 24 * 3600 * 1000
"""Cooldown keys expire this long after the cooldown itself (garbage collection only)."""
_CLAIM_ATTEMPTS = 5

# KEYS[1] state hash; ARGV: open_time, then the state the rules ran on (expected open_time, prev,
# armed, before; '' = absent), then macd_v, rearm, ttl, revise ('1': a corrected value of the
# stored bar, which keeps its `before`).
# Returns 1 claimed, 0 not newer than the stored bar (nor a revision of it), -1 state moved.
_CLAIM = """
local cur = redis.call('HMGET', KEYS[1], 'open_time', 'prev', 'armed', 'before')
if cur[1] then
  local stored, bar = tonumber(cur[1]), tonumber(ARGV[1])
  if stored > bar or (stored == bar and ARGV[9] ~= '1') then return 0 end
end
if (cur[1] or '') ~= ARGV[2] or (cur[2] or '') ~= ARGV[3] or (cur[3] or '') ~= ARGV[4]
    or (cur[4] or '') ~= ARGV[5] then
  return -1
end
if ARGV[9] == '1' then
  redis.call('HSET', KEYS[1], 'prev', ARGV[6])
else
  redis.call('HSET', KEYS[1], 'open_time', ARGV[1], 'prev', ARGV[6], 'before', ARGV[3])
end
if ARGV[7] == '1' or not cur[3] then
  redis.call('HSET', KEYS[1], 'armed', '1')
end
redis.call('PEXPIRE', KEYS[1], ARGV[8])
return 1
"""
# KEYS[1] state hash; ARGV: open_time. Disarms only if that bar is still the latest claimed.
_DISARM = """
if redis.call('HGET', KEYS[1], 'open_time') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'armed', '0')
  return 1
end
return 0
"""
# KEYS[1] cooldown key; ARGV: bar time, cooldown ms, ttl ms. Returns 1 when the label may fire
# (never again for a bar it already fired on, whatever the cooldown).
_COOLDOWN = """
local last = redis.call('GET', KEYS[1])
if last then
  local bar, fired = tonumber(ARGV[1]), tonumber(last)
  if bar <= fired or bar - fired < tonumber(ARGV[2]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
"""


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


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


_State = tuple[str, str, str, str]
"""A series' stored (open_time, prev, armed, before) as Redis holds them; '' = absent."""


class AlertEvaluator:
    """Evaluates every new IndicatorValue of one exchange and publishes the AlertEvents."""

    def __init__(
        self,
        redis: RedisClient,
        indicator_cache: IndicatorCache,
        ticker_cache: TickerCache,
        candle_cache: CandleCache,
        publisher: Publisher,
        *,
        exchange_id: int,
        exchange_name: str,
        cooldown_s: float = 300.0,
        timeframes: Sequence[Timeframe] = RUNTIME_TIMEFRAMES,
        sink: AlertSink | None = None,
    ) -> None:
        self._redis = redis
        self._indicators = indicator_cache
        self._tickers = ticker_cache
        self._candles = candle_cache
        self._publisher = publisher
        self._exchange_id = exchange_id
        self._exchange_name = exchange_name
        self._cooldown_ms = int(cooldown_s * 1000)
        self._timeframes = tuple(timeframes)
        self._sink = sink
        self._claim = redis.register_script(_CLAIM)
        self._disarm = redis.register_script(_DISARM)
        self._cooldown = redis.register_script(_COOLDOWN)
        self._known: dict[str, _State] = {}  # state key -> what this evaluator last claimed
        self._log = log.bind(exchange_id=exchange_id, exchange=exchange_name)

    async def evaluate(
        self, value: IndicatorValue, *, user_id: int | None = None, delayed: bool = False
    ) -> list[AlertEvent]:
        """Apply the rules to a new (or corrected) value; publish and return the alerts fired.

        Args:
            value: The series' newest IndicatorValue.
            user_id: The Tier 2 owner of the series, if any.
            delayed: The bar was not seen live (e.g. repaired after an outage); a corrected
                value of an already judged bar is always delayed.
        """
        macd_v = value.value.macd_v
        if value.exchange_id != self._exchange_id or macd_v is None:
            return []
        state_key = keys.alert_state_key(value.exchange_id, value.symbol, value.timeframe)
        claimed = await self._claim_bar(state_key, value, macd_v)
        if claimed is None:
            return []
        outcome, revised = claimed
        fired: list[Trigger] = []
        for trigger in outcome.triggers:
            if await self._take_cooldown(value, trigger.label):
                fired.append(trigger)
        if any(isinstance(t, Reversal) for t in fired):
            await self._disarm_after(state_key, value)
        if not fired:
            return []
        return await self._publish(value, macd_v, fired, user_id, delayed=delayed or revised)

    async def _disarm_after(self, state_key: str, value: IndicatorValue) -> None:
        """Disarm the series after a reversal fired (if that bar is still the latest)."""
        disarmed = int(await self._disarm(keys=[state_key], args=[value.open_time]))
        known = self._known.get(state_key)
        if disarmed and known is not None and known[0] == str(value.open_time):
            self._known[state_key] = (known[0], known[1], "0", known[3])
        elif not disarmed:
            self._known.pop(state_key, None)

    async def _claim_bar(
        self, state_key: str, value: IndicatorValue, macd_v: float
    ) -> tuple[RuleOutcome, bool] | None:
        """Claim the bar (or its correction); return the rule outcome and whether it revises."""
        state = self._known.get(state_key)
        new_prev = repr(macd_v)
        for _ in range(_CLAIM_ATTEMPTS):
            if state is None:
                state = await self._read_state(state_key)
            stored, prev, armed, before = state
            revising = bool(stored) and int(stored) == value.open_time
            if (stored and int(stored) > value.open_time) or (revising and prev == new_prev):
                return None
            basis = before if revising else prev
            outcome = RuleOutcome((), True)
            if basis:  # the first value of a series only initialises it
                outcome = evaluate_rules(
                    float(basis), macd_v, value.value.histogram, armed=armed in ("1", "")
                )
            args: list[int | str] = [
                value.open_time,
                stored,
                prev,
                armed,
                before,
                new_prev,
                int(outcome.rearmed),
                STATE_TTL_MS,
                int(revising),
            ]
            claimed = int(await self._claim(keys=[state_key], args=args))
            if claimed == 1:
                new_armed = "1" if outcome.rearmed or not armed else armed
                new_before = before if revising else prev
                self._remember(state_key, (str(value.open_time), new_prev, new_armed, new_before))
                return outcome, revising
            if claimed == 0:
                known = self._known.get(state_key)
                if known is not None and int(known[0] or 0) < value.open_time:
                    self._known.pop(state_key, None)  # stale: a newer bar was claimed elsewhere
                return None
            self._known.pop(state_key, None)
            state = None  # moved behind our back (another evaluator, a restart): re-read
        self._log.warning("alert.claim_contended", symbol=value.symbol, timeframe=value.timeframe)
        return None

    async def _read_state(self, state_key: str) -> _State:
        raw = {_text(k): _text(v) for k, v in (await self._redis.hgetall(state_key)).items()}
        fields = ("open_time", "prev", "armed", "before")
        stored = tuple(raw.get(name, "") for name in fields)
        return stored[0], stored[1], stored[2], stored[3]

    def _remember(self, state_key: str, state: _State) -> None:
        """Keep a claimed state unless a concurrent call already remembered a newer bar."""
        known = self._known.get(state_key)
        if known is None or not known[0] or int(known[0]) <= int(state[0]):
            self._known[state_key] = state

    async def _take_cooldown(self, value: IndicatorValue, label: str) -> bool:
        key = keys.alert_cooldown_key(value.exchange_id, value.symbol, value.timeframe, label)
        ttl = self._cooldown_ms + COOLDOWN_TTL_SLACK_MS
        allowed = int(
            await self._cooldown(keys=[key], args=[value.open_time, self._cooldown_ms, ttl])
        )
        if not allowed:
            self._log.info(
                "alert.cooldown", symbol=value.symbol, timeframe=value.timeframe.value, label=label
            )
        return allowed == 1

    async def _publish(
        self,
        value: IndicatorValue,
        macd_v: float,
        fired: list[Trigger],
        user_id: int | None,
        *,
        delayed: bool,
    ) -> list[AlertEvent]:
        price = await self._price(value, user_id)
        if price is None:
            self._log.error("alert.no_price", symbol=value.symbol, timeframe=value.timeframe.value)
            return []
        contexts = await self._contexts(value, user_id)
        bias = compute_bias((c.timeframe, c.stage) for c in contexts)
        closed_at_ms = value.open_time + duration_ms(value.timeframe)
        events: list[AlertEvent] = []
        for trigger in fired:
            event = AlertEvent(
                exchange_id=value.exchange_id,
                symbol=value.symbol,
                timeframe=value.timeframe,
                trigger_label=trigger.label,
                trigger_value=macd_v,
                signal_delta=value.value.histogram,
                price=price,
                triggered_at=datetime.fromtimestamp(closed_at_ms / 1000, UTC),
                timeframes=contexts,
                bias=bias,
                source_exchange_id=self._exchange_id,
                source_exchange_name=self._exchange_name,
                direction=trigger.direction,
                delayed=delayed,
            )
            await self._publisher.publish_alert(event)
            self._log.info(
                "alert.published",
                symbol=value.symbol,
                timeframe=value.timeframe.value,
                label=trigger.label,
                macd_v=event.trigger_value,
                direction=event.direction.value,
                delayed=delayed,
                alert_id=str(event.id),
            )
            events.append(event)
        if self._sink is not None:
            for event, trigger in zip(events, fired, strict=True):
                details = alert_details(trigger, value, contexts, bias, delayed=delayed)
                await self._hand_to_sink(event, details)
        return events

    async def _hand_to_sink(self, event: AlertEvent, details: Mapping[str, Any]) -> None:
        assert self._sink is not None
        try:
            await self._sink.submit(event, details)
        except Exception as exc:  # the publish already happened; storage retries on its own
            self._log.error("alert.sink_failed", alert_id=str(event.id), error=repr(exc))

    async def _price(self, value: IndicatorValue, user_id: int | None) -> float | None:
        ticker = await self._tickers.read(value.exchange_id, value.symbol)
        if ticker is not None:
            return ticker.price
        candle = await self._candles.latest(
            value.exchange_id, value.symbol, value.timeframe, user_id=user_id
        )
        return candle.close if candle is not None else None

    async def _contexts(self, value: IndicatorValue, user_id: int | None) -> list[TimeframeContext]:
        others = [tf for tf in self._timeframes if tf != value.timeframe]
        found = await self._indicators.read_many(
            value.exchange_id, value.symbol, others, user_id=user_id
        )
        found[value.timeframe] = value  # fresher than the cache, and present even if not listed
        ordered = sorted(found, key=lambda tf: duration_ms(tf))
        return [
            TimeframeContext(
                timeframe=tf,
                macd_v=reading.value.macd_v if reading else None,
                stage=reading.stage if reading else Stage.UNKNOWN,
            )
            for tf in ordered
            for reading in (found[tf],)
        ]


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
