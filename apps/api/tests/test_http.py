"""HTTP conventions on every route: 401 names its scheme, HEAD answers where GET does."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from livermore_api import ROUTES, Access, Kind, Route

from .conftest import World
from .test_authz import CASES

HEADABLE = [r for r in ROUTES if r.method == "GET" and r.kind in (Kind.JSON, Kind.STATIC)]


@pytest.mark.parametrize(
    "route", [r for r in ROUTES if r.access is not Access.PUBLIC], ids=lambda r: r.name
)
async def test_401_carries_www_authenticate(
    route: Route, client: TestClient[Any, Any], world: World
) -> None:
    call = CASES[route.name](world)
    async with client.request(route.method, call.path, params=call.params) as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="livermore"'


@pytest.mark.parametrize("route", HEADABLE, ids=lambda r: r.name)
async def test_head_answers_like_get(
    route: Route, client: TestClient[Any, Any], world: World
) -> None:
    call = CASES[route.name](world)
    headers = World.bearer(world.admin_token)
    async with client.get(call.path, params=call.params, headers=headers) as got:
        body = await got.read()
    async with client.head(call.path, params=call.params, headers=headers) as head:
        assert head.status == got.status, route.name
        assert head.headers["Content-Type"] == got.headers["Content-Type"]
        assert await head.read() == b""
    assert body, "GET answered without a body"


async def test_head_without_token_is_401(client: TestClient[Any, Any]) -> None:
    async with client.head("/api/exchanges") as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
