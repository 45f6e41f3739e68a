"""Lookups and authorization checks shared by the views."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from aiohttp import web
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from livermore_api import keys
from livermore_api.auth import Principal
from livermore_api.errors import ForbiddenError, NotFoundError
from livermore_api.models import OwnerQuery
from livermore_api.resources import WorkerState
from livermore_api.routing import principal_of, query_of
from livermore_cache.client import RedisClient
from livermore_cache.status import StatusStore
from livermore_schema.tables import Exchange, User, UserExchange

INT32_MAX = 2**31 - 1
"""Largest id PostgreSQL's `integer` holds; a bigger number names no row."""


def session(request: web.Request) -> AsyncSession:
    """Return a new database session (use it as `async with`)."""
    return request.app[keys.SESSIONS]()


def redis_of(request: web.Request) -> RedisClient:
    """Return the app's Redis client."""
    return request.app[keys.REDIS]


async def resolve_exchange(db: AsyncSession, ref: str) -> Exchange:
    """Return the exchange named (or numbered) `ref`, or raise 404."""
    numeric = ref.isascii() and ref.isdigit() and int(ref) <= INT32_MAX
    query = select(Exchange).where(
        col(Exchange.id) == int(ref) if numeric else col(Exchange.name) == ref
    )
    found: Exchange | None = (await db.exec(query)).one_or_none()
    if found is None:
        raise NotFoundError(f"no exchange {ref!r}", code="exchange_not_found")
    return found


async def all_exchanges(db: AsyncSession) -> Sequence[Exchange]:
    """Return every exchange, by id."""
    return (await db.exec(select(Exchange).order_by(col(Exchange.id)))).all()


async def target_user(db: AsyncSession, principal: Principal, user_id: int | None) -> int:
    """Return whose resources to act on: the caller's, or (admins only) `user_id`'s."""
    if user_id is None or user_id == principal.user_id:
        return principal.user_id
    if not principal.is_admin:
        raise ForbiddenError("you may only act on your own resources")
    if await db.get(User, user_id) is None:
        raise NotFoundError(f"no user {user_id}", code="user_not_found")
    return user_id


async def requested_user(request: web.Request, db: AsyncSession) -> int:
    """Return whose resources a request acts on (see `target_user`; `?user_id=` is OwnerQuery)."""
    user_id = query_of(request, OwnerQuery).user_id
    return await target_user(db, principal_of(request), user_id)


def check_owner(principal: Principal, owner_id: int, what: str) -> None:
    """Raise 404 unless the caller owns the resource or is an admin (existence is not leaked)."""
    if owner_id != principal.user_id and not principal.is_admin:
        raise NotFoundError(f"no {what} with that id")


async def commandable_exchange_ids(db: AsyncSession, user_id: int) -> set[int]:
    """Return the exchanges a user holds an active account on."""
    rows = await db.exec(
        select(col(UserExchange.exchange_id)).where(
            col(UserExchange.user_id) == user_id,
            col(UserExchange.is_active),
        )
    )
    return set(rows.all())


async def require_account(db: AsyncSession, principal: Principal, exchange: Exchange) -> None:
    """Raise 403 unless the caller is an admin or has an active account on `exchange`."""
    if principal.is_admin:
        return
    if exchange.id not in await commandable_exchange_ids(db, principal.user_id):
        raise ForbiddenError(
            f"you need an active account on {exchange.name} to command its worker",
            code="no_exchange_account",
        )


async def worker_states(
    request: web.Request, exchange_ids: Sequence[int]
) -> dict[int, WorkerState]:
    """Return each exchange's worker state; a stale heartbeat is reported dead."""
    now = datetime.now(UTC)
    config = request.app[keys.CONFIG]
    statuses = await StatusStore(redis_of(request), missed_beats=config.missed_beats).read_all(
        exchange_ids
    )
    states: dict[int, WorkerState] = {}
    for exchange_id, status in statuses.items():
        alive = status is not None and not status.is_stale(now, config.missed_beats)
        states[exchange_id] = WorkerState(
            alive=alive,
            liveness="alive" if alive else ("dead" if status is not None else "absent"),
            state=status.connection_state if status else None,
            status=status,
        )
    return states
