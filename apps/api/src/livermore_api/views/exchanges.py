"""Exchanges with their workers' live state, and tier-annotated exchange symbols."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import and_, func, not_, or_
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from livermore_api import keys
from livermore_api.models import ExchangePath, SymbolQuery
from livermore_api.resources import ExchangeOut, SymbolOut, WorkerState
from livermore_api.routing import json_response, path_of, principal_of, query_of
from livermore_api.views.common import all_exchanges, resolve_exchange, session, worker_states
from livermore_exchange_core.symbols.source import watchlist_symbols
from livermore_schema.enums import STREAMING_EXCHANGES, SymbolTier
from livermore_schema.tables import Exchange, ExchangeSymbol, Position, User


def _exchange_out(exchange: Exchange, worker: WorkerState) -> ExchangeOut:
    assert exchange.id is not None
    return ExchangeOut(
        id=exchange.id,
        name=exchange.name,
        display_name=exchange.display_name,
        is_active=exchange.is_active,
        supported_timeframes=exchange.supported_timeframes,
        streaming=exchange.name in STREAMING_EXCHANGES,
        worker=worker,
    )


async def list_exchanges(request: web.Request) -> web.StreamResponse:
    """List every exchange with its worker's live state."""
    async with session(request) as db:
        exchanges = await all_exchanges(db)
    states = await worker_states(request, [ex.id for ex in exchanges if ex.id is not None])
    items = [_exchange_out(ex, states[ex.id]) for ex in exchanges if ex.id is not None]
    return json_response({"items": [item.model_dump(mode="json") for item in items]})


async def get_exchange(request: web.Request) -> web.StreamResponse:
    """Return one exchange with its worker's live state."""
    path = path_of(request, ExchangePath)
    async with session(request) as db:
        exchange = await resolve_exchange(db, path.exchange)
    assert exchange.id is not None
    states = await worker_states(request, [exchange.id])
    return json_response(_exchange_out(exchange, states[exchange.id]))


async def _tier2_sets(
    db: AsyncSession, user_id: int, exchange: Exchange
) -> tuple[set[str], set[str]]:
    """Return the caller's watchlist symbols and position symbols on an exchange."""
    user = await db.get(User, user_id)
    watch = set(watchlist_symbols(user.settings, exchange.name)) if user else set()
    held = await db.exec(
        select(col(Position.symbol)).where(
            col(Position.user_id) == user_id,
            col(Position.exchange_id) == exchange.id,
            col(Position.quantity) > 0,
        )
    )
    return watch, {symbol.upper() for symbol in held.all()}


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _filters(
    exchange_id: int, query: SymbolQuery, tier1: ColumnElement[bool], tier2: ColumnElement[bool]
) -> list[ColumnElement[bool]]:
    found: list[ColumnElement[bool]] = [col(ExchangeSymbol.exchange_id) == exchange_id]
    if query.active is not None:
        found.append(col(ExchangeSymbol.is_active) == query.active)
    if query.search:
        pattern = f"%{_escape_like(query.search)}%"
        found.append(
            or_(
                col(ExchangeSymbol.symbol).ilike(pattern),
                col(ExchangeSymbol.base_currency).ilike(pattern),
                func.coalesce(col(ExchangeSymbol.display_name), "").ilike(pattern),
            )
        )
    if query.tier is SymbolTier.TIER_1:
        found.append(tier1)
    elif query.tier is SymbolTier.TIER_2:
        found.append(and_(not_(tier1), tier2))
    return found


def _symbol_out(row: ExchangeSymbol, tier: SymbolTier | None) -> dict[str, Any]:
    data = row.model_dump(
        include=set(SymbolOut.model_fields) - {"tier"},
    )
    return SymbolOut(**data, tier=tier).model_dump(mode="json")


async def list_symbols(request: web.Request) -> web.StreamResponse:
    """Page through an exchange's symbols, each with its tier for the caller."""
    path = path_of(request, ExchangePath)
    query = query_of(request, SymbolQuery)
    limit = request.app[keys.CONFIG].tier1_limit
    async with session(request) as db:
        exchange = await resolve_exchange(db, path.exchange)
        assert exchange.id is not None
        watch, held = await _tier2_sets(db, principal_of(request).user_id, exchange)
        rank = col(ExchangeSymbol.volume_rank)
        # `rank IS NOT NULL` keeps the predicate two-valued, so NOT(tier1) holds for unranked rows.
        tier1 = and_(col(ExchangeSymbol.is_active), rank.is_not(None), rank <= limit)
        tier2 = or_(
            col(ExchangeSymbol.symbol).in_(watch | held),
            col(ExchangeSymbol.base_currency).in_(held),
        )
        where = _filters(exchange.id, query, tier1, tier2)
        total = (
            await db.exec(select(func.count()).select_from(ExchangeSymbol).where(*where))
        ).one()
        rows = (
            await db.exec(
                select(ExchangeSymbol, tier1, tier2)
                .where(*where)
                .order_by(
                    col(ExchangeSymbol.volume_rank).asc().nulls_last(),
                    col(ExchangeSymbol.symbol),
                )
                .limit(query.limit)
                .offset(query.offset)
            )
        ).all()
    items = [
        _symbol_out(row, SymbolTier.TIER_1 if is_t1 else (SymbolTier.TIER_2 if is_t2 else None))
        for row, is_t1, is_t2 in rows
    ]
    page = {"items": items, "total": total, "limit": query.limit, "offset": query.offset}
    return json_response(page)
