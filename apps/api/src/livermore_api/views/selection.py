"""What alerts a caller asked for (`exchanges`, `asset`, `mine`), shared by history and streams.

Assets are matched canonically: `asset=BTC`, `asset=btc` and `asset=bitcoin` all select the
CoinGecko id `bitcoin` when `exchange_symbols` knows it. `mine=true` reads the caller's
watchlists and positions when the request arrives (a stream re-reads them on reconnect).
"""

from __future__ import annotations

from aiohttp import web

from livermore_api import keys
from livermore_api.routing import principal_of
from livermore_api.views.common import resolve_exchange, session
from livermore_exchange_core.alerts.local import AlertSelection, load_holdings
from livermore_exchange_core.symbols.assets import AssetMap, load_asset_map


def split_list(raw: str | None) -> list[str]:
    """Return the distinct non-empty items of a comma-separated query value, in order."""
    if raw is None:
        return []
    return list(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))


async def exchange_ids_of(request: web.Request, raw: str | None) -> list[int] | None:
    """Resolve comma-separated exchange names or ids (404 on an unknown one); None = all."""
    refs = split_list(raw)
    if not refs:
        return None
    ids: list[int] = []
    async with session(request) as db:
        for ref in refs:
            exchange = await resolve_exchange(db, ref)
            assert exchange.id is not None
            ids.append(exchange.id)
    return ids


async def alert_selection(
    request: web.Request, exchange_ids: list[int] | None, assets: str | None, *, mine: bool
) -> AlertSelection:
    """Return the caller's selection; asset names and holdings need the asset map."""
    asset_map: AssetMap | None = None
    if assets is not None or mine:
        asset_map = await load_asset_map(request.app[keys.SESSIONS])
    wanted = None
    if assets is not None and asset_map is not None:
        wanted = frozenset(asset_map.canonical(name) for name in split_list(assets))
    holdings = None
    if mine and asset_map is not None:
        user_id = principal_of(request).user_id
        holdings = await load_holdings(request.app[keys.SESSIONS], user_id, asset_map)
    return AlertSelection(
        exchange_ids=None if exchange_ids is None else frozenset(exchange_ids),
        assets=wanted,
        holdings=holdings,
    )
