"""Coinbase Advanced Trade wire shapes: timestamps, candles, products, trades, tickers, books."""

from __future__ import annotations

import datetime as dt
from typing import Any

from livermore_exchange_sim.market import Bar, Market, Product, TickerSnapshot, Trade, Venue

GRANULARITY_MS: dict[str, int] = {
    "ONE_MINUTE": 60_000,
    "FIVE_MINUTE": 300_000,
    "FIFTEEN_MINUTE": 900_000,
    "THIRTY_MINUTE": 1_800_000,
    "ONE_HOUR": 3_600_000,
    "TWO_HOUR": 7_200_000,
    "FOUR_HOUR": 14_400_000,
    "SIX_HOUR": 21_600_000,
    "ONE_DAY": 86_400_000,
    "ONE_WEEK": 604_800_000,
}
WS_CANDLE_MS = 300_000
"""The candles channel only has 5-minute buckets."""


def rfc3339_ns(time_ms: int) -> str:
    """Return `2023-06-09T20:19:35.396000000Z` (RFC 3339, nanosecond digits)."""
    seconds, millis = divmod(time_ms, 1000)
    stamp = dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{millis:03d}000000Z"


def rfc3339_us(time_ms: int) -> str:
    """Return `2023-06-09T20:19:35.396000Z` as REST payloads use."""
    return rfc3339_ns(time_ms)[:-7] + "Z"


def heartbeat_time(time_ms: int, uptime_ms: int) -> str:
    """Return the Go-style `current_time` of a heartbeat event."""
    seconds, millis = divmod(time_ms, 1000)
    stamp = dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    return f"{stamp}.{millis:03d}000000 +0000 UTC m=+{uptime_ms / 1000:.9f}"


def fmt(value: float, decimals: int) -> str:
    """Format a number the way Coinbase sends it: a fixed-point string."""
    return f"{value:.{decimals}f}"


def candle(bar: Bar, decimals: int, product_id: str | None) -> dict[str, str]:
    """Return one candle; REST candles carry no product_id, WS candles do."""
    body = {
        "start": str(bar.open_time // 1000),
        "low": fmt(bar.low, decimals),
        "high": fmt(bar.high, decimals),
        "open": fmt(bar.open, decimals),
        "close": fmt(bar.close, decimals),
        "volume": fmt(bar.volume, 8),
    }
    if product_id is not None:
        body["product_id"] = product_id
    return body


def product(item: Product, ticker: TickerSnapshot) -> dict[str, Any]:
    """Return a `market/products` entry."""
    d = item.price_decimals
    tick = fmt(10.0**-d, d)
    volume_change = 0.0 if ticker.volume_24h == 0 else round(ticker.price_change_pct_24h / 3, 2)
    return {
        "product_id": item.symbol,
        "price": fmt(item.price, d),
        "price_percentage_change_24h": fmt(ticker.price_change_pct_24h, 8),
        "volume_24h": fmt(ticker.volume_24h, 8),
        "volume_percentage_change_24h": fmt(volume_change, 8),
        "base_increment": "0.00000001",
        "quote_increment": tick,
        "quote_min_size": "1",
        "quote_max_size": "150000000",
        "base_min_size": "0.00000001",
        "base_max_size": "3400",
        "base_name": item.base_name,
        "quote_name": "US Dollar",
        "watched": False,
        "is_disabled": False,
        "new": False,
        "status": "online",
        "cancel_only": False,
        "limit_only": False,
        "post_only": False,
        "trading_disabled": False,
        "auction_mode": False,
        "product_type": "SPOT",
        "quote_currency_id": item.quote,
        "base_currency_id": item.base,
        "fcm_trading_session_details": None,
        "mid_market_price": "",
        "alias": "",
        "alias_to": [f"{item.base}-USDC"],
        "base_display_symbol": item.base,
        "quote_display_symbol": item.quote,
        "view_only": False,
        "price_increment": tick,
        "display_name": f"{item.base}-{item.quote}",
        "product_venue": "CBE",
        "approximate_quote_24h_volume": fmt(item.quote_volume_24h, 2),
        "new_at": "2021-07-07T14:48:55.000000Z",
    }


def products_body(market: Market, items: list[Product], now_ms: int) -> dict[str, Any]:
    """Return the `market/products` response for `items`."""
    entries = [product(p, market.ticker(Venue.COINBASE, p.symbol, now_ms)) for p in items]
    return {"products": entries, "num_products": len(entries), "pagination": None}


def trade(item: Trade, product_id: str, decimals: int) -> dict[str, str]:
    """Return a `market_trades` entry."""
    return {
        "trade_id": str(item.trade_id),
        "product_id": product_id,
        "price": fmt(item.price, decimals),
        "size": fmt(item.size, 8),
        "side": item.side,
        "time": rfc3339_ns(item.time_ms),
    }


def ticker(snap: TickerSnapshot, decimals: int, *, batch: bool = False) -> dict[str, str]:
    """Return a `ticker` (or `ticker_batch`, without best bid/ask) entry."""
    body = {
        "type": "ticker",
        "product_id": snap.symbol,
        "price": fmt(snap.price, decimals),
        "volume_24_h": fmt(snap.volume_24h, 8),
        "low_24_h": fmt(snap.low_24h, decimals),
        "high_24_h": fmt(snap.high_24h, decimals),
        "low_52_w": fmt(snap.low_52w, decimals),
        "high_52_w": fmt(snap.high_52w, decimals),
        "price_percent_chg_24_h": fmt(snap.price_change_pct_24h, 8),
    }
    if not batch:
        body |= {
            "best_bid": fmt(snap.best_bid, decimals),
            "best_bid_quantity": fmt(snap.best_bid_qty, 8),
            "best_ask": fmt(snap.best_ask, decimals),
            "best_ask_quantity": fmt(snap.best_ask_qty, 8),
        }
    return body


def book_levels(snap: TickerSnapshot, decimals: int, depth: int) -> list[tuple[str, str, str]]:
    """Return (side, price, quantity) levels of a small deterministic book around the ticker."""
    tick = 10.0**-decimals
    levels: list[tuple[str, str, str]] = []
    for i in range(depth):
        size = snap.best_bid_qty * (1 + i * 0.7)
        levels.append(("bid", fmt(snap.best_bid - i * tick, decimals), fmt(size, 8)))
    for i in range(depth):
        size = snap.best_ask_qty * (1 + i * 0.6)
        levels.append(("offer", fmt(snap.best_ask + i * tick, decimals), fmt(size, 8)))
    return levels
