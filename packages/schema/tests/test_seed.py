from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Engine

from livermore_schema.db import alembic_config, create_engine, upgrade
from livermore_schema.enums import ExchangeName
from livermore_schema.errors import SeedConflictError
from livermore_schema.seed import EXCHANGE_SEEDS, seed_exchanges
from livermore_schema.settings import DatabaseSettings

SPEC_ROWS = [
    (1, "coinbase", "Coinbase Advanced Trade", "wss://advanced-trade-ws.coinbase.com",
     "https://api.coinbase.com"),
    (2, "binance", "Binance", "wss://stream.binance.com:9443", "https://api.binance.com"),
    (3, "binance_us", "Binance US", "wss://stream.binance.us:9443", "https://api.binance.us"),
    (4, "kraken", "Kraken", "wss://ws.kraken.com", "https://api.kraken.com"),
    (5, "kucoin", "KuCoin", "wss://ws-api-spot.kucoin.com", "https://api.kucoin.com"),
    (6, "mexc", "MEXC", "wss://wbs.mexc.com/ws", "https://api.mexc.com"),
]  # fmt: skip


@pytest.fixture
def unseeded(empty_db: DatabaseSettings) -> Iterator[Engine]:
    """A database migrated to head but without the seed."""
    engine = create_engine(empty_db)
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "head")
    try:
        yield engine
    finally:
        engine.dispose()


def _insert(engine: Engine, sql: str) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql(sql)


def _seed(engine: Engine) -> None:
    with engine.begin() as conn:
        seed_exchanges(conn)


def test_seed_matches_spec_names_urls_and_order() -> None:
    rows = [(s.id, s.name.value, s.display_name, s.ws_url, s.rest_url) for s in EXCHANGE_SEEDS]
    assert rows == SPEC_ROWS
    assert [s.name for s in EXCHANGE_SEEDS] == list(ExchangeName)


def test_seeded_rows_hold_reference_limits_fees_and_geo(pg_settings: DatabaseSettings) -> None:
    engine = create_engine(pg_settings)
    with engine.connect() as conn:
        rows = {
            row.name: row
            for row in conn.exec_driver_sql(
                "SELECT name, supported_timeframes, api_limits, fee_schedule, geo_restrictions, "
                "is_active FROM exchanges"
            )
        }
    engine.dispose()

    binance = rows["binance"]
    assert binance.geo_restrictions["blocked_countries"] == ["US"]
    assert binance.geo_restrictions["http_status"] == 451
    assert binance.geo_restrictions["alternative"] == "binance_us"
    assert len(binance.supported_timeframes) == 15
    assert rows["binance_us"].supported_timeframes == binance.supported_timeframes
    assert rows["binance_us"].api_limits == {"rest_weight_limit": 1200, "orders_per_10s": 10}
    assert rows["coinbase"].fee_schedule == {"maker": 0.006, "taker": 0.012}
    assert rows["coinbase"].supported_timeframes == [
        "1m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "1d",
    ]  # fmt: skip
    assert rows["kraken"].fee_schedule == {"maker": 0.0016, "taker": 0.0026}
    assert rows["mexc"].fee_schedule == {"maker": 0.0, "taker": 0.001}
    assert all(row.geo_restrictions is None for name, row in rows.items() if name != "binance")
    assert all(row.is_active for row in rows.values())
    # every runtime timeframe is supported by the streaming exchanges
    for name in ("coinbase", "binance", "binance_us"):
        assert {"1m", "5m", "15m", "1h", "4h", "1d"} <= set(rows[name].supported_timeframes)


def test_seed_fixes_ids_and_updates_rows_inserted_out_of_order(unseeded: Engine) -> None:
    _insert(
        unseeded,
        "INSERT INTO exchanges (id, name, display_name) VALUES (6, 'mexc', 'old mexc'), "
        "(4, 'kraken', 'old kraken'), (9, 'bybit', 'Bybit')",
    )
    _seed(unseeded)
    with unseeded.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT id, name, display_name, ws_url, rest_url FROM exchanges ORDER BY id"
        ).all()
        next_id = conn.exec_driver_sql(
            "INSERT INTO exchanges (name, display_name) VALUES ('okx', 'OKX') RETURNING id"
        ).scalar_one()

    assert [tuple(row) for row in rows] == [*SPEC_ROWS, (9, "bybit", "Bybit", None, None)]
    assert next_id == 10


def test_sequence_moves_past_seeded_ids(unseeded: Engine) -> None:
    _seed(unseeded)
    with unseeded.connect() as conn:
        new_id = conn.exec_driver_sql(
            "INSERT INTO exchanges (name, display_name) VALUES ('okx', 'OKX') RETURNING id"
        ).scalar_one()
    assert new_id == 7


def test_seed_keeps_an_operators_is_active_choice(empty_db: DatabaseSettings) -> None:
    upgrade(empty_db)
    engine = create_engine(empty_db)
    _insert(engine, "UPDATE exchanges SET is_active = false WHERE name = 'kucoin'")
    upgrade(empty_db)
    with engine.connect() as conn:
        active = conn.execute(sa.text("SELECT is_active FROM exchanges WHERE id = 5")).scalar_one()
    engine.dispose()
    assert active is False


def test_seed_restores_changed_urls_and_bumps_updated_at(empty_db: DatabaseSettings) -> None:
    upgrade(empty_db)
    engine = create_engine(empty_db)
    with engine.connect() as conn:
        before = conn.exec_driver_sql("SELECT updated_at FROM exchanges WHERE id = 1").scalar()
    _insert(
        engine,
        "UPDATE exchanges SET ws_url = 'wss://wrong', "
        "updated_at = '2000-01-01T00:00:00Z' WHERE id = 2",
    )
    upgrade(empty_db)
    with engine.connect() as conn:
        row = conn.exec_driver_sql("SELECT ws_url, updated_at FROM exchanges WHERE id = 2").one()
        untouched = conn.exec_driver_sql("SELECT updated_at FROM exchanges WHERE id = 1").scalar()
    engine.dispose()
    assert row.ws_url == "wss://stream.binance.com:9443"
    assert row.updated_at.year > 2000
    assert untouched == before


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("INSERT INTO exchanges (id, name, display_name) VALUES (1, 'kraken', 'Kraken')",
         "id 1 is held by 'kraken'"),
        ("INSERT INTO exchanges (id, name, display_name) VALUES (8, 'coinbase', 'Coinbase')",
         "'coinbase' has id 8"),
    ],
)  # fmt: skip
def test_seed_refuses_rows_that_contradict_fixed_ids(
    unseeded: Engine, sql: str, message: str
) -> None:
    _insert(unseeded, sql)
    with pytest.raises(SeedConflictError, match=message):
        _seed(unseeded)
