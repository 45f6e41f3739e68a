"""Bad input never answers 500: each finding of the api probe, with the status it now gets."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.exc import DataError

from livermore_api import ApiConfig, create_app
from livermore_api.app import server_options
from livermore_cache import keys
from livermore_schema.db import async_session_factory, create_async_engine
from livermore_schema.settings import DatabaseSettings
from livermore_schema.tables import ExchangeSymbol

from .conftest import World


async def _list(pg_settings: DatabaseSettings, symbols: list[str]) -> None:
    """Make `symbols` active Coinbase products (watchlists and positions accept only those)."""
    engine = create_async_engine(pg_settings)
    try:
        async with async_session_factory(engine)() as db:
            db.add_all(
                ExchangeSymbol(
                    exchange_id=1,
                    symbol=symbol,
                    base_currency=symbol.split("-")[0],
                    quote_currency="USD",
                    is_active=True,
                )
                for symbol in symbols
            )
            await db.commit()
    finally:
        await engine.dispose()


async def _status(response: Any) -> tuple[int, dict[str, Any]]:
    body = await response.json()
    return response.status, body


async def test_exchange_refs_beyond_int32_or_not_ascii_digits_are_404(
    client: TestClient[Any, Any], world: World
) -> None:
    headers = World.bearer(world.other_token)
    for ref in ("99999999999", "2147483648", "00000000000000000000001x"):
        async with client.get(f"/api/exchanges/{ref}", headers=headers) as response:
            status, body = await _status(response)
        assert status == 404 and body["error"]["code"] == "exchange_not_found", ref
    async with client.get("/api/exchanges/²", headers=headers) as response:
        assert response.status == 422
    async with client.get(
        "/api/alerts/stream", params={"exchanges": "99999999999,١٢"}, headers=headers
    ) as response:
        assert response.status == 404


async def test_nul_bytes_are_422_in_bodies_and_queries(
    client: TestClient[Any, Any], world: World
) -> None:
    headers = World.bearer(world.other_token)
    async with client.post(
        "/api/accounts", json={"exchange": "kraken", "display_name": "a\x00b"}, headers=headers
    ) as response:
        status, body = await _status(response)
    assert status == 422 and body["error"]["code"] == "nul_character"
    async with client.get(
        "/api/exchanges/coinbase/symbols", params={"search": "BT\x00C"}, headers=headers
    ) as response:
        assert response.status == 422


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"type": "add-symbol", "priority": 1' + b"0" * 5000 + b"}",
        b"\xff\xfe{}",
    ],
    ids=["deep", "5000-digits", "not-utf8"],
)
async def test_unparseable_bodies_are_400(
    client: TestClient[Any, Any], world: World, raw: bytes
) -> None:
    async with client.post(
        "/api/exchanges/coinbase/commands",
        data=raw,
        headers={**World.bearer(world.owner_token), "Content-Type": "application/json"},
    ) as response:
        status, body = await _status(response)
    assert status == 400 and body["error"]["code"] == "bad_request"


async def test_huge_numbers_in_queries_are_422(client: TestClient[Any, Any], world: World) -> None:
    async with client.get(
        "/api/alerts", params={"limit": "9" * 5000}, headers=World.bearer(world.other_token)
    ) as response:
        assert response.status == 422


async def test_a_non_ascii_bearer_token_is_401(client: TestClient[Any, Any]) -> None:
    for token in ("lvm_\xff", "lvm_é"):
        async with client.get("/api/me", headers={"Authorization": f"Bearer {token}"}) as r:
            status, body = await _status(r)
        assert status == 401 and body["error"]["code"] == "unauthorized", token


async def test_concurrent_update_and_delete_is_never_500(
    client: TestClient[Any, Any], world: World, pg_settings: DatabaseSettings
) -> None:
    headers = World.bearer(world.owner_token)
    symbols = [f"RACE{world.suffix.upper()}{n}-USD" for n in range(30)]
    await _list(pg_settings, symbols)
    seen: set[int] = set()
    for symbol in symbols:
        async with client.post(
            "/api/positions",
            json={"exchange": "coinbase", "symbol": symbol, "quantity": "1"},
            headers=headers,
        ) as created:
            position = await created.json()
        url = f"/api/positions/{position['id']}"
        patch, delete = await asyncio.gather(
            client.patch(url, json={"quantity": "2"}, headers=headers),
            client.delete(url, headers=headers),
        )
        seen |= {patch.status, delete.status}
        patch.release()
        delete.release()
    assert seen <= {200, 204, 404, 409}
    assert 204 in seen


async def test_a_malformed_worker_status_is_skipped_not_500(
    client: TestClient[Any, Any], world: World, redis: Redis
) -> None:
    await redis.set(keys.status_key(1), '{"exchange_id": "not a status"')
    async with client.get("/health") as public:
        status, body = await _status(public)
    assert status == 200 and body["workers"]["coinbase"] == {"alive": False, "state": None}
    async with client.get("/api/exchanges/coinbase", headers=World.bearer(world.owner_token)) as r:
        status, body = await _status(r)
    assert status == 200 and body["worker"]["liveness"] == "absent"


async def test_account_env_var_names_need_the_prefix(
    client: TestClient[Any, Any], world: World
) -> None:
    headers = World.bearer(world.other_token)
    for name in ("PATH", "HOME", "LIVERMORE_DATABASE_PASSWORD"):
        async with client.post(
            "/api/accounts", json={"exchange": "kraken", "api_key_env_var": name}, headers=headers
        ) as response:
            status, body = await _status(response)
        assert status == 422 and body["error"]["details"][0]["loc"] == ["api_key_env_var"]
    async with client.post(
        "/api/accounts",
        json={"exchange": "kraken", "api_key_env_var": "LIVERMORE_TEST_PRESENT_KEY"},
        headers=headers,
    ) as response:
        status, body = await _status(response)
    assert status == 201 and body["api_key_env_var_present"] is True


async def test_cost_basis_is_validated_to_the_columns_scale(
    client: TestClient[Any, Any], world: World, pg_settings: DatabaseSettings
) -> None:
    headers = World.bearer(world.other_token)
    symbol = f"SCALE{world.suffix.upper()}-USD"
    await _list(pg_settings, [symbol])
    position = {"exchange": "coinbase", "symbol": symbol, "quantity": "1"}
    async with client.post(
        "/api/positions", json={**position, "cost_basis": "1.123456789012"}, headers=headers
    ) as response:
        assert response.status == 422
    async with client.post(
        "/api/positions", json={**position, "cost_basis": "1.12345678"}, headers=headers
    ) as response:
        status, body = await _status(response)
    assert status == 201 and body["cost_basis"] == "1.12345678"


async def test_405_names_the_allowed_methods(client: TestClient[Any, Any], world: World) -> None:
    async with client.delete("/api/me", headers=World.bearer(world.owner_token)) as response:
        status, body = await _status(response)
    assert status == 405 and body["error"]["code"] == "method_not_allowed"
    assert "GET" in response.headers["Allow"].split(", ")


@pytest.mark.parametrize("path", ["/admin", "/admin/chart", "/api/docs"])
async def test_pages_send_security_headers(client: TestClient[Any, Any], path: str) -> None:
    async with client.get(path) as response:
        assert response.status == 200
        headers = response.headers
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"


async def test_watchlist_add_enforces_the_cap(
    client: TestClient[Any, Any], world: World, pg_settings: DatabaseSettings
) -> None:
    headers = World.bearer(world.other_token)
    full = [f"CAP{world.suffix.upper()}{n}-USD" for n in range(501)]
    await _list(pg_settings, full)
    extra = full.pop()
    async with client.put("/api/watchlist/coinbase", json={"symbols": full}, headers=headers) as r:
        assert r.status == 200
    async with client.post(
        "/api/watchlist/coinbase", json={"symbol": full[0]}, headers=headers
    ) as again:
        assert again.status == 200  # already there: no-op
    async with client.post(
        "/api/watchlist/coinbase", json={"symbol": extra}, headers=headers
    ) as response:
        status, body = await _status(response)
    assert status == 409 and body["error"]["code"] == "watchlist_full"


async def test_bound_sql_parameters_never_reach_errors(pg_settings: DatabaseSettings) -> None:
    engine = create_async_engine(pg_settings)
    try:
        async with engine.connect() as conn:
            with pytest.raises(DataError) as raised:
                await conn.execute(text("SELECT CAST(:v AS text), 1 / 0"), {"v": "secret-hash-123"})
    finally:
        await engine.dispose()
    assert "division by zero" in str(raised.value)
    assert "secret-hash-123" not in str(raised.value)


@pytest.fixture
async def slow_server(api_config: ApiConfig, redis: Redis) -> AsyncIterator[TestServer]:
    api = api_config.api.model_copy(update={"header_timeout_s": 0.5, "body_timeout_s": 0.5})
    config = dataclasses.replace(api_config, api=api)
    server = TestServer(create_app(config), host="127.0.0.1")
    await server.start_server(**server_options(config))
    try:
        yield server
    finally:
        await server.close()


async def _exchange(server: TestServer, sent: bytes, *, until_close: bool = True) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(sent)
        await writer.drain()
        if until_close:
            return await asyncio.wait_for(reader.read(), 5)  # returns when the server closes
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        return head + await asyncio.wait_for(reader.readexactly(length), 5)
    finally:
        writer.close()


async def test_a_client_slow_to_send_headers_is_disconnected(slow_server: TestServer) -> None:
    answer = await _exchange(slow_server, b"GET /health HTTP/1.1\r\nHost: x\r\n")
    assert answer == b""  # closed without a response


async def test_a_client_slow_to_send_its_body_gets_408(
    slow_server: TestServer, world: World
) -> None:
    head = (
        "POST /api/accounts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {world.other_token}\r\nContent-Length: 100\r\n"
        "Connection: close\r\n\r\n"
    )
    answer = await _exchange(slow_server, head.encode() + b'{"exchange"', until_close=False)
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 408"), answer[:200]
    assert json.loads(rest.partition(b"\r\n\r\n")[2])["error"]["code"] == "request_timeout"
