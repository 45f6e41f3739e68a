"""Errors raised by the database layer, named for what the caller should do."""

from __future__ import annotations


class DatabaseError(Exception):
    """Base of every livermore_schema database error."""


class DatabaseUnavailableError(DatabaseError):
    """PostgreSQL cannot be reached or refuses us; retry later or fix the connection settings.

    The message is one line naming host:port/database and never contains the password.
    """


class DatabaseMissingError(DatabaseUnavailableError):
    """The server answers but the configured database does not exist (`livermore-db upgrade`)."""


class SeedConflictError(DatabaseError):
    """The exchanges table holds rows that contradict the fixed seed ids; fix the data by hand."""
