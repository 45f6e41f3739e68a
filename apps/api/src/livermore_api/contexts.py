"""Cleanup contexts: each resource the app holds is opened and closed as one pair."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator

import aiohttp
import structlog
from aiohttp import web

from livermore_api import keys
from livermore_cache.client import connect_redis
from livermore_schema.db import async_session_factory, create_async_engine

log = structlog.get_logger(__name__)


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open the PostgreSQL engine and session factory; dispose the engine at cleanup."""
    engine = create_async_engine(app[keys.CONFIG].database)
    app[keys.ENGINE] = engine
    app[keys.SESSIONS] = async_session_factory(engine)
    try:
        yield
    finally:
        await engine.dispose()


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open the Redis client; close it at cleanup."""
    client = connect_redis(app[keys.CONFIG].redis)
    app[keys.REDIS] = client
    try:
        yield
    finally:
        await client.aclose()


async def http_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open the outbound HTTP session; close it at cleanup."""
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
    app[keys.HTTP] = session
    try:
        yield
    finally:
        await session.close()


async def streams_ctx(app: web.Application) -> AsyncIterator[None]:
    """Track alert-stream tasks; cancel any still running so shutdown never waits on them."""
    streams: weakref.WeakSet[asyncio.Task[object]] = weakref.WeakSet()
    app[keys.STREAMS] = streams
    yield


async def close_streams(app: web.Application) -> None:
    """On shutdown, end every open alert stream (before the Redis client is closed)."""
    streams = app[keys.STREAMS]
    tasks = list(streams)
    for task in tasks:
        task.cancel()
    if tasks:
        log.info("api.streams_closed", count=len(tasks))
