"""Watchlists (`users.settings.watchlist`, symbols keyed by exchange name).

Added symbols must be active products of the exchange (422 otherwise); every change is
announced to the exchange's worker (`tracking`), which streams the difference without a restart.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlmodel.ext.asyncio.session import AsyncSession

from livermore_api.errors import ConflictError, NotFoundError
from livermore_api.models import (
    WATCHLIST_MAX,
    ExchangePath,
    SymbolPath,
    WatchlistAdd,
    WatchlistReplace,
)
from livermore_api.resources import WatchlistOut
from livermore_api.routing import body_of, json_response, path_of
from livermore_api.views.common import requested_user, resolve_exchange, session
from livermore_api.views.tracking import listed_products, notify_worker
from livermore_schema.tables import User, utcnow


async def _user(request: web.Request, db: AsyncSession) -> User:
    user = await db.get(User, await requested_user(request, db))
    assert user is not None
    return user


def _watchlist(user: User) -> dict[str, list[str]]:
    raw: Any = (user.settings or {}).get("watchlist") or {}
    return {str(name): [str(s) for s in symbols] for name, symbols in raw.items()}


async def _save(db: AsyncSession, user: User, watchlist: dict[str, list[str]]) -> WatchlistOut:
    # JSONB columns are not mutation-tracked: assign a new dict so the change is written.
    kept = {name: symbols for name, symbols in watchlist.items() if symbols}
    user.settings = {**(user.settings or {}), "watchlist": kept}
    user.updated_at = utcnow()
    await db.commit()
    assert user.id is not None
    return WatchlistOut(user_id=user.id, watchlist=_watchlist(user))


async def get_watchlist(request: web.Request) -> web.StreamResponse:
    """Return a user's watchlist on every exchange."""
    async with session(request) as db:
        user = await _user(request, db)
    assert user.id is not None
    return json_response(WatchlistOut(user_id=user.id, watchlist=_watchlist(user)))


async def replace_watchlist(request: web.Request) -> web.StreamResponse:
    """Replace a user's watchlist on one exchange."""
    path = path_of(request, ExchangePath)
    body = body_of(request, WatchlistReplace)
    async with session(request) as db:
        exchange = await resolve_exchange(db, path.exchange)
        user = await _user(request, db)
        watchlist = _watchlist(user)
        watchlist[exchange.name] = await listed_products(db, exchange, body.symbols)
        saved = await _save(db, user, watchlist)
    await notify_worker(request, exchange, saved.user_id)
    return json_response(saved)


async def add_to_watchlist(request: web.Request) -> web.StreamResponse:
    """Add one symbol to a user's watchlist on one exchange (no-op if present)."""
    path = path_of(request, ExchangePath)
    body = body_of(request, WatchlistAdd)
    async with session(request) as db:
        exchange = await resolve_exchange(db, path.exchange)
        user = await _user(request, db)
        watchlist = _watchlist(user)
        symbols = watchlist.setdefault(exchange.name, [])
        [symbol] = await listed_products(db, exchange, [body.symbol])
        if symbol not in symbols:
            if len(symbols) >= WATCHLIST_MAX:
                raise ConflictError(
                    f"the {exchange.name} watchlist already holds {WATCHLIST_MAX} symbols",
                    code="watchlist_full",
                )
            symbols.append(symbol)
        saved = await _save(db, user, watchlist)
    await notify_worker(request, exchange, saved.user_id)
    return json_response(saved)


async def remove_from_watchlist(request: web.Request) -> web.StreamResponse:
    """Remove one symbol from a user's watchlist on one exchange."""
    path = path_of(request, SymbolPath)
    async with session(request) as db:
        exchange = await resolve_exchange(db, path.exchange)
        user = await _user(request, db)
        watchlist = _watchlist(user)
        symbols = watchlist.get(exchange.name, [])
        if path.symbol not in symbols:
            raise NotFoundError(f"{path.symbol} is not on the {exchange.name} watchlist")
        symbols.remove(path.symbol)
        saved = await _save(db, user, watchlist)
    await notify_worker(request, exchange, saved.user_id)
    return json_response(saved)
