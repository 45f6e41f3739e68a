"""SymbolSourceService against a real PostgreSQL database: tiers, de-duplication, sources."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from livermore_exchange_core.symbols import (
    SymbolSource,
    SymbolSourceService,
    UnknownUserError,
    UserContext,
    load_exchange_users,
    load_user_context,
    watchlist_symbols,
)
from livermore_schema.db import async_session_factory, create_async_engine
from livermore_schema.enums import SymbolTier
from livermore_schema.settings import DatabaseSettings
from livermore_schema.tables import ExchangeSymbol, Position, User, UserExchange

COINBASE, BINANCE = 1, 2


@pytest.fixture
async def sessions(
    pg_settings: DatabaseSettings,
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A session factory on the test database, with this module's rows removed afterwards."""
    engine: AsyncEngine = create_async_engine(pg_settings)
    factory = async_session_factory(engine)
    try:
        yield factory
    finally:
        async with factory() as session:
            await session.exec(delete(Position))
            await session.exec(delete(UserExchange))
            await session.exec(delete(ExchangeSymbol))
            await session.exec(delete(User).where(col(User.username).startswith("symsrc-")))
            await session.commit()
        await engine.dispose()


def _symbol(
    exchange_id: int, symbol: str, rank: int | None, *, active: bool = True
) -> ExchangeSymbol:
    base = symbol.split("-")[0].removesuffix("USDT")
    return ExchangeSymbol(
        exchange_id=exchange_id,
        symbol=symbol,
        base_currency=base,
        quote_currency="USD",
        volume_rank=rank,
        is_active=active,
    )


async def _user(
    factory: async_sessionmaker[AsyncSession], name: str, watchlist: dict[str, list[str]]
) -> int:
    async with factory() as session:
        user = User(
            username=f"symsrc-{name}-{uuid.uuid4().hex[:6]}",
            email=f"{name}-{uuid.uuid4().hex[:6]}@example.test",
            settings={"version": 1, "watchlist": watchlist},
        )
        session.add(user)
        await session.commit()
        assert user.id is not None
        return user.id


async def _seed(factory: async_sessionmaker[AsyncSession], *rows: object) -> None:
    async with factory() as session:
        session.add_all(rows)
        await session.commit()


async def test_tier1_is_active_symbols_within_the_volume_rank_limit(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await _seed(
        sessions,
        _symbol(COINBASE, "ETH-USD", 2),
        _symbol(COINBASE, "BTC-USD", 1),
        _symbol(COINBASE, "SOL-USD", 3),
        _symbol(COINBASE, "DEAD-USD", 1, active=False),
        _symbol(COINBASE, "NORANK-USD", None),
        _symbol(BINANCE, "BTCUSDT", 1),
    )
    found = await SymbolSourceService(sessions, tier1_limit=2).merged(COINBASE, [])
    assert [s.symbol for s in found] == ["BTC-USD", "ETH-USD"]
    assert all(s.tier is SymbolTier.TIER_1 for s in found)
    assert all(s.sources == {SymbolSource.EXCHANGE_VOLUME} and s.user_id is None for s in found)
    assert [s.volume_rank for s in found] == [1, 2]


async def test_user_symbols_outside_tier1_are_tier2_and_inside_use_the_shared_pool(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await _seed(sessions, _symbol(COINBASE, "BTC-USD", 1), _symbol(COINBASE, "ETH-USD", 2))
    alice = await _user(sessions, "alice", {"coinbase": ["eth-usd", "DOGE-USD"], "binance": ["X"]})
    bob = await _user(sessions, "bob", {"coinbase": ["DOGE-USD", "ADA-USD"]})
    await _seed(
        sessions,
        Position(user_id=alice, exchange_id=COINBASE, symbol="BTC-USD", quantity=Decimal("1")),
        Position(user_id=alice, exchange_id=COINBASE, symbol="SOL-USD", quantity=Decimal("2")),
        Position(user_id=alice, exchange_id=COINBASE, symbol="ZERO-USD", quantity=Decimal("0")),
        Position(user_id=bob, exchange_id=BINANCE, symbol="BNBUSDT", quantity=Decimal("3")),
    )
    users = [UserContext(alice, "alice"), UserContext(bob, "bob")]
    found = {s.symbol: s for s in await SymbolSourceService(sessions).merged(COINBASE, users)}

    assert set(found) == {"BTC-USD", "ETH-USD", "SOL-USD", "DOGE-USD", "ADA-USD"}
    btc, eth = found["BTC-USD"], found["ETH-USD"]
    assert btc.tier is SymbolTier.TIER_1 and btc.user_id is None
    assert btc.sources == {SymbolSource.EXCHANGE_VOLUME, SymbolSource.USER_POSITION}
    assert eth.sources == {SymbolSource.EXCHANGE_VOLUME, SymbolSource.USER_WATCHLIST}
    sol, doge, ada = found["SOL-USD"], found["DOGE-USD"], found["ADA-USD"]
    assert (sol.tier, sol.user_id, sol.sources) == (
        SymbolTier.TIER_2,
        alice,
        frozenset({SymbolSource.USER_POSITION}),
    )
    assert (doge.tier, doge.user_id) == (SymbolTier.TIER_2, alice)  # first user reads
    assert doge.holders == (alice, bob)  # streamed once, written to both users' keys
    assert (ada.tier, ada.user_id, ada.holders) == (SymbolTier.TIER_2, bob, (bob,))
    assert btc.holders == () and eth.holders == ()  # Tier 1 overlap: shared pool only


async def test_load_exchange_users_is_every_active_user_with_an_active_account(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    alice = await _user(sessions, "alice", {})
    bob = await _user(sessions, "bob", {})
    carol = await _user(sessions, "carol", {})
    dave = await _user(sessions, "dave", {})
    async with sessions() as session:
        gone = await session.get(User, dave)
        assert gone is not None
        gone.is_active = False
        session.add(gone)
        await session.commit()
    await _seed(
        sessions,
        UserExchange(user_id=carol, exchange_id=COINBASE, api_key_env_var="C_KEY"),
        UserExchange(user_id=alice, exchange_id=COINBASE),
        UserExchange(user_id=bob, exchange_id=COINBASE, is_active=False),
        UserExchange(user_id=bob, exchange_id=BINANCE),
        UserExchange(user_id=dave, exchange_id=COINBASE),
    )
    served = await load_exchange_users(sessions, COINBASE)
    assert [u.user_id for u in served] == sorted([alice, carol])
    assert all(u.has_account for u in served)
    assert {u.user_id: u.api_key_env_var for u in served}[carol] == "C_KEY"


async def test_load_user_context_reads_the_account_env_var_names(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    carol = await _user(sessions, "carol", {})
    await _seed(
        sessions,
        UserExchange(
            user_id=carol,
            exchange_id=COINBASE,
            api_key_env_var="CAROL_CB_KEY",
            api_secret_env_var="CAROL_CB_SECRET",
        ),
    )
    async with sessions() as session:
        name = (await session.get(User, carol)).username  # type: ignore[union-attr]
    on_coinbase = await load_user_context(sessions, name, COINBASE)
    assert on_coinbase.user_id == carol and on_coinbase.has_account
    assert on_coinbase.api_key_env_var == "CAROL_CB_KEY"
    on_binance = await load_user_context(sessions, name, BINANCE)
    assert not on_binance.has_account and on_binance.api_key_env_var is None
    with pytest.raises(UnknownUserError):
        await load_user_context(sessions, "symsrc-nobody", COINBASE)


def test_watchlist_symbols_tolerates_malformed_settings() -> None:
    assert watchlist_symbols({"watchlist": {"coinbase": [" btc-usd ", 3, ""]}}, "coinbase") == [
        "BTC-USD"
    ]
    assert watchlist_symbols({"watchlist": ["BTC"]}, "coinbase") == []
    assert watchlist_symbols(None, "coinbase") == []


def test_tier1_limit_must_be_positive(sessions: async_sessionmaker[AsyncSession]) -> None:
    with pytest.raises(ValueError, match="tier1_limit"):
        SymbolSourceService(sessions, tier1_limit=0)
