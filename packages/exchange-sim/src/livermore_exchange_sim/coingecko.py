"""CoinGecko `/api/v3/coins/markets` for the assets the venues list (ranking by market cap)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from livermore_exchange_sim.assets import Asset, venue_symbol
from livermore_exchange_sim.coinbase_wire import rfc3339_us
from livermore_exchange_sim.market import Market, Venue

_ORDERS = ("market_cap_desc", "market_cap_asc", "volume_desc", "volume_asc", "id_asc", "id_desc")


def coin_entry(market: Market, asset: Asset, now_ms: int) -> dict[str, Any]:
    """Return one `coins/markets` object for `asset`, priced from the Coinbase market."""
    snap = market.ticker(Venue.COINBASE, venue_symbol(Venue.COINBASE, asset.base), now_ms)
    price = snap.price
    cap = price * asset.circulating_supply
    cap_change = cap * snap.price_change_pct_24h / 100.0
    stamp = rfc3339_us(now_ms)
    return {
        "id": asset.coingecko_id,
        "symbol": asset.base.lower(),
        "name": asset.name,
        "image": f"https://coin-images.coingecko.com/coins/images/1/large/{asset.coingecko_id}.png",
        "current_price": price,
        "market_cap": round(cap),
        "market_cap_rank": asset.market_cap_rank,
        "fully_diluted_valuation": round(cap * 1.05),
        "total_volume": round(asset.usd_volume_24h * 12),
        "high_24h": snap.high_24h,
        "low_24h": snap.low_24h,
        "price_change_24h": snap.price_change_24h,
        "price_change_percentage_24h": snap.price_change_pct_24h,
        "market_cap_change_24h": round(cap_change, 2),
        "market_cap_change_percentage_24h": snap.price_change_pct_24h,
        "circulating_supply": asset.circulating_supply,
        "total_supply": asset.circulating_supply * 1.05,
        "max_supply": None,
        "ath": snap.high_52w,
        "ath_change_percentage": round((price - snap.high_52w) / snap.high_52w * 100, 5),
        "ath_date": "2024-03-14T07:10:36.635Z",
        "atl": snap.low_52w,
        "atl_change_percentage": round((price - snap.low_52w) / snap.low_52w * 100, 5),
        "atl_date": "2015-10-20T00:00:00.000Z",
        "roi": None,
        "last_updated": stamp,
    }


def _sort_key(order: str) -> Any:
    field = order.rsplit("_", 1)[0]
    if field == "market_cap":
        return lambda e: e["market_cap_rank"]
    if field == "volume":
        return lambda e: e["total_volume"]
    return lambda e: e["id"]


def create_coingecko_app(market: Market) -> web.Application:
    """Return the CoinGecko sub-application (routes under /api/v3)."""

    async def coins_markets(request: web.Request) -> web.Response:
        query = request.query
        if not query.get("vs_currency"):
            return web.json_response({"error": "Missing parameter vs_currency"}, status=400)
        if query["vs_currency"].lower() != "usd":
            return web.json_response({"error": "invalid vs_currency"}, status=400)
        order = query.get("order", "market_cap_desc")
        if order not in _ORDERS:
            return web.json_response({"error": "invalid order"}, status=400)
        try:
            per_page = int(query.get("per_page", "100"))
            page = int(query.get("page", "1"))
        except ValueError:
            return web.json_response({"error": "invalid per_page or page"}, status=400)
        per_page = max(1, min(per_page, 250))
        now = market.clock.now_ms()
        entries = [coin_entry(market, asset, now) for asset in market.assets]
        ids = query.get("ids")
        if ids:
            wanted = set(ids.split(","))
            entries = [e for e in entries if e["id"] in wanted]
        descending = order.endswith("_desc") != order.startswith("market_cap")
        entries.sort(key=_sort_key(order), reverse=descending)
        start = (max(page, 1) - 1) * per_page
        return web.json_response(entries[start : start + per_page])

    async def ping(request: web.Request) -> web.Response:
        return web.json_response({"gecko_says": "(V3) To the Moon!"})

    app = web.Application()
    app.router.add_get("/api/v3/coins/markets", coins_markets)
    app.router.add_get("/api/v3/ping", ping)
    return app
