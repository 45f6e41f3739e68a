"""Acquire the worker's resources in order, failing with one clear line (`StartupError`).

Redis is pinged, PostgreSQL checked, the exchange row read and its support checked, the user
resolved — all before anything is written, so a bad argument or an unreachable store never leaves
a half-started worker. Every resource is entered on the caller's `AsyncExitStack`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass

import aiohttp
from redis.exceptions import RedisClusterException, RedisError
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import select

from livermore_cache.candles import CandleCache
from livermore_cache.client import connect_redis
from livermore_cache.commands import command_queue_depth
from livermore_cache.fence import LeaseFence
from livermore_cache.holders import Tier2Holders
from livermore_cache.indicators import IndicatorCache
from livermore_cache.pubsub import Publisher
from livermore_cache.status import StatusStore
from livermore_cache.tickers import TickerCache
from livermore_exchange_core.alerts.chart import AlertChartRenderer
from livermore_exchange_core.alerts.evaluator import AlertSink, FanOutSink
from livermore_exchange_core.alerts.history import AlertHistoryWriter
from livermore_exchange_core.alerts.notify import DiscordNotifier
from livermore_exchange_core.config import ExchangeConfig, resolve_exchange_config
from livermore_exchange_core.errors import UnsupportedExchange
from livermore_exchange_core.factory import create_rest_client
from livermore_exchange_core.symbols import (
    SymbolSourceService,
    UnknownUserError,
    UserContext,
    load_asset_map,
    load_user_context,
)
from livermore_exchange_core.symbols.positions import PositionSync
from livermore_schema.db import async_session_factory, check_connection, create_async_engine
from livermore_schema.enums import ExchangeName
from livermore_schema.errors import DatabaseUnavailableError
from livermore_schema.settings import (
    CacheSettings,
    DatabaseSettings,
    EndpointSettings,
    RedisSettings,
    WorkerSettings,
)
from livermore_schema.tables import Exchange
from livermore_worker.lease import ExchangeLease, RunningStateStore
from livermore_worker.metrics import WorkerMetrics, metrics_server
from livermore_worker.runner import Supervisor, lease_ttl_s
from livermore_worker.settings import WorkerProcessSettings
from livermore_worker.traders import Traders
from livermore_worker.wiring import Services
from livermore_worker.worker import Worker, WorkerIdentity


class StartupError(Exception):
    """The worker cannot start; the message is the one line printed to stderr."""


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """Everything `__main__` read from the command line and the environment."""

    exchange: str
    autostart: bool
    username: str | None
    redis: RedisSettings
    database: DatabaseSettings
    endpoints: EndpointSettings
    cache: CacheSettings
    worker: WorkerSettings
    process: WorkerProcessSettings


def worker_id() -> str:
    """Return `host:pid` plus a short random tag (a recycled pid never looks like its owner)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


async def _ping_redis(settings: RedisSettings) -> None:
    # A probe without the retry budget: at startup an unreachable store is reported at once,
    # with the connection error's own words (any live seed node answers for a cluster).
    probe = connect_redis(settings.model_copy(update={"retry_budget_s": 0}))
    try:
        await asyncio.wait_for(probe.ping(), 3)
    except (RedisError, RedisClusterException, OSError, TimeoutError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise StartupError(f"Redis unavailable at {settings.describe()}: {reason}") from None
    finally:
        await probe.aclose()


async def _exchange_config(
    options: WorkerOptions, stack: AsyncExitStack
) -> tuple[ExchangeConfig, object]:
    try:
        name = ExchangeName(options.exchange.strip().lower())
    except ValueError:
        known = ", ".join(e.value for e in ExchangeName)
        raise StartupError(f"unknown exchange {options.exchange!r}; known: {known}") from None
    try:
        await asyncio.to_thread(check_connection, options.database)
    except DatabaseUnavailableError as err:
        raise StartupError(str(err)) from None
    engine = create_async_engine(options.database)
    stack.push_async_callback(engine.dispose)
    sessions = async_session_factory(engine)
    try:
        async with sessions() as session:
            row = (await session.exec(select(Exchange).where(Exchange.name == name.value))).first()
    except SQLAlchemyError as err:
        raise StartupError(f"PostgreSQL query failed: {type(err).__name__}") from None
    if row is None:
        raise StartupError(
            f"exchange {name.value!r} has no row in exchanges (run livermore-db upgrade)"
        )
    config = resolve_exchange_config(row, options.endpoints)
    try:
        await create_rest_client(config).aclose()
    except UnsupportedExchange as err:
        raise StartupError(str(err)) from None
    return config, sessions


async def build_supervisor(options: WorkerOptions, stack: AsyncExitStack) -> Supervisor:
    """Check every dependency and return a ready supervisor; raise `StartupError` on failure."""
    await _ping_redis(options.redis)
    # Every write of this worker passes the lease's fence; a write waits for a pending renew at
    # most as long as a store command may retry.
    fence = LeaseFence(hold_s=options.redis.retry_budget_s)
    wid = worker_id()
    redis = connect_redis(options.redis, fence=fence, client_name=f"livermore-worker:{wid}")
    stack.push_async_callback(redis.aclose)
    config, sessions = await _exchange_config(options, stack)
    user: UserContext | None = None
    username = options.username or options.worker.system_user
    if username:
        try:
            user = await load_user_context(sessions, username, config.exchange_id)  # type: ignore[arg-type]
        except UnknownUserError as err:
            raise StartupError(str(err)) from None
    history = await stack.enter_async_context(
        AlertHistoryWriter(sessions, redis, exchange_id=config.exchange_id)  # type: ignore[arg-type]
    )
    sinks: list[AlertSink] = [history]
    notifier: DiscordNotifier | None = None
    if options.worker.discord_webhook_url is not None:
        http = await stack.enter_async_context(aiohttp.ClientSession())
        notifier = await stack.enter_async_context(
            DiscordNotifier(
                http,
                options.worker.discord_webhook_url,
                history=history,
                charts=AlertChartRenderer(CandleCache(redis, options.cache)),
            )
        )
        sinks.append(notifier)
    metrics = WorkerMetrics(config.name.value, wid)
    # Small (a few columns per listed symbol); read once so alerts carry asset and quote.
    assets = await load_asset_map(sessions, [config.exchange_id])  # type: ignore[arg-type]
    tier2 = Tier2Holders(config.exchange_id)
    services = Services(
        redis=redis,
        exchange=config,
        cache_settings=options.cache,
        worker_settings=options.worker,
        candles=CandleCache(redis, options.cache, holders=tier2),
        indicators=IndicatorCache(redis, options.cache, holders=tier2),
        tickers=TickerCache(redis, options.cache),
        publisher=Publisher(redis, options.cache),
        alert_sink=FanOutSink(*sinks),
        user_id=user.user_id if user else None,
        assets=assets,
        tier2=tier2,
    )
    identity = WorkerIdentity(wid, user, options.process.exchange_clock_rate)
    try:
        tier1_limit = options.worker.tier1_limit_for(config.name.value)
    except ValueError as err:
        raise StartupError(str(err)) from None
    traders = Traders(
        sessions,  # type: ignore[arg-type]
        config.exchange_id,
        SymbolSourceService(sessions, tier1_limit=tier1_limit),  # type: ignore[arg-type]
        tier2,
        position_sync=PositionSync(sessions, options.endpoints),  # type: ignore[arg-type]
        environ=os.environ,
    )
    worker = Worker(
        services,
        identity,
        traders,
        StatusStore(redis),
        RunningStateStore(redis, config.exchange_id),
    )
    ttl = lease_ttl_s(options.worker.heartbeat_interval_s)
    lease = ExchangeLease(redis, config.exchange_id, identity.worker_id, ttl, fence)

    port = options.process.worker_metrics_port
    if port is not None:

        async def refresh(m: WorkerMetrics) -> None:
            session = worker.session
            m.pending_repairs.set(session.pipeline.pending_repairs if session else 0)
            m.oldest_repair_age.set((session.pipeline.oldest_repair_age_s() if session else 0) or 0)
            m.command_queue_depth.set(await command_queue_depth(redis, config.exchange_id))
            m.set_lease_holder(await lease.current_holder())
            m.set_fenced(fence.refused, fence.rejected)

        host = options.process.worker_metrics_host
        await stack.enter_async_context(metrics_server(metrics, refresh, host, port))

    async def flush() -> None:
        waits = [history.wait_idle()] + ([notifier.wait_idle()] if notifier else [])
        # What is left after the bound stays in the Redis outbox for the next worker.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*waits), options.process.shutdown_flush_s)

    return Supervisor(
        worker,
        lease,
        autostart=options.autostart,
        command_poll_s=options.process.command_poll_s,
        flush=flush,
    )
