"""Coinbase Advanced Trade wire → domain conversion: REST responses here, WebSocket frames too.

Every Coinbase quirk dies in this module: numbers arrive as strings, candle `start` is UNIX
*seconds*, REST candles come newest first without a `product_id`, and buckets without trades are
simply missing. REST functions live at the top; the streaming adapter's frame parsers share the file
(one place per venue for wire shapes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import structlog
from pydantic import ValidationError

from livermore_exchange_core.adapters.coinbase.messages import WsCandle, WsL2Update, WsTicker
from livermore_exchange_core.base import Balance, ProductInfo
from livermore_exchange_core.orderbook import LocalOrderBook
from livermore_schema.enums import CandleSource, Timeframe
from livermore_schema.market import Candle, Ticker
from livermore_schema.timeframes import close_time_ms, duration_ms

log = structlog.get_logger(__name__)

EXCHANGE_NAME = "coinbase"

GRANULARITY: dict[Timeframe, str] = {
    Timeframe.M1: "ONE_MINUTE",
    Timeframe.M5: "FIVE_MINUTE",
    Timeframe.M15: "FIFTEEN_MINUTE",
    Timeframe.M30: "THIRTY_MINUTE",
    Timeframe.H1: "ONE_HOUR",
    Timeframe.H2: "TWO_HOUR",
    Timeframe.H4: "FOUR_HOUR",
    Timeframe.H6: "SIX_HOUR",
    Timeframe.D1: "ONE_DAY",
}
"""REST `granularity` values (the `/market/products/{id}/candles` enum)."""

MAX_CANDLES_PER_REQUEST = 350
"""Coinbase answers 400 beyond this; reports disagree on whether 350 itself passes."""

PAGE_SIZE = 300
"""What we ask for per page: safely under `MAX_CANDLES_PER_REQUEST`."""


# ------------------------------------------------------------------ REST


def parse_rest_candle(
    row: Mapping[str, Any],
    *,
    exchange_id: int,
    symbol: str,
    timeframe: Timeframe,
    now_ms: int,
) -> Candle:
    """Convert one REST candle row (strings, `start` in seconds) into a `Candle`.

    The bar is `closed` when its whole interval lies before `now_ms` (exchange time).
    """
    open_time = int(row["start"]) * 1000
    return Candle(
        exchange_id=exchange_id,
        exchange=EXCHANGE_NAME,
        symbol=symbol,
        timeframe=timeframe,
        open_time=open_time,
        close_time=close_time_ms(open_time, timeframe),
        open=float(row["open"]),
        high=float(row["high"]),
        low=float(row["low"]),
        close=float(row["close"]),
        volume=float(row["volume"]),
        closed=open_time + duration_ms(timeframe) <= now_ms,
        source=CandleSource.REST,
    )


def parse_candles_response(
    body: Mapping[str, Any],
    *,
    exchange_id: int,
    symbol: str,
    timeframe: Timeframe,
    now_ms: int,
) -> list[Candle]:
    """Convert a `{"candles": [...]}` body (newest first) into candles oldest first.

    Rows that do not parse or fail the OHLC checks are dropped with a log line: one bad row must
    not cost the whole page.
    """
    candles: dict[int, Candle] = {}
    for row in body.get("candles") or ():
        try:
            candle = parse_rest_candle(
                row, exchange_id=exchange_id, symbol=symbol, timeframe=timeframe, now_ms=now_ms
            )
        except (KeyError, TypeError, ValueError, ValidationError) as error:
            log.warning("coinbase.candle_row_rejected", symbol=symbol, row=row, error=str(error))
            continue
        candles[candle.open_time] = candle
    return [candles[key] for key in sorted(candles)]


def parse_products_response(body: Mapping[str, Any]) -> list[ProductInfo]:
    """Convert a `/market/products` body into products with `approximate_quote_24h_volume`."""
    products: list[ProductInfo] = []
    for row in body.get("products") or ():
        if row.get("product_type", "SPOT") != "SPOT":
            continue
        try:
            products.append(
                ProductInfo(
                    symbol=str(row["product_id"]),
                    base_currency=str(row.get("base_currency_id") or row.get("base_name") or ""),
                    quote_currency=str(row.get("quote_currency_id") or ""),
                    quote_volume_24h=_quote_volume(row),
                    is_trading=_is_trading(row),
                    display_name=row.get("display_name"),
                    alias_of=_alias_of(row),
                    price=_price(row),
                )
            )
        except (KeyError, TypeError, ValueError) as error:
            log.warning("coinbase.product_rejected", row=row, error=str(error))
    return products


def _quote_volume(row: Mapping[str, Any]) -> float:
    approximate = row.get("approximate_quote_24h_volume")
    if approximate not in (None, ""):
        return float(approximate)
    # Older payloads lack the approximate figure; base volume x price is the same quantity.
    return float(row.get("volume_24h") or 0) * float(row.get("price") or 0)


def _price(row: Mapping[str, Any]) -> float | None:
    raw = row.get("price")
    return float(raw) if raw not in (None, "") else None


def _alias_of(row: Mapping[str, Any]) -> str | None:
    # `alias_to` is a list of product ids in current payloads, a bare string in older ones.
    alias = row.get("alias_to")
    if isinstance(alias, list):
        return str(alias[0]) if alias else None
    return str(alias) if alias else None


def _is_trading(row: Mapping[str, Any]) -> bool:
    flags = ("is_disabled", "trading_disabled", "cancel_only", "view_only")
    return row.get("status", "online") == "online" and not any(row.get(flag) for flag in flags)


def parse_server_time(body: Mapping[str, Any]) -> int:
    """Convert a `/time` body (`epochMillis` as a string) into epoch milliseconds."""
    if body.get("epochMillis") not in (None, ""):
        return int(body["epochMillis"])
    return int(float(body["epochSeconds"]) * 1000)


def parse_accounts_response(body: Mapping[str, Any]) -> tuple[list[Balance], str | None]:
    """Convert one `/accounts` page into balances and the next cursor (None when done)."""
    balances: list[Balance] = []
    for account in body.get("accounts") or ():
        available = float((account.get("available_balance") or {}).get("value") or 0)
        hold = float((account.get("hold") or {}).get("value") or 0)
        if available or hold:
            balances.append(Balance(str(account["currency"]), available, hold))
    cursor = body.get("cursor") if body.get("has_next") else None
    return balances, cursor or None


def error_message(body: Any, fallback: str) -> str:
    """Return the human part of a Coinbase error body (`message` / `error_details`)."""
    if isinstance(body, Mapping):
        for field in ("message", "error_details", "error"):
            if body.get(field):
                return str(body[field])
    return fallback


# ------------------------------------------------------------------ WebSocket frames

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


def apply_l2_updates(book: LocalOrderBook, updates: Iterable[WsL2Update]) -> None:
    """Apply the levels of one `l2_data` event to `book`.

    `side` is `bid` or `offer`; `new_quantity` is the level's absolute size and "0" removes it.
    """
    setters = {"bid": book.set_bid, "offer": book.set_ask}
    for update in updates:
        setter = setters.get(update["side"])
        price = float(update["price_level"])
        if setter is not None and price > 0:
            setter(price, float(update["new_quantity"]))
