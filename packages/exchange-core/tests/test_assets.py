"""Asset mapping: exchange symbols to canonical assets across venues and quote currencies."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from livermore_exchange_core.symbols import (
    AssetMap,
    AssetRef,
    ListedSymbol,
    canonical_asset,
    load_asset_map,
    split_symbol,
)
from livermore_schema.db import async_session_factory, create_async_engine
from livermore_schema.settings import DatabaseSettings
from livermore_schema.tables import ExchangeSymbol

COINBASE, BINANCE, BINANCE_US = 1, 2, 3

ROWS = [
    ListedSymbol(COINBASE, "BTC-USD", "BTC", "USD", "bitcoin"),
    ListedSymbol(COINBASE, "BTC-USDC", "BTC", "USDC", None),
    ListedSymbol(BINANCE, "BTCUSDT", "BTC", "USDT", "bitcoin"),
    ListedSymbol(BINANCE_US, "BTCUSD", "BTC", "USD", None),
    ListedSymbol(COINBASE, "ETH-USD", "ETH", "USD", "ethereum"),
    ListedSymbol(BINANCE, "ETHUSDT", "ETH", "USDT", "ethereum"),
    ListedSymbol(COINBASE, "AA1-USD", "AA1", "USD", "aa1-token"),
    ListedSymbol(BINANCE, "FOOUSDT", "foo", "usdt", None),
]


def test_usd_usdt_and_usdc_quotes_of_one_coin_map_to_one_asset() -> None:
    assets = AssetMap(ROWS)

    assert assets.of(COINBASE, "BTC-USD") == AssetRef("bitcoin", "USD")
    assert assets.of(BINANCE, "BTCUSDT") == AssetRef("bitcoin", "USDT")
    assert assets.of(COINBASE, "BTC-USDC") == AssetRef("bitcoin", "USDC")
    assert assets.of(BINANCE_US, "BTCUSD") == AssetRef("bitcoin", "USD")
    assert assets.of(BINANCE, "ETHUSDT") == AssetRef("ethereum", "USDT")


def test_an_asset_listed_on_one_venue_only_maps_there_and_nowhere_else() -> None:
    assets = AssetMap(ROWS)

    assert assets.of(COINBASE, "AA1-USD") == AssetRef("aa1-token", "USD")
    assert assets.of(BINANCE, "AA1USDT") == AssetRef("aa1-token", "USDT")  # unlisted: split
    assert assets.of(BINANCE, "AA1-USD") == AssetRef("aa1-token", "USD")
    assert len(assets) == len(ROWS)


def test_a_missing_coingecko_id_falls_back_to_the_upper_case_base() -> None:
    assets = AssetMap(ROWS)

    assert assets.of(BINANCE, "FOOUSDT") == AssetRef("FOO", "USDT")
    assert canonical_asset("doge", None) == "DOGE"
    assert canonical_asset("doge", "  ") == "DOGE"
    assert canonical_asset("doge", "dogecoin") == "dogecoin"


def test_a_symbol_without_a_row_is_split_by_its_quote() -> None:
    assets = AssetMap([])

    assert assets.of(COINBASE, "SOL-EUR") == AssetRef("SOL", "EUR")
    assert assets.of(BINANCE, "SOLFDUSD") == AssetRef("SOL", "FDUSD")
    assert assets.of(BINANCE, "SOLUSDC") == AssetRef("SOL", "USDC")
    assert assets.of(BINANCE, "USDT") is None
    assert assets.of(BINANCE, "WEIRD") is None
    assert split_symbol("ethbtc") == ("ETH", "BTC")
    assert split_symbol("-USD") is None


@pytest.fixture
async def sessions(
    pg_settings: DatabaseSettings,
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A session factory on the test database; exchange_symbols emptied before and after."""
    engine = create_async_engine(pg_settings)
    factory = async_session_factory(engine)
    async with factory() as session:
        await session.exec(delete(ExchangeSymbol))
        await session.commit()
    try:
        yield factory
    finally:
        async with factory() as session:
            await session.exec(delete(ExchangeSymbol))
            await session.commit()
        await engine.dispose()


async def test_load_asset_map_reads_one_exchange_and_borrows_ids_from_the_others(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        for row in ROWS:
            session.add(
                ExchangeSymbol(
                    exchange_id=row.exchange_id,
                    symbol=row.symbol,
                    base_currency=row.base_currency,
                    quote_currency=row.quote_currency,
                    coingecko_id=row.coingecko_id,
                    is_active=row.symbol != "BTC-USDC",
                )
            )
        await session.commit()

    worker_map = await load_asset_map(sessions, [BINANCE_US])
    everything = await load_asset_map(sessions)

    assert worker_map.of(BINANCE_US, "BTCUSD") == AssetRef("bitcoin", "USD")
    assert len(worker_map) == 6  # its own row plus the five rows that carry an id
    assert everything.of(COINBASE, "BTC-USDC") == AssetRef("bitcoin", "USDC")  # inactive too
    assert len(everything) == len(ROWS)
