"""How a trader's symbols reach the worker: validated here, then announced to the running worker.

A watchlist or position symbol must be an active product of its exchange (`exchange_symbols`,
kept by symbol refresh); a base asset (`SOL`) is taken as that asset's listed product
(`SOL-USD`), anything else is refused with 422 and the reason. After a watchlist, position or
account change is committed, the api publishes `reload-settings` on the exchange's control
channel on the user's behalf: the worker re-reads every served user and (un)subscribes the
difference within seconds. The api does not wait for the answer (the change is already stored;
a worker that is down applies it at its next start), and the notice needs no command rights.
"""

from __future__ import annotations

from collections.abc import Iterable

import structlog
from aiohttp import web
from redis.exceptions import RedisError
from sqlmodel import col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from livermore_api.errors import ValidationFailedError
from livermore_api.views.common import redis_of
from livermore_cache.commands import CommandBus
from livermore_schema.control import ReloadSettingsCommand
from livermore_schema.enums import STREAMING_EXCHANGES, ExchangeName
from livermore_schema.tables import Exchange, ExchangeSymbol

log = structlog.get_logger(__name__)


async def listed_products(
    db: AsyncSession, exchange: Exchange, symbols: Iterable[str]
) -> list[str]:
    """Return each symbol as the exchange's active product; raise 422 naming those that are not."""
    wanted = list(dict.fromkeys(s.strip().upper() for s in symbols))
    if not wanted:
        return []
    rows = (
        await db.exec(
            select(ExchangeSymbol.symbol, ExchangeSymbol.base_currency).where(
                col(ExchangeSymbol.exchange_id) == exchange.id,
                col(ExchangeSymbol.is_active).is_(True),
                or_(
                    col(ExchangeSymbol.symbol).in_(wanted),
                    col(ExchangeSymbol.base_currency).in_(wanted),
                ),
            )
        )
    ).all()
    products = {symbol.upper(): symbol for symbol, _ in rows}
    by_base = {base.upper(): symbol for symbol, base in rows}
    found = {s: products.get(s) or by_base.get(s) for s in wanted}
    missing = [s for s, product in found.items() if product is None]
    if missing:
        raise ValidationFailedError(
            f"{', '.join(missing)}: not an active product of {exchange.name} "
            "(check the spelling, or run a symbol refresh if it was listed recently)",
            code="unknown_symbol",
            details={"exchange": exchange.name, "symbols": missing},
        )
    return list(dict.fromkeys(p for p in found.values() if p is not None))


async def notify_worker(request: web.Request, exchange: Exchange, user_id: int) -> None:
    """Tell the exchange's worker that a user's symbols changed (never fails the request)."""
    if exchange.id is None or ExchangeName(exchange.name) not in STREAMING_EXCHANGES:
        return
    command = ReloadSettingsCommand(user_id=user_id)
    try:
        await CommandBus(redis_of(request)).send(exchange.id, command)
    except RedisError as error:
        log.warning("api.notify_worker_failed", exchange=exchange.name, error=str(error))
