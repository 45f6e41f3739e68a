"""Process-level settings of the worker that no shared settings class covers."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class WorkerProcessSettings(BaseSettings):
    """`LIVERMORE_EXCHANGE_CLOCK_RATE`: exchange seconds per local second (a fast simulator)."""

    model_config = SettingsConfigDict(env_prefix="LIVERMORE_", env_file=".env", extra="ignore")

    exchange_clock_rate: float = Field(default=1.0, gt=0)
    command_poll_s: float = Field(default=0.5, gt=0)
    shutdown_flush_s: float = Field(default=2.0, ge=0)
