"""Manually managed positions of the caller (admins: anyone's).

A position's symbol must be an active product of the exchange (a base asset is taken as its
listed product; 422 otherwise); every change is announced to the exchange's worker.
"""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from livermore_api.errors import ConflictError, NotFoundError
from livermore_api.models import PositionCreate, PositionPath, PositionUpdate
from livermore_api.resources import PositionOut
from livermore_api.routing import body_of, json_response, path_of, principal_of
from livermore_api.views.common import check_owner, requested_user, resolve_exchange, session
from livermore_api.views.tracking import listed_products, notify_worker
from livermore_schema.tables import Exchange, Position, utcnow


def _out(position: Position, exchange: Exchange) -> PositionOut:
    assert position.id is not None
    return PositionOut(
        id=position.id,
        user_id=position.user_id,
        exchange_id=position.exchange_id,
        exchange=exchange.name,
        symbol=position.symbol,
        quantity=position.quantity,
        available_quantity=position.available_quantity,
        cost_basis=position.cost_basis,
        last_synced_at=position.last_synced_at,
        updated_at=position.updated_at,
    )


async def _owned(request: web.Request, db: AsyncSession) -> tuple[Position, Exchange]:
    position = await db.get(Position, path_of(request, PositionPath).position_id)
    if position is None:
        raise NotFoundError("no position with that id")
    check_owner(principal_of(request), position.user_id, "position")
    exchange = await db.get(Exchange, position.exchange_id)
    assert exchange is not None
    return position, exchange


async def list_positions(request: web.Request) -> web.StreamResponse:
    """List a user's positions."""
    async with session(request) as db:
        user_id = await requested_user(request, db)
        rows = await db.exec(
            select(Position, Exchange)
            .join(Exchange, col(Exchange.id) == col(Position.exchange_id))
            .where(col(Position.user_id) == user_id)
            .order_by(col(Position.id))
        )
        items = [_out(p, e).model_dump(mode="json") for p, e in rows.all()]
    return json_response({"items": items})


async def create_position(request: web.Request) -> web.StreamResponse:
    """Add a manual position (one per user, exchange and symbol)."""
    body = body_of(request, PositionCreate)
    async with session(request) as db:
        user_id = await requested_user(request, db)
        exchange = await resolve_exchange(db, body.exchange)
        assert exchange.id is not None
        [symbol] = await listed_products(db, exchange, [body.symbol])
        fields = body.model_dump(exclude={"exchange", "symbol"})
        position = Position(user_id=user_id, exchange_id=exchange.id, symbol=symbol, **fields)
        db.add(position)
        name = exchange.name
        try:
            await db.commit()
        except IntegrityError:
            await db.rollback()
            raise ConflictError(
                f"a position in {symbol} on {name} already exists",
                code="position_exists",
            ) from None
        out = _out(position, exchange)
    await notify_worker(request, exchange, user_id)
    return json_response(out, status=201)


async def get_position(request: web.Request) -> web.StreamResponse:
    """Return one position."""
    async with session(request) as db:
        position, exchange = await _owned(request, db)
    return json_response(_out(position, exchange))


async def update_position(request: web.Request) -> web.StreamResponse:
    """Change a position's quantities or cost basis."""
    body = body_of(request, PositionUpdate)
    async with session(request) as db:
        position, exchange = await _owned(request, db)
        for name, value in body.model_dump(exclude_unset=True).items():
            if value is None and name == "quantity":
                continue
            setattr(position, name, value)
        position.updated_at = utcnow()
        await db.commit()
        out = _out(position, exchange)
    await notify_worker(request, exchange, position.user_id)
    return json_response(out)


async def delete_position(request: web.Request) -> web.StreamResponse:
    """Delete a position."""
    async with session(request) as db:
        position, exchange = await _owned(request, db)
        owner = position.user_id
        await db.delete(position)
        await db.commit()
    await notify_worker(request, exchange, owner)
    return web.Response(status=204)
