"""Every route x {no token, revoked token, another user's token, admin}, generated from ROUTES."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import pytest
from aiohttp import WSServerHandshakeError
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from livermore_api import ROUTES, Access, Kind, Route
from livermore_cache.commands import CommandInbox
from livermore_schema.control import CommandResponse
from livermore_schema.enums import ResponseStatus

from .conftest import World


@dataclass(frozen=True)
class Call:
    path: str
    params: dict[str, str] = field(default_factory=dict)
    json: Any = None


def _owner_query(w: World) -> dict[str, str]:
    return {"user_id": str(w.owner_id)}


# How to call each route on the owner's resources. A route missing here fails
# test_every_route_has_a_case, so a new route cannot escape the matrix.
CASES: dict[str, Callable[[World], Call]] = {
    "health": lambda w: Call("/health"),
    "health.details": lambda w: Call("/api/health"),
    "openapi": lambda w: Call("/api/openapi.json"),
    "me": lambda w: Call("/api/me"),
    "metrics": lambda w: Call("/metrics"),
    "admin.page": lambda w: Call("/admin"),
    "admin.asset": lambda w: Call("/admin/static/admin.js"),
    "admin.chart": lambda w: Call("/admin/chart", {"exchange": "binance", "symbol": "BTCUSDT"}),
    "docs": lambda w: Call("/api/docs"),
    "exchanges.list": lambda w: Call("/api/exchanges"),
    "exchanges.get": lambda w: Call("/api/exchanges/coinbase"),
    "symbols.list": lambda w: Call("/api/exchanges/coinbase/symbols"),
    "symbols.refresh": lambda w: Call("/api/exchanges/binance_us/symbols/refresh"),
    "candles.get": lambda w: Call(
        "/api/exchanges/coinbase/symbols/BTC-USD/candles", {"timeframe": "1h"}
    ),
    "indicators.get": lambda w: Call("/api/exchanges/coinbase/symbols/BTC-USD/indicators"),
    "chart.get": lambda w: Call(
        "/api/exchanges/coinbase/symbols/BTC-USD/chart", {"timeframe": "1h"}
    ),
    "chart.stream": lambda w: Call(
        "/api/exchanges/coinbase/symbols/BTC-USD/stream", {"timeframe": "1h"}
    ),
    "commands.send": lambda w: Call("/api/exchanges/coinbase/commands", json={"type": "start"}),
    "commands.result": lambda w: Call(f"/api/exchanges/coinbase/commands/{STORED_RESPONSE}"),
    "accounts.list": lambda w: Call("/api/accounts", _owner_query(w)),
    "accounts.create": lambda w: Call(
        "/api/accounts", _owner_query(w), {"exchange": "binance", "display_name": "b"}
    ),
    "accounts.get": lambda w: Call(f"/api/accounts/{w.account_id}"),
    "accounts.update": lambda w: Call(f"/api/accounts/{w.account_id}", json={"is_default": True}),
    "accounts.delete": lambda w: Call(f"/api/accounts/{w.account_id}"),
    "watchlist.get": lambda w: Call("/api/watchlist", _owner_query(w)),
    "watchlist.replace": lambda w: Call(
        "/api/watchlist/coinbase", _owner_query(w), {"symbols": ["BTC-USD"]}
    ),
    "watchlist.add": lambda w: Call(
        "/api/watchlist/coinbase", _owner_query(w), {"symbol": "SOL-USD"}
    ),
    "watchlist.remove": lambda w: Call("/api/watchlist/coinbase/ETH-USD", _owner_query(w)),
    "positions.list": lambda w: Call("/api/positions", _owner_query(w)),
    "positions.create": lambda w: Call(
        "/api/positions", _owner_query(w), {"exchange": "coinbase", "symbol": "SOL", "quantity": 2}
    ),
    "positions.get": lambda w: Call(f"/api/positions/{w.position_id}"),
    "positions.update": lambda w: Call(f"/api/positions/{w.position_id}", json={"quantity": "3"}),
    "positions.delete": lambda w: Call(f"/api/positions/{w.position_id}"),
    "alerts.list": lambda w: Call("/api/alerts", {"exchange": "coinbase"}),
    "alerts.stream": lambda w: Call("/api/alerts/stream", {"exchanges": "coinbase,binance"}),
    "alerts.ws": lambda w: Call("/ws/alerts", {"exchanges": "coinbase"}),
    "users.list": lambda w: Call("/api/users"),
    "users.create": lambda w: Call("/api/users", json={"username": f"new{w.suffix}"}),
    "tokens.list": lambda w: Call(f"/api/users/{w.owner_id}/tokens"),
    "tokens.create": lambda w: Call(f"/api/users/{w.owner_id}/tokens", json={"name": "ci"}),
    "tokens.revoke": lambda w: Call(f"/api/tokens/{w.spare_token_id}"),
}


STORED_RESPONSE = UUID("00000000-0000-4000-8000-000000000000")


async def _prepare(route: Route, redis: Redis) -> None:
    """Give routes that read worker output something to read (a worker's stored response)."""
    if route.name == "commands.result":
        inbox = CommandInbox(redis, 1, "authz-test")
        await inbox.respond(
            CommandResponse(correlation_id=STORED_RESPONSE, status=ResponseStatus.SUCCESS)
        )


def expected_for_other(route: Route) -> int | None:
    """What another (non-admin) user gets; None means "allowed" (2xx)."""
    match route.access:
        case Access.PUBLIC | Access.USER:
            return None
        case Access.OWNER:
            return 404 if route.path_model is not None and "{exchange}" not in route.path else 403
        case Access.ACCOUNT | Access.ADMIN:
            return 403


async def _status(client: TestClient[Any, Any], route: Route, call: Call, token: str | None) -> int:
    headers = {} if token is None else World.bearer(token)
    if route.kind is Kind.WEBSOCKET:
        try:
            ws = await client.ws_connect(call.path, params=call.params, headers=headers)
        except WSServerHandshakeError as err:
            return err.status
        first = await ws.receive_json(timeout=10)
        assert first["type"] == "ready"
        await ws.close()
        return 101
    async with client.request(
        route.method, call.path, params=call.params, json=call.json, headers=headers
    ) as response:
        if route.kind is Kind.SSE and response.status == 200:
            line = await response.content.readline()
            assert line.startswith(b"event: ready")
        elif route.kind is Kind.JSON and response.status >= 400:
            body = await response.json()
            assert set(body["error"]) == {"code", "message", "details"}
        return response.status


def test_every_route_has_a_case() -> None:
    assert set(CASES) == {route.name for route in ROUTES}


EXTERNAL = {"symbols.refresh"}
"""Routes that reach exchanges: tested against the simulator-backed client."""


@pytest.mark.parametrize(
    "route", [r for r in ROUTES if r.name not in EXTERNAL], ids=lambda route: route.name
)
async def test_route_authorization(
    route: Route, client: TestClient[Any, Any], world: World, redis: Redis
) -> None:
    await _prepare(route, redis)
    await _check_matrix(route, client, world)


@pytest.mark.parametrize(
    "route", [r for r in ROUTES if r.name in EXTERNAL], ids=lambda route: route.name
)
async def test_external_route_authorization(
    route: Route, sim_client: TestClient[Any, Any], world: World
) -> None:
    await _check_matrix(route, sim_client, world)


async def _check_matrix(route: Route, client: TestClient[Any, Any], world: World) -> None:
    call = CASES[route.name](world)
    if route.access is Access.PUBLIC:
        assert 200 <= await _status(client, route, call, None) < 300
        return
    assert await _status(client, route, call, None) == 401
    assert await _status(client, route, call, "lvm_not-a-real-token") == 401
    assert await _status(client, route, call, world.revoked_token) == 401
    other = await _status(client, route, call, world.other_token)
    wanted = expected_for_other(route)
    if wanted is None:
        assert 200 <= other < 300 or other == 101
    else:
        assert other == wanted
    if route.method == "GET" and route.access is not Access.ADMIN:
        owner = await _status(client, route, call, world.owner_token)
        assert 200 <= owner < 300 or owner == 101, f"owner got {owner}"
    admin = await _status(client, route, call, world.admin_token)
    assert 200 <= admin < 300 or admin == 101, f"admin got {admin}"
