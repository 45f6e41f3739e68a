"""Bars assembled from Coinbase streams, closed by exchange time (pure, no I/O).

- `MinuteBarBuilder`: 1m bars from `market_trades`. A minute with no trades yields no bar (as
  Coinbase's REST omits it). A bar closes when a trade of a later minute arrives or when the
  exchange clock passes its end by `grace_ms`: not only on the next trade, so a quiet market
  still closes its bar on time.
- `CandleUpserter`: 5m bars from the `candles` channel, which re-sends the same `start` with
  changing OHLCV; the bar is upserted and closes when a later `start` arrives or its end has
  passed by `grace_ms` on the exchange clock.

Both can be *tainted* from an open time on: after a reconnect or a lost frame the stream's
view of earlier bars is incomplete, so every bar opening before `trusted_from_ms` is dropped
and must come from REST instead.

Late data after an on-time close is folded in, not dropped. Closing by exchange time is a
guess that the bar's data has all arrived; it can be wrong (Coinbase delivers a frame's trades
after a heartbeat that is already past the minute, or trades simply arrive late). The newest
`keep_closed` closed bars per symbol stay revisable: a trade of such a minute that is newer than
its last folded trade (by time, then trade id; an older or equal one is a re-delivery) updates
it, and a `candles` update restating a closed bucket with different values (and no less
volume: a bucket never shrinks) replaces them. `take_revisions()` returns each corrected bar
once as a closed `Candle`, which the adapter hands to `MarketDataSink.on_candle_revised`, so the
cache ends equal to the exchange whatever the delivery timing. We chose this over re-checking
every closed bar over REST: it costs nothing, fixes the bar within the same frame, and a REST
check per symbol and minute would spend a third of Coinbase's 10 req/s on 200 symbols. Data for
a minute older than the kept bars, before a taint, or for a minute that never had a bar is
still counted in `late` and dropped (the stream is in order, so that means a loss, which the
sequence and heartbeat checks report as a gap).
"""

from __future__ import annotations

from dataclasses import dataclass

from livermore_schema.enums import CandleSource, Timeframe
from livermore_schema.market import Candle
from livermore_schema.timeframes import duration_ms

TradeKey = tuple[int, int]
"""Orders trades: (time ms, trade id)."""


@dataclass(slots=True)
class _Bar:
    start: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    first: TradeKey
    last: TradeKey


class _BarBook:
    """Open bars per symbol, closed by exchange time; shared by both builders."""

    def __init__(
        self,
        exchange_id: int,
        exchange: str,
        timeframe: Timeframe,
        grace_ms: int,
        keep_closed: int,
    ) -> None:
        self.exchange_id = exchange_id
        self.exchange = exchange
        self.timeframe = timeframe
        self.step = duration_ms(timeframe)
        self.grace_ms = grace_ms
        self.trusted_from = 0
        self.symbol_trusted: dict[str, int] = {}
        self.pending: dict[str, _Bar] = {}
        self.last_closed: dict[str, int] = {}
        self.closed_bars: dict[str, dict[int, _Bar]] = {}
        self.keep_closed = keep_closed
        self.late = 0
        self.revised = 0
        self._dirty: dict[tuple[int, str], _Bar] = {}
        self._next_due = 1 << 62

    def accepts(self, symbol: str, start: int) -> bool:
        """Return whether a bar opening at `start` may still be built from the stream."""
        if (
            start < self.trusted_from
            or start < self.symbol_trusted.get(symbol, 0)
            or start <= self.last_closed.get(symbol, -1)
        ):
            self.late += 1
            return False
        return True

    def open_bar(self, symbol: str, bar: _Bar) -> None:
        """Track `bar` as the symbol's open bar."""
        self.pending[symbol] = bar
        due = bar.start + self.step + self.grace_ms
        if due < self._next_due:
            self._next_due = due

    def close(self, symbol: str) -> Candle:
        """Close and return the symbol's open bar (it stays revisable for a while)."""
        bar = self.pending.pop(symbol)
        self.last_closed[symbol] = bar.start
        kept = self.closed_bars.setdefault(symbol, {})
        kept[bar.start] = bar
        if len(kept) > self.keep_closed:
            del kept[min(kept)]
        return self._candle(symbol, bar)

    def revisable(self, symbol: str, start: int) -> _Bar | None:
        """Return the kept closed bar opening at `start` if late data may still revise it."""
        bar = self.closed_bars.get(symbol, {}).get(start)
        if bar is None or start < self.trusted_from or start < self.symbol_trusted.get(symbol, 0):
            self.late += 1
            return None
        return bar

    def mark_revised(self, symbol: str, bar: _Bar) -> None:
        """Note that a closed bar changed; `take_revisions` hands it out once."""
        self._dirty[(bar.start, symbol)] = bar

    def take_revisions(self) -> list[Candle]:
        """Return every closed bar revised since the last call, oldest first, once each."""
        if not self._dirty:
            return []
        dirty, self._dirty = self._dirty, {}
        self.revised += len(dirty)
        return [self._candle(symbol, dirty[(start, symbol)]) for start, symbol in sorted(dirty)]

    def _candle(self, symbol: str, bar: _Bar) -> Candle:
        return Candle(
            exchange_id=self.exchange_id,
            exchange=self.exchange,
            symbol=symbol,
            timeframe=self.timeframe,
            open_time=bar.start,
            close_time=bar.start + self.step - 1,
            open=bar.open,
            high=bar.high,
            low=bar.low,
            close=bar.close,
            volume=round(bar.volume, 8),
            closed=True,
            source=CandleSource.WS,
        )

    def close_due(self, now_ms: int) -> list[Candle]:
        """Close every bar whose end has passed by the grace period at exchange time `now_ms`."""
        if now_ms < self._next_due:
            return []
        horizon = now_ms - self.step - self.grace_ms
        due = sorted((bar.start, sym) for sym, bar in self.pending.items() if bar.start <= horizon)
        closed = [self.close(symbol) for _, symbol in due]
        self._next_due = min(
            (b.start + self.step + self.grace_ms for b in self.pending.values()), default=1 << 62
        )
        return closed

    def taint(self, trusted_from_ms: int) -> None:
        """Drop every open bar before `trusted_from_ms` and ignore data before it from now on."""
        self.trusted_from = max(self.trusted_from, trusted_from_ms)
        for symbol in [s for s, b in self.pending.items() if b.start < self.trusted_from]:
            del self.pending[symbol]
        for kept in self.closed_bars.values():
            for start in [t for t in kept if t < self.trusted_from]:
                del kept[start]

    def drop_open_bars(self) -> None:
        """Forget every open bar and closed bars' revisability (their connection is gone)."""
        self.pending.clear()
        self.closed_bars.clear()

    def forget(self, symbol: str) -> None:
        """Stop tracking a symbol (unsubscribed)."""
        self.pending.pop(symbol, None)
        self.last_closed.pop(symbol, None)
        self.symbol_trusted.pop(symbol, None)
        self.closed_bars.pop(symbol, None)
        self._dirty = {k: b for k, b in self._dirty.items() if k[1] != symbol}


class MinuteBarBuilder(_BarBook):
    """1m bars from trades; see the module docstring."""

    def __init__(
        self, exchange_id: int, exchange: str, *, grace_ms: int = 2_000, keep_closed: int = 5
    ) -> None:
        super().__init__(exchange_id, exchange, Timeframe.M1, grace_ms, keep_closed)

    def add_trade(
        self, symbol: str, time_ms: int, trade_id: int, price: float, size: float
    ) -> Candle | None:
        """Add one trade; return the previous bar if this trade opened a later minute.

        A trade of an already closed minute revises that bar instead (see `take_revisions`).
        """
        start = time_ms - time_ms % self.step
        key = (time_ms, trade_id)
        bar = self.pending.get(symbol)
        if bar is not None and start == bar.start:
            _fold(bar, key, price, size)
            return None
        if start <= self.last_closed.get(symbol, -1) or (bar is not None and start < bar.start):
            closed = self.revisable(symbol, start)
            if closed is not None and key > closed.last:
                _fold(closed, key, price, size)
                self.mark_revised(symbol, closed)
            elif closed is not None:
                self.late += 1
            return None
        if not self.accepts(symbol, start):
            return None
        finished = self.close(symbol) if bar is not None else None
        self.open_bar(symbol, _Bar(start, price, price, price, price, size, key, key))
        return finished


def _fold(bar: _Bar, key: TradeKey, price: float, size: float) -> None:
    bar.high = max(bar.high, price)
    bar.low = min(bar.low, price)
    bar.volume += size
    if key < bar.first:
        bar.first, bar.open = key, price
    if key > bar.last:
        bar.last, bar.close = key, price


class CandleUpserter(_BarBook):
    """5m bars from the `candles` channel; see the module docstring."""

    def __init__(
        self, exchange_id: int, exchange: str, *, grace_ms: int = 5_000, keep_closed: int = 3
    ) -> None:
        super().__init__(exchange_id, exchange, Timeframe.M5, grace_ms, keep_closed)

    def upsert(
        self,
        symbol: str,
        start_ms: int,
        values: tuple[float, float, float, float, float],
    ) -> Candle | None:
        """Upsert a bucket (open, high, low, close, volume); return the bar a later start closed.

        A bucket that already closed is revised instead (see `take_revisions`).
        """
        bar = self.pending.get(symbol)
        opened, high, low, close, volume = values
        if bar is not None and start_ms == bar.start:
            bar.open, bar.high, bar.low, bar.close, bar.volume = values
            return None
        if start_ms <= self.last_closed.get(symbol, -1) or (
            bar is not None and start_ms < bar.start
        ):
            closed = self.revisable(symbol, start_ms)
            if closed is None:
                return None
            if volume < closed.volume:
                self.late += 1  # a stale restatement: a bucket's volume never shrinks
            elif values != (closed.open, closed.high, closed.low, closed.close, closed.volume):
                closed.open, closed.high, closed.low, closed.close, closed.volume = values
                self.mark_revised(symbol, closed)
            return None
        if not self.accepts(symbol, start_ms):
            return None
        finished = self.close(symbol) if bar is not None else None
        self.open_bar(symbol, _Bar(start_ms, opened, high, low, close, volume, (0, 0), (0, 0)))
        return finished
