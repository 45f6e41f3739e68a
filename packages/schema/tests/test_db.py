from __future__ import annotations

import pytest
from pydantic import SecretStr
from sqlmodel import col, select

from livermore_schema.db import (
    async_session_factory,
    check_connection,
    create_async_engine,
    ensure_database,
    head_revision,
    migration_state,
    upgrade,
)
from livermore_schema.errors import DatabaseMissingError, DatabaseUnavailableError
from livermore_schema.settings import DatabaseSettings
from livermore_schema.tables import Exchange

PASSWORD = "pa55-w0rd-never-shown"


def test_check_connection_accepts_the_test_database(pg_settings: DatabaseSettings) -> None:
    check_connection(pg_settings)


def test_unreachable_server_gives_one_password_free_line(
    pg_server_settings: DatabaseSettings, closed_port: int
) -> None:
    port = closed_port
    settings = pg_server_settings.model_copy(
        update={"port": port, "password": SecretStr(PASSWORD), "name": "somewhere"}
    )
    with pytest.raises(DatabaseUnavailableError) as caught:
        check_connection(settings)
    message = str(caught.value)
    assert message == (
        f"PostgreSQL unavailable at {settings.host}:{port}/somewhere: Connection refused"
    )
    assert PASSWORD not in message
    assert not isinstance(caught.value, DatabaseMissingError)


def test_upgrade_against_unreachable_server_raises_unavailable(
    pg_server_settings: DatabaseSettings, closed_port: int
) -> None:
    settings = pg_server_settings.model_copy(update={"port": closed_port})
    with pytest.raises(DatabaseUnavailableError, match="Connection refused"):
        upgrade(settings)


def test_missing_database_is_reported_as_missing(absent_db: DatabaseSettings) -> None:
    with pytest.raises(DatabaseMissingError, match=f"database {absent_db.name} does not exist"):
        check_connection(absent_db)
    with pytest.raises(DatabaseMissingError):
        upgrade(absent_db)


def test_unknown_role_is_unavailable(pg_server_settings: DatabaseSettings) -> None:
    settings = pg_server_settings.model_copy(update={"user": "no_such_role_x"})
    # Under trust the server names the role; under Debian's default scram-sha-256 (where
    # scripts/ensure-services.sh lets only `postgres` in without a password) it asks for one.
    reason = 'role "no_such_role_x" does not exist|no password supplied'
    with pytest.raises(DatabaseUnavailableError, match=reason):
        check_connection(settings)


def test_ensure_database_creates_once_then_upgrade_reaches_head(
    absent_db: DatabaseSettings,
) -> None:
    assert ensure_database(absent_db) is True
    assert ensure_database(absent_db) is False
    assert migration_state(absent_db).revision is None
    upgrade(absent_db, create_database=True)
    state = migration_state(absent_db)
    assert state.is_at_head
    assert (state.revision, state.exchange_count) == (head_revision(), 6)


async def test_async_session_factory_reads_exchanges(pg_settings: DatabaseSettings) -> None:
    engine = create_async_engine(pg_settings)
    try:
        make_session = async_session_factory(engine)
        async with make_session() as session:
            exchanges = (await session.exec(select(Exchange).order_by(col(Exchange.id)))).all()
        assert [(e.id, e.name) for e in exchanges][:2] == [(1, "coinbase"), (2, "binance")]
        assert exchanges[0].created_at.utcoffset() is not None
        assert exchanges[0].name == "coinbase"  # still loaded after the session closed
    finally:
        await engine.dispose()
