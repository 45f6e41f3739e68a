"""Typed settings read from `LIVERMORE_*` environment variables (or `.env`) at the edge only.

Libraries take these objects as arguments; nothing builds them at import time.
"""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL

from livermore_schema.enums import ExchangeName


def _config(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=prefix, env_file=".env", extra="ignore")


class RedisSettings(BaseSettings):
    """Redis connection: host, port and secret, never a URL."""

    model_config = _config("LIVERMORE_REDIS_")

    host: str = "127.0.0.1"
    port: int = Field(default=6379, ge=1, le=65535)
    secret: SecretStr | None = None
    tls: bool = False
    db: int = Field(default=0, ge=0)
    cluster: bool = False
    namespace: str = Field(default="", max_length=64, pattern=r"^[A-Za-z0-9_.\-]*$")
    """Prefix (`namespace:`) of every key, channel and stream; '' = the bare SPEC names."""
    max_connections: int = Field(default=64, ge=4, le=10_000)
    """Size of the connection pool (per node); a full pool fails fast, it never grows."""
    cluster_nodes: str = ""
    """More cluster seed nodes, `host:port,host:port` (never URLs); any live one is enough."""
    retry_budget_s: float = Field(default=20.0, ge=0)
    """How long a failing command is retried (backoff) before it fails: outlasts a failover."""

    @field_validator("cluster_nodes")
    @classmethod
    def _check_nodes(cls, value: str) -> str:
        for entry in filter(None, (part.strip() for part in value.split(","))):
            host, sep, port = entry.rpartition(":")
            if not sep or not host or "/" in entry or not port.isdigit():
                raise ValueError(f"expected host:port, got {entry!r}")
            if not 1 <= int(port) <= 65535:
                raise ValueError(f"port out of range in {entry!r}")
        return value

    def seeds(self) -> list[tuple[str, int]]:
        """Return the seed nodes: host/port first, then `cluster_nodes` (duplicates dropped)."""
        found = [(self.host, self.port)]
        for entry in filter(None, (part.strip() for part in self.cluster_nodes.split(","))):
            host, _, port = entry.rpartition(":")
            if (host, int(port)) not in found:
                found.append((host, int(port)))
        return found

    def describe(self) -> str:
        """Return a log-safe description (no secret)."""
        mode = "cluster" if self.cluster else f"db {self.db}"
        where = ",".join(f"{host}:{port}" for host, port in self.seeds())
        space = f", namespace {self.namespace}" if self.namespace else ""
        return f"redis {where} ({mode}{', tls' if self.tls else ''}{space})"


class DatabaseSettings(BaseSettings):
    """PostgreSQL connection."""

    model_config = _config("LIVERMORE_DATABASE_")

    host: str = "127.0.0.1"
    port: int = Field(default=5432, ge=1, le=65535)
    user: str = "postgres"
    password: SecretStr | None = None
    name: str = "livermore"
    sslmode: str = "prefer"

    def url(self, database: str | None = None) -> URL:
        """Return a SQLAlchemy URL for psycopg 3 (its str() masks the password)."""
        return URL.create(
            "postgresql+psycopg",
            username=self.user,
            password=self.password.get_secret_value() if self.password else None,
            host=self.host,
            port=self.port,
            database=database or self.name,
            query={"sslmode": self.sslmode},
        )

    def describe(self) -> str:
        """Return a log-safe description (no password)."""
        return f"postgresql {self.user}@{self.host}:{self.port}/{self.name}"


class EndpointSettings(BaseSettings):
    """Per-exchange endpoint overrides (`LIVERMORE_{NAME}_WS_URL` / `_REST_URL`) and CoinGecko."""

    model_config = _config("LIVERMORE_")

    coinbase_ws_url: str | None = None
    coinbase_rest_url: str | None = None
    binance_ws_url: str | None = None
    binance_rest_url: str | None = None
    binance_us_ws_url: str | None = None
    binance_us_rest_url: str | None = None
    kraken_ws_url: str | None = None
    kraken_rest_url: str | None = None
    kucoin_ws_url: str | None = None
    kucoin_rest_url: str | None = None
    mexc_ws_url: str | None = None
    mexc_rest_url: str | None = None
    coingecko_url: str = "https://api.coingecko.com"
    coingecko_api_key: SecretStr | None = None

    def ws_url(self, exchange: ExchangeName) -> str | None:
        """Return the WebSocket override for `exchange`, if any."""
        value: str | None = getattr(self, f"{exchange.value}_ws_url")
        return value

    def rest_url(self, exchange: ExchangeName) -> str | None:
        """Return the REST override for `exchange`, if any."""
        value: str | None = getattr(self, f"{exchange.value}_rest_url")
        return value


class CacheSettings(BaseSettings):
    """Retention and publishing behaviour of the Redis caches."""

    model_config = _config("LIVERMORE_")

    candle_retention: int = Field(default=1000, ge=10)
    user_candle_ttl_s: int = Field(default=24 * 3600, ge=60)
    indicator_ttl_s: int = Field(default=25 * 3600, ge=60)
    ticker_ttl_s: int = Field(default=60, ge=1)
    orderbook_ttl_s: int = Field(default=30, ge=1)
    legacy_channels: bool = True


class WorkerSettings(BaseSettings):
    """Behaviour of a worker process."""

    model_config = _config("LIVERMORE_")

    system_user: str | None = None
    backfill_candles: int = Field(default=100, ge=10)
    tier1_limit: int = Field(default=100, ge=1)
    tier1_limits: dict[str, int] = Field(default_factory=dict)
    """Per-exchange Tier 1 size by exchange name (`LIVERMORE_TIER1_LIMITS='{"binance": 50}'`)."""
    position_sync_interval_s: float = Field(default=300.0, gt=0)
    heartbeat_interval_s: float = Field(default=5.0, gt=0)
    connect_timeout_s: float = Field(default=30.0, gt=0)
    alert_cooldown_s: float = Field(default=300.0, ge=0)
    repair_retry_cap_s: float = Field(default=60.0, gt=0)
    """Longest pause between two attempts of a gap repair REST cannot fill yet (never abandoned)."""
    discord_webhook_url: SecretStr | None = None
    reconcile_interval_s: float = Field(default=5.0, ge=0)
    """Seconds between two reconciliation sweep requests (0: no sweep)."""
    reconcile_bars: int = Field(default=60, ge=1, le=300)
    """Newest settled closed bars the sweep re-reads per series."""
    reconcile_settle_s: float = Field(default=60.0, ge=0)
    """Exchange seconds after a bar's close before the sweep compares it."""

    def tier1_limit_for(self, exchange_name: str) -> int:
        """Return the Tier 1 size of an exchange (its override, else `tier1_limit`)."""
        limit = self.tier1_limits.get(exchange_name, self.tier1_limit)
        if limit < 1:
            raise ValueError(f"LIVERMORE_TIER1_LIMITS: {exchange_name} must be at least 1")
        return limit


class ApiSettings(BaseSettings):
    """The admin API server."""

    model_config = _config("LIVERMORE_API_")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    command_timeout_s: float = Field(default=30.0, ge=0.1)
    confluence: bool = True
    """Run the confluence watcher (`channel:alerts:confluence`) in this api process."""
    confluence_window_bars: float = Field(default=1.0, gt=0, le=100)
    """Triggers this many bars of their timeframe apart still make one confluence."""
    confluence_quiet_bars: float = Field(default=10.0, gt=0, le=1000)
    """A group's next confluence within this many bars of its last one is not published again."""
    stream_max_per_user: int = Field(default=20, ge=1)
    """Open SSE/WebSocket alert streams one user may hold; more are answered 429."""
    stream_max_total: int = Field(default=1000, ge=1)
    """Open alert streams the process serves in total; more are answered 429."""
    series_stream_max_per_user: int = Field(default=4, ge=1)
    """Open chart series streams one user may hold (each holds two Redis subscriptions)."""
    series_stream_max_total: int = Field(default=16, ge=1)
    """Open chart series streams in total: with the pool size, what keeps streams from ever
    taking the connections every other route needs."""
    stream_buffer: int = Field(default=1000, ge=1)
    """Alerts buffered per stream; a client that falls further behind is disconnected."""
    stream_recheck_s: float = Field(default=2.0, gt=0)
    """How often open streams' tokens are re-checked (revoked or deactivated ones end)."""
    header_timeout_s: float = Field(default=10.0, gt=0)
    """A client must have sent a request's headers within this long."""
    body_timeout_s: float = Field(default=30.0, gt=0)
    """A client must have sent a request's body within this long (408 otherwise)."""
    account_env_prefix: str = Field(default="LIVERMORE_ACCOUNT_", pattern=r"^[A-Z_][A-Z0-9_]*$")
    """Exchange accounts may only name credential variables starting with this, so their
    presence check reveals nothing about any other variable of the api's environment."""


class LogSettings(BaseSettings):
    """Logging: JSON in production, console in a terminal."""

    model_config = _config("LIVERMORE_LOG_")

    level: str = "INFO"
    json_output: bool | None = Field(default=None, alias="LIVERMORE_LOG_JSON")
