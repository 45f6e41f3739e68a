"""IndicatorCalculator: one incremental MACD-V state per series, fed by closed candles.

Per closed bar: O(1) state update, then one `IndicatorCache.write` and one
`Publisher.publish_indicator`; given the pipeline's `WriteBatch` (which already holds the bar's
write and publish), both are queued behind them and the batch is flushed: one round trip.

A bar that is not newer than the state's last bar is a revised (or repaired, replayed) past bar,
already in the cache: the series is rebuilt from the cache, and the rebuilt latest value is
written, re-published and returned, so every later value stands on the corrected history. The
alert evaluator judges a changed value of its last bar again (never firing a bar's label twice)
and ignores an unchanged one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence

import structlog

from livermore_cache import channels
from livermore_cache.batch import WriteBatch
from livermore_cache.candles import CandleCache
from livermore_cache.indicators import IndicatorCache
from livermore_cache.pubsub import Publisher
from livermore_exchange_core.indicators.macdv import (
    DEFAULT_PARAMS,
    MacdVParams,
    MacdVState,
)
from livermore_exchange_core.indicators.reading import Reading, to_indicator_value
from livermore_schema.enums import Timeframe
from livermore_schema.indicators import IndicatorValue
from livermore_schema.market import Candle

log = structlog.get_logger(__name__)

DEFAULT_WARMUP_CANDLES = 1000
"""Candles read from the cache to seed a series (the cache's default retention)."""

SeriesKey = tuple[str, Timeframe]


class IndicatorCalculator:
    """MACD-V for every (symbol, timeframe) of one exchange, updated per closed candle."""

    def __init__(
        self,
        candle_cache: CandleCache,
        indicator_cache: IndicatorCache,
        publisher: Publisher,
        *,
        exchange_id: int,
        params: MacdVParams = DEFAULT_PARAMS,
        warmup_candles: int = DEFAULT_WARMUP_CANDLES,
    ) -> None:
        self._candles = candle_cache
        self._indicators = indicator_cache
        self._publisher = publisher
        self._exchange_id = exchange_id
        self._params = params
        self._warmup_candles = warmup_candles
        self._states: dict[SeriesKey, MacdVState] = {}
        self._locks: dict[SeriesKey, asyncio.Lock] = {}
        self._log = log.bind(exchange_id=exchange_id)

    @property
    def exchange_id(self) -> int:
        """The exchange whose series this calculator follows."""
        return self._exchange_id

    def state(self, symbol: str, timeframe: Timeframe) -> MacdVState | None:
        """Return the live state of a series, if it has been warmed up."""
        return self._states.get((symbol, timeframe))

    def reset(self, symbol: str, timeframe: Timeframe) -> None:
        """Forget a series; the next closed candle (or `warmup`) re-seeds it from the cache."""
        self._states.pop((symbol, timeframe), None)

    async def warmup(
        self, symbol: str, timeframe: Timeframe, *, user_id: int | None = None
    ) -> IndicatorValue | None:
        """Seed a series from the newest cached closed candles and write (not publish) its value.

        Returns:
            The value of the newest cached closed bar, or None when the cache has none.
        """
        async with self._lock(symbol, timeframe):
            return await self._warmup(symbol, timeframe, None, user_id)

    def advance(self, candle: Candle) -> Reading | None:
        """Update a warm series with its next closed bar, in process; None: take `on_closed_candle`.

        The burst path: no I/O, no pydantic model (`Reading`), the caller writes and publishes
        the value (`add_value`). None means the series
        is cold, busy (a warm-up holds its lock) or the bar is not newer than its last one: the
        caller hands the bar to `on_closed_candle` once the bar is in the cache.
        """
        key = (candle.symbol, candle.timeframe)
        state = self._states.get(key)
        if state is None or candle.exchange_id != self._exchange_id:
            return None
        last = state.last
        lock = self._locks.get(key)
        if (last is not None and candle.open_time <= last.open_time) or (
            lock is not None and lock.locked()
        ):
            return None
        return Reading(self._exchange_id, candle.symbol, candle.timeframe, state.update(candle))

    def add_value(self, batch: WriteBatch, value: Reading, user_id: int | None) -> None:
        """Queue the write and the publish of a value `advance` returned, in that order."""
        series = (value.exchange_id, value.symbol, value.timeframe, value.type)
        announce = [channels.indicator_channel(*series)]
        self._indicators.add_payload(
            batch, series, value.json(), user_id=user_id, announce=announce
        )

    async def on_closed_candle(
        self, candle: Candle, *, user_id: int | None = None, batch: WriteBatch | None = None
    ) -> IndicatorValue | None:
        """Update the series with a newly closed bar; write and publish its value.

        Args:
            candle: The closed bar.
            user_id: The Tier 2 owner of the series, if any.
            batch: Commands still to send that write and announce `candle`; flushed (with the
                value's write and publish behind them on the plain path) before this returns.

        Returns:
            The new value (for a past bar: the series' latest, rebuilt over the corrected
            history), or None when nothing was published (unfinished bar, empty history).
        """
        if not candle.closed or candle.synthetic or candle.exchange_id != self._exchange_id:
            if batch is not None:
                await batch.flush()
            return None
        key = (candle.symbol, candle.timeframe)
        async with self._lock(*key):
            state = self._states.get(key)
            last = state.last if state is not None else None
            if state is None or (last is not None and candle.open_time <= last.open_time):
                if batch is not None:
                    await batch.flush()  # the slow paths read the cache, which must hold the bar
                return await self._rewarm(candle, user_id, last.open_time if last else None)
            point = state.update(candle)
            value = to_indicator_value(
                point,
                exchange_id=self._exchange_id,
                symbol=candle.symbol,
                timeframe=candle.timeframe,
            )
            if batch is None:
                await self._indicators.write(value, user_id=user_id)
                await self._publisher.publish_indicator(value)
            else:
                self._indicators.add_write(batch, value, user_id=user_id)
                self._publisher.add_indicator(batch, value)
                await batch.flush()
            return value

    async def _rewarm(
        self, candle: Candle, user_id: int | None, last_open_time: int | None
    ) -> IndicatorValue | None:
        """Seed the series from the cache, ending with `candle` or (past bar) with the newest."""
        if last_open_time is not None:
            self._log.info(
                "indicator.past_bar_rewarm",
                symbol=candle.symbol,
                timeframe=candle.timeframe.value,
                open_time=candle.open_time,
                last_open_time=last_open_time,
            )
        # Without a state the seeded history ends with this very bar, so its value is the new one.
        upto = candle if last_open_time is None else None
        value = await self._warmup(candle.symbol, candle.timeframe, upto, user_id)
        if value is not None:
            await self._publisher.publish_indicator(value)
        return value

    def _lock(self, symbol: str, timeframe: Timeframe) -> asyncio.Lock:
        return self._locks.setdefault((symbol, timeframe), asyncio.Lock())

    async def _warmup(
        self, symbol: str, timeframe: Timeframe, upto: Candle | None, user_id: int | None
    ) -> IndicatorValue | None:
        """Rebuild a series from the cache (closed bars only, up to `upto` when given)."""
        cached = await self._candles.recent(
            self._exchange_id, symbol, timeframe, self._warmup_candles, user_id=user_id
        )
        limit = upto.open_time if upto is not None else None
        history = [
            bar for bar in cached if bar.closed and (limit is None or bar.open_time <= limit)
        ]
        if upto is not None and (not history or history[-1].open_time < upto.open_time):
            history.append(upto)  # the close arrived before (or without) its cache write
        return await self._seed(symbol, timeframe, history, user_id)

    async def warmup_all(
        self,
        series: Sequence[SeriesKey],
        judged: Mapping[SeriesKey, int | None],
        user_of: Callable[[str], int | None],
        progress: Callable[[int, int, str], None],
    ) -> list[Candle]:
        """`warmup_behind` each series in turn (reporting progress); return all the late bars."""
        late: list[Candle] = []
        for done, (symbol, timeframe) in enumerate(series, start=1):
            last = judged.get((symbol, timeframe))
            late += await self.warmup_behind(symbol, timeframe, last, user_id=user_of(symbol))
            progress(done, len(series), f"{symbol} {timeframe.value}")
        return late

    async def warmup_behind(
        self,
        symbol: str,
        timeframe: Timeframe,
        judged_ms: int | None,
        *,
        user_id: int | None = None,
    ) -> list[Candle]:
        """Seed a series up to the bar its alerts last judged; return the cached bars after it.

        A restarted worker (or one taking over) hands the returned bars back through the
        closed-bar path, so bars that closed while no worker judged them are judged in order
        (`CandlePipeline.catch_up`). Like `warmup` (and returning []) when nothing was judged or
        the judged bar is not inside the cached history, or is its newest bar.
        """
        async with self._lock(symbol, timeframe):
            cached = await self._candles.recent(
                self._exchange_id, symbol, timeframe, self._warmup_candles, user_id=user_id
            )
            closed = [bar for bar in cached if bar.closed]
            inside = closed and closed[0].open_time <= (judged_ms or -1) < closed[-1].open_time
            if judged_ms is None or not inside:
                await self._seed(symbol, timeframe, closed, user_id)
                return []
            history = [bar for bar in closed if bar.open_time <= judged_ms]
            await self._seed(symbol, timeframe, history, user_id)
            return closed[len(history) :]

    async def _seed(
        self, symbol: str, timeframe: Timeframe, history: list[Candle], user_id: int | None
    ) -> IndicatorValue | None:
        """Seed a series from a closed history (oldest first) and write its newest value."""
        state = MacdVState(timeframe, self._params)
        self._states[(symbol, timeframe)] = state
        point = state.seed(history)
        if point is None:
            return None
        value = to_indicator_value(
            point, exchange_id=self._exchange_id, symbol=symbol, timeframe=timeframe
        )
        await self._indicators.write(value, user_id=user_id)
        self._log.debug(
            "indicator.warmed_up",
            symbol=symbol,
            timeframe=timeframe.value,
            bars=len(history),
            seeded=point.seeded,
        )
        return value
