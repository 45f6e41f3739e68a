"""Engines, sessions, connection checks and `upgrade` (migrate to head, then seed).

Every failure to reach PostgreSQL surfaces as `DatabaseUnavailableError` with a one-line,
password-free message, so commands can print it and exit without a traceback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from psycopg import sql
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as sa_create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from livermore_schema.errors import DatabaseMissingError, DatabaseUnavailableError
from livermore_schema.seed import seed_exchanges
from livermore_schema.settings import DatabaseSettings
from livermore_schema.tables import Exchange

CONNECT_TIMEOUT_S = 5
"""Seconds to wait for PostgreSQL to accept a connection before calling it unavailable."""

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
"""Alembic's script directory, shipped inside the package."""

_UPGRADE_LOCK_KEY = 0x4C49_5645  # "LIVE": serialises concurrent `upgrade` runs on one database

# Sessions run in UTC so timestamptz values come back as UTC datetimes whatever the server's zone.
_CONNECT_ARGS: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_S, "options": "-c TimeZone=UTC"}


@dataclass(frozen=True)
class MigrationState:
    """Where a database stands: its Alembic revision, the code's head and the seeded exchanges."""

    revision: str | None
    head: str
    exchange_count: int

    @property
    def is_at_head(self) -> bool:
        """Return whether the database is migrated to the code's head revision."""
        return self.revision == self.head


def create_engine(settings: DatabaseSettings) -> Engine:
    """Return a synchronous SQLAlchemy engine (psycopg 3) for `settings`."""
    return sa.create_engine(settings.url(), pool_pre_ping=True, connect_args=dict(_CONNECT_ARGS))


def create_async_engine(settings: DatabaseSettings) -> AsyncEngine:
    """Return an asyncio SQLAlchemy engine (psycopg 3) with pre-ping for `settings`.

    Bound parameters are hidden from errors and logs: they hold token hashes and emails.
    """
    return sa_create_async_engine(
        settings.url(),
        pool_pre_ping=True,
        connect_args=dict(_CONNECT_ARGS),
        hide_parameters=True,
    )


def async_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Return a maker of SQLModel `AsyncSession`s that keep objects usable after commit."""
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


def check_connection(settings: DatabaseSettings) -> None:
    """Connect once and run `SELECT 1`; raise `DatabaseUnavailableError` if that fails."""
    try:
        with psycopg.connect(**_connect_kwargs(settings, settings.name)) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        raise unavailable_error(settings, exc) from exc


def ensure_database(settings: DatabaseSettings) -> bool:
    """Create the configured database if it is missing (via the `postgres` database).

    Returns:
        True if the database was created, False if it already existed.
    """
    try:
        check_connection(settings)
    except DatabaseMissingError:
        pass
    else:
        return False
    admin = settings.model_copy(update={"name": "postgres"})
    try:
        with psycopg.connect(**_connect_kwargs(admin, "postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(settings.name)))
    except psycopg.errors.DuplicateDatabase:
        return False  # created concurrently by another upgrade
    except psycopg.Error as exc:
        raise unavailable_error(admin, exc) from exc
    return True


def alembic_config(connection: Connection | None = None) -> Config:
    """Return an Alembic config for the packaged migrations (no alembic.ini needed).

    Args:
        connection: the connection `env.py` migrates; required for online commands.
    """
    config = Config(attributes={"connection": connection} if connection is not None else {})
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    return config


def head_revision() -> str:
    """Return the newest migration revision shipped with this package."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("livermore_schema ships no migrations")
    return head


def upgrade(settings: DatabaseSettings, *, create_database: bool = False) -> None:
    """Migrate the database to head and upsert the seed; safe to run again, and concurrently.

    Args:
        settings: where the database is.
        create_database: create the database first when it does not exist.
    """
    if create_database:
        ensure_database(settings)
    engine = create_engine(settings)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _UPGRADE_LOCK_KEY})
            command.upgrade(alembic_config(conn), "head")
            seed_exchanges(conn)
    except sa.exc.OperationalError as exc:
        raise unavailable_error(settings, exc.orig) from exc
    finally:
        engine.dispose()


def migration_state(settings: DatabaseSettings) -> MigrationState:
    """Return the database's revision, the code's head and the number of exchanges."""
    engine = create_engine(settings)
    try:
        with engine.connect() as conn:
            revision = MigrationContext.configure(conn).get_current_revision()
            count = 0
            if sa.inspect(conn).has_table(Exchange.__tablename__):
                count = conn.execute(sa.select(sa.func.count()).select_from(Exchange)).scalar_one()
    except sa.exc.OperationalError as exc:
        raise unavailable_error(settings, exc.orig) from exc
    finally:
        engine.dispose()
    return MigrationState(revision=revision, head=head_revision(), exchange_count=count)


def unavailable_error(
    settings: DatabaseSettings, exc: BaseException | None
) -> DatabaseUnavailableError:
    """Turn a driver error into a one-line, password-free `DatabaseUnavailableError`."""
    reason = _reason(exc, settings)
    where = f"{settings.host}:{settings.port}/{settings.name}"
    if f'database "{settings.name}" does not exist' in reason:
        return DatabaseMissingError(
            f"database {settings.name} does not exist at {settings.host}:{settings.port} "
            "(livermore-db upgrade creates it)"
        )
    return DatabaseUnavailableError(f"PostgreSQL unavailable at {where}: {reason}")


def _reason(exc: BaseException | None, settings: DatabaseSettings) -> str:
    text = str(exc) if exc is not None else "unknown error"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    first = first.rsplit(" failed: ", 1)[-1].removeprefix("connection failed: ")
    first = re.sub(r"^(FATAL|ERROR):\s*", "", first)
    first = re.sub(r"\s+", " ", first).strip()
    if settings.password is not None:
        secret = settings.password.get_secret_value()
        if secret:
            first = first.replace(secret, "***")
    return first or type(exc).__name__


def _connect_kwargs(settings: DatabaseSettings, database: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "user": settings.user,
        "dbname": database,
        "sslmode": settings.sslmode,
        "connect_timeout": CONNECT_TIMEOUT_S,
    }
    if settings.password is not None:
        kwargs["password"] = settings.password.get_secret_value()
    return kwargs
