"""Typed configuration of a simulator instance (built by the CLI or tests, never from env)."""

from __future__ import annotations

from dataclasses import dataclass, field

from livermore_exchange_sim.scenarios import Scenario


@dataclass(frozen=True, slots=True)
class CoinbaseAuthConfig:
    """The one API key the Coinbase accounts endpoint accepts (CDP key name + PEM public key)."""

    api_key_name: str
    public_key_pem: str


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Everything a simulator instance needs; see `create_app`."""

    seed: int = 7
    speed: float = 60.0
    start_ms: int | None = None
    symbols: tuple[str, ...] | None = None
    extra_assets: int = 0
    """Synthetic long-tail assets (`AA1`...) listed on every venue after the default universe."""
    scenarios: tuple[Scenario, ...] = ()
    coinbase_auth: CoinbaseAuthConfig | None = None
    coinbase_snapshot_candles: int = 10
    coinbase_subscribe_timeout_s: float = 5.0
    coinbase_public_rate_per_s: int = 10
    coinbase_private_rate_per_s: int = 30
    ws_min_tick_s: float = 0.02
    """Streams emit once per simulated second, but never more often than this (real seconds)."""
    webhook_names: tuple[str, ...] = field(default=("livermore",))
