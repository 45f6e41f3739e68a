"""Binance response bodies built from the simulated market: klines, tickers, exchangeInfo, account.

Shapes follow binance/binance-spot-api-docs rest-api.md and web-socket-streams.md.
"""

from __future__ import annotations

import zlib
from typing import Any

from livermore_exchange_sim.binance_wire import (
    BinanceVenueState,
    StreamKind,
    StreamName,
    fmt,
    kline_event,
    kline_row,
    weight_interval,
)
from livermore_exchange_sim.market import Market, TickerSnapshot, Venue

_DAY_MS = 86_400_000


def kline_open_times(
    interval_ms: int, listing_ms: int, now_ms: int, start: int | None, end: int | None, limit: int
) -> range:
    """Return the open times `/api/v3/klines` answers with, ascending.

    From `start` (aligned up) forward when given, else the newest bars up to `end` (or now);
    never before the listing, never past the still-open bar.
    """
    first_allowed = -(-listing_ms // interval_ms) * interval_ms
    last_allowed = now_ms - now_ms % interval_ms
    if end is not None:
        last_allowed = min(last_allowed, end - end % interval_ms)
    if start is not None:
        first = max(first_allowed, -(-start // interval_ms) * interval_ms)
        last = min(last_allowed, first + (limit - 1) * interval_ms)
    else:
        last = last_allowed
        first = max(first_allowed, last - (limit - 1) * interval_ms)
    return range(first, last + 1, interval_ms)


def select_klines(
    market: Market,
    state: BinanceVenueState,
    symbol: str,
    interval_ms: int,
    *,
    start: int | None,
    end: int | None,
    limit: int,
) -> list[list[Any]]:
    """Return `/api/v3/klines` rows: closed bars, then the still-open bar when in range."""
    now = market.clock.now_ms()
    times = kline_open_times(interval_ms, state.config.listing_ms, now, start, end, limit)
    current = now - now % interval_ms
    rows = []
    for open_time in times:
        if open_time == current:
            bar = market.partial_bar(state.venue, symbol, interval_ms, now)
        else:
            bar = market.bar(state.venue, symbol, interval_ms, open_time)
        rows.append(kline_row(bar))
    return rows


def _first_trade_id(ticker: TickerSnapshot) -> int:
    return max(0, ticker.last_trade_id - ticker.trades_24h + 1)


def ticker_24hr_body(market: Market, venue: Venue, symbol: str, now_ms: int) -> dict[str, Any]:
    """Return one `/api/v3/ticker/24hr` object (FULL)."""
    t = market.ticker(venue, symbol, now_ms)
    weighted = t.quote_volume_24h / t.volume_24h if t.volume_24h else t.price
    return {
        "symbol": symbol,
        "priceChange": fmt(t.price_change_24h),
        "priceChangePercent": f"{t.price_change_pct_24h:.3f}",
        "weightedAvgPrice": fmt(weighted),
        "prevClosePrice": fmt(t.open_24h),
        "lastPrice": fmt(t.price),
        "lastQty": fmt(0.01),
        "bidPrice": fmt(t.best_bid),
        "bidQty": fmt(t.best_bid_qty),
        "askPrice": fmt(t.best_ask),
        "askQty": fmt(t.best_ask_qty),
        "openPrice": fmt(t.open_24h),
        "highPrice": fmt(t.high_24h),
        "lowPrice": fmt(t.low_24h),
        "volume": fmt(t.volume_24h),
        "quoteVolume": fmt(t.quote_volume_24h),
        "openTime": now_ms - _DAY_MS,
        "closeTime": now_ms,
        "firstId": _first_trade_id(t),
        "lastId": t.last_trade_id,
        "count": t.trades_24h,
    }


def _ticker_event(t: TickerSnapshot, now_ms: int) -> dict[str, Any]:
    weighted = t.quote_volume_24h / t.volume_24h if t.volume_24h else t.price
    return {
        "e": "24hrTicker",
        "E": now_ms,
        "s": t.symbol,
        "p": fmt(t.price_change_24h),
        "P": f"{t.price_change_pct_24h:.3f}",
        "w": fmt(weighted),
        "x": fmt(t.open_24h),
        "c": fmt(t.price),
        "Q": fmt(0.01),
        "b": fmt(t.best_bid),
        "B": fmt(t.best_bid_qty),
        "a": fmt(t.best_ask),
        "A": fmt(t.best_ask_qty),
        "o": fmt(t.open_24h),
        "h": fmt(t.high_24h),
        "l": fmt(t.low_24h),
        "v": fmt(t.volume_24h),
        "q": fmt(t.quote_volume_24h),
        "O": now_ms - _DAY_MS,
        "C": now_ms,
        "F": _first_trade_id(t),
        "L": t.last_trade_id,
        "n": t.trades_24h,
    }


def _mini_ticker_event(t: TickerSnapshot, now_ms: int) -> dict[str, Any]:
    return {
        "e": "24hrMiniTicker",
        "E": now_ms,
        "s": t.symbol,
        "c": fmt(t.price),
        "o": fmt(t.open_24h),
        "h": fmt(t.high_24h),
        "l": fmt(t.low_24h),
        "v": fmt(t.volume_24h),
        "q": fmt(t.quote_volume_24h),
    }


def _book_ticker_event(t: TickerSnapshot, now_ms: int) -> dict[str, Any]:
    return {
        "u": now_ms,
        "s": t.symbol,
        "b": fmt(t.best_bid),
        "B": fmt(t.best_bid_qty),
        "a": fmt(t.best_ask),
        "A": fmt(t.best_ask_qty),
    }


_TICKER_EVENTS = {
    StreamKind.TICKER: _ticker_event,
    StreamKind.MINI_TICKER: _mini_ticker_event,
    StreamKind.BOOK_TICKER: _book_ticker_event,
}


def _ladder(
    symbol: str, side: str, best: float, best_qty: float, tick: float, levels: int, now_ms: int
) -> list[list[str]]:
    """Return `levels` [price, qty] rows walking away from `best` (bids down, asks up).

    Gaps and sizes come from a hash of (symbol, side, level, time): the same time always gives
    the same book, and the book changes as time moves.
    """
    direction = -1.0 if side == "bid" else 1.0
    rows: list[list[str]] = []
    price, qty = best, best_qty
    for level in range(levels):
        if price <= 0:
            break
        rows.append([fmt(price), fmt(round(qty, 8))])
        noise = zlib.crc32(f"{symbol}:{side}:{level}:{now_ms}".encode())
        price = round(price + direction * tick * (1 + noise % 3), 10)
        qty = best_qty * (1.0 + 0.5 * (level + 1)) * (0.5 + (noise >> 8) % 1000 / 1000.0)
    return rows


def depth_event(market: Market, venue: Venue, stream: StreamName, now_ms: int) -> dict[str, Any]:
    """Return one `<symbol>@depth<levels>` partial book payload around the ticker's best bid/ask.

    The top row of each side equals the ticker's best bid/ask (as `bookTicker` reports them);
    `lastUpdateId` is the simulated time, so it only grows.
    """
    t = market.ticker(venue, stream.symbol, now_ms)
    asset = market.asset_of(venue, stream.symbol)
    tick = 10.0 ** -(asset.price_decimals if asset else 2)
    levels = stream.depth or 5
    return {
        "lastUpdateId": now_ms,
        "bids": _ladder(stream.symbol, "bid", t.best_bid, t.best_bid_qty, tick, levels, now_ms),
        "asks": _ladder(stream.symbol, "ask", t.best_ask, t.best_ask_qty, tick, levels, now_ms),
    }


def stream_payload(market: Market, venue: Venue, stream: StreamName, now_ms: int) -> dict[str, Any]:
    """Return the periodic payload of `stream` at `now_ms` (a kline partial, ticker or book)."""
    if stream.kind is StreamKind.KLINE:
        bar = market.partial_bar(venue, stream.symbol, stream.interval_ms, now_ms)
        return kline_event(bar, stream.symbol, stream.interval or "", now_ms, closed=False)
    if stream.kind is StreamKind.DEPTH:
        return depth_event(market, venue, stream, now_ms)
    return _TICKER_EVENTS[stream.kind](market.ticker(venue, stream.symbol, now_ms), now_ms)


def _symbol_info(symbol: str, base: str, quote: str, price_decimals: int) -> dict[str, Any]:
    tick = fmt(10.0**-price_decimals)
    return {
        "symbol": symbol,
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": tick,
                "maxPrice": fmt(1_000_000.0),
                "tickSize": tick,
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": fmt(1e-5),
                "maxQty": fmt(9_000.0),
                "stepSize": fmt(1e-5),
            },
            {"filterType": "NOTIONAL", "minNotional": fmt(5.0), "maxNotional": fmt(9_000_000.0)},
        ],
        "permissions": ["SPOT"],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


def exchange_info_body(
    market: Market, state: BinanceVenueState, now_ms: int, symbols: list[str] | None
) -> dict[str, Any]:
    """Return `/api/v3/exchangeInfo` with this venue's rate limits and (selected) symbols."""
    config = state.config
    wanted = None if symbols is None else set(symbols)
    products = [p for p in market.products(state.venue) if wanted is None or p.symbol in wanted]
    weight_interval_name, weight_interval_num = weight_interval(config.weight_window_s)
    return {
        "timezone": "UTC",
        "serverTime": now_ms,
        "rateLimits": [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": weight_interval_name,
                "intervalNum": weight_interval_num,
                "limit": config.weight_limit,
            },
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
            {
                "rateLimitType": "RAW_REQUESTS",
                "interval": "MINUTE",
                "intervalNum": 5,
                "limit": config.raw_requests_limit,
            },
        ],
        "exchangeFilters": [],
        "symbols": [_symbol_info(p.symbol, p.base, p.quote, p.price_decimals) for p in products],
    }


def account_body(market: Market, state: BinanceVenueState, now_ms: int) -> dict[str, Any]:
    """Return a deterministic `/api/v3/account`: quote cash, a few holdings and some dust."""
    products = market.products(state.venue)
    balances = [{"asset": products[0].quote if products else "USDT", "free": fmt(10_000.0)}]
    if state.venue in market.balances:
        balances = [{"asset": a, "free": fmt(v)} for a, v in market.balances[state.venue].items()]
        products = []
    for index, product in enumerate(products):
        asset = market.asset_of(state.venue, product.symbol)
        if index < 3 and asset is not None:
            amount = round(1_000.0 / asset.price, 8)
        elif index % 2:
            amount = (index * 37 % 900 + 100) / 1e8  # dust: below any LOT_SIZE
        else:
            amount = 0.0
        balances.append({"asset": product.base, "free": fmt(amount)})
    return {
        "makerCommission": 10,
        "takerCommission": 10,
        "buyerCommission": 0,
        "sellerCommission": 0,
        "commissionRates": {
            "maker": fmt(0.001),
            "taker": fmt(0.001),
            "buyer": fmt(0.0),
            "seller": fmt(0.0),
        },
        "canTrade": True,
        "canWithdraw": True,
        "canDeposit": True,
        "brokered": False,
        "requireSelfTradePrevention": False,
        "preventSor": False,
        "updateTime": now_ms,
        "accountType": "SPOT",
        "balances": [{**b, "locked": fmt(0.0)} for b in balances],
        "permissions": ["SPOT"],
        "uid": 354937868 if state.venue is Venue.BINANCE else 17420661,
    }
