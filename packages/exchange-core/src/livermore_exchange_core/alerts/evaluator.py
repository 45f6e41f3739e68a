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

`evaluate_many` judges a burst (a boundary's 6,000 closes) the same way, batched: all claims in
one round trip, then cooldowns and reads, then publishes; bars behind a reversal await its disarm.

Delivery is at most once: the event is published on `channel:alerts:{exchange_id}` first, then
handed to the sink (storage, notification); a sink failure is logged and never undoes the publish.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import structlog

from livermore_cache import keys
from livermore_cache.batch import WriteBatch
from livermore_cache.candles import CandleCache
from livermore_cache.client import RedisClient
from livermore_cache.indicators import IndicatorCache
from livermore_cache.pubsub import Publisher
from livermore_cache.tickers import TickerCache
from livermore_exchange_core.alerts import burst
from livermore_exchange_core.alerts.claims import (
    CLAIM,
    CLAIM_SCRIPT,
    COOLDOWN,
    COOLDOWN_SCRIPT,
    COOLDOWN_TTL_SLACK_MS,
    DISARM,
    DISARM_SCRIPT,
    EMPTY,
    NONE_DELAYED,
    STATE_FIELDS,
    AnyValue,
    Claim,
    Delayed,
    Planned,
    Rated,
    State,
    StateKeys,
    Won,
    after,
    disarmed_state,
    is_delayed,
    plan,
    reverses,
    state_of,
    text,
)
from livermore_exchange_core.alerts.rules import Reversal, Trigger
from livermore_exchange_core.alerts.sinks import AlertSink as AlertSink
from livermore_exchange_core.alerts.sinks import FanOutSink as FanOutSink
from livermore_exchange_core.alerts.sinks import alert_details
from livermore_exchange_core.indicators.reading import model_of
from livermore_exchange_core.symbols.assets import AssetMap
from livermore_schema.alerts import AlertEvent, TimeframeContext
from livermore_schema.enums import RUNTIME_TIMEFRAMES, Timeframe
from livermore_schema.indicators import IndicatorValue

log = structlog.get_logger(__name__)

_CLAIM_ATTEMPTS = 5


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
        assets: AssetMap | None = None,
    ) -> None:
        self._redis = redis
        self._indicators = indicator_cache
        self._tickers = ticker_cache
        self._candles = candle_cache
        self._publisher = publisher
        self._exchange_id = exchange_id
        self._exchange_name = exchange_name
        self._cooldown_ms = int(cooldown_s * 1000)
        self._cooldown_tail = [self._cooldown_ms, self._cooldown_ms + COOLDOWN_TTL_SLACK_MS]
        self._timeframes = tuple(timeframes)
        self._sink = sink
        self._assets = assets
        self._claim = redis.register_script(CLAIM)
        self._disarm = redis.register_script(DISARM)
        self._cooldown = redis.register_script(COOLDOWN)
        self._known: dict[str, State] = {}  # state key -> what this evaluator last claimed
        self._state_keys = StateKeys(exchange_id)
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
        state_key = self._state_keys[(value.symbol, value.timeframe)]
        claim = await self._claim_bar(state_key, value, macd_v)
        if claim is None:
            return []
        fired: list[Trigger] = []
        for trigger in claim.outcome.triggers:
            if await self._take_cooldown(value, trigger.label):
                fired.append(trigger)
        if any(isinstance(t, Reversal) for t in fired):
            disarmed = int(await self._disarm(keys=[state_key], args=[value.open_time]))
            self._disarmed(state_key, value, disarmed)
        if not fired:
            return []
        return await self._publish(value, fired, user_id, delayed=delayed or claim.revising)

    async def evaluate_many(self, values: Sequence[Rated], delayed: Delayed = NONE_DELAYED) -> int:
        """Judge a burst of new values (value, Tier 2 user); return how many alerts fired.

        The same rules, claims and cooldowns as `evaluate`, each step batched for the whole
        burst (module docstring). Values of one series must come oldest first; those of
        `delayed` bars fire flagged `delayed`.
        """
        await self.prefetch([(v.symbol, v.timeframe) for v, _ in values])
        batch = WriteBatch(self._redis)
        planned = self.queue_claims(batch, values, delayed)
        return await self.judge(planned, await batch.flush())

    async def prefetch(self, series: Sequence[tuple[str, Timeframe]]) -> None:
        """Read the stored state of the series this evaluator knows nothing of (one round trip)."""
        wanted = map(self._state_keys.__getitem__, series)
        unknown = list(dict.fromkeys(key for key in wanted if key not in self._known))
        if not unknown:
            return
        batch = WriteBatch(self._redis)
        for key in unknown:
            batch.add("HMGET", key, *STATE_FIELDS)
        for key, raw in zip(unknown, await batch.flush(), strict=True):
            self._known.setdefault(key, state_of(raw))

    async def judged(
        self, series: Sequence[tuple[str, Timeframe]]
    ) -> dict[tuple[str, Timeframe], int | None]:
        """Return the open time of the last bar judged per series (None: never judged)."""
        await self.prefetch(series)
        stored = {s: self._known.get(self._state_keys[s], EMPTY)[0] for s in series}
        return {s: int(at) if at else None for s, at in stored.items()}

    def forget(self, series: Iterable[tuple[str, Timeframe]]) -> None:
        """Drop the known state of series whose claims were never sent (a failed flush)."""
        for symbol, timeframe in series:
            self._known.pop(self._state_keys[(symbol, timeframe)], None)

    def queue_claims(
        self, batch: WriteBatch, values: Sequence[Rated], delayed: Delayed = NONE_DELAYED
    ) -> list[Planned]:
        """Queue the claim of every value on `batch`, planned on the state known (see prefetch)."""
        planned: list[Planned] = []
        reversing: set[str] = set()  # series whose later bars wait for a reversal's disarm
        for value, user_id in values:
            if value.exchange_id != self._exchange_id or value.value.macd_v is None:
                continue
            key = self._state_keys[(value.symbol, value.timeframe)]
            late = is_delayed(value, delayed)
            if key in reversing:
                planned.append(Planned(value, user_id, key, EMPTY, None, -1, late))
                continue
            state = self._known.get(key, EMPTY)
            claim = plan(state, value, value.value.macd_v)
            if claim is not None:
                at = batch.add_script(CLAIM_SCRIPT, key, *claim.args)
                planned.append(Planned(value, user_id, key, state, claim, at, late))
                self._known[key] = after(state, claim)  # a later bar of the series builds on it
                reversing |= {key} if reverses(claim) else set()
        return planned

    async def judge(self, planned: Sequence[Planned], replies: Sequence[Any]) -> int:
        """Settle the queued claims with their replies, then fire what they triggered."""
        won: list[Won] = []
        for p in planned:
            if p.claim is None:
                continue
            self._known[p.state_key] = p.state
            answer = int(replies[p.at])
            got = p.claim if self._claimed(p.state_key, p.value, p.state, p.claim, answer) else None
            if got is None and answer == -1:
                got = await self._claim_bar(p.state_key, p.value, p.value.value.macd_v or 0.0)
            if got is not None and got.outcome.triggers:
                triggers = list(got.outcome.triggers)
                late = got.revising or p.delayed
                won.append(Won(model_of(p.value), p.user_id, p.state_key, triggers, late))
        fired = await self._fire_many(won) if won else 0
        for p in (p for p in planned if p.claim is None):  # behind a reversal: now disarmed
            fired += len(
                await self.evaluate(model_of(p.value), user_id=p.user_id, delayed=p.delayed)
            )
        return fired

    async def _fire_many(self, won: list[Won]) -> int:
        """Cooldowns and reads in one round trip, then disarms and publishes in another."""
        batch = WriteBatch(self._redis)
        cooldowns = [
            [self._queue_cooldown(batch, w.value, t.label) for t in w.triggers] for w in won
        ]
        reads = [burst.queue_reads(batch, w.value, self._timeframes) for w in won]
        replies = await batch.flush()
        out = WriteBatch(self._redis)
        disarms: list[tuple[Won, int]] = []
        published: list[tuple[AlertEvent, Trigger, Won, list[TimeframeContext]]] = []
        for w, at, read in zip(won, cooldowns, reads, strict=True):
            w.triggers = [t for t, i in zip(w.triggers, at, strict=True) if int(replies[i]) == 1]
            if not w.triggers:
                continue
            if any(isinstance(t, Reversal) for t in w.triggers):
                disarms.append((w, out.add_script(DISARM_SCRIPT, w.state_key, w.value.open_time)))
            ticker, readings = burst.parse_reads(replies, read, w.value, self._timeframes)
            price = ticker.price if ticker and w.user_id is None else None
            contexts = burst.context_rows(w.value, readings)
            if w.user_id is not None:  # Tier 2: dual-read keys
                contexts = await self._contexts(w.value, w.user_id)
            price = price if price is not None else await self._price(w.value, w.user_id)
            if price is None:
                self._log.error("alert.no_price", symbol=w.value.symbol, tf=w.value.timeframe.value)
                continue
            for event, trigger in self._events(w.value, w.triggers, price, contexts, w.delayed):
                self._publisher.add_alert(out, event)
                published.append((event, trigger, w, contexts))
        replies = await out.flush()
        for w, i in disarms:
            self._disarmed(w.state_key, w.value, int(replies[i]))
        for event, trigger, w, contexts in published:
            self._published(event, trigger, w.value)
            if self._sink is not None:
                details = alert_details(trigger, w.value, contexts, event.bias, delayed=w.delayed)
                await self._hand_to_sink(event, details)
        return len(published)

    def _queue_cooldown(self, batch: WriteBatch, value: IndicatorValue, label: str) -> int:
        key = keys.alert_cooldown_key(value.exchange_id, value.symbol, value.timeframe, label)
        return batch.add_script(COOLDOWN_SCRIPT, key, value.open_time, *self._cooldown_tail)

    def _disarmed(self, state_key: str, value: IndicatorValue, disarmed: int) -> None:
        """Record the disarm script's answer after a reversal fired."""
        known = disarmed_state(self._known.pop(state_key, None), value.open_time, disarmed)
        if known is not None:
            self._known[state_key] = known

    async def _claim_bar(self, state_key: str, value: AnyValue, macd_v: float) -> Claim | None:
        """Claim the bar (or its correction); return the claim, or None if not ours."""
        state = self._known.get(state_key)
        for _ in range(_CLAIM_ATTEMPTS):
            if state is None:
                state = await self._read_state(state_key)
            claim = plan(state, value, macd_v)
            if claim is None:
                return None
            answer = int(await self._claim(keys=[state_key], args=claim.args))
            if self._claimed(state_key, value, state, claim, answer):
                return claim
            if answer == 0:
                return None
            state = None  # moved behind our back (another evaluator, a restart): re-read
        self._log.warning("alert.claim_contended", symbol=value.symbol, timeframe=value.timeframe)
        return None

    def _claimed(
        self, state_key: str, value: AnyValue, state: State, claim: Claim, answer: int
    ) -> bool:
        """Record the claim script's answer (1 claimed, 0 not ours, -1 moved); True if claimed."""
        if answer == 1:
            self._remember(state_key, after(state, claim))
            return True
        known = self._known.get(state_key)
        if answer == -1 or (known is not None and int(known[0] or 0) < value.open_time):
            self._known.pop(state_key, None)  # stale: moved, or a newer bar claimed elsewhere
        return False

    async def _read_state(self, state_key: str) -> State:
        raw = {text(k): v for k, v in (await self._redis.hgetall(state_key)).items()}
        return state_of([raw.get(name) for name in STATE_FIELDS])

    def _remember(self, state_key: str, state: State) -> None:
        """Keep a claimed state unless a concurrent call already remembered a newer bar."""
        known = self._known.get(state_key)
        if known is None or not known[0] or int(known[0]) <= int(state[0]):
            self._known[state_key] = state

    async def _take_cooldown(self, value: IndicatorValue, label: str) -> bool:
        key = keys.alert_cooldown_key(value.exchange_id, value.symbol, value.timeframe, label)
        if int(await self._cooldown(keys=[key], args=[value.open_time, *self._cooldown_tail])):
            return True
        self._log.info("alert.cooldown", symbol=value.symbol, tf=value.timeframe.value, label=label)
        return False

    async def _publish(
        self,
        value: IndicatorValue,
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
        made = self._events(value, fired, price, contexts, delayed)
        for event, trigger in made:
            await self._publisher.publish_alert(event)
            self._published(event, trigger, value)
        if self._sink is not None:
            for event, trigger in made:
                details = alert_details(trigger, value, contexts, event.bias, delayed=delayed)
                await self._hand_to_sink(event, details)
        return [event for event, _ in made]

    def _events(
        self,
        value: IndicatorValue,
        fired: list[Trigger],
        price: float,
        contexts: list[TimeframeContext],
        delayed: bool,
    ) -> list[tuple[AlertEvent, Trigger]]:
        """Return the AlertEvent of each fired trigger of one value."""
        ref = self._assets.of(value.exchange_id, value.symbol) if self._assets else None
        source = (self._exchange_id, self._exchange_name)
        return burst.make_events(value, fired, price, contexts, delayed, source, ref)

    def _published(self, event: AlertEvent, trigger: Trigger, value: IndicatorValue) -> None:
        self._log.info(
            "alert.published",
            symbol=value.symbol,
            timeframe=value.timeframe.value,
            label=trigger.label,
            macd_v=event.trigger_value,
            direction=event.direction.value,
            delayed=event.delayed,
            alert_id=str(event.id),
        )

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
        return burst.context_rows(value, found)
