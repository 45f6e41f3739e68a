"""PostgreSQL for the soak: Tier 1 rows for its symbols, and the alerts the workers stored."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, select
from sqlmodel import col

from livermore_schema.db import async_session_factory, create_async_engine
from livermore_schema.settings import DatabaseSettings
from livermore_schema.tables import AlertHistory, ExchangeSymbol

from .checks import EXCHANGE_IDS, symbol_of


async def seed_symbols(database: DatabaseSettings, bases: Sequence[str]) -> None:
    """Make `bases` the only (Tier 1) symbols of Coinbase and Binance."""
    engine = create_async_engine(database)
    try:
        async with async_session_factory(engine)() as session:
            await session.exec(delete(ExchangeSymbol))  # type: ignore[call-overload]
            for venue, exchange_id in EXCHANGE_IDS.items():
                for rank, base in enumerate(bases, start=1):
                    session.add(
                        ExchangeSymbol(
                            exchange_id=exchange_id,
                            symbol=symbol_of(venue, base),
                            base_currency=base,
                            quote_currency="USD" if exchange_id == 1 else "USDT",
                            volume_rank=rank,
                            is_active=True,
                        )
                    )
            await session.commit()
    finally:
        await engine.dispose()


async def clear_symbols(database: DatabaseSettings) -> None:
    """Remove the soak's symbol rows."""
    engine = create_async_engine(database)
    try:
        async with async_session_factory(engine)() as session:
            await session.exec(  # type: ignore[call-overload]
                delete(ExchangeSymbol).where(
                    col(ExchangeSymbol.exchange_id).in_(list(EXCHANGE_IDS.values()))
                )
            )
            await session.commit()
    finally:
        await engine.dispose()


async def max_history_id(database: DatabaseSettings) -> int:
    """The highest alert_history id so far (rows above it are this run's)."""
    engine = create_async_engine(database)
    try:
        async with async_session_factory(engine)() as session:
            found = (await session.exec(select(func.max(AlertHistory.id)))).one()  # type: ignore[call-overload]
            return int(found[0] or 0)
    finally:
        await engine.dispose()


async def read_history(database: DatabaseSettings, floor: int) -> list[dict[str, Any]]:
    """This run's alert_history rows of Coinbase and Binance."""
    engine = create_async_engine(database)
    try:
        async with async_session_factory(engine)() as session:
            rows = await session.exec(
                select(AlertHistory).where(  # type: ignore[call-overload]
                    col(AlertHistory.id) > floor,
                    col(AlertHistory.exchange_id).in_(list(EXCHANGE_IDS.values())),
                )
            )
            return [
                {
                    "uid": str(row.uid),
                    "exchange_id": row.exchange_id,
                    "symbol": row.symbol,
                    "timeframe": row.timeframe,
                    "label": row.trigger_label,
                    "triggered_at": row.triggered_at,
                    "trigger_value": float(row.trigger_value or 0),
                    "delayed": bool((row.details or {}).get("delayed", False)),
                }
                for (row,) in rows.all()
            ]
    finally:
        await engine.dispose()
