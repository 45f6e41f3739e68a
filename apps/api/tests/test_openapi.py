"""The OpenAPI document matches the routes the app actually serves."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from livermore_api import ROUTES

from .conftest import World


async def test_openapi_documents_exactly_the_served_routes(
    client: TestClient[Any, Any], world: World
) -> None:
    async with client.get("/api/openapi.json", headers=World.bearer(world.owner_token)) as resp:
        doc = await resp.json()
    assert doc["openapi"].startswith("3.")
    documented = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    served = {
        (route.method, route.resource.canonical)
        for route in client.app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    assert documented == served
    assert {(r.method, r.path) for r in ROUTES} == served
    operation_ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert sorted(operation_ids) == sorted(r.name for r in ROUTES)


async def test_openapi_operations_are_complete(client: TestClient[Any, Any], world: World) -> None:
    async with client.get("/api/openapi.json", headers=World.bearer(world.owner_token)) as resp:
        doc = await resp.json()
    schemas = doc["components"]["schemas"]
    by_name = {route.name: route for route in ROUTES}
    for path, ops in doc["paths"].items():
        for op in ops.values():
            params = {p["name"] for p in op["parameters"] if p["in"] == "path"}
            assert params == {seg[1:-1] for seg in path.split("/") if seg.startswith("{")}, path
            if op["x-access"] != "public":
                assert op["security"] == [{"bearerAuth": []}] and "401" in op["responses"]
            route = by_name[op["operationId"]]
            assert ("requestBody" in op) == (route.body_model is not None), path
            if route.body_model is not None:
                ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                assert ref.rsplit("/", 1)[-1] == route.body_model.__name__
    stream = doc["paths"]["/ws/alerts"]["get"]
    assert {p["name"] for p in stream["parameters"]} == {"exchanges", "asset", "mine", "token"}
    assert "CommandRequest" in schemas and "ErrorOut" in schemas
