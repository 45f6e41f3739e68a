"""`CoinbaseAdapter`: Coinbase Advanced Trade market data over one WebSocket.

Why our own socket (`livermore_exchange_core.websocket`) and not coinbase-advanced-py's
`WSClient`: on a close with code 1000 or 1001 its receive loop just exits (no retry, no
`on_close`, issue #63), it gives up after 5 retries, has no stall detection, and calls
`on_message` with the raw string anyway. The market-data channels need no signing (a JWT is
only for `user`), so one reconnecting socket with a heartbeat watchdog and paced subscriptions
covers what we need. coinbase-advanced-py serves only the signed accounts call
(`livermore_exchange_core.accounts`); market-data REST is our own client (`rest.py` says why).

Channels (one per subscribe message, paced under Coinbase's 8 messages/s): `heartbeats` keeps the
subscriptions open and the exchange clock moving; `candles` gives 5m bars (upserted by `start`,
closed by a later `start` or on exchange time); `market_trades` builds 1m bars; `ticker` gives
tickers. 15m/1h/4h/1d come from the boundary REST service on each 5m close. `level2` (frames on
`l2_data`) is subscribed only for the symbols given to `subscribe_order_books`; `Level2Books`
keeps their local books and the top `book_depth` levels go to the sink after every event.

Late data: a bar closed on exchange time can still receive data (a frame's trades arrive after
a heartbeat already past their minute, or trades are simply late); `minute_bars` folds it into
the closed bar and the corrected bar goes to `MarketDataSink.on_candle_revised`, oldest first and
before any later bar of the same frame, so the cache ends equal to the exchange.

Loss detection: the envelope `sequence_num` counts per connection, and `heartbeat_counter`
counts heartbeats; a jump in either, or a new connection, means frames were lost. The bars that
could be incomplete are dropped from the stream (`taint`) and a `GapNotice` per series asks the
pipeline to fetch them over REST before any later bar of that series. The same loss makes every
local order book suspect: they are emptied and `level2` is resubscribed for fresh snapshots.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

import structlog

from livermore_exchange_core.adapters.coinbase.level2 import Level2Books
from livermore_exchange_core.adapters.coinbase.messages import (
    CANDLES,
    CANDLES_TIMEFRAME,
    HEARTBEATS,
    L2_DATA,
    LEVEL2,
    MARKET_TRADES,
    STREAMED_TIMEFRAMES,
    SUBSCRIPTIONS,
    TICKER,
    TICKER_BATCH,
    TRADES_TIMEFRAME,
    Envelope,
    L2Event,
    subscribe_message,
)
from livermore_exchange_core.adapters.coinbase.minute_bars import (
    CandleUpserter,
    MinuteBarBuilder,
    _BarBook,
)
from livermore_exchange_core.adapters.coinbase.parsing import parse_timestamp_ms, parse_ws_ticker
from livermore_exchange_core.base import ExchangeAdapter
from livermore_exchange_core.clock import ExchangeClock
from livermore_exchange_core.config import ExchangeConfig
from livermore_exchange_core.errors import TransientNetworkError
from livermore_exchange_core.events import GapNotice, MarketDataSink, errored
from livermore_exchange_core.refusals import Refusals
from livermore_exchange_core.websocket import (
    ConnectionAttemptLimiter,
    ReconnectingWebSocket,
    SocketPolicy,
)
from livermore_schema.enums import Timeframe

log = structlog.get_logger(__name__)

DEFAULT_POLICY = SocketPolicy(stall_timeout_s=10.0, messages_per_second=4.0)
"""Heartbeats arrive every second; ten silent seconds mean a dead connection."""

_DATA_CHANNELS = (CANDLES, MARKET_TRADES, TICKER)


class CoinbaseAdapter(ExchangeAdapter):
    """Streams Coinbase 1m/5m closed bars and tickers; see the module docstring."""

    def __init__(
        self,
        config: ExchangeConfig,
        sink: MarketDataSink,
        *,
        policy: SocketPolicy = DEFAULT_POLICY,
        attempt_limiter: ConnectionAttemptLimiter | None = None,
        trade_grace_ms: int = 2_000,
        candle_grace_ms: int = 5_000,
        products_per_message: int = 100,
        book_depth: int = 10,
        rng: random.Random | None = None,
        clock: ExchangeClock | None = None,
    ) -> None:
        self._config = config
        self._sink = sink
        self._exchange = config.name.value
        self._clock = clock or ExchangeClock()
        self._minutes = MinuteBarBuilder(
            config.exchange_id, self._exchange, grace_ms=trade_grace_ms
        )
        self._fives = CandleUpserter(config.exchange_id, self._exchange, grace_ms=candle_grace_ms)
        self._books: dict[Timeframe, _BarBook] = {
            TRADES_TIMEFRAME: self._minutes,
            CANDLES_TIMEFRAME: self._fives,
        }
        self._series: dict[str, set[Timeframe]] = {}
        self._per_message = products_per_message
        self._l2 = Level2Books(config.exchange_id, depth=book_depth)
        self._socket = ReconnectingWebSocket(
            config.ws_url,
            label=self._exchange,
            policy=policy,
            attempt_limiter=attempt_limiter or ConnectionAttemptLimiter(6, 1.0),
            on_open=self._on_open,
            on_message=self._on_frame,
            on_lifecycle=sink.on_lifecycle,
            rng=rng,
        )
        self._task: asyncio.Task[None] | None = None
        self._next_seq: int | None = None
        self._next_beat: int | None = None
        self._subscribed = False
        # Subscribe/unsubscribe messages the exchange has not answered yet, in send order (each
        # gets one `subscriptions` or error frame); `_ready` is set once none is outstanding.
        self._unanswered: deque[dict[str, Any]] = deque()
        self._refusals = Refusals(self._exchange)
        self._ready = asyncio.Event()
        self._awaiting: dict[str, Timeframe] = {}
        self._handlers = {
            CANDLES: self._on_candles,
            MARKET_TRADES: self._on_trades,
            TICKER: self._on_tickers,
            TICKER_BATCH: self._on_tickers,
            HEARTBEATS: self._on_heartbeats,
            SUBSCRIPTIONS: self._on_subscriptions,
            L2_DATA: self._on_level2,
        }
        self.gaps_detected = 0
        self.book_resyncs = 0
        self._log = log.bind(exchange=self._exchange)

    # ------------------------------------------------------------------ ExchangeAdapter

    @property
    def subscriptions(self) -> frozenset[tuple[str, Timeframe]]:
        """The streamed (symbol, timeframe) series (1m and 5m only)."""
        return frozenset((s, tf) for s, tfs in self._series.items() for tf in tfs)

    @property
    def socket(self) -> ReconnectingWebSocket:
        """The underlying reconnecting socket (for status and tests)."""
        return self._socket

    @property
    def clock(self) -> ExchangeClock:
        """The exchange clock, advanced by envelope and heartbeat times."""
        return self._clock

    @property
    def order_book_symbols(self) -> frozenset[str]:
        """The products whose `level2` books are kept."""
        return self._l2.symbols

    @property
    def rejected(self) -> Mapping[str, str]:
        """Products whose subscription Coinbase refused ("is not a valid product")."""
        return self._refusals.rejected

    def exchange_time_ms(self) -> int:
        """Return the latest exchange time seen."""
        return self._clock.now_ms()

    async def connect(self) -> None:
        """Start the socket; it subscribes on every open."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._socket.run(), name=f"ws:{self._exchange}"
            )

    async def close(self) -> None:
        """Close the socket and stop reconnecting."""
        await self._socket.close()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def subscribe(self, symbols: Iterable[str], timeframes: Iterable[Timeframe]) -> None:
        """Stream 1m/5m bars of `symbols` (other timeframes come from REST) and their tickers."""
        wanted = STREAMED_TIMEFRAMES.intersection(timeframes)
        symbols = list(symbols)
        self._refusals.forgive(symbols)
        added = [s for s in symbols if s not in self._series]
        for symbol in symbols:
            self._series.setdefault(symbol, set()).update(wanted)
        if added and self._socket.is_open and self._subscribed:
            with contextlib.suppress(TransientNetworkError):  # the next open resubscribes
                await self._send_channels(added, unsubscribe=False)
            await self._trust_new_symbols(added, wanted)

    async def _trust_new_symbols(
        self, symbols: list[str], timeframes: frozenset[Timeframe]
    ) -> None:
        """A symbol added mid-bar has missed that bar's start: stream it from the next bar."""
        now = self._clock.now_ms()
        for timeframe in timeframes:
            book = self._books[timeframe]
            trusted = now - now % book.step + book.step
            for symbol in symbols:
                book.symbol_trusted[symbol] = trusted
                notice = GapNotice(
                    symbol, timeframe, None, trusted, trusted + book.grace_ms, "subscribed"
                )
                await self._sink.on_gap(notice)

    async def unsubscribe(self, symbols: Iterable[str], timeframes: Iterable[Timeframe]) -> None:
        """Stop streaming `symbols` x `timeframes`; a symbol without timeframes is dropped."""
        frames = set(timeframes)
        dropped = []
        for symbol in symbols:
            remaining = self._series.get(symbol, set()) - frames
            if remaining:
                self._series[symbol] = remaining
            elif self._series.pop(symbol, None) is not None:
                dropped.append(symbol)
                for book in self._books.values():
                    book.forget(symbol)
        if dropped and self._socket.is_open:
            with contextlib.suppress(TransientNetworkError):
                await self._send_channels(dropped, unsubscribe=True)

    async def subscribe_order_books(self, symbols: Iterable[str]) -> None:
        """Subscribe `level2` for `symbols`; each book is delivered from its snapshot on."""
        added = self._l2.add(symbols)
        if added and self._socket.is_open and self._subscribed:
            with contextlib.suppress(TransientNetworkError):  # the next open resubscribes
                await self._send_channel(LEVEL2, added, unsubscribe=False)

    async def unsubscribe_order_books(self, symbols: Iterable[str]) -> None:
        """Unsubscribe `level2` for `symbols` and drop their books (nothing more is delivered)."""
        removed = self._l2.remove(symbols)
        if removed and self._socket.is_open:
            with contextlib.suppress(TransientNetworkError):
                await self._send_channel(LEVEL2, removed, unsubscribe=True)

    # ------------------------------------------------------------------ connection

    async def _on_open(self) -> None:
        self._next_seq = None
        self._next_beat = None
        # Bar channels are ignored until every subscription is out; each is then trusted from
        # its first frame on (see `_start_channel`).
        self._subscribed = False
        self._unanswered.clear()
        self._ready.clear()
        self._awaiting = {MARKET_TRADES: TRADES_TIMEFRAME, CANDLES: CANDLES_TIMEFRAME}
        for book in self._books.values():
            book.drop_open_bars()  # built by a lost connection: they may lack its last frames
        self._l2.unsync_all()  # the new connection sends every book's snapshot again
        await self._send_control(subscribe_message(HEARTBEATS, []))
        await self._send_channels(sorted(self._series), unsubscribe=False)
        await self._send_channel(LEVEL2, sorted(self._l2.symbols), unsubscribe=False)
        self._subscribed = True
        self._mark_ready()

    async def _send_control(self, message: dict[str, Any]) -> None:
        self._unanswered.append(message)
        self._ready.clear()
        await self._socket.send(json.dumps(message))

    def _mark_ready(self) -> None:
        if self._subscribed and not self._unanswered and self._socket.is_open:
            self._ready.set()

    async def wait_ready(self) -> None:
        """Return once the socket is open and every subscription message has been answered."""
        await self._ready.wait()

    async def _send_channels(self, products: list[str], *, unsubscribe: bool) -> None:
        for channel in _DATA_CHANNELS:
            await self._send_channel(channel, products, unsubscribe=unsubscribe)

    async def _send_channel(self, channel: str, products: list[str], *, unsubscribe: bool) -> None:
        for start in range(0, len(products), self._per_message):
            chunk = products[start : start + self._per_message]
            await self._send_control(subscribe_message(channel, chunk, unsubscribe=unsubscribe))

    # ------------------------------------------------------------------ frames

    async def _on_frame(self, raw: str) -> None:
        frame: dict[str, Any] = json.loads(raw)
        channel = frame.get("channel")
        if channel is None:
            await self._on_error(frame)
            return
        envelope: Envelope = frame  # type: ignore[assignment]
        now = parse_timestamp_ms(envelope["timestamp"])
        self._clock.advance(now)
        sequence = envelope.get("sequence_num")
        if sequence is not None and self._next_seq is not None and sequence > self._next_seq:
            reason = f"sequence {self._next_seq}->{sequence}"
            await self._taint(now, self._books, fresh=False, reason=reason)
            await self._resync_books(reason)
        if sequence is not None:
            self._next_seq = max(sequence + 1, self._next_seq or 0)
        if channel in self._awaiting and not await self._start_channel(channel, now):
            return
        handler = self._handlers.get(channel)
        if handler is not None:
            await handler(envelope["events"], now)
        await self._revise(self._fives)
        await self._revise(self._minutes)
        await self._close_due()

    async def _start_channel(self, channel: str, now: int) -> bool:
        """Trust a bar channel from its first frame after subscribing; False: drop the frame."""
        if not self._subscribed:
            return False
        timeframe = self._awaiting.pop(channel)
        book = self._books[timeframe]
        await self._taint(now, {timeframe: book}, fresh=True, reason="new connection")
        return True

    async def _on_error(self, frame: dict[str, Any]) -> None:
        reason = f"{frame.get('message')}: {frame.get('reason', '')}".rstrip(": ")
        refused = self._unanswered.popleft() if self._unanswered else None
        if refused is not None and refused["type"] == "subscribe" and refused["product_ids"]:
            await self._refused(refused["channel"], refused["product_ids"], reason)
        else:
            self._log.error("coinbase.error_frame", reason=reason)
            await self._sink.on_lifecycle(errored(reason, self._exchange))
        self._mark_ready()

    async def _refused(self, channel: str, products: list[str], reason: str) -> None:
        """A subscribe was refused whole: isolate the unknown product(s) (`Refusals`)."""
        retries = self._refusals.narrow(products, reason)
        for symbol in products:
            if symbol in self._refusals.rejected and self._series.pop(symbol, None) is not None:
                for book in self._books.values():
                    book.forget(symbol)
        self._l2.remove(s for s in products if s in self._refusals.rejected)
        for retry in retries:
            with contextlib.suppress(TransientNetworkError):  # the next open resubscribes
                await self._send_control(subscribe_message(channel, retry))

    async def _on_subscriptions(self, events: list[dict[str, Any]], now: int) -> None:
        self._log.debug("coinbase.subscriptions", events=events)
        if self._unanswered:
            self._unanswered.popleft()
        self._mark_ready()

    async def _on_heartbeats(self, events: list[dict[str, Any]], now: int) -> None:
        for event in events:
            self._clock.advance(parse_timestamp_ms(event["current_time"]))
            counter = int(event["heartbeat_counter"])
            expected = self._next_beat
            self._next_beat = counter + 1
            if expected is not None and counter > expected:
                reason = f"heartbeat {expected}->{counter}"
                await self._taint(self._clock.now_ms(), self._books, fresh=False, reason=reason)
                await self._resync_books(reason)

    async def _on_candles(self, events: list[dict[str, Any]], now: int) -> None:
        upsert = self._fives.upsert
        for event in events:
            for bucket in event.get("candles", ()):
                symbol = bucket["product_id"]
                if CANDLES_TIMEFRAME not in self._series.get(symbol, ()):
                    continue
                values = (
                    float(bucket["open"]),
                    float(bucket["high"]),
                    float(bucket["low"]),
                    float(bucket["close"]),
                    float(bucket["volume"]),
                )
                finished = upsert(symbol, int(bucket["start"]) * 1000, values)
                if finished is not None:
                    await self._revise(self._fives)
                    await self._sink.on_candle(finished)

    async def _on_trades(self, events: list[dict[str, Any]], now: int) -> None:
        trades = [t for event in events for t in event.get("trades", ())]
        parsed = sorted(
            (parse_timestamp_ms(t["time"]), int(t["trade_id"]), t["product_id"], t)
            for t in trades
            if TRADES_TIMEFRAME in self._series.get(t["product_id"], ())
        )
        add = self._minutes.add_trade
        for time_ms, trade_id, symbol, trade in parsed:
            finished = add(symbol, time_ms, trade_id, float(trade["price"]), float(trade["size"]))
            if finished is not None:
                await self._revise(self._minutes)
                await self._sink.on_candle(finished)

    async def _on_tickers(self, events: list[dict[str, Any]], now: int) -> None:
        for event in events:
            for item in event.get("tickers", ()):
                if item["product_id"] in self._series:
                    self._sink.on_ticker(
                        parse_ws_ticker(item, now, self._config.exchange_id, self._exchange)
                    )

    async def _on_level2(self, events: list[dict[str, Any]], now: int) -> None:
        l2_events: list[L2Event] = events  # type: ignore[assignment]
        tops, broken = self._l2.apply(l2_events, now)
        on_order_book = self._sink.on_order_book
        for top in tops:
            on_order_book(top)
        if broken:
            await self._resync_books("crossed order book")

    async def _resync_books(self, reason: str) -> None:
        """Empty every local book and resubscribe `level2`: each answers with a fresh snapshot."""
        products = sorted(self._l2.symbols)
        if not products or not self._subscribed:
            return  # an opening connection subscribes (and snapshots) every book anyway
        self._l2.unsync_all()
        self.book_resyncs += 1
        self._log.warning("coinbase.book_resync", reason=reason, products=len(products))
        with contextlib.suppress(TransientNetworkError):  # a lost connection resubscribes all
            await self._send_channel(LEVEL2, products, unsubscribe=True)
            await self._send_channel(LEVEL2, products, unsubscribe=False)

    async def _revise(self, book: _BarBook) -> None:
        """Hand on the closed bars late data corrected (before any later bar of the frame)."""
        for candle in book.take_revisions():
            self._log.info(
                "coinbase.bar_revised",
                symbol=candle.symbol,
                timeframe=candle.timeframe.value,
                open_time=candle.open_time,
            )
            await self._sink.on_candle_revised(candle)

    async def _close_due(self) -> None:
        now = self._clock.now_ms()
        for book in self._books.values():
            for candle in book.close_due(now):
                await self._sink.on_candle(candle)

    # ------------------------------------------------------------------ loss

    async def _taint(
        self, now_ms: int, books: dict[Timeframe, _BarBook], *, fresh: bool, reason: str
    ) -> None:
        """Drop bars the stream may have incomplete and ask for them over REST."""
        if not fresh:
            self.gaps_detected += 1
            self._log.warning("coinbase.gap", reason=reason, exchange_ms=now_ms)
        for timeframe, book in books.items():
            floor = now_ms - now_ms % book.step
            # A fresh trades channel sees every later trade, but not those earlier in this
            # minute; a fresh candles channel restates the whole current bucket. A lost frame
            # can hide anything in the current bar of either.
            restated = fresh and timeframe is CANDLES_TIMEFRAME
            book.taint(floor if restated else floor + book.step)
            for symbol, frames in self._series.items():
                if timeframe not in frames:
                    continue
                last = book.last_closed.get(symbol)
                await self._sink.on_gap(
                    GapNotice(
                        symbol,
                        timeframe,
                        since_ms=None if last is None else last + book.step,
                        until_ms=book.trusted_from,
                        ready_at_ms=book.trusted_from + book.grace_ms,
                        reason=reason,
                    )
                )
