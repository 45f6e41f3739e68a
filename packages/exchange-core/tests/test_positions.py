"""PositionSync against the simulator's signed account endpoints and a real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from decimal import Decimal

import aiohttp
import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from livermore_exchange_core.base import Balance, ProductInfo
from livermore_exchange_core.symbols.positions import PositionSync, SyncOutcome, value_balances
from livermore_exchange_sim.assets import Venue
from livermore_exchange_sim.testing import RunningSim, running_sim
from livermore_schema.db import async_session_factory, create_async_engine
from livermore_schema.settings import DatabaseSettings, EndpointSettings
from livermore_schema.tables import Position, User, UserExchange

Sessions = async_sessionmaker[AsyncSession]
COINBASE, BINANCE = 1, 2
KEY_VAR, SECRET_VAR = "LIVERMORE_TEST_KEY", "LIVERMORE_TEST_SECRET"


@pytest.fixture
async def sessions(pg_settings: DatabaseSettings) -> AsyncIterator[Sessions]:
    """A session factory on the test database; this module's users (and their rows) removed."""
    engine = create_async_engine(pg_settings)
    factory = async_session_factory(engine)
    try:
        yield factory
    finally:
        async with factory() as session:
            await session.exec(delete(User).where(col(User.username).startswith("possync-")))
            await session.commit()
        await engine.dispose()


async def new_user(sessions: Sessions, exchange_id: int, *, with_vars: bool = True) -> int:
    """Create a user with an account on `exchange_id` naming the test credential env vars."""
    async with sessions() as session:
        tag = uuid.uuid4().hex[:8]
        user = User(username=f"possync-{tag}", email=f"possync-{tag}@example.test")
        session.add(user)
        await session.flush()
        assert user.id is not None
        account = UserExchange(
            user_id=user.id,
            exchange_id=exchange_id,
            api_key_env_var=KEY_VAR if with_vars else None,
            api_secret_env_var=SECRET_VAR if with_vars else None,
        )
        session.add(account)
        await session.commit()
        return user.id


async def add_position(
    sessions: Sessions, user_id: int, exchange_id: int, symbol: str, cost: str | None = None
) -> None:
    """Insert one position row."""
    async with sessions() as session:
        session.add(
            Position(
                user_id=user_id,
                exchange_id=exchange_id,
                symbol=symbol,
                quantity=Decimal("1"),
                cost_basis=Decimal(cost) if cost else None,
            )
        )
        await session.commit()


async def positions_of(sessions: Sessions, user_id: int, exchange_id: int) -> dict[str, Position]:
    """The user's positions on one exchange by symbol."""
    async with sessions() as session:
        query = select(Position).where(
            col(Position.user_id) == user_id, col(Position.exchange_id) == exchange_id
        )
        return {p.symbol: p for p in (await session.exec(query)).all()}


def endpoints_of(env: Mapping[str, str]) -> EndpointSettings:
    """EndpointSettings from a sim's LIVERMORE_* overrides (only the endpoint fields)."""
    fields = EndpointSettings.model_fields
    values = {k.removeprefix("LIVERMORE_").lower(): v for k, v in env.items()}
    return EndpointSettings.model_validate({k: v for k, v in values.items() if k in fields})


def coinbase_environ(sim: RunningSim) -> dict[str, str]:
    """The env vars holding the sim's generated CDP key (PEM newlines escaped, as in .env)."""
    assert sim.coinbase_key is not None
    return {
        KEY_VAR: sim.coinbase_key.name,
        SECRET_VAR: sim.coinbase_key.private_pem.replace("\n", "\\n"),
    }


async def test_coinbase_positions_synced_dust_and_fiat_ignored_stale_removed(
    sessions: Sessions,
) -> None:
    user_id = await new_user(sessions, COINBASE)
    await add_position(sessions, user_id, COINBASE, "BTC-USD", cost="20000")
    await add_position(sessions, user_id, COINBASE, "ADA-USD")
    async with running_sim(seed=5, speed=1.0) as sim, aiohttp.ClientSession() as http:
        sync = PositionSync(sessions, endpoints_of(sim.env), http_session=http)
        report = await sync.sync(user_id, COINBASE, coinbase_environ(sim))
    assert report.outcome is SyncOutcome.SYNCED, report.message
    assert (report.added, report.updated, report.removed) == (2, 1, 1)
    assert report.valuation.dust == ["DOGE", "XRP"] and report.valuation.stable == ["USD"]
    rows = await positions_of(sessions, user_id, COINBASE)
    assert set(rows) == {"BTC-USD", "ETH-USD", "SOL-USD"}
    assert rows["BTC-USD"].quantity == Decimal("0.5123")
    assert rows["ETH-USD"].available_quantity == Decimal("3.2")
    assert rows["SOL-USD"].quantity == Decimal("40")
    assert rows["BTC-USD"].cost_basis == Decimal("20000")  # the exchange has no cost basis
    assert all(p.last_synced_at is not None for p in rows.values())


async def test_binance_positions_synced_with_hmac_credentials(sessions: Sessions) -> None:
    user_id = await new_user(sessions, BINANCE)
    environ = {KEY_VAR: "livermore-sim-binance-key", SECRET_VAR: "livermore-sim-binance-secret"}
    async with running_sim(seed=5, speed=1.0) as sim, aiohttp.ClientSession() as http:
        products = sim.market.products(Venue.BINANCE)
        report = await PositionSync(sessions, endpoints_of(sim.env), http_session=http).sync(
            user_id, BINANCE, environ
        )
    assert report.outcome is SyncOutcome.SYNCED, report.message
    held = {p.symbol for p in products[:3]}  # the sim holds ~$1000 of its first three products
    assert set(await positions_of(sessions, user_id, BINANCE)) == held
    assert {h.symbol for h in report.valuation.held} == held
    assert all(500 < h.value_usd < 2000 for h in report.valuation.held)
    dust = {p.base for i, p in enumerate(products) if i >= 3 and i % 2}
    assert set(report.valuation.dust) == dust and report.valuation.stable == ["USDT"]


async def test_without_credentials_positions_are_api_managed(sessions: Sessions) -> None:
    user_id = await new_user(sessions, COINBASE)
    bare_user = await new_user(sessions, BINANCE, with_vars=False)
    await add_position(sessions, user_id, COINBASE, "ADA-USD")
    async with running_sim(seed=5, speed=1.0) as sim, aiohttp.ClientSession() as http:
        sync = PositionSync(sessions, endpoints_of(sim.env), http_session=http)
        unset = await sync.sync(user_id, COINBASE, {"UNRELATED": "x"})
        no_vars = await sync.sync(bare_user, BINANCE, coinbase_environ(sim))
        no_account = await sync.sync(user_id, BINANCE, coinbase_environ(sim))
    assert unset.outcome is SyncOutcome.API_MANAGED
    assert KEY_VAR in unset.message and "managed through the API" in unset.message
    assert no_vars.outcome is SyncOutcome.API_MANAGED
    assert no_account.outcome is SyncOutcome.API_MANAGED and "no account" in no_account.message
    assert set(await positions_of(sessions, user_id, COINBASE)) == {"ADA-USD"}


async def test_rejected_credentials_fail_without_touching_positions(sessions: Sessions) -> None:
    user_id = await new_user(sessions, BINANCE)
    await add_position(sessions, user_id, BINANCE, "ETHUSDT")
    environ = {KEY_VAR: "livermore-sim-binance-key", SECRET_VAR: "wrong-secret"}
    async with running_sim(seed=5, speed=1.0) as sim, aiohttp.ClientSession() as http:
        report = await PositionSync(sessions, endpoints_of(sim.env), http_session=http).sync(
            user_id, BINANCE, environ
        )
    assert report.outcome is SyncOutcome.FAILED and "wrong-secret" not in report.message
    assert set(await positions_of(sessions, user_id, BINANCE)) == {"ETHUSDT"}


def test_value_balances_sorts_held_dust_stable_and_unpriced() -> None:
    products = [
        ProductInfo("BTC-USD", "BTC", "USD", 1e9, price=50_000.0),
        ProductInfo("BTC-USDT", "BTC", "USDT", 9e9, price=60_000.0),
        ProductInfo("XRP-USD", "XRP", "USD", 1e6, price=0.5),
        ProductInfo("ABC-BTC", "ABC", "BTC", 1e3, price=0.001),
    ]
    balances = [
        Balance("BTC", 0.001, 0.001),
        Balance("XRP", 3.9),
        Balance("USDC", 500.0),
        Balance("ABC", 1000.0),
    ]
    valuation = value_balances(balances, products)
    (btc,) = valuation.held
    assert (btc.symbol, btc.quantity, btc.available) == ("BTC-USD", 0.002, 0.001)
    assert btc.value_usd == pytest.approx(100.0)
    assert valuation.dust == ["XRP"] and valuation.stable == ["USDC"]
    assert valuation.unpriced == ["ABC"]
