"""`livermore-db`: migrate and seed the Livermore PostgreSQL database.

Exit codes (`livermore_schema.commandline`): 0 success, 1 database error (e.g. a seed
conflict), 2 bad configuration or PostgreSQL unreachable. Failures print one line on stderr,
never a traceback or a secret.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

import sqlalchemy as sa
import structlog

from livermore_schema.commandline import (
    EXIT_CANNOT_START,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    SettingsError,
    add_version_option,
    load_settings,
)
from livermore_schema.db import ensure_database, migration_state, upgrade
from livermore_schema.errors import DatabaseError, DatabaseUnavailableError
from livermore_schema.logs import configure_logging
from livermore_schema.settings import DatabaseSettings, LogSettings

_ENVIRONMENT = """\
environment (or .env):
  LIVERMORE_DATABASE_HOST      default 127.0.0.1
  LIVERMORE_DATABASE_PORT      default 5432
  LIVERMORE_DATABASE_USER      default postgres
  LIVERMORE_DATABASE_PASSWORD  optional, never printed
  LIVERMORE_DATABASE_NAME      default livermore
  LIVERMORE_DATABASE_SSLMODE   default prefer
  LIVERMORE_LOG_LEVEL, LIVERMORE_LOG_JSON

exit codes: 0 ok, 1 database error, 2 bad configuration or PostgreSQL unreachable"""

_log = structlog.get_logger("livermore_schema.cli")


def _where(settings: DatabaseSettings) -> str:
    return f"database {settings.name} at {settings.host}:{settings.port}"


def run_upgrade(settings: DatabaseSettings) -> str:
    """Create the database if missing, migrate to head, seed; return the summary line."""
    created = ensure_database(settings)
    upgrade(settings)
    state = migration_state(settings)
    _log.debug("db.upgraded", database=settings.describe(), revision=state.revision)
    suffix = " (created)" if created else ""
    return f"{_where(settings)}{suffix}: at head {state.head}, {state.exchange_count} exchanges"


def run_current(settings: DatabaseSettings) -> str:
    """Return a line naming the database's revision next to the code's head."""
    state = migration_state(settings)
    if state.revision is None:
        return f"{_where(settings)}: not migrated (head {state.head}); run livermore-db upgrade"
    position = "at head" if state.is_at_head else f"behind head {state.head}"
    return (
        f"{_where(settings)}: revision {state.revision}, {position}, "
        f"{state.exchange_count} exchanges"
    )


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of `livermore-db`."""
    parser = argparse.ArgumentParser(
        prog="livermore-db",
        description="Migrate and seed the Livermore PostgreSQL database.",
        epilog=_ENVIRONMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_version_option(parser, "livermore-schema")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    upgrade_parser = commands.add_parser(
        "upgrade",
        help="create the database if missing, migrate to head and upsert the exchanges seed",
        description=(
            "Create the database if it does not exist (connecting to the 'postgres'\n"
            "database), apply every migration up to head and upsert the six exchanges\n"
            "(ids 1..6). Safe to run again, also from several processes at once."
        ),
        epilog=_ENVIRONMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    upgrade_parser.set_defaults(handler=run_upgrade)
    current_parser = commands.add_parser(
        "current",
        help="show the database's migration revision and the number of exchanges",
        epilog=_ENVIRONMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    current_parser.set_defaults(handler=run_current)
    return parser


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run `livermore-db` and return its exit code."""
    args = build_parser().parse_args(argv)
    handler: Callable[[DatabaseSettings], str] = args.handler
    try:
        settings = load_settings(DatabaseSettings)
        configure_logging(load_settings(LogSettings))
    except SettingsError as exc:
        return _fail(str(exc), EXIT_CANNOT_START)
    try:
        print(handler(settings))
    except DatabaseUnavailableError as exc:
        return _fail(str(exc), EXIT_CANNOT_START)
    except DatabaseError as exc:
        return _fail(f"{_where(settings)}: {exc}", EXIT_FAILURE)
    except sa.exc.SQLAlchemyError as exc:
        return _fail(f"{_where(settings)}: {_first_line(exc)}", EXIT_FAILURE)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    return EXIT_OK


def _fail(message: str, code: int) -> int:
    print(f"livermore-db: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
