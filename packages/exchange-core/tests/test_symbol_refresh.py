"""SymbolRefresh against the simulator (products, 24h volumes, CoinGecko) and a real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import aiohttp
import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from livermore_exchange_core.backoff import BackoffPolicy
from livermore_exchange_core.base import ProductInfo
from livermore_exchange_core.symbols.coingecko import CoinGeckoClient
from livermore_exchange_core.symbols.refresh import (
    RefreshStatus,
    SymbolRefresh,
    rank_products,
    select_products,
)
from livermore_exchange_sim.assets import ASSETS_BY_BASE, Venue
from livermore_exchange_sim.faults import RestMode
from livermore_exchange_sim.testing import RunningSim, running_sim
from livermore_schema.db import async_session_factory, create_async_engine
from livermore_schema.enums import ExchangeName
from livermore_schema.settings import DatabaseSettings, EndpointSettings
from livermore_schema.tables import ExchangeSymbol

Sessions = async_sessionmaker[AsyncSession]
START_MS = 1_717_200_030_000  # mid-minute, so a near-frozen clock never crosses a minute
FROZEN = 0.001  # sim speed: 1 simulated ms per real second, so volumes hold still
EXCHANGE_IDS = {ExchangeName.COINBASE: 1, ExchangeName.BINANCE: 2, ExchangeName.BINANCE_US: 3}
FAST_RETRY = BackoffPolicy(base_s=0.01, factor=1.0, cap_s=0.01, jitter=0.0, max_attempts=1)


@pytest.fixture
async def sessions(pg_settings: DatabaseSettings) -> AsyncIterator[Sessions]:
    """A session factory on the test database; exchange_symbols is emptied before and after."""
    engine = create_async_engine(pg_settings)
    factory = async_session_factory(engine)

    async def wipe() -> None:
        async with factory() as session:
            await session.exec(delete(ExchangeSymbol))
            await session.commit()

    await wipe()
    try:
        yield factory
    finally:
        await wipe()
        await engine.dispose()


def endpoints_of(env: Mapping[str, str]) -> EndpointSettings:
    """EndpointSettings from a sim's LIVERMORE_* overrides (only the endpoint fields)."""
    fields = EndpointSettings.model_fields
    values = {k.removeprefix("LIVERMORE_").lower(): v for k, v in env.items()}
    return EndpointSettings.model_validate({k: v for k, v in values.items() if k in fields})


def refresher(
    sessions: Sessions, sim: RunningSim, http: aiohttp.ClientSession, **coingecko: object
) -> SymbolRefresh:
    """A SymbolRefresh wired to `sim` (CoinGecko paced fast for tests)."""
    options: dict[str, object] = {"min_interval_s": 0.01, "retry": FAST_RETRY, **coingecko}
    client = CoinGeckoClient(http, sim.coingecko_url, **options)  # type: ignore[arg-type]
    return SymbolRefresh(sessions, http, endpoints_of(sim.env), client)


async def rows_of(sessions: Sessions, exchange_id: int) -> list[ExchangeSymbol]:
    """Every exchange_symbols row of one exchange, active by volume rank first."""
    async with sessions() as session:
        query = select(ExchangeSymbol).where(col(ExchangeSymbol.exchange_id) == exchange_id)
        rows = list((await session.exec(query)).all())
    return sorted(rows, key=lambda r: (not r.is_active, r.volume_rank or 0, r.symbol))


def sim_volume_order(sim: RunningSim, venue: Venue) -> list[str]:
    """The sim's products of `venue`, highest 24h quote volume first."""
    products = sim.market.products(venue)
    return [p.symbol for p in sorted(products, key=lambda p: -p.quote_volume_24h)]


async def test_refresh_all_ranks_by_volume_and_market_cap(sessions: Sessions) -> None:
    async with (
        running_sim(seed=11, speed=FROZEN, start_ms=START_MS) as sim,
        aiohttp.ClientSession() as http,
    ):
        report = await refresher(sessions, sim, http).refresh()
        expected = {name: sim_volume_order(sim, Venue(name.value)) for name in EXCHANGE_IDS}
        volumes = {p.symbol: p.quote_volume_24h for p in sim.market.products(Venue.BINANCE)}

    assert report.errors == {}
    for name in (ExchangeName.KRAKEN, ExchangeName.KUCOIN, ExchangeName.MEXC):
        assert report.result(name).status is RefreshStatus.SKIPPED
    for name, exchange_id in EXCHANGE_IDS.items():
        result = report.result(name)
        rows = await rows_of(sessions, exchange_id)
        assert result.status is RefreshStatus.REFRESHED
        assert result.added == len(rows) == len(expected[name]) == 17
        assert [r.symbol for r in rows] == expected[name]
        assert [r.volume_rank for r in rows] == list(range(1, 18))
        assert all(r.is_active and r.last_volume_update is not None for r in rows)
        for row in rows:
            asset = ASSETS_BY_BASE[row.base_currency]
            assert row.global_rank == asset.market_cap_rank
            assert row.coingecko_id == asset.coingecko_id and row.display_name == asset.name
            assert row.market_cap is not None and row.market_cap > 0
    binance_rows = await rows_of(sessions, 2)
    assert all(r.quote_currency == "USDT" and r.symbol.endswith("USDT") for r in binance_rows)
    for row in binance_rows:
        assert float(row.volume_24h or 0) == pytest.approx(volumes[row.symbol], rel=1e-6)
    coinbase_rows = await rows_of(sessions, 1)
    assert coinbase_rows[0].symbol == "BTC-USD" and coinbase_rows[0].quote_currency == "USD"


async def test_second_run_updates_in_place_and_delisted_products_deactivate(
    sessions: Sessions,
) -> None:
    async with (
        running_sim(seed=11, speed=FROZEN, start_ms=START_MS) as sim,
        aiohttp.ClientSession() as http,
    ):
        refresh = refresher(sessions, sim, http)
        first = await refresh.refresh(ExchangeName.COINBASE)
        ids = {r.symbol: r.id for r in await rows_of(sessions, 1)}
        second = await refresh.refresh(ExchangeName.COINBASE)
    assert [e.exchange for e in first.exchanges] == [ExchangeName.COINBASE]
    assert (first.added, first.updated, first.deactivated) == (17, 0, 0)
    assert (second.added, second.updated, second.deactivated) == (0, 17, 0)
    assert {r.symbol: r.id for r in await rows_of(sessions, 1)} == ids

    async with (
        running_sim(seed=11, speed=FROZEN, start_ms=START_MS, symbols=["ETH", "BTC", "SOL"]) as sim,
        aiohttp.ClientSession() as http,
    ):
        third = await refresher(sessions, sim, http).refresh(ExchangeName.COINBASE)
        expected = sim_volume_order(sim, Venue.COINBASE)
    assert (third.added, third.updated, third.deactivated) == (0, 3, 14)
    rows = await rows_of(sessions, 1)
    active = [r for r in rows if r.is_active]
    assert [r.symbol for r in active] == expected and [r.volume_rank for r in active] == [1, 2, 3]
    assert len(rows) == 17 and {r.id for r in rows} == set(ids.values())
    assert all(r.volume_rank is None for r in rows if not r.is_active)


async def test_kraken_is_skipped_not_a_crash(sessions: Sessions) -> None:
    async with running_sim(seed=11, speed=FROZEN) as sim, aiohttp.ClientSession() as http:
        report = await refresher(sessions, sim, http).refresh(ExchangeName.KRAKEN)
    result = report.result(ExchangeName.KRAKEN)
    assert result.status is RefreshStatus.SKIPPED and "no Livermore client" in (result.error or "")
    assert report.errors == {} and await rows_of(sessions, 4) == []


async def test_geo_blocked_binance_fails_alone(sessions: Sessions) -> None:
    async with (
        running_sim(seed=11, speed=FROZEN, start_ms=START_MS) as sim,
        aiohttp.ClientSession() as http,
    ):
        sim.faults.set_rest(Venue.BINANCE, RestMode.GEO_BLOCKED, count=None)
        report = await refresher(sessions, sim, http).refresh()
    assert set(report.errors) == {"binance"}
    assert "451" in report.errors["binance"]
    assert report.result(ExchangeName.BINANCE).status is RefreshStatus.FAILED
    assert report.result(ExchangeName.COINBASE).added == 17
    assert report.result(ExchangeName.BINANCE_US).added == 17
    assert await rows_of(sessions, 2) == []


async def test_bases_missing_from_coingecko_are_listed_without_global_rank(
    sessions: Sessions,
) -> None:
    async with (
        running_sim(seed=11, speed=FROZEN, start_ms=START_MS) as sim,
        aiohttp.ClientSession() as http,
    ):
        report = await refresher(sessions, sim, http, per_page=5, pages=1).refresh(
            ExchangeName.COINBASE
        )
    rows = await rows_of(sessions, 1)
    assert report.errors == {} and len(rows) == 17
    ranked = {r.base_currency for r in rows if r.global_rank is not None}
    assert ranked == {"BTC", "ETH", "SOL", "XRP", "DOGE"}
    unranked = [r for r in rows if r.global_rank is None]
    assert all(r.coingecko_id is None and r.display_name == r.base_currency for r in unranked)
    assert sorted(r.volume_rank or 0 for r in rows) == list(range(1, 18))


async def test_coingecko_outage_refreshes_volumes_and_keeps_global_ranks(
    sessions: Sessions,
) -> None:
    async with (
        running_sim(seed=11, speed=FROZEN, start_ms=START_MS) as sim,
        aiohttp.ClientSession() as http,
    ):
        await refresher(sessions, sim, http).refresh(ExchangeName.COINBASE)
        before = {r.symbol: (r.global_rank, r.coingecko_id) for r in await rows_of(sessions, 1)}
        broken = CoinGeckoClient(
            http, sim.base_url + "/nowhere", min_interval_s=0.01, retry=FAST_RETRY
        )
        report = await SymbolRefresh(sessions, http, endpoints_of(sim.env), broken).refresh(
            ExchangeName.COINBASE
        )
    assert set(report.errors) == {"coingecko"}
    assert report.result(ExchangeName.COINBASE).updated == 17
    after = {r.symbol: (r.global_rank, r.coingecko_id) for r in await rows_of(sessions, 1)}
    assert after == before and all(rank is not None for rank, _ in after.values())


def _product(symbol: str, base: str, quote: str, volume: float, **extra: object) -> ProductInfo:
    return ProductInfo(symbol, base, quote, volume, **extra)  # type: ignore[arg-type]


def test_select_products_prefers_usd_then_usdt_and_skips_stables_and_halted() -> None:
    chosen = select_products(
        [
            _product("BTC-USDT", "BTC", "USDT", 9e9),
            _product("BTC-USD", "BTC", "USD", 1e6),
            _product("BTC-USDC", "BTC", "USDC", 5e9),
            _product("ETHUSDT", "ETH", "USDT", 3e6),
            _product("ETHBTC", "ETH", "BTC", 8e6),
            _product("USDT-USD", "USDT", "USD", 7e9),
            _product("OLD-USD", "OLD", "USD", 1e9, is_trading=False),
            _product("SOL-USDT", "SOL", "USDT", 2e6),
            _product("SOLUSDT", "SOL", "USDT", 4e6),
        ]
    )
    assert sorted(p.symbol for p in chosen) == ["BTC-USD", "ETHUSDT", "SOLUSDT"]


def test_rank_products_orders_by_volume_with_symbol_tiebreak() -> None:
    listings = rank_products(
        [
            _product("A-USD", "A", "USD", 5.0),
            _product("C-USD", "C", "USD", 9.0),
            _product("B-USD", "B", "USD", 5.0),
        ],
        None,
    )
    assert [(x.product.symbol, x.volume_rank) for x in listings] == [
        ("C-USD", 1),
        ("A-USD", 2),
        ("B-USD", 3),
    ]
    assert all(x.coin is None for x in listings)
