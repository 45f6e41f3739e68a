"""The api's configuration: the typed settings read once in `__main__`, passed in as one object."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from livermore_schema.settings import (
    ApiSettings,
    CacheSettings,
    DatabaseSettings,
    EndpointSettings,
    RedisSettings,
)


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """Everything `create_app` needs; nothing in the package reads the environment itself.

    Attributes:
        api: host, port and the default command timeout.
        database: PostgreSQL connection.
        redis: Redis connection.
        endpoints: exchange endpoint overrides and CoinGecko (used by symbol refresh).
        cache: cache retention settings the candle and indicator readers share with the worker.
        tier1_limit: symbols with `volume_rank` up to this are Tier 1 (the worker's setting).
        environ: where account credential env-var names are checked for presence (the process
            environment in production); values are never read back.
        missed_beats: heartbeats a worker may miss before it is reported dead.
        stream_ping_s: interval of keep-alive frames on the SSE and WebSocket alert streams.
    """

    api: ApiSettings
    database: DatabaseSettings
    redis: RedisSettings
    endpoints: EndpointSettings = field(default_factory=EndpointSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    tier1_limit: int = 100
    environ: Mapping[str, str] = field(default_factory=dict)
    missed_beats: int = 3
    stream_ping_s: float = 15.0
