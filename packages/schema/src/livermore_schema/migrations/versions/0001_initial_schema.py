"""Initial schema: exchanges, users, api_tokens, user_exchanges, exchange_symbols, positions,
alert_history (SPEC section 2).

Hand-written from livermore_schema.tables and checked against autogenerate (tests assert no diff).
Differences from the TypeScript original, on purpose: alert_history.exchange_id and
positions.exchange_id point at exchanges (not user_exchanges), NUMERIC everywhere money or
quantities are stored, timestamptz everywhere, JSONB for JSON.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PRICE = sa.Numeric(30, 12)
QUANTITY = sa.Numeric(38, 18)
MONEY = sa.Numeric(30, 8)


def _id() -> sa.Column[int]:
    return sa.Column("id", sa.Integer(), nullable=False)


def _stamp(name: str, *, nullable: bool = False) -> sa.Column[object]:
    if nullable:
        return sa.Column(name, sa.DateTime(timezone=True), nullable=True)
    return sa.Column(
        name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def _flag(name: str, default: bool) -> sa.Column[bool]:
    return sa.Column(
        name, sa.Boolean(), server_default=sa.text("true" if default else "false"), nullable=False
    )


def _fk(column: str, target: str, *, ondelete: str | None = None) -> sa.Column[int]:
    return sa.Column(
        column, sa.Integer(), sa.ForeignKey(target, ondelete=ondelete), nullable=False
    )


def upgrade() -> None:
    """Create the seven tables, their constraints and indexes."""
    op.create_table(
        "exchanges",
        _id(),
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("display_name", sa.String(100), nullable=False),
        sa.Column("ws_url", sa.String(255), nullable=True),
        sa.Column("rest_url", sa.String(255), nullable=True),
        sa.Column(
            "supported_timeframes", JSONB(), server_default=sa.text("'[]'::jsonb"), nullable=False
        ),
        sa.Column("api_limits", JSONB(), nullable=True),
        sa.Column("fee_schedule", JSONB(), nullable=True),
        sa.Column("geo_restrictions", JSONB(), nullable=True),
        _flag("is_active", True),
        _stamp("created_at"),
        _stamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchanges")),
        sa.UniqueConstraint("name", name=op.f("uq_exchanges_name")),
    )
    op.create_table(
        "users",
        _id(),
        sa.Column("username", sa.String(50), nullable=False),
        sa.Column("email", sa.String(255), nullable=False),
        sa.Column("role", sa.String(20), server_default=sa.text("'user'"), nullable=False),
        _flag("is_active", True),
        sa.Column(
            "settings",
            JSONB(),
            server_default=sa.text("""'{"version": 1, "watchlist": {}}'::jsonb"""),
            nullable=False,
        ),
        _stamp("created_at"),
        _stamp("updated_at"),
        sa.CheckConstraint("role IN ('admin', 'user')", name=op.f("ck_users_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "api_tokens",
        _id(),
        _fk("user_id", "users.id", ondelete="CASCADE"),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("token_hash", sa.String(128), nullable=False),
        _stamp("created_at"),
        _stamp("last_used_at", nullable=True),
        _stamp("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_index(op.f("ix_api_tokens_user_id"), "api_tokens", ["user_id"])
    op.create_table(
        "user_exchanges",
        _id(),
        _fk("user_id", "users.id", ondelete="CASCADE"),
        _fk("exchange_id", "exchanges.id"),
        sa.Column("display_name", sa.String(100), nullable=True),
        sa.Column("api_key_env_var", sa.String(100), nullable=True),
        sa.Column("api_secret_env_var", sa.String(100), nullable=True),
        _flag("is_active", True),
        _flag("is_default", False),
        _stamp("last_connected_at", nullable=True),
        _stamp("created_at"),
        _stamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_exchanges")),
        sa.UniqueConstraint(
            "user_id", "exchange_id", name=op.f("uq_user_exchanges_user_id_exchange_id")
        ),
    )
    op.create_index(op.f("ix_user_exchanges_exchange_id"), "user_exchanges", ["exchange_id"])
    op.create_table(
        "exchange_symbols",
        _id(),
        _fk("exchange_id", "exchanges.id", ondelete="CASCADE"),
        sa.Column("symbol", sa.String(40), nullable=False),
        sa.Column("base_currency", sa.String(20), nullable=False),
        sa.Column("quote_currency", sa.String(20), nullable=False),
        sa.Column("volume_24h", MONEY, nullable=True),
        sa.Column("volume_rank", sa.Integer(), nullable=True),
        sa.Column("global_rank", sa.Integer(), nullable=True),
        sa.Column("market_cap", MONEY, nullable=True),
        sa.Column("coingecko_id", sa.String(100), nullable=True),
        sa.Column("display_name", sa.String(100), nullable=True),
        _flag("is_active", True),
        _stamp("last_volume_update", nullable=True),
        _stamp("created_at"),
        _stamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_symbols")),
        sa.UniqueConstraint(
            "exchange_id", "symbol", name=op.f("uq_exchange_symbols_exchange_id_symbol")
        ),
    )
    op.create_index(op.f("ix_exchange_symbols_symbol"), "exchange_symbols", ["symbol"])
    op.create_index(
        "ix_exchange_symbols_active_volume_rank",
        "exchange_symbols",
        ["exchange_id", "volume_rank"],
        postgresql_where=sa.text("is_active"),
    )
    op.create_table(
        "positions",
        _id(),
        _fk("user_id", "users.id", ondelete="CASCADE"),
        _fk("exchange_id", "exchanges.id"),
        sa.Column("symbol", sa.String(40), nullable=False),
        sa.Column("quantity", QUANTITY, nullable=False),
        sa.Column("available_quantity", QUANTITY, nullable=True),
        sa.Column("cost_basis", MONEY, nullable=True),
        _stamp("last_synced_at", nullable=True),
        _stamp("created_at"),
        _stamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_positions")),
        sa.UniqueConstraint(
            "user_id",
            "exchange_id",
            "symbol",
            name=op.f("uq_positions_user_id_exchange_id_symbol"),
        ),
    )
    op.create_index(op.f("ix_positions_exchange_id"), "positions", ["exchange_id"])
    op.create_table(
        "alert_history",
        _id(),
        sa.Column("uid", sa.Uuid(), nullable=False),
        _fk("exchange_id", "exchanges.id"),
        sa.Column("symbol", sa.String(40), nullable=False),
        sa.Column("timeframe", sa.String(5), nullable=False),
        sa.Column("alert_type", sa.String(50), nullable=False),
        sa.Column("trigger_label", sa.String(100), nullable=False),
        sa.Column("trigger_value", PRICE, nullable=True),
        sa.Column("price", PRICE, nullable=False),
        sa.Column("triggered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("details", JSONB(), nullable=True),
        _flag("notification_sent", False),
        sa.Column("notification_error", sa.String(500), nullable=True),
        _stamp("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_history")),
        sa.UniqueConstraint("uid", name=op.f("uq_alert_history_uid")),
    )
    op.create_index(
        "ix_alert_history_exchange_id_symbol", "alert_history", ["exchange_id", "symbol"]
    )
    op.create_index(
        "ix_alert_history_triggered_at", "alert_history", [sa.text("triggered_at DESC")]
    )


def downgrade() -> None:
    """Drop every table (and with them their indexes), children first."""
    for table in (
        "alert_history",
        "positions",
        "exchange_symbols",
        "user_exchanges",
        "api_tokens",
        "users",
        "exchanges",
    ):
        op.drop_table(table)
