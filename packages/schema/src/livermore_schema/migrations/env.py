"""Alembic environment: migrates the connection handed over by `livermore_schema.db`.

There is no alembic.ini and no URL here; `db.upgrade` builds the config and passes an open
connection in `config.attributes["connection"]`, so credentials never pass through a config file.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from livermore_schema.tables import metadata


def run_migrations_online(connection: Connection) -> None:
    """Run the migrations on `connection` inside its (or a new) transaction."""
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_type=True,
        compare_server_default=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; use livermore-db upgrade")
_connection = context.config.attributes.get("connection")
if not isinstance(_connection, Connection):
    raise SystemExit("run migrations through livermore_schema.db.upgrade (livermore-db upgrade)")
run_migrations_online(_connection)
