"""Cleanup contexts: each resource the app holds is opened and closed as one pair."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections import Counter
from collections.abc import AsyncIterator

import aiohttp
import structlog
from aiohttp import web

from livermore_api import keys
from livermore_api.auth import valid_token_ids
from livermore_cache import keys as cache_keys
from livermore_cache.client import connect_redis
from livermore_cache.fanout import ChannelFanout
from livermore_cache.pubsub import Publisher
from livermore_exchange_core.alerts.confluence import ConfluenceWatcher
from livermore_exchange_core.alerts.history import AlertHistoryWriter
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


async def confluence_ctx(app: web.Application) -> AsyncIterator[None]:
    """Run the confluence watcher and store what it publishes (unless turned off)."""
    config = app[keys.CONFIG]
    if not config.api.confluence:
        yield
        return
    redis = app[keys.REDIS]
    outbox = cache_keys.confluence_outbox_key()
    async with AlertHistoryWriter(app[keys.SESSIONS], redis, outbox_key=outbox) as history:
        watcher = ConfluenceWatcher(
            redis,
            Publisher(redis, config.cache),
            window_bars=config.api.confluence_window_bars,
            quiet_bars=max(config.api.confluence_quiet_bars, config.api.confluence_window_bars),
            sink=history,
        )
        ready = asyncio.Event()
        task = asyncio.create_task(watcher.run(ready), name="confluence-watcher")
        try:
            with contextlib.suppress(TimeoutError):  # it keeps trying; the api serves meanwhile
                await asyncio.wait_for(ready.wait(), 10)
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def streams_ctx(app: web.Application) -> AsyncIterator[None]:
    """Track alert-stream tasks; cancel any still running so shutdown never waits on them."""
    streams: weakref.WeakSet[asyncio.Task[object]] = weakref.WeakSet()
    app[keys.STREAMS] = streams
    app[keys.SERIES_STREAMS] = Counter()
    yield


async def fanout_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open the one shared subscription and the watch that ends streams of revoked tokens."""
    api = app[keys.CONFIG].api
    fanout = ChannelFanout(
        app[keys.REDIS],
        max_per_owner=api.stream_max_per_user,
        max_total=api.stream_max_total,
        buffer=api.stream_buffer,
    )
    async with fanout:
        app[keys.FANOUT] = fanout
        watch = asyncio.create_task(_watch_credentials(app, fanout), name="stream-credentials")
        try:
            yield
        finally:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch


async def _watch_credentials(app: web.Application, fanout: ChannelFanout) -> None:
    """Every `stream_recheck_s`, end the streams whose token was revoked or user deactivated."""
    interval = app[keys.CONFIG].api.stream_recheck_s
    while True:
        await asyncio.sleep(interval)
        listeners = fanout.listeners
        token_ids = {lst.token_id for lst in listeners if lst.token_id is not None}
        if not token_ids:
            continue
        try:
            async with app[keys.SESSIONS]() as db:
                valid = await valid_token_ids(db, token_ids)
        except Exception as err:  # the database may be down: keep streams, check again later
            log.warning("api.stream_recheck_failed", error=repr(err))
            continue
        for listener in listeners:
            if listener.token_id is not None and listener.token_id not in valid:
                listener.close("revoked")


async def close_streams(app: web.Application) -> None:
    """On shutdown, end every open stream (before the Redis client is closed)."""
    listeners = app[keys.FANOUT].listeners
    for listener in listeners:
        listener.close("shutdown")
    streams = app[keys.STREAMS]
    tasks = list(streams)
    for task in tasks:
        task.cancel()
    if tasks or listeners:
        log.info("api.streams_closed", count=max(len(tasks), len(listeners)))
