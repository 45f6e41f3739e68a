"""`livermore-api`: serve the admin API and page, create users, revoke tokens.

Settings are read here and nowhere else. Failures print one line and exit with the codes of
`livermore_schema.commandline` (1 failed, 2 bad input or setting, or a store unreachable); the
only secret ever printed is a token `create-user` has just created.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from aiohttp import web
from pydantic import ValidationError
from redis.exceptions import RedisClusterException, RedisError

from livermore_api.app import create_app, server_options
from livermore_api.auth import revoke_token
from livermore_api.config import ApiConfig
from livermore_api.middlewares import AccessLogger
from livermore_api.models import UserCreate
from livermore_api.users import UserExistsError, create_user
from livermore_cache.client import connect_redis
from livermore_schema.commandline import (
    EXIT_CANNOT_START,
    EXIT_CODES_HELP,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    SettingsError,
    add_version_option,
    load_settings,
)
from livermore_schema.db import async_session_factory, check_connection, create_async_engine
from livermore_schema.errors import DatabaseUnavailableError
from livermore_schema.logs import configure_logging
from livermore_schema.settings import (
    ApiSettings,
    CacheSettings,
    DatabaseSettings,
    EndpointSettings,
    LogSettings,
    RedisSettings,
    WorkerSettings,
)


class CommandError(Exception):
    """A failure reported as one line on stderr with an exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="livermore-api",
        description="Serve the Livermore admin API and page (default), or manage users/tokens.",
        epilog=EXIT_CODES_HELP,
    )
    add_version_option(parser, "livermore-api")
    parser.add_argument("--host", help="interface to listen on (LIVERMORE_API_HOST)")
    parser.add_argument("--port", type=int, help="port to listen on (LIVERMORE_API_PORT)")
    sub = parser.add_subparsers(dest="command", metavar="{serve,create-user,revoke-token}")
    sub.add_parser("serve", help="serve the API (the default)")
    create = sub.add_parser("create-user", help="create a user and print their token once")
    create.add_argument("username", metavar="USERNAME")
    create.add_argument("--email", help="email address (default USERNAME@localhost)")
    create.add_argument("--admin", action="store_true", help="make the user an admin")
    revoke = sub.add_parser("revoke-token", help="revoke a token by its id")
    revoke.add_argument("token_id", metavar="TOKEN_ID", type=int)
    return parser


def _check_database(settings: DatabaseSettings) -> None:
    try:
        check_connection(settings)
    except DatabaseUnavailableError as err:
        raise CommandError(str(err), EXIT_CANNOT_START) from None


async def _ping_redis(settings: RedisSettings) -> None:
    client = connect_redis(settings.model_copy(update={"retry_budget_s": 0}))
    try:
        async with asyncio.timeout(10):
            await client.ping()
    except (RedisError, RedisClusterException, OSError, TimeoutError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CommandError(
            f"Redis unavailable at {settings.describe()}: {reason}", EXIT_CANNOT_START
        ) from None
    finally:
        await client.aclose()


def _new_user(args: argparse.Namespace) -> UserCreate:
    """Apply the api's rules for usernames and emails (`POST /api/users` uses the same model)."""
    try:
        return UserCreate(username=args.username, email=args.email, admin=args.admin)
    except ValidationError as err:
        problems = [
            f"{'.'.join(str(part) for part in error['loc'])} {_problem(error['msg'])}"
            for error in err.errors(include_url=False, include_input=False)
        ]
        raise CommandError("invalid " + "; ".join(problems), EXIT_CANNOT_START) from None


def _problem(message: str) -> str:
    if message.startswith("String should match pattern"):
        return "may hold only letters, digits, '.', '_' and '-'"
    return f"({message[0].lower()}{message[1:]})"


async def _create_user(settings: DatabaseSettings, new: UserCreate) -> None:
    engine = create_async_engine(settings)
    try:
        async with async_session_factory(engine)() as session:
            user, issued = await create_user(session, new.username, new.email, admin=new.admin)
    except UserExistsError as err:
        raise CommandError(str(err), EXIT_FAILURE) from None
    finally:
        await engine.dispose()
    role = "admin" if new.admin else "user"
    print(f"created {role} {user.username} (user id {user.id}), token id {issued.token_id}")
    print("token (shown once, store it now):")
    print(issued.token)


async def _revoke(settings: DatabaseSettings, token_id: int) -> None:
    engine = create_async_engine(settings)
    try:
        async with async_session_factory(engine)() as session:
            revoked = await revoke_token(session, token_id)
            await session.commit()
    finally:
        await engine.dispose()
    if revoked is None:
        raise CommandError(f"no token with id {token_id}", EXIT_FAILURE)
    print(f"token {token_id} {'revoked' if revoked else 'was already revoked'}")


def _serve(args: argparse.Namespace, database: DatabaseSettings) -> None:
    redis = load_settings(RedisSettings)
    api = load_settings(ApiSettings)
    _check_database(database)
    asyncio.run(_ping_redis(redis))
    config = ApiConfig(
        api=api,
        database=database,
        redis=redis,
        endpoints=load_settings(EndpointSettings),
        cache=load_settings(CacheSettings),
        tier1_limit=load_settings(WorkerSettings).tier1_limit,
        environ=os.environ,
    )
    host = args.host or api.host
    port = args.port or api.port
    print(f"livermore-api on http://{host}:{port} (admin page /admin, docs /api/openapi.json)")
    web.run_app(
        create_app(config),
        host=host,
        port=port,
        access_log_class=AccessLogger,
        print=None,
        **server_options(config),
    )


def run(argv: Sequence[str] | None = None) -> None:
    """Parse `argv` and run the command; raise `CommandError` on failure."""
    args = _parser().parse_args(argv)
    if args.port is not None and not 1 <= args.port <= 65535:
        raise CommandError(f"--port must be 1..65535, not {args.port}", EXIT_CANNOT_START)
    try:
        configure_logging(load_settings(LogSettings))
        database = load_settings(DatabaseSettings)
        if args.command == "create-user":
            new = _new_user(args)
            _check_database(database)
            asyncio.run(_create_user(database, new))
        elif args.command == "revoke-token":
            _check_database(database)
            asyncio.run(_revoke(database, args.token_id))
        else:
            _serve(args, database)
    except SettingsError as err:
        raise CommandError(str(err), EXIT_CANNOT_START) from None
    except OSError as err:
        raise CommandError(f"cannot serve: {err.strerror or err}", EXIT_CANNOT_START) from None


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `livermore-api`."""
    try:
        run(argv)
    except CommandError as err:
        print(f"livermore-api: {err}", file=sys.stderr)
        sys.exit(err.code)
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)


if __name__ == "__main__":
    main()
