"""Remote signals on local symbols over the api: `asset=` and `mine=true` on streams and history."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis
from sqlalchemy import delete

from livermore_api.users import create_user
from livermore_cache.pubsub import Publisher
from livermore_schema.alerts import AlertEvent
from livermore_schema.db import async_session_factory, create_async_engine
from livermore_schema.enums import AlertType
from livermore_schema.settings import CacheSettings, DatabaseSettings
from livermore_schema.tables import AlertHistory, ExchangeSymbol

from .helpers import alert
from .test_streams import _sse_events

LISTED = [
    (1, "BTC-USD", "BTC", "USD", "bitcoin"),
    (2, "BTCUSDT", "BTC", "USDT", "bitcoin"),
    (1, "ETH-USD", "ETH", "USD", "ethereum"),
    (2, "ETHUSDT", "ETH", "USDT", "ethereum"),
]


@dataclass
class Traders:
    """Kaia watches BTCUSDT on Binance; Eve watches only ETH-USD on Coinbase."""

    kaia_token: str
    eve_token: str


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def traders(pg_settings: DatabaseSettings) -> AsyncIterator[Traders]:
    engine = create_async_engine(pg_settings)
    suffix = uuid.uuid4().hex[:8]
    sessions = async_session_factory(engine)
    try:
        async with sessions() as db:
            await db.exec(delete(ExchangeSymbol))
            await db.exec(delete(AlertHistory))  # an earlier app's writer may land rows late
            for exchange_id, symbol, base, quote, coingecko_id in LISTED:
                db.add(ExchangeSymbol(
                    exchange_id=exchange_id, symbol=symbol, base_currency=base,
                    quote_currency=quote, coingecko_id=coingecko_id,
                ))  # fmt: skip
            kaia, kaia_token = await create_user(db, f"kaia{suffix}", None, admin=False)
            eve, eve_token = await create_user(db, f"eve{suffix}", None, admin=False)
            kaia.settings = {"watchlist": {"binance": ["BTCUSDT"]}}
            eve.settings = {"watchlist": {"coinbase": ["ETH-USD"]}}
            await db.commit()
        yield Traders(kaia_token.token, eve_token.token)
    finally:
        async with sessions() as db:
            await db.exec(delete(ExchangeSymbol))
            await db.exec(delete(AlertHistory))
            await db.commit()
        await engine.dispose()


def _asset(event: AlertEvent, asset: str, quote: str = "USD") -> AlertEvent:
    return event.model_copy(update={"asset": asset, "quote": quote})


async def test_sse_mine_gets_remote_alerts_on_local_symbols_and_nothing_else(
    client: TestClient[Any, Any], traders: Traders, redis: Redis
) -> None:
    publisher = Publisher(redis, CacheSettings())
    btc = _asset(alert(1, "BTC-USD"), "bitcoin")
    eth = _asset(alert(2, "ETHUSDT"), "ethereum", "USDT")
    async with (
        client.get(
            "/api/alerts/stream", params={"mine": "true"}, headers=_bearer(traders.kaia_token)
        ) as kaia,
        client.get(
            "/api/alerts/stream", params={"mine": "true"}, headers=_bearer(traders.eve_token)
        ) as eve,
    ):
        kaia_ready = await asyncio.wait_for(_sse_events(kaia, 1), 10)
        eve_ready = await asyncio.wait_for(_sse_events(eve, 1), 10)
        for event in (btc, eth):
            await publisher.publish_alert(event)
        (kaia_got,) = await asyncio.wait_for(_sse_events(kaia, 1), 10)
        (eve_got,) = await asyncio.wait_for(_sse_events(eve, 1), 10)

    assert json.loads(kaia_ready[0][1])["mine"] == ["bitcoin"]
    assert json.loads(eve_ready[0][1])["mine"] == ["ethereum"]
    got = json.loads(kaia_got[1])
    assert (got["id"], got["source_exchange_name"], got["symbol"]) == (
        str(btc.id),
        "coinbase",
        "BTC-USD",
    )
    assert got["local"] == [{"exchange": "binance", "symbol": "BTCUSDT"}]
    assert json.loads(eve_got[1])["id"] == str(eth.id)  # the BTC alert before it never came
    assert json.loads(eve_got[1])["local"] == [{"exchange": "coinbase", "symbol": "ETH-USD"}]


async def test_websocket_asset_filter_takes_base_currencies(
    client: TestClient[Any, Any], traders: Traders, redis: Redis
) -> None:
    publisher = Publisher(redis, CacheSettings())
    eth = _asset(alert(1, "ETH-USD"), "ethereum")
    btc = _asset(alert(2, "BTCUSDT"), "bitcoin", "USDT")
    ws = await client.ws_connect("/ws/alerts", params={"asset": "btc", "token": traders.eve_token})
    try:
        ready = await ws.receive_json(timeout=10)
        for event in (eth, btc):
            await publisher.publish_alert(event)
        frame = await ws.receive_json(timeout=10)
    finally:
        await ws.close()
    assert ready == {"type": "ready", "exchanges": None, "assets": ["bitcoin"]}
    assert frame["alert"]["id"] == str(btc.id) and frame["alert"]["local"] is None


async def test_the_api_publishes_one_confluence_that_mine_subscribers_get(
    client: TestClient[Any, Any], traders: Traders, redis: Redis
) -> None:
    publisher = Publisher(redis, CacheSettings())
    first = _asset(alert(1, "BTC-USD"), "bitcoin")
    later = first.triggered_at + timedelta(minutes=15)  # one 15m bar
    second = _asset(alert(2, "BTCUSDT"), "bitcoin", "USDT").model_copy(
        update={"triggered_at": later}
    )
    async with client.get(
        "/api/alerts/stream", params={"mine": "true"}, headers=_bearer(traders.kaia_token)
    ) as kaia:
        await asyncio.wait_for(_sse_events(kaia, 1), 10)
        await publisher.publish_alert(first)
        await publisher.publish_alert(second)
        got = await asyncio.wait_for(_sse_events(kaia, 3), 10)

    events = [AlertEvent.model_validate_json(data) for _, data in got]
    assert [e.alert_type for e in events] == [
        AlertType.MACDV,
        AlertType.MACDV,
        AlertType.CONFLUENCE,
    ]
    confluence = events[2]
    assert [(v.exchange, v.symbol) for v in confluence.venues or []] == [
        ("coinbase", "BTC-USD"),
        ("binance", "BTCUSDT"),
    ]
    assert confluence.local is not None and confluence.local[0].symbol == "BTCUSDT"


async def test_history_filters_by_asset_and_mine(
    client: TestClient[Any, Any], traders: Traders, pg_settings: DatabaseSettings
) -> None:
    engine = create_async_engine(pg_settings)
    at = datetime(2026, 12, 1, tzinfo=UTC)
    async with async_session_factory(engine)() as db:
        for offset, (exchange_id, symbol, asset) in enumerate(
            [(1, "BTC-USD", "bitcoin"), (2, "ETHUSDT", "ethereum"), (1, "SOL-USD", None)]
        ):
            db.add(AlertHistory(
                uid=uuid.uuid4(), exchange_id=exchange_id, symbol=symbol, timeframe="1m",
                alert_type="macdv", trigger_label="level_-200", trigger_value=Decimal(-210),
                price=Decimal(1), triggered_at=at + timedelta(minutes=offset), asset=asset,
                quote="USD",
            ))  # fmt: skip
        await db.commit()
    await engine.dispose()

    mine = await client.get(
        "/api/alerts", params={"mine": "true"}, headers=_bearer(traders.kaia_token)
    )
    by_asset = await client.get(
        "/api/alerts", params={"asset": "ETH,sol"}, headers=_bearer(traders.kaia_token)
    )
    bad = await client.get(
        "/api/alerts", params={"asset": "BTC;drop"}, headers=_bearer(traders.kaia_token)
    )

    assert mine.status == 200
    (item,) = (await mine.json())["items"]
    assert (item["symbol"], item["asset"], item["quote"]) == ("BTC-USD", "bitcoin", "USD")
    assert item["local"] == [{"exchange": "binance", "symbol": "BTCUSDT"}]
    assert [i["symbol"] for i in (await by_asset.json())["items"]] == ["ETHUSDT"]
    assert bad.status in (400, 422)


def test_the_openapi_document_explains_asset_mine_local_and_confluence() -> None:
    from livermore_api.openapi import build_openapi
    from livermore_api.routes import ROUTES

    doc = build_openapi(ROUTES)

    for path in ("/api/alerts", "/api/alerts/stream", "/ws/alerts"):
        params = {p["name"]: p for p in doc["paths"][path]["get"]["parameters"]}
        assert "local" in params["mine"]["description"]
        assert "bitcoin" in params["asset"]["description"]
    assert "channel:alerts:confluence" in doc["info"]["description"]
    alert_out = doc["components"]["schemas"]["AlertOut"]["properties"]
    assert {"asset", "quote", "local"} <= set(alert_out)
