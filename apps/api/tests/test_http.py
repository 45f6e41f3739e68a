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


async def test_metrics_count_requests_by_route_and_status(
    client: TestClient[Any, Any], world: World
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    headers = World.bearer(world.admin_token)
    for _ in range(3):
        async with client.get("/api/exchanges", headers=headers) as response:
            assert response.status == 200
    async with client.get("/api/exchanges/atlantis", headers=headers) as response:
        assert response.status == 404
    async with client.get("/metrics", headers=World.bearer(world.owner_token)) as response:
        assert response.status == 403
    async with client.get("/metrics", headers=headers) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await response.text()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }

    def requests(route: str, status: str) -> float:
        labels = (("method", "GET"), ("route", route), ("status", status))
        return samples.get(("livermore_api_requests_total", labels), 0.0)

    assert requests("exchanges.list", "200") == 3
    assert requests("exchanges.get", "404") == 1
    assert requests("metrics", "403") == 1
    assert samples[("livermore_worker_alive", (("exchange", "coinbase"),))] == 0
    assert samples[("livermore_api_open_streams", ())] == 0
    assert samples[("livermore_api_request_seconds_count", (("route", "exchanges.list"),))] == 3
