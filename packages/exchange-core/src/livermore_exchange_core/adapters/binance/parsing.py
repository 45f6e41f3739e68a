"""Binance (and Binance US) wire → domain conversion: REST responses here, WebSocket frames too.

Prices and volumes arrive as strings, times as integer milliseconds; kline rows are positional
arrays, ascending, and include the still-open bar. REST functions live at the top; the streaming
adapter's frame parsers share the file (one place per venue for wire shapes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from pydantic import ValidationError

from livermore_exchange_core.adapters.binance.messages import (
    INTERVAL_TIMEFRAMES,
    KlineMessage,
    MiniTickerMessage,
    PartialDepthMessage,
)
from livermore_exchange_core.base import Balance, ProductInfo
from livermore_exchange_core.orderbook import BookTop, Level, is_crossed
from livermore_schema.enums import CandleSource, Timeframe
from livermore_schema.market import Candle, Ticker
from livermore_schema.timeframes import close_time_ms, duration_ms

log = structlog.get_logger(__name__)

INTERVAL: dict[Timeframe, str] = {
    Timeframe.M1: "1m",
    Timeframe.M5: "5m",
    Timeframe.M15: "15m",
    Timeframe.M30: "30m",
    Timeframe.H1: "1h",
    Timeframe.H2: "2h",
    Timeframe.H4: "4h",
    Timeframe.H6: "6h",
    Timeframe.D1: "1d",
}
"""Kline `interval` values (case-sensitive)."""

MAX_KLINES_PER_REQUEST = 1000
"""Spot `/api/v3/klines` maximum `limit` (1500 is the futures figure)."""

KLINES_WEIGHT = 2
"""Request weight of `/api/v3/klines` at any limit."""

USED_WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"
"""The used-weight header of Binance's published 1-minute window; see `parse_used_weights`."""

_USED_WEIGHT_PREFIX = "x-mbx-used-weight-"
_INTERVAL_LETTER_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

ERROR_INVALID_SYMBOL = -1121
ERROR_TOO_MUCH_WEIGHT = -1003


# ------------------------------------------------------------------ REST


def parse_used_weights(headers: Mapping[str, str]) -> list[tuple[float, float]]:
    """Return (used weight, window seconds) of every `X-MBX-USED-WEIGHT-(n)(S|M|H|D)` header.

    The window comes from the header name, as exchangeInfo's REQUEST_WEIGHT rule names it
    (`-1M` for the published minute); the bare legacy `X-MBX-USED-WEIGHT` has none and is skipped.
    """
    found: list[tuple[float, float]] = []
    for name, raw in headers.items():
        lowered = name.lower()
        if not lowered.startswith(_USED_WEIGHT_PREFIX):
            continue
        suffix = lowered.removeprefix(_USED_WEIGHT_PREFIX)
        unit = _INTERVAL_LETTER_S.get(suffix[-1:])
        if unit is None or not suffix[:-1].isdigit():
            continue
        try:
            found.append((float(raw), int(suffix[:-1]) * unit))
        except ValueError:
            continue
    return found


def parse_kline_row(
    row: Sequence[Any],
    *,
    exchange_id: int,
    exchange: str,
    symbol: str,
    timeframe: Timeframe,
    now_ms: int,
) -> Candle:
    """Convert one `[openTime, "o", "h", "l", "c", "v", closeTime, ...]` row into a `Candle`.

    The bar is `closed` when its whole interval lies before `now_ms` (exchange time); Binance marks
    nothing in the REST row itself.
    """
    open_time = int(row[0])
    return Candle(
        exchange_id=exchange_id,
        exchange=exchange,
        symbol=symbol,
        timeframe=timeframe,
        open_time=open_time,
        close_time=close_time_ms(open_time, timeframe),
        open=float(row[1]),
        high=float(row[2]),
        low=float(row[3]),
        close=float(row[4]),
        volume=float(row[5]),
        closed=open_time + duration_ms(timeframe) <= now_ms,
        source=CandleSource.REST,
    )


def parse_klines_response(
    rows: Sequence[Sequence[Any]],
    *,
    exchange_id: int,
    exchange: str,
    symbol: str,
    timeframe: Timeframe,
    now_ms: int,
) -> list[Candle]:
    """Convert a klines body into candles oldest first; malformed rows are logged and dropped."""
    candles: dict[int, Candle] = {}
    for row in rows:
        try:
            candle = parse_kline_row(
                row,
                exchange_id=exchange_id,
                exchange=exchange,
                symbol=symbol,
                timeframe=timeframe,
                now_ms=now_ms,
            )
        except (IndexError, TypeError, ValueError, ValidationError) as error:
            log.warning("binance.kline_row_rejected", symbol=symbol, row=row, error=str(error))
            continue
        candles[candle.open_time] = candle
    return [candles[key] for key in sorted(candles)]


@dataclass(frozen=True, slots=True)
class ExchangeInfo:
    """The parts of `/api/v3/exchangeInfo` Livermore uses."""

    server_time_ms: int
    rate_limits: list[dict[str, Any]]
    symbols: list[ProductInfo]


def parse_exchange_info(body: Mapping[str, Any]) -> ExchangeInfo:
    """Convert an exchangeInfo body; product volumes are zero until joined with ticker/24hr."""
    symbols = [
        ProductInfo(
            symbol=str(entry["symbol"]),
            base_currency=str(entry.get("baseAsset", "")),
            quote_currency=str(entry.get("quoteAsset", "")),
            quote_volume_24h=0.0,
            is_trading=entry.get("status") == "TRADING",
        )
        for entry in body.get("symbols") or ()
    ]
    return ExchangeInfo(
        server_time_ms=int(body.get("serverTime") or 0),
        rate_limits=list(body.get("rateLimits") or ()),
        symbols=symbols,
    )


def parse_ticker_volumes(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Map symbol → 24h `quoteVolume` from a `/api/v3/ticker/24hr` array."""
    volumes: dict[str, float] = {}
    for row in rows:
        try:
            volumes[str(row["symbol"])] = float(row.get("quoteVolume") or 0)
        except (KeyError, TypeError, ValueError) as error:
            log.warning("binance.ticker_rejected", row=row, error=str(error))
    return volumes


def parse_ticker_prices(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Map symbol → `lastPrice` from a `/api/v3/ticker/24hr` array (rows without one skipped)."""
    prices: dict[str, float] = {}
    for row in rows:
        try:
            if row.get("lastPrice") not in (None, ""):
                prices[str(row["symbol"])] = float(row["lastPrice"])
        except (KeyError, TypeError, ValueError) as error:
            log.warning("binance.ticker_rejected", row=row, error=str(error))
    return prices


def join_products(
    info: ExchangeInfo,
    volumes: Mapping[str, float],
    prices: Mapping[str, float] | None = None,
) -> list[ProductInfo]:
    """Return exchangeInfo products carrying their ticker/24hr quote volumes (and prices)."""
    return [
        ProductInfo(
            symbol=product.symbol,
            base_currency=product.base_currency,
            quote_currency=product.quote_currency,
            quote_volume_24h=volumes.get(product.symbol, 0.0),
            is_trading=product.is_trading,
            price=(prices or {}).get(product.symbol),
        )
        for product in info.symbols
    ]


def parse_account_balances(body: Mapping[str, Any]) -> list[Balance]:
    """Convert `/api/v3/account` `balances` (free / locked strings) into non-zero balances."""
    balances = [
        Balance(str(row["asset"]), float(row.get("free") or 0), float(row.get("locked") or 0))
        for row in body.get("balances") or ()
    ]
    return [balance for balance in balances if balance.total > 0]


def parse_error(body: Any) -> tuple[int | None, str]:
    """Return `(code, msg)` of a `{"code": -1121, "msg": "..."}` error body."""
    if isinstance(body, Mapping):
        code = body.get("code")
        return (int(code) if isinstance(code, int) else None, str(body.get("msg") or ""))
    return None, str(body or "")


# ------------------------------------------------------------------ WebSocket frames


def parse_ws_kline(message: KlineMessage, exchange_id: int, exchange: str) -> Candle:
    """Return the candle of a kline event (closed iff `k.x`); strings become floats here.

    Raises:
        KeyError: the interval is not one Livermore knows.
        pydantic.ValidationError: the bar is inconsistent (high below low, ...).
    """
    k = message["k"]
    return Candle(
        exchange_id=exchange_id,
        exchange=exchange,
        symbol=k["s"],
        timeframe=INTERVAL_TIMEFRAMES[k["i"]],
        open_time=k["t"],
        close_time=k["T"],
        open=float(k["o"]),
        high=float(k["h"]),
        low=float(k["l"]),
        close=float(k["c"]),
        volume=float(k["v"]),
        closed=bool(k["x"]),
        source=CandleSource.WS,
    )


def parse_ws_mini_ticker(message: MiniTickerMessage, exchange_id: int, exchange: str) -> Ticker:
    """Return the ticker of a miniTicker event; `volume_24h` is the base-asset volume."""
    last = float(message["c"])
    opened = float(message["o"])
    change = last - opened
    return Ticker(
        exchange_id=exchange_id,
        exchange=exchange,
        symbol=message["s"],
        price=last,
        volume_24h=float(message["v"]),
        change_24h=change,
        change_pct_24h=change / opened * 100.0 if opened else None,
        high_24h=float(message["h"]) or None,
        low_24h=float(message["l"]) or None,
        timestamp=message["E"],
    )


def _levels(rows: Sequence[Sequence[str]], *, descending: bool) -> list[Level]:
    levels = [(float(row[0]), float(row[1])) for row in rows]
    levels = [level for level in levels if level[0] > 0 and level[1] > 0]
    levels.sort(reverse=descending)  # Binance sends them sorted; ten floats cost nothing
    return levels


def parse_ws_partial_depth(
    message: PartialDepthMessage, symbol: str, exchange_id: int, timestamp_ms: int
) -> BookTop | None:
    """Return the book top of a partial depth payload; None when a side is empty or crossed.

    `symbol` comes from the combined stream's name and `timestamp_ms` from the exchange clock:
    the payload carries neither.
    """
    bids = _levels(message["bids"], descending=True)
    asks = _levels(message["asks"], descending=False)
    if not bids or not asks or is_crossed(bids, asks):
        return None
    return BookTop(exchange_id, symbol, bids, asks, message.get("E", timestamp_ms))
