"""The state `BinanceAdapter` keeps per stream connection and per kline series.

Binance spreads streams over as many combined-stream connections as its per-connection cap
needs, each with its own SUBSCRIBE bookkeeping (Coinbase has one socket, so it has no such file).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from livermore_exchange_core.websocket import ReconnectingWebSocket
from livermore_schema.enums import Timeframe


@dataclass(slots=True)
class KlineSeries:
    """One (symbol, timeframe) kline stream and the open time its next bar must have."""

    symbol: str
    timeframe: Timeframe
    step_ms: int
    next_open: int | None = None


@dataclass(slots=True)
class StreamConnection:
    """One combined-stream socket: its streams, what was sent, unanswered requests, readiness."""

    socket: ReconnectingWebSocket
    streams: set[str] = field(default_factory=set)
    sent: set[str] = field(default_factory=set)
    task: asyncio.Task[None] | None = None
    unacked: dict[int, list[str]] = field(default_factory=dict)
    """SUBSCRIBE/UNSUBSCRIBE request ids not answered yet, with the streams they subscribe."""
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    def mark_ready(self) -> None:
        """Set `ready` when the socket is open and every request has been answered."""
        if not self.unacked and self.socket.is_open:
            self.ready.set()
