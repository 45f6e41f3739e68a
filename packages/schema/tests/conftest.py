"""Fixtures of the schema tests: throwaway PostgreSQL databases (never `livermore`)."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from livermore_schema.settings import DatabaseSettings


def admin_connect(server: DatabaseSettings) -> psycopg.Connection[tuple[object, ...]]:
    password = server.password.get_secret_value() if server.password else None
    return psycopg.connect(
        host=server.host,
        port=server.port,
        user=server.user,
        password=password,
        dbname="postgres",
        autocommit=True,
    )


def drop_database(server: DatabaseSettings, name: str) -> None:
    assert name != "livermore"
    with admin_connect(server) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def unique_db_name() -> str:
    return f"livermore_schema_t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def absent_db(
    pg_server_settings: DatabaseSettings, unique_db_name: str
) -> Iterator[DatabaseSettings]:
    """Settings naming a database that does not exist yet; dropped afterwards if created."""
    settings = pg_server_settings.model_copy(update={"name": unique_db_name})
    try:
        yield settings
    finally:
        drop_database(pg_server_settings, unique_db_name)


@pytest.fixture
def empty_db(absent_db: DatabaseSettings, pg_server_settings: DatabaseSettings) -> DatabaseSettings:
    """A freshly created, empty database (no tables)."""
    with admin_connect(pg_server_settings) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(absent_db.name)))
    return absent_db


@pytest.fixture
def closed_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def private_db(pg_server_settings: DatabaseSettings) -> Iterator[DatabaseSettings]:
    """A migrated, seeded database private to one test module.

    The session-wide `pg_settings` database is shared with every other member's tests, so
    tests that count rows of a table need a database of their own.
    """
    from livermore_schema.db import upgrade

    name = f"livermore_schema_t_{uuid.uuid4().hex[:12]}"
    with admin_connect(pg_server_settings) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    settings = pg_server_settings.model_copy(update={"name": name})
    try:
        upgrade(settings)
        yield settings
    finally:
        drop_database(pg_server_settings, name)
