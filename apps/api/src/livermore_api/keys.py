"""Typed application keys (aiohttp `AppKey`) and per-request storage keys."""

from __future__ import annotations

import asyncio
import weakref
from collections import Counter
from dataclasses import dataclass

from aiohttp import ClientSession, web
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from livermore_api.auth import Principal
from livermore_api.config import ApiConfig
from livermore_cache.client import RedisClient
from livermore_cache.fanout import ChannelFanout

CONFIG: web.AppKey[ApiConfig] = web.AppKey("livermore_config", ApiConfig)
"""The configuration the app was built with."""

ENGINE: web.AppKey[AsyncEngine] = web.AppKey("livermore_engine", AsyncEngine)
"""The SQLAlchemy async engine (opened and disposed by a cleanup context)."""

SESSIONS: web.AppKey[async_sessionmaker[AsyncSession]] = web.AppKey("livermore_sessions")
"""Factory of database sessions bound to `ENGINE`."""

REDIS: web.AppKey[RedisClient] = web.AppKey("livermore_redis")
"""The Redis client (closed by a cleanup context)."""

HTTP: web.AppKey[ClientSession] = web.AppKey("livermore_http", ClientSession)
"""Outbound HTTP session (symbol refresh), closed by a cleanup context."""

STREAMS: web.AppKey[weakref.WeakSet[asyncio.Task[object]]] = web.AppKey("livermore_streams")
"""Tasks serving long-lived streams, cancelled at shutdown so it never waits on them."""

SERIES_STREAMS: web.AppKey[Counter[int]] = web.AppKey("livermore_series_streams")
"""Open chart series streams per user (each holds Redis subscriptions of its own)."""

FANOUT: web.AppKey[ChannelFanout] = web.AppKey("livermore_fanout", ChannelFanout)
"""The process's one Redis subscription, fanned out to alert streams and command waits."""


@dataclass(frozen=True, slots=True)
class Parsed:
    """The validated parts of a request."""

    path: BaseModel | None
    query: BaseModel | None
    body: BaseModel | None


REQUEST_ID: web.RequestKey[str] = web.RequestKey("livermore_request_id", str)
"""The id echoed in `X-Request-Id` and in 500 errors."""

PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("livermore_principal", Principal)
"""The authenticated caller."""

PARSED: web.RequestKey[Parsed] = web.RequestKey("livermore_parsed", Parsed)
"""The validated path, query and body models."""
