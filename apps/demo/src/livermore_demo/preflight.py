"""Checks before anything starts: Redis and PostgreSQL reachable, the demo's ports free."""

from __future__ import annotations

import asyncio
import errno
import socket

from redis.exceptions import RedisClusterException, RedisError

from livermore_cache.client import connect_redis
from livermore_demo.config import DemoConfig
from livermore_demo.errors import BadOptionError, ServiceUnavailableError
from livermore_schema.db import check_connection
from livermore_schema.errors import DatabaseMissingError, DatabaseUnavailableError
from livermore_schema.settings import DatabaseSettings, RedisSettings

REDIS_TIMEOUT_S = 5.0


async def redis_problem(settings: RedisSettings) -> str | None:
    """Return why Redis is unusable (one phrase), or None when it answers PING."""
    client = connect_redis(settings.model_copy(update={"retry_budget_s": 0}))
    try:
        async with asyncio.timeout(REDIS_TIMEOUT_S):
            await client.ping()
    except (RedisError, RedisClusterException, OSError, TimeoutError) as err:
        return f"Redis at {settings.host}:{settings.port} ({_redis_reason(err)})"
    finally:
        await client.aclose()
    return None


def _redis_reason(err: BaseException) -> str:
    text = str(err).strip()
    if "Error 111" in text or "refused" in text.lower():
        return "connection refused"
    return text.splitlines()[0] if text else type(err).__name__


def postgres_problem(settings: DatabaseSettings) -> str | None:
    """Return why PostgreSQL is unusable (one phrase), or None when the server accepts us.

    A missing demo database is fine: `livermore-db upgrade` creates it.
    """
    try:
        check_connection(settings)
    except DatabaseMissingError:
        return None
    except DatabaseUnavailableError as err:
        reason = str(err).split(": ", 1)[-1]
        return f"PostgreSQL at {settings.host}:{settings.port} ({reason})"
    return None


async def check_services(config: DemoConfig) -> None:
    """Raise `ServiceUnavailableError` naming every unreachable service, in one line."""
    redis, postgres = await asyncio.gather(
        redis_problem(config.redis), asyncio.to_thread(postgres_problem, config.database)
    )
    problems = [problem for problem in (redis, postgres) if problem is not None]
    if problems:
        verb, them = ("is", "it") if len(problems) == 1 else ("are", "them")
        raise ServiceUnavailableError(
            f"{' and '.join(problems)} {verb} not reachable; start {them} with `make services`"
        )


def check_ports(config: DemoConfig) -> None:
    """Raise `BadOptionError` when the simulator's or the api's port is already taken."""
    for what, port in (("simulator", config.sim_port), ("api", config.api_port)):
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp binds
            try:
                sock.bind(("127.0.0.1", port))
            except OSError as err:
                if err.errno != errno.EADDRINUSE:
                    raise
                raise BadOptionError(
                    f"port {port} for the {what} is in use; pass another --port-base (0 = any)"
                ) from None
