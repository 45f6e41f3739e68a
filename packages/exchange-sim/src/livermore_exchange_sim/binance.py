"""The Binance and Binance US venues of the simulator: one aiohttp sub-app per venue.

Layout under the venue's prefix (e.g. `/binance`, `/binance_us`):
`/api/v3/{ping,time,exchangeInfo,klines,ticker/24hr,account}` (binance_rest.py),
`/ws`, `/ws/<stream>`, `/stream?streams=a/b` (binance_ws.py), and for tests and the CLI
`GET /_sim/stats` (429/418/451 counters, frames sent), `GET /_sim/finals` (the latest closing
frames with their wall-clock send time, for benchmarks) and `GET|POST /_sim/config`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp import web

from livermore_exchange_sim.binance_rest import BinanceRestApi
from livermore_exchange_sim.binance_wire import (
    BINANCE_US_CONFIG,
    BinanceVenueConfig,
    BinanceVenueState,
)
from livermore_exchange_sim.binance_ws import BinanceStreamHub
from livermore_exchange_sim.faults import FaultController
from livermore_exchange_sim.market import Market, Venue

__all__ = [
    "BINANCE_HUB",
    "BINANCE_STATE",
    "BinanceVenueConfig",
    "BinanceVenueState",
    "create_binance_app",
    "default_binance_config",
]

BINANCE_STATE = web.AppKey("binance_state", BinanceVenueState)
BINANCE_HUB = web.AppKey("binance_hub", BinanceStreamHub)

_CONFIG_FIELDS = {f.name: f for f in dataclasses.fields(BinanceVenueConfig)}


def default_binance_config(venue: Venue) -> BinanceVenueConfig:
    """Return the default config of `venue` (Binance US: 1200 weight/min, its own keys)."""
    if venue is Venue.BINANCE_US:
        return BINANCE_US_CONFIG
    if venue is Venue.BINANCE:
        return BinanceVenueConfig()
    raise ValueError(f"{venue.value} is not a Binance-protocol venue")


def create_binance_app(
    market: Market,
    venue: Venue,
    faults: FaultController,
    config: BinanceVenueConfig | None = None,
) -> web.Application:
    """Return the sub-app serving `venue` (binance or binance_us) over the Binance protocol."""
    state = BinanceVenueState(venue, config or default_binance_config(venue))
    app = web.Application()
    app[BINANCE_STATE] = state
    BinanceRestApi(market, state, faults).add_routes(app)
    hub = BinanceStreamHub(market, state, faults)
    hub.add_routes(app)
    app[BINANCE_HUB] = hub
    app.router.add_get("/_sim/stats", _stats)
    app.router.add_get("/_sim/finals", _finals)
    app.router.add_get("/_sim/config", _get_config)
    app.router.add_post("/_sim/config", _post_config)
    app.on_shutdown.append(_close_streams)
    return app


def reconfigure(state: BinanceVenueState, changes: dict[str, Any]) -> BinanceVenueConfig:
    """Apply `changes` (field name → value) to the venue's config; raise ValueError if invalid."""
    checked: dict[str, Any] = {}
    for name, value in changes.items():
        if name not in _CONFIG_FIELDS:
            raise ValueError(f"unknown config field {name!r}")
        current = getattr(state.config, name)
        mismatch = value is not None and current is not None and type(value) is not type(current)
        if mismatch and not (isinstance(current, float) and isinstance(value, int)):
            raise ValueError(f"{name} must be {type(current).__name__}")
        checked[name] = value
    state.config = dataclasses.replace(state.config, **checked)
    return state.config


async def _stats(request: web.Request) -> web.Response:
    state = request.app[BINANCE_STATE]
    hub = request.app[BINANCE_HUB]
    body = {"venue": state.venue.value, **state.stats.as_dict(), "live": len(hub.connections)}
    return web.json_response(body)


async def _finals(request: web.Request) -> web.Response:
    return web.json_response(list(request.app[BINANCE_STATE].finals_sent))


async def _get_config(request: web.Request) -> web.Response:
    return web.json_response(dataclasses.asdict(request.app[BINANCE_STATE].config))


async def _post_config(request: web.Request) -> web.Response:
    changes = await request.json()
    if not isinstance(changes, dict):
        raise web.HTTPBadRequest(text="expected a JSON object")
    try:
        config = reconfigure(request.app[BINANCE_STATE], changes)
    except ValueError as error:
        raise web.HTTPBadRequest(text=str(error)) from None
    return web.json_response(dataclasses.asdict(config))


async def _close_streams(app: web.Application) -> None:
    for conn in list(app[BINANCE_HUB].connections):
        await conn.ws.close(code=1001, message=b"Server shutdown")
