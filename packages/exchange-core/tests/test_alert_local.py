"""Remote signals on local symbols: per-subscriber selection and the holdings it uses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from livermore_exchange_core.alerts import AlertSelection, load_holdings, select_alert
from livermore_exchange_core.symbols import AssetMap, ListedSymbol, load_asset_map
from livermore_schema.alerts import AlertEvent, ConfluenceVenue, LocalSymbol
from livermore_schema.db import async_session_factory, create_async_engine
from livermore_schema.enums import AlertDirection, AlertType, Bias, Timeframe
from livermore_schema.settings import DatabaseSettings
from livermore_schema.tables import ExchangeSymbol, Position, User

COINBASE, BINANCE = 1, 2
KAIA_BTC = (LocalSymbol(exchange="binance", symbol="BTCUSDT"),)
AT = datetime(2026, 12, 5, 7, 0, tzinfo=UTC)


def _alert(exchange_id: int = COINBASE, asset: str | None = "bitcoin", **extra: Any) -> AlertEvent:
    fields: dict[str, Any] = {
        "exchange_id": exchange_id,
        "symbol": "BTC-USD",
        "timeframe": Timeframe.M1,
        "trigger_label": "level_-200",
        "trigger_value": -210.0,
        "signal_delta": 1.0,
        "price": 90_000.0,
        "triggered_at": AT,
        "timeframes": [],
        "bias": Bias.BEARISH,
        "source_exchange_id": exchange_id,
        "source_exchange_name": "coinbase",
        "asset": asset,
        "quote": "USD",
        "direction": AlertDirection.DOWN,
    }
    return AlertEvent(**(fields | extra))


def test_mine_passes_a_remote_alert_for_a_held_asset_annotated_with_the_local_symbol() -> None:
    event = _alert()

    out = select_alert(event, AlertSelection(holdings={"bitcoin": KAIA_BTC}))

    assert out is not None and out.local == list(KAIA_BTC)
    assert out.model_dump(exclude={"local"}) == event.model_dump(exclude={"local"})
    assert event.local is None  # the shared event is never changed


def test_mine_drops_alerts_for_other_assets_and_alerts_without_an_asset() -> None:
    eth_only = AlertSelection(holdings={"ethereum": (LocalSymbol(exchange="b", symbol="E"),)})

    assert select_alert(_alert(), eth_only) is None
    assert select_alert(_alert(asset=None), AlertSelection(holdings={"bitcoin": KAIA_BTC})) is None
    assert select_alert(_alert(), AlertSelection(holdings={})) is None


def test_asset_and_exchange_filters() -> None:
    event = _alert()

    assert select_alert(event, AlertSelection()) is event
    assert select_alert(event, AlertSelection(assets=frozenset({"bitcoin"}))) is event
    assert select_alert(event, AlertSelection(assets=frozenset({"ethereum"}))) is None
    assert select_alert(event, AlertSelection(exchange_ids=frozenset({BINANCE}))) is None
    assert select_alert(event, AlertSelection(exchange_ids=frozenset({COINBASE}))) is event


def test_a_confluence_passes_an_exchange_filter_naming_any_of_its_venues() -> None:
    venues = [
        ConfluenceVenue(
            alert_id=_alert(ex).id,
            exchange_id=ex,
            exchange=name,
            symbol="BTC",
            trigger_label="level_-200",
            trigger_value=-210.0,
            price=1.0,
            triggered_at=AT,
        )
        for ex, name in ((COINBASE, "coinbase"), (BINANCE, "binance"))
    ]
    confluence = _alert(BINANCE, alert_type=AlertType.CONFLUENCE, venues=venues)

    assert select_alert(confluence, AlertSelection(exchange_ids=frozenset({COINBASE}))) is not None
    assert select_alert(confluence, AlertSelection(exchange_ids=frozenset({3}))) is None


@pytest.fixture
async def sessions(
    pg_settings: DatabaseSettings,
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A session factory; this module's users and symbols removed afterwards."""
    engine = create_async_engine(pg_settings)
    factory = async_session_factory(engine)
    try:
        yield factory
    finally:
        async with factory() as session:
            await session.exec(delete(Position))
            await session.exec(delete(ExchangeSymbol))
            await session.exec(delete(User).where(col(User.username).startswith("local-")))
            await session.commit()
        await engine.dispose()


async def test_holdings_map_watchlist_and_positions_to_assets(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        await session.exec(delete(ExchangeSymbol))
        kaia = User(
            username="local-kaia",
            email="local-kaia@example.com",
            settings={"watchlist": {"binance": ["btcusdt", "SOLUSDT"], "coinbase": []}},
        )
        session.add(kaia)
        session.add(ExchangeSymbol(
            exchange_id=BINANCE, symbol="BTCUSDT", base_currency="BTC", quote_currency="USDT",
            coingecko_id="bitcoin",
        ))  # fmt: skip
        await session.commit()
        assert kaia.id is not None
        session.add(
            Position(user_id=kaia.id, exchange_id=COINBASE, symbol="ETH-USD", quantity=Decimal(2))
        )
        session.add(
            Position(user_id=kaia.id, exchange_id=BINANCE, symbol="BTCUSDT", quantity=Decimal(1))
        )
        await session.commit()
        kaia_id = kaia.id

    holdings = await load_holdings(sessions, kaia_id, await load_asset_map(sessions))

    assert dict(holdings) == {
        "bitcoin": KAIA_BTC,
        "ETH": (LocalSymbol(exchange="coinbase", symbol="ETH-USD"),),
        "SOL": (LocalSymbol(exchange="binance", symbol="SOLUSDT"),),
    }


def test_typed_assets_resolve_to_canonical_ones() -> None:
    assets = AssetMap([ListedSymbol(COINBASE, "BTC-USD", "BTC", "USD", "bitcoin")])

    assert [assets.canonical(n) for n in ("bitcoin", "BTC", "btc", "eth")] == [
        "bitcoin",
        "bitcoin",
        "bitcoin",
        "ETH",
    ]
