"""The caller's exchange accounts (admins: anyone's); credentials are env-var names only.

Listing and reading an account also report the exchange worker's last position sync of it
(`position_sync`, from the worker's status: synced, api-managed, or failed with the reason).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aiohttp import web
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from livermore_api import keys
from livermore_api.config import ApiConfig
from livermore_api.errors import ConflictError, NotFoundError, ValidationFailedError
from livermore_api.models import AccountCreate, AccountPath, AccountUpdate
from livermore_api.resources import AccountOut
from livermore_api.routing import body_of, json_response, path_of, principal_of
from livermore_api.views.common import (
    check_owner,
    redis_of,
    requested_user,
    resolve_exchange,
    session,
)
from livermore_api.views.tracking import notify_worker
from livermore_cache.status import StatusStore
from livermore_schema.status import AccountSyncStatus
from livermore_schema.tables import Exchange, UserExchange, utcnow


def _present(environ: Mapping[str, str], name: str | None, prefix: str) -> bool | None:
    # only names under the prefix are looked up: the check must not probe the api's environment
    return None if name is None or not name.startswith(prefix) else name in environ


def _check_env_names(request: web.Request, body: AccountCreate | AccountUpdate) -> None:
    """422 unless every credential variable name starts with the configured prefix."""
    prefix = request.app[keys.CONFIG].api.account_env_prefix
    bad = [
        {"in": "body", "loc": [field], "msg": f"must start with {prefix}", "type": "env_prefix"}
        for field in ("api_key_env_var", "api_secret_env_var")
        if (name := getattr(body, field)) is not None and not name.startswith(prefix)
    ]
    if bad:
        raise ValidationFailedError(
            f"credential variable names must start with {prefix}", details=bad
        )


async def position_syncs(
    request: web.Request, accounts: Sequence[UserExchange]
) -> dict[tuple[int, int], AccountSyncStatus]:
    """Return the workers' last position sync by (exchange id, user id) for these accounts."""
    ids = sorted({a.exchange_id for a in accounts})
    statuses = await StatusStore(redis_of(request)).read_all(ids) if ids else {}
    return {
        (status.exchange_id, sync.user_id): sync
        for status in statuses.values()
        if status is not None
        for sync in status.position_sync
    }


def account_out(
    account: UserExchange,
    exchange: Exchange,
    config: ApiConfig,
    syncs: Mapping[tuple[int, int], AccountSyncStatus] | None = None,
) -> AccountOut:
    """Serialise an account, reporting whether each env var is set (never its value)."""
    environ, prefix = config.environ, config.api.account_env_prefix
    assert account.id is not None
    return AccountOut(
        id=account.id,
        user_id=account.user_id,
        exchange_id=account.exchange_id,
        exchange=exchange.name,
        display_name=account.display_name,
        api_key_env_var=account.api_key_env_var,
        api_key_env_var_present=_present(environ, account.api_key_env_var, prefix),
        api_secret_env_var=account.api_secret_env_var,
        api_secret_env_var_present=_present(environ, account.api_secret_env_var, prefix),
        is_active=account.is_active,
        is_default=account.is_default,
        last_connected_at=account.last_connected_at,
        created_at=account.created_at,
        updated_at=account.updated_at,
        position_sync=(syncs or {}).get((account.exchange_id, account.user_id)),
    )


async def _owned(request: web.Request, db: AsyncSession) -> tuple[UserExchange, Exchange]:
    account_id = path_of(request, AccountPath).account_id
    account = await db.get(UserExchange, account_id)
    if account is None:
        raise NotFoundError("no account with that id")
    check_owner(principal_of(request), account.user_id, "account")
    exchange = await db.get(Exchange, account.exchange_id)
    assert exchange is not None
    return account, exchange


async def _clear_other_defaults(db: AsyncSession, account: UserExchange) -> None:
    if account.is_default:
        await db.exec(
            update(UserExchange)
            .where(
                col(UserExchange.user_id) == account.user_id,
                col(UserExchange.id) != account.id,
            )
            .values(is_default=False)
        )


async def list_accounts(request: web.Request) -> web.StreamResponse:
    """List a user's exchange accounts."""
    config = request.app[keys.CONFIG]
    async with session(request) as db:
        user_id = await requested_user(request, db)
        rows = await db.exec(
            select(UserExchange, Exchange)
            .join(Exchange, col(Exchange.id) == col(UserExchange.exchange_id))
            .where(col(UserExchange.user_id) == user_id)
            .order_by(col(UserExchange.id))
        )
        found = rows.all()
    syncs = await position_syncs(request, [a for a, _ in found])
    items = [account_out(a, e, config, syncs).model_dump(mode="json") for a, e in found]
    return json_response({"items": items})


async def create_account(request: web.Request) -> web.StreamResponse:
    """Add an exchange account (one per user and exchange)."""
    body = body_of(request, AccountCreate)
    _check_env_names(request, body)
    async with session(request) as db:
        user_id = await requested_user(request, db)
        exchange = await resolve_exchange(db, body.exchange)
        assert exchange.id is not None
        account = UserExchange(
            user_id=user_id,
            exchange_id=exchange.id,
            **body.model_dump(exclude={"exchange"}),
        )
        db.add(account)
        name = exchange.name
        try:
            await db.flush()
        except IntegrityError:
            await db.rollback()
            raise ConflictError(
                f"an account on {name} already exists", code="account_exists"
            ) from None
        await _clear_other_defaults(db, account)
        await db.commit()
        out = account_out(account, exchange, request.app[keys.CONFIG])
    await notify_worker(request, exchange, user_id)
    return json_response(out, status=201)


async def get_account(request: web.Request) -> web.StreamResponse:
    """Return one account."""
    async with session(request) as db:
        account, exchange = await _owned(request, db)
    syncs = await position_syncs(request, [account])
    return json_response(account_out(account, exchange, request.app[keys.CONFIG], syncs))


async def update_account(request: web.Request) -> web.StreamResponse:
    """Change an account's fields."""
    body = body_of(request, AccountUpdate)
    _check_env_names(request, body)
    async with session(request) as db:
        account, exchange = await _owned(request, db)
        for name, value in body.model_dump(exclude_unset=True).items():
            if value is None and name in ("is_active", "is_default"):
                continue
            setattr(account, name, value)
        account.updated_at = utcnow()
        await db.flush()
        await _clear_other_defaults(db, account)
        await db.commit()
        out = account_out(account, exchange, request.app[keys.CONFIG])
    await notify_worker(request, exchange, account.user_id)
    return json_response(out)


async def delete_account(request: web.Request) -> web.StreamResponse:
    """Delete an account."""
    async with session(request) as db:
        account, exchange = await _owned(request, db)
        owner = account.user_id
        await db.delete(account)
        await db.commit()
    await notify_worker(request, exchange, owner)
    return web.Response(status=204)
