"""`BoundaryRestService`: Coinbase 15m/1h/4h/1d bars fetched over REST as their boundary passes.

Coinbase streams only 5m candles. When a 5m bar closes, its close time (open + 5m) may be the
boundary of higher timeframes; for each such boundary the service runs ONE fetch wave for all
symbols (however many symbols report that same 5m close), asking for the bar that *just closed*
(open = boundary - duration), not the one just opened. REST can lag the close by a moment, so a
symbol whose answer lacks the bar is retried a few times with backoff; a bucket without trades
never appears and is given up quietly. Every fetch goes through the shared rate limiter.

Starting (`start`) catches every timeframe up at once: the bars that closed while the worker
was starting (after its backfill, before streaming) are fetched as soon as streaming starts, not
at each timeframe's next boundary (up to a day for 1d). Only series whose newest cached bar is
older than the latest closed one are asked for.

Each fetch also catches its series up: when the newest cached bar is older than the one before
the just-closed bar (a boundary passed while the startup backfill ran, before the service
started, during a stall that hid its 5m close, or its wave failed), the same request starts
right after that cached bar (at most `MAX_CATCH_UP_BARS`, one page), and the missed bars are
handed on, oldest first, before the just-closed one. Nothing stays missing past the
series' next boundary, at no extra request. Fetches of one series run one at a time, in wave
order, so overlapping waves (a burst of 5m closes after a stall) neither fetch nor publish a
missed bar twice, nor an older bar after a newer one.

The service writes nothing itself: every bar it fetches goes to its `sink` (the worker's
`CandlePipeline`), the one path of closed bars (cache write, publish, indicator, alerts). It
follows that path's flushed bursts (`on_closed_bars`) to see the 5m closes.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

import structlog

from livermore_exchange_core.backoff import Backoff, BackoffPolicy
from livermore_exchange_core.base import RestClient
from livermore_exchange_core.errors import FatalError, LivermoreExchangeError
from livermore_exchange_core.reconciliation import CandleStore
from livermore_schema.enums import Timeframe
from livermore_schema.market import Candle
from livermore_schema.timeframes import duration_ms, floor_to_boundary, is_boundary

log = structlog.get_logger(__name__)

HIGHER_TIMEFRAMES: tuple[Timeframe, ...] = (Timeframe.M15, Timeframe.H1, Timeframe.H4, Timeframe.D1)

LAG_RETRY = BackoffPolicy(base_s=0.5, factor=2.0, cap_s=8.0, jitter=0.3, max_attempts=5)
"""Retries for a bar REST has not published yet: ~15 s of patience in total."""

MAX_CATCH_UP_BARS = 300
"""The most bars one fetch asks for (Coinbase's page), catch-up included."""


class ClosedBarSink(Protocol):
    """Where fetched bars go (`CandlePipeline.on_candle`)."""

    async def on_candle(self, candle: Candle) -> None:
        """Accept one closed bar."""


class BoundaryRestService:
    """Turns 5m closes into one REST fetch wave per higher-timeframe boundary."""

    def __init__(
        self,
        rest_client: RestClient,
        candle_cache: CandleStore,
        *,
        exchange_id: int,
        exchange_name: str,
        timeframes: Sequence[Timeframe] = HIGHER_TIMEFRAMES,
        sink: ClosedBarSink | None = None,
        symbols: Iterable[str] = (),
        user_ids: Mapping[str, int] | None = None,
        lag_retry: BackoffPolicy = LAG_RETRY,
        rng: random.Random | None = None,
    ) -> None:
        self._rest = rest_client
        self._cache = candle_cache
        self._exchange_id = exchange_id
        self._timeframes = tuple(sorted(set(timeframes), key=duration_ms))
        self._sink = sink
        self._symbols: tuple[str, ...] = tuple(dict.fromkeys(symbols))
        self._user_ids = dict(user_ids or {})
        self._lag_retry = lag_retry
        self._rng = rng or random.Random()
        self._last_boundary: dict[Timeframe, int] = {}
        self._series_locks: dict[tuple[str, Timeframe], asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[list[Candle]]] = set()
        self.waves = 0
        self._log = log.bind(exchange=exchange_name)

    def set_symbols(
        self, symbols: Iterable[str], user_ids: Mapping[str, int] | None = None
    ) -> None:
        """Replace the monitored symbols (next wave onwards)."""
        self._symbols = tuple(dict.fromkeys(symbols))
        if user_ids is not None:
            self._user_ids = dict(user_ids)

    def start_after(self, boundary_ms: int) -> None:
        """Ignore boundaries at or before `boundary_ms` (already covered by the backfill)."""
        for timeframe in self._timeframes:
            self._last_boundary[timeframe] = max(self._last_boundary.get(timeframe, 0), boundary_ms)

    @property
    def in_flight(self) -> bool:
        """Whether a wave or the start's catch-up is fetching now."""
        return bool(self._tasks)

    def start(self, now_ms: int) -> asyncio.Task[list[Candle]]:
        """Follow boundaries after `now_ms` and fetch, at once, what closed before it uncached.

        `now_ms` is exchange time (0: unknown yet, then the task asks the exchange).
        """
        self.start_after(now_ms)
        task = asyncio.create_task(self.catch_up(now_ms), name="boundary-catch-up")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def catch_up(self, now_ms: int = 0) -> list[Candle]:
        """Fetch every timeframe's latest bar closed by `now_ms` (and older missed ones).

        Series whose cache already holds that bar cost no request.
        """
        now = now_ms or await self._rest.server_time_ms()
        jobs = [
            (symbol, tf, floor_to_boundary(now, tf))
            for tf in self._timeframes
            for symbol in self._symbols
        ]
        results = await asyncio.gather(
            *(self._fetch_closed(s, tf, b, only_missing=True) for s, tf, b in jobs)
        )
        fetched = [candle for candle in results if candle is not None]
        self._log.info("boundary.caught_up", now_ms=now, series=len(jobs), fetched=len(fetched))
        return fetched

    def due(self, boundary_ms: int) -> list[Timeframe]:
        """Return the timeframes whose boundary `boundary_ms` is and has not had its wave yet."""
        return [
            tf
            for tf in self._timeframes
            if is_boundary(boundary_ms, tf) and boundary_ms > self._last_boundary.get(tf, -1)
        ]

    def on_closed_bars(self, bars: Sequence[Candle]) -> None:
        """Follow a flushed burst of the closed-bar path: start the waves its 5m closes complete."""
        for bar in bars:
            if bar.timeframe is Timeframe.M5:
                self.on_five_minute_close(bar)

    def on_five_minute_close(self, candle: Candle) -> asyncio.Task[list[Candle]] | None:
        """Note a closed 5m bar; start (and return) a wave if it completes a higher bar."""
        if candle.timeframe is not Timeframe.M5 or not candle.closed:
            return None
        boundary = candle.open_time + duration_ms(Timeframe.M5)
        due = self.due(boundary)
        if not due:
            return None
        for timeframe in due:
            self._last_boundary[timeframe] = boundary
        task = asyncio.create_task(self.run_wave(boundary, due), name=f"boundary-{boundary}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def run_wave(self, boundary_ms: int, timeframes: Sequence[Timeframe]) -> list[Candle]:
        """Fetch and hand on the bar ending at `boundary_ms` for every symbol x timeframe."""
        self.waves += 1
        jobs = [(symbol, tf) for tf in timeframes for symbol in self._symbols]
        results = await asyncio.gather(
            *(self._fetch_closed(symbol, tf, boundary_ms) for symbol, tf in jobs)
        )
        fetched = [candle for candle in results if candle is not None]
        self._log.info(
            "boundary.wave",
            boundary_ms=boundary_ms,
            timeframes=[tf.value for tf in timeframes],
            symbols=len(self._symbols),
            fetched=len(fetched),
        )
        return fetched

    async def _fetch_closed(
        self, symbol: str, timeframe: Timeframe, boundary_ms: int, *, only_missing: bool = False
    ) -> Candle | None:
        lock = self._series_locks.setdefault((symbol, timeframe), asyncio.Lock())
        async with lock:
            return await self._fetch_series(symbol, timeframe, boundary_ms, only_missing)

    async def _fetch_series(
        self, symbol: str, timeframe: Timeframe, boundary_ms: int, only_missing: bool = False
    ) -> Candle | None:
        open_time = boundary_ms - duration_ms(timeframe)
        since = await self._missing_since(symbol, timeframe, open_time, only_missing)
        if since is None:
            return None
        backoff = Backoff(self._lag_retry, self._rng)
        while True:
            try:
                candles = await self._rest.get_candles(
                    symbol, timeframe, start_ms=since, end_ms=boundary_ms
                )
            except FatalError as error:
                self._log.warning("boundary.fetch_failed", symbol=symbol, error=str(error))
                return None
            except LivermoreExchangeError as error:
                candles = []
                self._log.warning("boundary.fetch_retry", symbol=symbol, error=str(error))
            closed = {c.open_time: c for c in candles if c.closed and since <= c.open_time}
            found = closed.get(open_time)
            if found is not None or backoff.exhausted():
                await self._deliver([closed[t] for t in sorted(closed) if t <= open_time])
                if found is None:
                    self._log.info(
                        "boundary.bar_absent",
                        symbol=symbol,
                        tf=timeframe.value,
                        open_time=open_time,
                    )
                return found
            await asyncio.sleep(backoff.next_delay())

    async def _missing_since(
        self, symbol: str, timeframe: Timeframe, open_time: int, only_missing: bool = False
    ) -> int | None:
        """Return where the fetch of the bar at `open_time` starts: after the newest cached bar.

        None (with `only_missing`): the cache holds that bar already, nothing to fetch.
        """
        step = duration_ms(timeframe)
        newest = await self._cache.recent(
            self._exchange_id, symbol, timeframe, 1, user_id=self._user_ids.get(symbol)
        )
        if not newest:
            return open_time  # nothing to anchor on: the startup backfill owns history
        last_closed = newest[-1].open_time - (0 if newest[-1].closed else step)
        if only_missing and last_closed >= open_time:
            return None
        if last_closed >= open_time - step:
            return open_time
        self._log.info(
            "boundary.catch_up", symbol=symbol, tf=timeframe.value, since_ms=last_closed + step
        )
        return max(last_closed + step, open_time - (MAX_CATCH_UP_BARS - 1) * step)

    async def _deliver(self, candles: Sequence[Candle]) -> None:
        if self._sink is not None:
            for candle in candles:
                await self._sink.on_candle(candle)

    async def drain(self) -> None:
        """Wait for every wave in flight to finish."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        """Cancel the waves in flight and wait for them to end."""
        for task in list(self._tasks):
            task.cancel()
        await self.drain()
