"""Coinbase Advanced Trade WebSocket wire shapes (market data channels), as typed dicts.

Every value is a string; `candles.start` is UNIX seconds; the envelope's `sequence_num` counts
per connection across channels; `client_id` may be absent. `parsing.py` turns these into ours.
Reference: https://docs.cdp.coinbase.com/advanced-trade/docs/ws-channels
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

from livermore_schema.enums import Timeframe

HEARTBEATS = "heartbeats"
CANDLES = "candles"
MARKET_TRADES = "market_trades"
TICKER = "ticker"
TICKER_BATCH = "ticker_batch"
SUBSCRIPTIONS = "subscriptions"
LEVEL2 = "level2"
"""Subscribed as `level2`; its frames arrive on `L2_DATA`."""
L2_DATA = "l2_data"

CANDLES_TIMEFRAME = Timeframe.M5
"""The only granularity of the `candles` channel."""

TRADES_TIMEFRAME = Timeframe.M1
"""Built locally from `market_trades`."""

STREAMED_TIMEFRAMES = frozenset({TRADES_TIMEFRAME, CANDLES_TIMEFRAME})
"""Timeframes the stream serves; 15m and up come from the boundary REST service."""


class Envelope(TypedDict):
    """Every server frame of a channel."""

    channel: str
    client_id: NotRequired[str]
    timestamp: str
    sequence_num: int
    events: list[dict[str, Any]]


class WsCandle(TypedDict):
    """One bucket in a `candles` event (5-minute, upserted by `start`)."""

    start: str
    high: str
    low: str
    open: str
    close: str
    volume: str
    product_id: str


class WsTrade(TypedDict):
    """One trade in a `market_trades` event; `side` is the maker side."""

    trade_id: str
    product_id: str
    price: str
    size: str
    side: str
    time: str


class WsTicker(TypedDict):
    """One ticker in a `ticker` / `ticker_batch` event (batch has no best bid/ask)."""

    type: str
    product_id: str
    price: str
    volume_24_h: str
    low_24_h: str
    high_24_h: str
    price_percent_chg_24_h: str
    best_bid: NotRequired[str]
    best_ask: NotRequired[str]


class WsL2Update(TypedDict):
    """One level of an `l2_data` event: `new_quantity` is absolute, "0" removes the level."""

    side: str
    event_time: str
    price_level: str
    new_quantity: str


class L2Event(TypedDict):
    """One `l2_data` event: a whole-book `snapshot` or the levels that changed (`update`)."""

    type: str
    product_id: str
    updates: list[WsL2Update]


class HeartbeatEvent(TypedDict):
    """`heartbeats` event: Go-formatted time and a counter (int in production, str in docs)."""

    current_time: str
    heartbeat_counter: int | str


def subscribe_message(
    channel: str, product_ids: list[str], *, unsubscribe: bool = False
) -> dict[str, Any]:
    """Return a subscribe (or unsubscribe) request: one channel per message."""
    return {
        "type": "unsubscribe" if unsubscribe else "subscribe",
        "product_ids": product_ids,
        "channel": channel,
    }
