"""Process-level settings of the worker that no shared settings class covers."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class WorkerProcessSettings(BaseSettings):
    """`LIVERMORE_EXCHANGE_CLOCK_RATE` (exchange seconds per local second), polling, metrics."""

    model_config = SettingsConfigDict(env_prefix="LIVERMORE_", env_file=".env", extra="ignore")

    exchange_clock_rate: float = Field(default=1.0, gt=0)
    command_poll_s: float = Field(default=0.5, gt=0)
    shutdown_flush_s: float = Field(default=2.0, ge=0)
    worker_metrics_port: int | None = Field(default=None, ge=0, le=65535)
    """`LIVERMORE_WORKER_METRICS_PORT`: serve Prometheus `/metrics` there (unset: off; 0: any)."""
    worker_metrics_host: str = "127.0.0.1"
