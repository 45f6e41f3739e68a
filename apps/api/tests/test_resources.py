"""Behaviour of the resource routes against real PostgreSQL and Redis."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from livermore_cache.candles import CandleCache
from livermore_cache.indicators import IndicatorCache
from livermore_cache.status import StatusStore
from livermore_schema.db import async_session_factory, create_async_engine
from livermore_schema.enums import CandleSource, ConnectionState, Liquidity, Stage, Timeframe
from livermore_schema.indicators import IndicatorValue, MacdVValues
from livermore_schema.market import Candle
from livermore_schema.settings import CacheSettings, DatabaseSettings
from livermore_schema.status import ConnectionStatus
from livermore_schema.tables import AlertHistory, ExchangeSymbol

from .conftest import ABSENT_ENV, PRESENT_ENV, World


async def _get(client: TestClient[Any, Any], path: str, token: str, **params: str) -> Any:
    async with client.get(path, params=params, headers=World.bearer(token)) as response:
        assert response.status == 200, await response.text()
        return await response.json()


def _status(exchange_id: int, name: str, beat: datetime) -> ConnectionStatus:
    return ConnectionStatus(
        exchange_id=exchange_id,
        exchange_name=name,
        connection_state=ConnectionState.CONNECTED,
        last_heartbeat=beat,
        worker_id="host:1",
        heartbeat_interval_s=5,
    )


async def test_exchanges_report_live_dead_and_absent_workers(
    client: TestClient[Any, Any], world: World, redis: Redis
) -> None:
    store = StatusStore(redis)
    now = datetime.now(UTC)
    await store.write(_status(1, "coinbase", now))
    await store.write(_status(2, "binance", now - timedelta(seconds=20)))  # > 3 x 5 s ago
    body = await _get(client, "/api/exchanges", world.other_token)
    workers = {item["name"]: item["worker"] for item in body["items"]}
    assert [item["id"] for item in body["items"]] == [1, 2, 3, 4, 5, 6]
    assert workers["coinbase"]["liveness"] == "alive" and workers["coinbase"]["alive"]
    assert workers["binance"]["liveness"] == "dead" and not workers["binance"]["alive"]
    assert workers["binance"]["state"] == "connected"  # what it last said, judged dead
    assert workers["kraken"] == {
        "alive": False,
        "liveness": "absent",
        "state": None,
        "status": None,
    }
    health = await _get(client, "/api/health", world.other_token)
    assert health["status"] == "ok" and health["postgres"] and health["redis"]
    assert health["workers"]["binance"]["liveness"] == "dead"
    assert health["workers"]["coinbase"]["status"]["worker_id"]
    async with client.get("/health") as public:
        shown = await public.json()
    assert public.status == 200
    assert shown["workers"]["coinbase"] == {"alive": True, "state": "connected"}
    assert shown["workers"]["binance"] == {"alive": False, "state": "connected"}
    assert "worker_id" not in json.dumps(shown) and "error" not in json.dumps(shown)


@pytest.fixture
async def symbols(pg_settings: DatabaseSettings, world: World) -> AsyncIterator[str]:
    """Symbols on mexc (id 6), unique to this test, with ranks around the Tier 1 limit."""
    tag = world.suffix.upper()
    specs = [("ONE", 1, True), ("TWO", 100, True), ("THREE", 101, True), ("ETH", None, True),
             ("OLD", 2, False), ("BTC", 300, True)]  # fmt: skip
    rows = [
        ExchangeSymbol(exchange_id=6, symbol=f"{base}{tag}USDT", base_currency=f"{base}{tag}",
                       quote_currency="USDT", volume_rank=rank, is_active=active,
                       display_name=f"{base.title()} coin")
        for base, rank, active in specs
    ]  # fmt: skip
    engine = create_async_engine(pg_settings)
    try:
        async with async_session_factory(engine)() as db:
            db.add_all(rows)
            await db.commit()
        yield tag
        async with async_session_factory(engine)() as db:
            for row in rows:
                await db.delete(row)
            await db.commit()
    finally:
        await engine.dispose()


async def test_symbols_are_paged_searchable_and_tiered_for_the_caller(
    client: TestClient[Any, Any], world: World, symbols: str
) -> None:
    tag = symbols
    headers = World.bearer(world.owner_token)
    async with client.put(
        "/api/watchlist/mexc", json={"symbols": [f"ETH{tag}USDT", f"TWO{tag}USDT"]}, headers=headers
    ) as response:
        assert response.status == 200
    async with client.post(
        "/api/positions",
        json={"exchange": "mexc", "symbol": f"BTC{tag}", "quantity": "0.5"},
        headers=headers,
    ) as response:
        assert response.status == 201
    path = "/api/exchanges/mexc/symbols"
    mine = await _get(client, path, world.owner_token, search=tag, limit="10")
    tiers = {item["symbol"].removesuffix(f"{tag}USDT"): item["tier"] for item in mine["items"]}
    assert tiers == {"ONE": "1", "TWO": "1", "THREE": None, "BTC": "2", "ETH": "2"}
    assert mine["total"] == 5  # OLD is inactive
    theirs = await _get(client, path, world.other_token, search=tag, limit="10")
    assert {item["tier"] for item in theirs["items"]} == {"1", None}
    page = await _get(client, path, world.owner_token, search=tag, limit="2", offset="1")
    assert [i["volume_rank"] for i in page["items"]] == [100, 101] and page["total"] == 5
    tier2 = await _get(client, path, world.owner_token, search=tag, tier="2")
    assert sorted(i["symbol"] for i in tier2["items"]) == [f"BTC{tag}USDT", f"ETH{tag}USDT"]
    by_name = await _get(client, path, world.owner_token, search="three coin")
    assert [i["symbol"] for i in by_name["items"]] == [f"THREE{tag}USDT"]
    inactive = await _get(client, path, world.owner_token, search=tag, active="false")
    assert [i["symbol"] for i in inactive["items"]] == [f"OLD{tag}USDT"]
    wildcard = await _get(client, path, world.owner_token, search="%")
    assert wildcard["total"] == 0  # LIKE wildcards are escaped


async def test_accounts_report_env_var_presence_never_values(
    client: TestClient[Any, Any], world: World
) -> None:
    body = await _get(client, f"/api/accounts/{world.account_id}", world.owner_token)
    assert body["api_key_env_var"] == PRESENT_ENV and body["api_key_env_var_present"] is True
    assert body["api_secret_env_var"] == ABSENT_ENV and body["api_secret_env_var_present"] is False
    headers = World.bearer(world.owner_token)
    async with client.post(
        "/api/accounts", json={"exchange": "binance", "is_default": True}, headers=headers
    ) as response:
        created = await response.json()
        assert response.status == 201 and created["api_key_env_var_present"] is None
    async with client.patch(
        f"/api/accounts/{world.account_id}", json={"is_default": True}, headers=headers
    ) as response:
        assert response.status == 200
    listing = await _get(client, "/api/accounts", world.owner_token)
    assert {a["exchange"]: a["is_default"] for a in listing["items"]} == {
        "coinbase": True,
        "binance": False,  # only one default per user
    }
    assert "never-returned-value" not in str(listing)
    me = await _get(client, "/api/me", world.owner_token)
    assert me["commandable_exchanges"] == ["coinbase", "binance"]


async def test_watchlist_and_positions_round_trip(
    client: TestClient[Any, Any], world: World
) -> None:
    headers = World.bearer(world.owner_token)
    async with client.post(
        "/api/watchlist/binance", json={"symbol": "BTCUSDT"}, headers=headers
    ) as response:
        assert (await response.json())["watchlist"] == {
            "coinbase": ["ETH-USD"],
            "binance": ["BTCUSDT"],
        }
    async with client.delete("/api/watchlist/coinbase/ETH-USD", headers=headers) as response:
        assert (await response.json())["watchlist"] == {"binance": ["BTCUSDT"]}
    async with client.patch(
        f"/api/positions/{world.position_id}",
        json={"quantity": "2.25", "cost_basis": "100.5"},
        headers=headers,
    ) as response:
        body = await response.json()
    assert Decimal(body["quantity"]) == Decimal("2.25")
    assert Decimal(body["cost_basis"]) == Decimal("100.5")
    async with client.delete(f"/api/positions/{world.position_id}", headers=headers) as response:
        assert response.status == 204
    assert (await _get(client, "/api/positions", world.owner_token))["items"] == []


def _candle(open_time: int, close: float) -> Candle:
    return Candle(
        exchange_id=2,
        exchange="binance",
        symbol="XRPUSDT",
        timeframe=Timeframe.H1,
        open_time=open_time,
        close_time=open_time + 3_599_999,
        open=close,
        high=close,
        low=close,
        close=close,
        volume=1.0,
        closed=True,
        source=CandleSource.REST,
    )


async def test_candles_and_indicators_dual_read(
    client: TestClient[Any, Any], world: World, redis: Redis
) -> None:
    cache = CandleCache(redis, CacheSettings())
    hour = 3_600_000
    await cache.write_many([_candle(i * hour, 1.0 + i) for i in range(5)], user_id=world.owner_id)
    path = "/api/exchanges/binance/symbols/XRPUSDT/candles"
    mine = await _get(client, path, world.owner_token, timeframe="1h", limit="3")
    assert [c["close"] for c in mine["items"]] == [3.0, 4.0, 5.0]  # from the Tier 2 key
    ranged = await _get(client, path, world.owner_token, timeframe="1h",
                        start=str(hour), end=str(2 * hour))  # fmt: skip
    assert [c["open_time"] for c in ranged["items"]] == [hour, 2 * hour]
    assert (await _get(client, path, world.other_token, timeframe="1h"))["items"] == []
    value = IndicatorValue(
        exchange_id=2, symbol="XRPUSDT", timeframe=Timeframe.H1, open_time=4 * hour,
        value=MacdVValues(macd_v=-160.0, signal=-150.0, histogram=-10.0, fast_ema=1.0,
                          slow_ema=1.1, atr=0.2),
        stage=Stage.OVERSOLD, liquidity=Liquidity.HIGH, gap_ratio=0.0, seeded=True, n_eff=40,
    )  # fmt: skip
    await IndicatorCache(redis, CacheSettings()).write(value)
    found = await _get(
        client, "/api/exchanges/binance/symbols/XRPUSDT/indicators", world.other_token
    )
    assert found["timeframes"]["1h"]["value"]["macd_v"] == -160.0
    assert found["timeframes"]["1m"] is None and len(found["timeframes"]) == 6


async def test_alert_history_filters_and_pages(
    client: TestClient[Any, Any], world: World, pg_settings: DatabaseSettings
) -> None:
    base = datetime(2030, 5, 1, tzinfo=UTC)
    symbol = f"H{world.suffix.upper()}"
    details = [None] + [{"level": 150, "direction": "up", "delayed": i == 5} for i in range(1, 6)]
    rows = [
        AlertHistory(uid=uuid4(), exchange_id=1 + i % 2, symbol=symbol, timeframe="1h",
                     alert_type="macdv", trigger_label="level_150", trigger_value=Decimal(151),
                     price=Decimal("10.5"), triggered_at=base + timedelta(hours=i),
                     details=details[i])
        for i in range(6)
    ]  # fmt: skip
    engine = create_async_engine(pg_settings)
    async with async_session_factory(engine)() as db:
        db.add_all(rows)
        await db.commit()
    await engine.dispose()
    token = world.other_token
    everything = await _get(client, "/api/alerts", token, symbol=symbol)
    assert everything["total"] == 6
    assert everything["items"][0]["triggered_at"].startswith("2030-05-01T05")  # newest first
    directions = [(i["direction"], i["delayed"]) for i in everything["items"]]
    assert directions == [("up", True)] + [("up", False)] * 4 + [(None, False)]  # 1st: no details
    binance = await _get(client, "/api/alerts", token, symbol=symbol, exchange="binance")
    assert binance["total"] == 3 and {i["exchange"] for i in binance["items"]} == {"binance"}
    since, until = "2030-05-01T01:00:00Z", "2030-05-01T03:00:00+00:00"
    window = await _get(client, "/api/alerts", token, symbol=symbol, since=since, until=until)
    assert window["total"] == 3
    paged = await _get(client, "/api/alerts", token, symbol=symbol, limit="2", offset="4")
    assert len(paged["items"]) == 2 and paged["items"][-1]["triggered_at"].startswith(
        "2030-05-01T00"
    )
    assert (await _get(client, "/api/alerts", token, symbol=symbol, timeframe="4h"))["total"] == 0


async def test_symbol_refresh_fills_the_symbol_table_from_the_simulator(
    sim_client: TestClient[Any, Any], world: World
) -> None:
    headers = World.bearer(world.admin_token)
    async with sim_client.post(
        "/api/exchanges/binance_us/symbols/refresh", headers=headers
    ) as response:
        body = await response.json()
    assert response.status == 200, body
    assert body["exchange"] == "binance_us" and body["status"] == "refreshed"
    assert body["listed"] > 0 and body["coingecko_error"] is None
    listing = await _get(sim_client, "/api/exchanges/binance_us/symbols", world.admin_token)
    assert listing["total"] == body["listed"]
    ranks = [item["volume_rank"] for item in listing["items"]]
    assert ranks == sorted(ranks) and ranks[0] == 1
    assert listing["items"][0]["tier"] == "1"
