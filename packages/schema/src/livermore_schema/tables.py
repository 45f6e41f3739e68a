"""SQLModel tables for PostgreSQL (SPEC section 2).

Money, price, quantity and volume columns are NUMERIC (Decimal in Python); every timestamp is
`timestamptz` and written in UTC; JSON columns are JSONB. The Alembic migrations under
`livermore_schema/migrations` create exactly this schema.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Constraint names are derived, so migrations and autogenerate agree on them."""

SQLModel.metadata.naming_convention = NAMING_CONVENTION
metadata: MetaData = SQLModel.metadata
"""The metadata holding every Livermore table (Alembic's `target_metadata`)."""

DEFAULT_USER_SETTINGS: dict[str, Any] = {"version": 1, "watchlist": {}}
"""`users.settings` of a new user: watchlist symbols keyed by exchange name."""

PRICE = Numeric(30, 12)
"""Prices: wide enough for BTC in USD and for sub-satoshi meme coins."""
QUANTITY = Numeric(38, 18)
"""Quantities of an asset (18 decimals, like most tokens)."""
MONEY = Numeric(30, 8)
"""Quote-currency amounts: volumes, market caps, cost basis."""


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


def _created_at() -> Any:
    return Field(
        default_factory=utcnow,
        sa_type=DateTime(timezone=True),
        sa_column_kwargs={"nullable": False, "server_default": text("now()")},
    )


def _updated_at() -> Any:
    return Field(
        default_factory=utcnow,
        sa_type=DateTime(timezone=True),
        sa_column_kwargs={"nullable": False, "server_default": text("now()"), "onupdate": utcnow},
    )


def _timestamp() -> Any:
    return Field(default=None, sa_type=DateTime(timezone=True))


def _exchange_fk(*, index: bool, ondelete: str | None = None) -> Any:
    # A composite unique constraint led by the FK column already serves as its index.
    return Field(
        sa_column=Column(
            Integer, ForeignKey("exchanges.id", ondelete=ondelete), nullable=False, index=index
        )
    )


def _user_fk(*, index: bool) -> Any:
    return Field(
        sa_column=Column(
            Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=index
        )
    )


class Exchange(SQLModel, table=True):
    """A venue; the six seeded rows have fixed ids 1..6 (see `livermore_schema.seed`)."""

    __tablename__ = "exchanges"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=50, unique=True)
    display_name: str = Field(max_length=100)
    ws_url: str | None = Field(default=None, max_length=255)
    rest_url: str | None = Field(default=None, max_length=255)
    supported_timeframes: list[str] = Field(
        default_factory=list,
        sa_type=JSONB,
        sa_column_kwargs={"nullable": False, "server_default": text("'[]'::jsonb")},
    )
    api_limits: dict[str, Any] | None = Field(default=None, sa_type=JSONB)
    fee_schedule: dict[str, Any] | None = Field(default=None, sa_type=JSONB)
    geo_restrictions: dict[str, Any] | None = Field(default=None, sa_type=JSONB)
    is_active: bool = Field(default=True, sa_column_kwargs={"server_default": text("true")})
    created_at: datetime = _created_at()
    updated_at: datetime = _updated_at()


class User(SQLModel, table=True):
    """A person using Livermore; `settings` holds the watchlist and preferences."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('admin', 'user')", name="role"),)

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=50, unique=True)
    email: str = Field(max_length=255, unique=True)
    role: str = Field(
        default="user", max_length=20, sa_column_kwargs={"server_default": text("'user'")}
    )
    is_active: bool = Field(default=True, sa_column_kwargs={"server_default": text("true")})
    settings: dict[str, Any] = Field(
        default_factory=lambda: dict(DEFAULT_USER_SETTINGS),
        sa_type=JSONB,
        sa_column_kwargs={
            "nullable": False,
            "server_default": text("""'{"version": 1, "watchlist": {}}'::jsonb"""),
        },
    )
    created_at: datetime = _created_at()
    updated_at: datetime = _updated_at()


class ApiToken(SQLModel, table=True):
    """A bearer token of a user, stored only as its hash."""

    __tablename__ = "api_tokens"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = _user_fk(index=True)
    name: str = Field(max_length=100)
    token_hash: str = Field(max_length=128, unique=True)
    created_at: datetime = _created_at()
    last_used_at: datetime | None = _timestamp()
    revoked_at: datetime | None = _timestamp()


class UserExchange(SQLModel, table=True):
    """A user's account on an exchange; credentials are env-var names, never secrets."""

    __tablename__ = "user_exchanges"
    __table_args__ = (UniqueConstraint("user_id", "exchange_id"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = _user_fk(index=False)
    exchange_id: int = _exchange_fk(index=True)
    display_name: str | None = Field(default=None, max_length=100)
    api_key_env_var: str | None = Field(default=None, max_length=100)
    api_secret_env_var: str | None = Field(default=None, max_length=100)
    is_active: bool = Field(default=True, sa_column_kwargs={"server_default": text("true")})
    is_default: bool = Field(default=False, sa_column_kwargs={"server_default": text("false")})
    last_connected_at: datetime | None = _timestamp()
    created_at: datetime = _created_at()
    updated_at: datetime = _updated_at()


class ExchangeSymbol(SQLModel, table=True):
    """A tradable symbol of an exchange, in the exchange's native spelling, with its ranks."""

    __tablename__ = "exchange_symbols"
    __table_args__ = (
        UniqueConstraint("exchange_id", "symbol"),
        Index(
            "ix_exchange_symbols_active_volume_rank",
            "exchange_id",
            "volume_rank",
            postgresql_where=text("is_active"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    exchange_id: int = _exchange_fk(index=False, ondelete="CASCADE")
    symbol: str = Field(max_length=40, index=True)
    base_currency: str = Field(max_length=20)
    quote_currency: str = Field(max_length=20)
    volume_24h: Decimal | None = Field(default=None, sa_type=MONEY)
    volume_rank: int | None = None
    global_rank: int | None = None
    market_cap: Decimal | None = Field(default=None, sa_type=MONEY)
    coingecko_id: str | None = Field(default=None, max_length=100)
    display_name: str | None = Field(default=None, max_length=100)
    is_active: bool = Field(default=True, sa_column_kwargs={"server_default": text("true")})
    last_volume_update: datetime | None = _timestamp()
    created_at: datetime = _created_at()
    updated_at: datetime = _updated_at()


class Position(SQLModel, table=True):
    """A user's holding of one currency on one exchange."""

    __tablename__ = "positions"
    __table_args__ = (UniqueConstraint("user_id", "exchange_id", "symbol"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = _user_fk(index=False)
    exchange_id: int = _exchange_fk(index=True)
    symbol: str = Field(max_length=40)
    quantity: Decimal = Field(sa_type=QUANTITY)
    available_quantity: Decimal | None = Field(default=None, sa_type=QUANTITY)
    cost_basis: Decimal | None = Field(default=None, sa_type=MONEY)
    last_synced_at: datetime | None = _timestamp()
    created_at: datetime = _created_at()
    updated_at: datetime = _updated_at()


class AlertHistory(SQLModel, table=True):
    """A fired alert as stored; `uid` is the published `AlertEvent.id`."""

    __tablename__ = "alert_history"
    __table_args__ = (
        Index("ix_alert_history_exchange_id_symbol", "exchange_id", "symbol"),
        Index("ix_alert_history_asset", "asset"),
    )

    id: int | None = Field(default=None, primary_key=True)
    uid: UUID = Field(sa_type=Uuid, unique=True)
    exchange_id: int = Field(sa_column=Column(Integer, ForeignKey("exchanges.id"), nullable=False))
    symbol: str = Field(max_length=40)
    timeframe: str = Field(max_length=5)
    alert_type: str = Field(max_length=50)
    trigger_label: str = Field(max_length=100)
    trigger_value: Decimal | None = Field(default=None, sa_type=PRICE)
    price: Decimal = Field(sa_type=PRICE)
    triggered_at: datetime = Field(sa_type=DateTime(timezone=True))
    details: dict[str, Any] | None = Field(default=None, sa_type=JSONB)
    notification_sent: bool = Field(
        default=False, sa_column_kwargs={"server_default": text("false")}
    )
    notification_error: str | None = Field(default=None, max_length=500)
    created_at: datetime = _created_at()
    asset: str | None = Field(default=None, max_length=100)
    quote: str | None = Field(default=None, max_length=20)


Index("ix_alert_history_triggered_at", metadata.tables["alert_history"].c.triggered_at.desc())
