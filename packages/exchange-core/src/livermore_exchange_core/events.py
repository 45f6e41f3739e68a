"""What a streaming adapter reports besides market data: lifecycle changes and gap notices.

Adapters deliver closed `Candle`s, `Ticker`s, `BookTop`s (only for symbols whose order books
were subscribed), `GapNotice`s and `AdapterLifecycle`s to a `MarketDataSink` (in a worker, the
`CandlePipeline`), in the order the exchange produced them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from livermore_exchange_core.orderbook import BookTop
from livermore_schema.enums import ConnectionState, Timeframe
from livermore_schema.market import Candle, Ticker
from livermore_schema.status import LifecycleEvent


@dataclass(frozen=True, slots=True)
class AdapterLifecycle:
    """A connection state change of one adapter socket (`connection` names which one)."""

    state: ConnectionState
    reason: str | None = None
    attempt: int = 0
    delay_s: float | None = None
    connection: str | None = None

    def to_event(self, exchange_id: int, exchange_name: str, timestamp: datetime) -> LifecycleEvent:
        """Return the `LifecycleEvent` published on the lifecycle channel."""
        reason = self.reason
        if self.delay_s is not None:
            reason = f"{reason or 'reconnect'} (retry in {self.delay_s:.2f}s)"
        if self.connection is not None and reason is not None:
            reason = f"{self.connection}: {reason}"
        return LifecycleEvent(
            exchange_id=exchange_id,
            exchange_name=exchange_name,
            state=self.state,
            reason=reason,
            attempt=self.attempt,
            timestamp=timestamp,
        )


def connecting(connection: str | None = None) -> AdapterLifecycle:
    """A first connection attempt is starting."""
    return AdapterLifecycle(ConnectionState.CONNECTING, connection=connection)


def connected(connection: str | None = None) -> AdapterLifecycle:
    """The socket is open (subscriptions follow at once)."""
    return AdapterLifecycle(ConnectionState.CONNECTED, connection=connection)


def reconnecting(
    attempt: int, delay_s: float, reason: str, connection: str | None = None
) -> AdapterLifecycle:
    """The socket was lost for `reason`; attempt `attempt` follows after `delay_s`."""
    return AdapterLifecycle(
        ConnectionState.RECONNECTING, reason, attempt, delay_s, connection=connection
    )


def disconnected(reason: str, connection: str | None = None) -> AdapterLifecycle:
    """The socket was closed on purpose and will not come back."""
    return AdapterLifecycle(ConnectionState.DISCONNECTED, reason, connection=connection)


def errored(reason: str, connection: str | None = None) -> AdapterLifecycle:
    """Something failed that the adapter could not hide (a rejected subscription, say)."""
    return AdapterLifecycle(ConnectionState.ERROR, reason, connection=connection)


@dataclass(frozen=True, slots=True)
class GapNotice:
    """Closed bars of one series may be missing from the live stream and must come from REST.

    The missing range is `[since_ms, until_ms)` by open time. `since_ms` is None when the adapter
    does not know the last bar (a restart): the pipeline then starts after the newest bar it holds.
    Bars opening at or after `until_ms` arrive live. REST has the whole range closed once the
    exchange clock reaches `ready_at_ms`. `contiguous` venues have a bar for every interval
    (Binance), so a repair that returns fewer bars is retried; Coinbase omits bars without trades.
    """

    symbol: str
    timeframe: Timeframe
    since_ms: int | None
    until_ms: int
    ready_at_ms: int
    reason: str
    contiguous: bool = False
    """The exchange has a bar for every interval (Binance), so REST must return all of them."""


class MarketDataSink(Protocol):
    """Where an adapter delivers what it reads; calls arrive in stream order."""

    async def on_candle(self, candle: Candle) -> None:
        """Take one closed bar."""
        ...

    async def on_candle_revised(self, candle: Candle) -> None:
        """Take a corrected copy of a closed bar already given to `on_candle` (late data)."""
        ...

    def on_ticker(self, ticker: Ticker) -> None:
        """Take the latest ticker of a symbol (may be coalesced; must not block)."""
        ...

    def on_order_book(self, book: BookTop) -> None:
        """Take the latest top levels of a symbol's book (may be coalesced; must not block).

        Called only for symbols passed to `subscribe_order_books`; a sink that subclasses this
        protocol and never subscribes one inherits this no-op.
        """
        return None

    async def on_gap(self, notice: GapNotice) -> None:
        """Take a gap notice; later bars of that series must wait for its repair."""
        ...

    async def on_lifecycle(self, event: AdapterLifecycle) -> None:
        """Take a connection state change."""
        ...
