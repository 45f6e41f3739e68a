from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from livermore_schema.db import alembic_config, create_engine, head_revision, upgrade
from livermore_schema.enums import ExchangeName
from livermore_schema.settings import DatabaseSettings
from livermore_schema.tables import metadata

TABLES = {
    "exchanges",
    "users",
    "api_tokens",
    "user_exchanges",
    "exchange_symbols",
    "positions",
    "alert_history",
}


def _rows(settings: DatabaseSettings, query: str) -> list[tuple[Any, ...]]:
    engine = create_engine(settings)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.exec_driver_sql(query)]
    finally:
        engine.dispose()


def _diff(settings: DatabaseSettings) -> list[Any]:
    engine = create_engine(settings)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "compare_type": True,
                    "compare_server_default": True,
                    "target_metadata": metadata,
                },
            )
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def test_upgrade_twice_on_empty_database_seeds_six_exchanges_once(
    empty_db: DatabaseSettings,
) -> None:
    upgrade(empty_db)
    first = _rows(empty_db, "SELECT * FROM exchanges ORDER BY id")
    upgrade(empty_db)
    second = _rows(empty_db, "SELECT * FROM exchanges ORDER BY id")

    assert [(row[0], row[1]) for row in first] == [
        (1, "coinbase"),
        (2, "binance"),
        (3, "binance_us"),
        (4, "kraken"),
        (5, "kucoin"),
        (6, "mexc"),
    ]
    assert [row[1] for row in first] == [name.value for name in ExchangeName]
    assert second == first  # including updated_at: an unchanged row is not rewritten
    assert _rows(empty_db, "SELECT version_num FROM alembic_version") == [(head_revision(),)]


def test_migrated_schema_matches_tables_exactly(pg_settings: DatabaseSettings) -> None:
    assert _diff(pg_settings) == []
    names = {
        row[0]
        for row in _rows(pg_settings, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    }
    assert names == TABLES | {"alembic_version"}


def test_autogenerate_comparison_notices_a_missing_index(empty_db: DatabaseSettings) -> None:
    upgrade(empty_db)
    engine = create_engine(empty_db)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_alert_history_triggered_at")
        conn.exec_driver_sql("ALTER TABLE positions ALTER COLUMN quantity TYPE numeric(20, 8)")
    engine.dispose()

    diff = _diff(empty_db)

    assert any(
        item[0] == "add_index" and item[1].name == "ix_alert_history_triggered_at" for item in diff
    )
    assert any(
        isinstance(item, list) and item[0][0] == "modify_type" and item[0][3] == "quantity"
        for item in diff
    )


def test_downgrade_to_base_removes_every_table(empty_db: DatabaseSettings) -> None:
    upgrade(empty_db)
    engine = create_engine(empty_db)
    try:
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "base")
        with engine.connect() as conn:
            assert set(sa.inspect(conn).get_table_names()) == {"alembic_version"}
    finally:
        engine.dispose()
    upgrade(empty_db)
    assert len(_rows(empty_db, "SELECT id FROM exchanges")) == 6


def test_upgrade_critical_indexes_exist(pg_settings: DatabaseSettings) -> None:
    indexes = dict(
        _rows(pg_settings, "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'")
    )
    assert "DESC" in indexes["ix_alert_history_triggered_at"]
    assert indexes["ix_alert_history_exchange_id_symbol"].endswith("(exchange_id, symbol)")
    assert indexes["ix_exchange_symbols_active_volume_rank"].endswith(
        "(exchange_id, volume_rank) WHERE is_active"
    )
    assert "UNIQUE" in indexes["uq_api_tokens_token_hash"]
    assert "UNIQUE" in indexes["uq_alert_history_uid"]


@pytest.mark.parametrize(
    ("table", "column", "target", "on_delete"),
    [
        ("alert_history", "exchange_id", "exchanges", "a"),
        ("user_exchanges", "user_id", "users", "c"),
        ("user_exchanges", "exchange_id", "exchanges", "a"),
        ("api_tokens", "user_id", "users", "c"),
        ("positions", "exchange_id", "exchanges", "a"),
        ("positions", "user_id", "users", "c"),
        ("exchange_symbols", "exchange_id", "exchanges", "c"),
    ],
)
def test_foreign_keys_point_where_spec_says(
    pg_settings: DatabaseSettings, table: str, column: str, target: str, on_delete: str
) -> None:
    rows = _rows(
        pg_settings,
        "SELECT confrelid::regclass::text, confdeltype FROM pg_constraint c "
        "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
        f"WHERE c.contype = 'f' AND c.conrelid = '{table}'::regclass AND a.attname = '{column}'",
    )
    assert rows == [(target, on_delete)]
