"""Coinbase WS frame parsing: timestamps, candles, trades and tickers into our types."""

from __future__ import annotations

from datetime import UTC, datetime

from livermore_exchange_core.adapters.coinbase.messages import WsCandle, WsTicker
from livermore_schema.enums import CandleSource, Timeframe
from livermore_schema.market import Candle, Ticker
from livermore_schema.timeframes import close_time_ms

_MINUTE_BASES: dict[str, int] = {}


def parse_timestamp_ms(text: str) -> int:
    """Return epoch ms of an RFC 3339 UTC time (`2023-06-09T20:19:35.39625135Z`).

    Also reads the heartbeat's Go layout (`2023-06-23 20:31:56.121961769 +0000 UTC m=+9.5`):
    both put the same fields at the same offsets. The minute prefix is cached because every
    frame carries a timestamp and a full datetime parse would dominate the ingest cost.
    """
    prefix = text[:16]
    base = _MINUTE_BASES.get(prefix)
    if base is None:
        moment = datetime(
            int(text[0:4]),
            int(text[5:7]),
            int(text[8:10]),
            int(text[11:13]),
            int(text[14:16]),
            tzinfo=UTC,
        )
        base = int(moment.timestamp()) * 1000
        if len(_MINUTE_BASES) > 4096:
            _MINUTE_BASES.clear()
        _MINUTE_BASES[prefix] = base
    millis = 0
    if len(text) > 20 and text[19] == ".":
        digits = text[20:23]
        count = 0
        while count < len(digits) and digits[count].isdigit():
            count += 1
        if count:
            millis = int(digits[:count]) * (1, 100, 10, 1)[count]
    return base + int(text[17:19]) * 1000 + millis


def parse_ws_candle(
    bucket: WsCandle, timeframe: Timeframe, exchange_id: int, exchange: str, *, closed: bool
) -> Candle:
    """Return the candle of a `candles` bucket (`start` is UNIX seconds as a string)."""
    open_time = int(bucket["start"]) * 1000
    return Candle(
        exchange_id=exchange_id,
        exchange=exchange,
        symbol=bucket["product_id"],
        timeframe=timeframe,
        open_time=open_time,
        close_time=close_time_ms(open_time, timeframe),
        open=float(bucket["open"]),
        high=float(bucket["high"]),
        low=float(bucket["low"]),
        close=float(bucket["close"]),
        volume=float(bucket["volume"]),
        closed=closed,
        source=CandleSource.WS,
    )


def _positive(text: str | None) -> float | None:
    if not text:
        return None
    value = float(text)
    return value if value > 0 else None


def parse_ws_ticker(item: WsTicker, timestamp_ms: int, exchange_id: int, exchange: str) -> Ticker:
    """Return the ticker of a `ticker`/`ticker_batch` item, stamped with the envelope time."""
    change = item.get("price_percent_chg_24_h")
    return Ticker(
        exchange_id=exchange_id,
        exchange=exchange,
        symbol=item["product_id"],
        price=float(item["price"]),
        bid=_positive(item.get("best_bid")),
        ask=_positive(item.get("best_ask")),
        volume_24h=float(item["volume_24_h"]) if item.get("volume_24_h") else None,
        change_pct_24h=float(change) if change else None,
        high_24h=_positive(item.get("high_24_h")),
        low_24h=_positive(item.get("low_24_h")),
        timestamp=timestamp_ms,
    )
