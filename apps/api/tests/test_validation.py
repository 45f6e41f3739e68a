"""Invalid bodies and parameters on every route give 4xx JSON errors, never 500."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from livermore_api import ROUTES, ApiConfig, Route, create_app

from .conftest import World

# (route name, path, query, json body or raw bytes, expected status)
BAD: list[tuple[str, str, dict[str, str], Any, int]] = [
    ("admin.asset", "/admin/static/..%2Fapp.py", {}, None, 422),
    ("admin.asset", "/admin/static/missing.js", {}, None, 404),
    ("exchanges.get", "/api/exchanges/NOPE!", {}, None, 422),
    ("exchanges.get", "/api/exchanges/atlantis", {}, None, 404),
    ("symbols.list", "/api/exchanges/coinbase/symbols", {"limit": "0"}, None, 422),
    ("symbols.list", "/api/exchanges/coinbase/symbols", {"tier": "7"}, None, 422),
    ("symbols.list", "/api/exchanges/coinbase/symbols", {"offset": "x"}, None, 422),
    ("symbols.refresh", "/api/exchanges/atlantis/symbols/refresh", {}, None, 404),
    ("symbols.refresh", "/api/exchanges/-/symbols/refresh", {}, None, 422),
    ("candles.get", "/api/exchanges/coinbase/symbols/BTC-USD/candles", {}, None, 422),
    ("candles.get", "/api/exchanges/coinbase/symbols/BTC-USD/candles",
     {"timeframe": "7m"}, None, 422),
    ("candles.get", "/api/exchanges/coinbase/symbols/BTC-USD/candles",
     {"timeframe": "1h", "start": "5"}, None, 422),
    ("candles.get", "/api/exchanges/coinbase/symbols/BTC-USD/candles",
     {"timeframe": "1h", "start": "9", "end": "5"}, None, 422),
    ("indicators.get", "/api/exchanges/coinbase/symbols/BTC-USD/indicators",
     {"timeframe": "2w"}, None, 422),
    ("chart.get", "/api/exchanges/coinbase/symbols/BTC-USD/chart", {}, None, 422),
    ("chart.get", "/api/exchanges/coinbase/symbols/BTC-USD/chart",
     {"timeframe": "1h", "limit": "5"}, None, 422),
    ("chart.get", "/api/exchanges/atlantis/symbols/BTC-USD/chart", {"timeframe": "1h"}, None, 404),
    ("chart.stream", "/api/exchanges/coinbase/symbols/BTC-USD/stream", {"timeframe": "7m"},
     None, 422),
    ("chart.stream", "/api/exchanges/atlantis/symbols/BTC-USD/stream", {"timeframe": "1m"},
     None, 404),
    ("commands.send", "/api/exchanges/coinbase/commands", {}, {"type": "explode"}, 422),
    ("commands.send", "/api/exchanges/coinbase/commands", {}, {"type": "add-symbol"}, 422),
    ("commands.send", "/api/exchanges/coinbase/commands", {},
     {"type": "remove-symbol", "payload": {"symbol": ["BTC-USD"]}}, 422),
    ("commands.send", "/api/exchanges/coinbase/commands", {},
     {"type": "stop", "timeout_s": -1}, 422),
    ("commands.result", "/api/exchanges/coinbase/commands/not-a-uuid", {}, None, 422),
    ("commands.result", "/api/exchanges/coinbase/commands/7f1d0c62-5bb2-4e4e-9a7b-1b0f7a0b3c11",
     {}, None, 404),
    ("accounts.list", "/api/accounts", {"user_id": "-3"}, None, 422),
    ("accounts.create", "/api/accounts", {}, {"exchange": "coinbase",
     "api_key_env_var": "lower case"}, 422),
    ("accounts.create", "/api/accounts", {}, {"exchange": "atlantis"}, 404),
    ("accounts.create", "/api/accounts", {}, {"exchange": "coinbase"}, 409),
    ("accounts.get", "/api/accounts/abc", {}, None, 422),
    ("accounts.get", "/api/accounts/999999", {}, None, 404),
    ("accounts.update", "/api/accounts/{account_id}", {}, {"api_secret_env_var": "1BAD"}, 422),
    ("accounts.delete", "/api/accounts/0", {}, None, 422),
    ("watchlist.get", "/api/watchlist", {"user_id": "zero"}, None, 422),
    ("watchlist.replace", "/api/watchlist/coinbase", {}, {"symbols": "BTC-USD"}, 422),
    ("watchlist.replace", "/api/watchlist/coinbase", {}, {"symbols": ["bad symbol!"]}, 422),
    ("watchlist.add", "/api/watchlist/coinbase", {}, {}, 422),
    ("watchlist.remove", "/api/watchlist/coinbase/NOT-THERE", {}, None, 404),
    ("positions.list", "/api/positions", {"user_id": "1.5"}, None, 422),
    ("positions.create", "/api/positions", {},
     {"exchange": "coinbase", "symbol": "BTC", "quantity": -1}, 422),
    ("positions.create", "/api/positions", {},
     {"exchange": "coinbase", "symbol": "BTC-USD", "quantity": 1}, 409),
    ("positions.create", "/api/positions", {},
     {"exchange": "coinbase", "symbol": "NOPE-USD", "quantity": 1}, 422),
    ("watchlist.add", "/api/watchlist/coinbase", {}, {"symbol": "NOPE-USD"}, 422),
    ("positions.get", "/api/positions/99999999999", {}, None, 422),
    ("positions.update", "/api/positions/{position_id}", {}, {"quantity": "lots"}, 422),
    ("positions.delete", "/api/positions/999999", {}, None, 404),
    ("alerts.list", "/api/alerts", {"since": "yesterday"}, None, 422),
    ("alerts.list", "/api/alerts", {"since": "2024-01-02T00:00:00"}, None, 422),
    ("alerts.list", "/api/alerts", {"timeframe": "1y"}, None, 422),
    ("alerts.stream", "/api/alerts/stream", {"exchanges": "coinbase,atlantis"}, None, 404),
    ("alerts.stream", "/api/alerts/stream", {"bogus": "1"}, None, 422),
    ("alerts.ws", "/ws/alerts", {"exchanges": "atlantis"}, None, 404),
    ("users.list", "/api/users", {"limit": "100000"}, None, 422),
    ("users.create", "/api/users", {}, {"username": "x"}, 422),
    ("users.create", "/api/users", {}, {"username": "ok_name", "email": "nope"}, 422),
    ("tokens.list", "/api/users/999999/tokens", {}, None, 404),
    ("tokens.create", "/api/users/{owner_id}/tokens", {}, {"name": ""}, 422),
    ("tokens.revoke", "/api/tokens/999999", {}, None, 404),
]  # fmt: skip

_BY_NAME = {route.name: route for route in ROUTES}


def test_every_route_with_inputs_has_invalid_cases() -> None:
    covered = {name for name, *_ in BAD}
    with_inputs = {r.name for r in ROUTES if r.path_model or r.query_model or r.body_model}
    assert with_inputs <= covered


def _fill(path: str, world: World) -> str:
    return path.format(account_id=world.account_id, position_id=world.position_id,
                       owner_id=world.owner_id)  # fmt: skip


@pytest.mark.parametrize(("name", "path", "query", "body", "status"), BAD)
async def test_invalid_input_is_a_4xx_json_error(
    name: str,
    path: str,
    query: dict[str, str],
    body: Any,
    status: int,
    client: TestClient[Any, Any],
    world: World,
) -> None:
    route = _BY_NAME[name]
    admin_only = name.startswith(("users.", "tokens.")) or name == "symbols.refresh"
    token = world.admin_token if admin_only else world.owner_token
    async with client.request(
        route.method, _fill(path, world), params=query, json=body, headers=World.bearer(token)
    ) as response:
        assert response.status == status, await response.text()
        error = (await response.json())["error"]
        assert error["code"] and error["message"]


BODY_ROUTES = [route for route in ROUTES if route.body_model is not None]


@pytest.mark.parametrize("route", BODY_ROUTES, ids=lambda route: route.name)
async def test_malformed_bodies(route: Route, client: TestClient[Any, Any], world: World) -> None:
    path = _fill(
        route.path.replace("{exchange}", "coinbase").replace("{user_id}", "{owner_id}"), world
    )
    headers = World.bearer(world.admin_token)
    for data, content_type, status in (
        (b"{not json", "application/json", 400),
        (b"[1, 2]", "application/json", 422),
        (b"{}", "text/plain", 415),
        (b"a=1", "application/x-www-form-urlencoded", 415),
        (b'{"unexpected_field": 1}', "application/json", 422),
    ):
        async with client.request(
            route.method, path, data=data, headers={**headers, "Content-Type": content_type}
        ) as response:
            assert response.status == status, (data, await response.text())
            assert (await response.json())["error"]["code"]


async def test_unknown_path_and_method_are_json(client: TestClient[Any, Any], world: World) -> None:
    async with client.get("/api/nothing-here") as response:
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "not_found"
    async with client.put("/api/exchanges", headers=World.bearer(world.admin_token)) as response:
        assert response.status == 405
        error = (await response.json())["error"]
        assert error["code"] == "method_not_allowed"
        assert "GET" in error["details"]["allowed"]


async def test_unexpected_error_is_500_json_with_request_id(api_config: ApiConfig) -> None:
    async def boom(request: web.Request) -> web.StreamResponse:
        raise RuntimeError("secret internals")

    app = create_app(api_config)
    app.router.add_get("/boom", boom)
    server = TestServer(app, host="127.0.0.1")
    async with TestClient(server) as test_client, test_client.get("/boom") as response:
        assert response.status == 500
        text = await response.text()
        body = await response.json()
    assert "secret internals" not in text and "Traceback" not in text
    assert body["error"]["details"]["request_id"] == response.headers["X-Request-Id"]
