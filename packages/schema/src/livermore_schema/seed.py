"""The exchanges seed: six rows with fixed ids 1..6, upserted by name (SPEC section 2).

Ids are written explicitly rather than left to insertion order, because code and scripts refer to
coinbase = 1 and binance = 2; the id sequence is moved past them afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from livermore_schema.enums import ExchangeName
from livermore_schema.errors import SeedConflictError
from livermore_schema.tables import Exchange, metadata, utcnow


def _timeframes(spaced: str) -> tuple[str, ...]:
    return tuple(spaced.split())


_BINANCE_TIMEFRAMES: tuple[str, ...] = _timeframes(
    "1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d 1w 1M"
)


@dataclass(frozen=True)
class ExchangeSeed:
    """One seeded `exchanges` row."""

    id: int
    name: ExchangeName
    display_name: str
    ws_url: str
    rest_url: str
    supported_timeframes: tuple[str, ...]
    api_limits: dict[str, Any]
    fee_schedule: dict[str, Any]
    geo_restrictions: dict[str, Any] | None = field(default=None)

    def row(self) -> dict[str, Any]:
        """Return the column values of this row."""
        return {
            "id": self.id,
            "name": self.name.value,
            "display_name": self.display_name,
            "ws_url": self.ws_url,
            "rest_url": self.rest_url,
            "supported_timeframes": list(self.supported_timeframes),
            "api_limits": self.api_limits,
            "fee_schedule": self.fee_schedule,
            "geo_restrictions": self.geo_restrictions,
        }


EXCHANGE_SEEDS: tuple[ExchangeSeed, ...] = (
    ExchangeSeed(
        id=1,
        name=ExchangeName.COINBASE,
        display_name="Coinbase Advanced Trade",
        ws_url="wss://advanced-trade-ws.coinbase.com",
        rest_url="https://api.coinbase.com",
        supported_timeframes=_timeframes("1m 5m 15m 30m 1h 2h 4h 6h 1d"),
        api_limits={
            "ws_connections_per_ip": 750,
            "ws_messages_per_second": 8,
            "rest_weight_limit": 10000,
        },
        fee_schedule={"maker": 0.006, "taker": 0.012},
    ),
    ExchangeSeed(
        id=2,
        name=ExchangeName.BINANCE,
        display_name="Binance",
        ws_url="wss://stream.binance.com:9443",
        rest_url="https://api.binance.com",
        supported_timeframes=_BINANCE_TIMEFRAMES,
        api_limits={
            "ws_connections_per_5min": 300,
            "rest_weight_limit": 6000,
            "orders_per_10s": 50,
        },
        fee_schedule={"maker": 0.001, "taker": 0.001},
        geo_restrictions={
            "blocked_countries": ["US"],
            "http_status": 451,
            "note": "US users geo-blocked (HTTP 451). Use binance_us instead.",
            "alternative": "binance_us",
        },
    ),
    ExchangeSeed(
        id=3,
        name=ExchangeName.BINANCE_US,
        display_name="Binance US",
        ws_url="wss://stream.binance.us:9443",
        rest_url="https://api.binance.us",
        supported_timeframes=_BINANCE_TIMEFRAMES,
        api_limits={"rest_weight_limit": 1200, "orders_per_10s": 10},
        fee_schedule={"maker": 0.001, "taker": 0.001},
    ),
    ExchangeSeed(
        id=4,
        name=ExchangeName.KRAKEN,
        display_name="Kraken",
        ws_url="wss://ws.kraken.com",
        rest_url="https://api.kraken.com",
        supported_timeframes=_timeframes("1m 5m 15m 30m 1h 4h 1d 1w"),
        api_limits={"rest_calls_per_second": 1, "rest_decay_per_second": 0.33},
        fee_schedule={"maker": 0.0016, "taker": 0.0026},
    ),
    ExchangeSeed(
        id=5,
        name=ExchangeName.KUCOIN,
        display_name="KuCoin",
        ws_url="wss://ws-api-spot.kucoin.com",
        rest_url="https://api.kucoin.com",
        supported_timeframes=_timeframes("1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 1w"),
        api_limits={"rest_calls_per_second": 10},
        fee_schedule={"maker": 0.001, "taker": 0.001},
    ),
    ExchangeSeed(
        id=6,
        name=ExchangeName.MEXC,
        display_name="MEXC",
        ws_url="wss://wbs.mexc.com/ws",
        rest_url="https://api.mexc.com",
        supported_timeframes=_timeframes("1m 5m 15m 30m 1h 4h 8h 1d 1w 1M"),
        api_limits={"rest_calls_per_second": 20},
        fee_schedule={"maker": 0.0, "taker": 0.001},
    ),
)
"""The seeded exchanges in SPEC order; `id` is fixed."""

# Columns the seed owns; `is_active` belongs to the operator and is only set on insert.
_SEEDED_COLUMNS: tuple[str, ...] = (
    "display_name",
    "ws_url",
    "rest_url",
    "supported_timeframes",
    "api_limits",
    "fee_schedule",
    "geo_restrictions",
)


def seed_exchanges(connection: Connection) -> None:
    """Upsert the six exchanges by name with ids 1..6 and move the id sequence past them.

    Rows already equal to the seed are left untouched (their `updated_at` does not move).

    Raises:
        SeedConflictError: a seeded name has another id, or a seeded id holds another name.
    """
    table = metadata.tables[Exchange.__tablename__]
    existing: dict[int, str] = {
        row_id: name for row_id, name in connection.execute(sa.select(table.c.id, table.c.name))
    }
    _check_conflicts(existing)
    stmt = insert(table).values([seed.row() for seed in EXCHANGE_SEEDS])
    changed = sa.or_(
        *(table.c[col].is_distinct_from(stmt.excluded[col]) for col in _SEEDED_COLUMNS)
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.name],
        set_={**{col: stmt.excluded[col] for col in _SEEDED_COLUMNS}, "updated_at": utcnow()},
        where=changed,
    )
    connection.execute(stmt)
    connection.execute(
        sa.text(
            "SELECT setval(pg_get_serial_sequence('exchanges', 'id'), "
            "(SELECT GREATEST(MAX(id), 1) FROM exchanges))"
        )
    )


def _check_conflicts(existing: dict[int, str]) -> None:
    ids_by_name = {name: row_id for row_id, name in existing.items()}
    for seed in EXCHANGE_SEEDS:
        holder = existing.get(seed.id)
        if holder is not None and holder != seed.name.value:
            raise SeedConflictError(
                f"exchanges id {seed.id} is held by {holder!r}, reserved for {seed.name.value!r}"
            )
        row_id = ids_by_name.get(seed.name.value)
        if row_id is not None and row_id != seed.id:
            raise SeedConflictError(
                f"exchange {seed.name.value!r} has id {row_id}, the seed requires {seed.id}"
            )
