"""Fixtures: the api served on a real port against the session's PostgreSQL and Redis."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from livermore_api import ApiConfig, create_app
from livermore_api.auth import issue_token, revoke_token
from livermore_api.users import create_user
from livermore_schema.db import async_session_factory, create_async_engine
from livermore_schema.settings import (
    ApiSettings,
    DatabaseSettings,
    EndpointSettings,
    RedisSettings,
)
from livermore_schema.tables import ExchangeSymbol, Position, UserExchange

PRESENT_ENV = "LIVERMORE_TEST_PRESENT_KEY"
PRODUCTS: dict[int, tuple[str, ...]] = {1: ("BTC-USD", "ETH-USD", "SOL-USD"), 2: ("BTCUSDT",)}
"""Active products the watchlist and position tests use (symbols are validated against them)."""
ABSENT_ENV = "LIVERMORE_TEST_ABSENT_SECRET"


@pytest.fixture
def api_config(pg_settings: DatabaseSettings, redis_settings: RedisSettings) -> ApiConfig:
    return ApiConfig(
        api=ApiSettings(
            host="127.0.0.1", port=8080, command_timeout_s=5.0, account_env_prefix="LIVERMORE_TEST_"
        ),
        database=pg_settings,
        redis=redis_settings,
        environ={PRESENT_ENV: "never-returned-value"},
        stream_ping_s=0.5,
    )


@pytest.fixture
async def client(api_config: ApiConfig, redis: Redis) -> AsyncIterator[TestClient[Any, Any]]:
    server = TestServer(create_app(api_config), host="127.0.0.1")
    async with TestClient(server) as test_client:
        yield test_client


@pytest.fixture
async def sim_client(api_config: ApiConfig, redis: Redis) -> AsyncIterator[TestClient[Any, Any]]:
    """The api with its exchange and CoinGecko endpoints pointed at a running simulator."""
    from livermore_exchange_sim.testing import running_sim

    async with running_sim(seed=11, speed=0.001, start_ms=1_717_200_030_000) as sim:
        fields = EndpointSettings.model_fields
        values = {k.removeprefix("LIVERMORE_").lower(): v for k, v in sim.env.items()}
        endpoints = EndpointSettings.model_validate(
            {k: v for k, v in values.items() if k in fields}
        )
        config = dataclasses.replace(api_config, endpoints=endpoints)
        async with TestClient(TestServer(create_app(config), host="127.0.0.1")) as test_client:
            yield test_client


@dataclass
class World:
    """Users and resources for authorization tests (fresh names per test)."""

    owner_id: int
    owner_token: str
    other_id: int
    other_token: str
    admin_id: int
    admin_token: str
    revoked_token: str
    spare_token_id: int
    account_id: int
    position_id: int
    suffix: str

    @staticmethod
    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def world(pg_settings: DatabaseSettings) -> AsyncIterator[World]:
    engine = create_async_engine(pg_settings)
    suffix = uuid.uuid4().hex[:8]
    try:
        async with async_session_factory(engine)() as db:
            owner, owner_tok = await create_user(db, f"owner{suffix}", None, admin=False)
            other, other_tok = await create_user(db, f"other{suffix}", None, admin=False)
            admin, admin_tok = await create_user(db, f"admin{suffix}", None, admin=True)
            assert owner.id and other.id and admin.id
            revoked = await issue_token(db, owner.id, "revoked")
            await revoke_token(db, revoked.token_id)
            spare = await issue_token(db, owner.id, "spare")
            account = UserExchange(
                user_id=owner.id,
                exchange_id=1,
                api_key_env_var=PRESENT_ENV,
                api_secret_env_var=ABSENT_ENV,
            )
            position = Position(
                user_id=owner.id, exchange_id=1, symbol="BTC-USD", quantity=Decimal("1.5")
            )
            await _ensure_products(db)
            owner.settings = {"version": 1, "watchlist": {"coinbase": ["ETH-USD"]}}
            db.add_all([account, position, owner])
            await db.commit()
            assert account.id and position.id
            yield World(
                owner_id=owner.id,
                owner_token=owner_tok.token,
                other_id=other.id,
                other_token=other_tok.token,
                admin_id=admin.id,
                admin_token=admin_tok.token,
                revoked_token=revoked.token,
                spare_token_id=spare.token_id,
                account_id=account.id,
                position_id=position.id,
                suffix=suffix,
            )
    finally:
        await engine.dispose()


async def _ensure_products(db: Any) -> None:
    """Insert the `PRODUCTS` rows that are missing (other tests may have removed them)."""
    from sqlmodel import col, select

    for exchange_id, symbols in PRODUCTS.items():
        rows = await db.exec(
            select(ExchangeSymbol.symbol).where(
                col(ExchangeSymbol.exchange_id) == exchange_id,
                col(ExchangeSymbol.symbol).in_(symbols),
            )
        )
        present = set(rows.all())
        for symbol in symbols:
            if symbol in present:
                continue
            base = symbol.split("-")[0].removesuffix("USDT")
            quote = "USDT" if symbol.endswith("USDT") else "USD"
            db.add(
                ExchangeSymbol(
                    exchange_id=exchange_id,
                    symbol=symbol,
                    base_currency=base,
                    quote_currency=quote,
                    is_active=True,
                )
            )
