"""Shared helpers of the REST tests: clients on a running simulator, and a request recorder."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import aiohttp

from livermore_exchange_core.config import ExchangeConfig, default_exchange_config
from livermore_exchange_sim.market import Venue
from livermore_exchange_sim.testing import RunningSim
from livermore_schema.enums import ExchangeName

EXCHANGE_IDS = {ExchangeName.COINBASE: 1, ExchangeName.BINANCE: 2, ExchangeName.BINANCE_US: 3}
VENUES = {
    ExchangeName.COINBASE: Venue.COINBASE,
    ExchangeName.BINANCE: Venue.BINANCE,
    ExchangeName.BINANCE_US: Venue.BINANCE_US,
}


def sim_config(sim: RunningSim, name: ExchangeName) -> ExchangeConfig:
    """Return the config of `name` pointed at the simulator."""
    return default_exchange_config(name, EXCHANGE_IDS[name], rest_url=sim.rest_url(VENUES[name]))


@dataclass
class RequestLog:
    """Every HTTP request a session sent: (monotonic start, path, status)."""

    sent: list[tuple[float, str]] = field(default_factory=list)
    answered: list[tuple[float, str, int]] = field(default_factory=list)

    def trace(self) -> aiohttp.TraceConfig:
        trace = aiohttp.TraceConfig()

        async def on_start(_s: Any, _c: SimpleNamespace, params: Any) -> None:
            self.sent.append((time.monotonic(), params.url.path))

        async def on_end(_s: Any, _c: SimpleNamespace, params: Any) -> None:
            self.answered.append((time.monotonic(), params.url.path, params.response.status))

        trace.on_request_start.append(on_start)
        trace.on_request_end.append(on_end)
        return trace

    def statuses(self) -> list[int]:
        return [status for _, _, status in self.answered]


def recording_session(log: RequestLog) -> aiohttp.ClientSession:
    """Return a session whose every request lands in `log`."""
    return aiohttp.ClientSession(trace_configs=[log.trace()])


async def binance_stats(sim: RunningSim, venue: Venue = Venue.BINANCE) -> dict[str, int]:
    """Return the sim's Binance counters (requests, 429s, 418s, 451s)."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{sim.rest_url(venue)}/_sim/stats") as response,
    ):
        stats: dict[str, int] = await response.json()
        return stats


async def coinbase_stats(sim: RunningSim) -> dict[str, int]:
    """Return the sim's Coinbase REST counters (requests, 429s)."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{sim.rest_url(Venue.COINBASE)}/_sim/stats") as response,
    ):
        stats: dict[str, int] = await response.json()
        return stats


async def configure_binance(sim: RunningSim, venue: Venue = Venue.BINANCE, **fields: Any) -> None:
    """Change the sim's Binance venue config (weight limit, geo block...)."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{sim.rest_url(venue)}/_sim/config", json=fields) as response,
    ):
        assert response.status == 200, await response.text()
