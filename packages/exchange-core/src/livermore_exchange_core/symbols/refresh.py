"""`SymbolRefresh`: rebuild each exchange's `exchange_symbols` from its products and CoinGecko.

Per exchange: the public product list with the exchange's own 24h quote volumes → one product per
base asset (quote USD preferred, then USDT; trading products only; stablecoin and fiat bases left
out, their charts are flat) → `volume_rank` 1..N by that volume → `global_rank`, `market_cap`,
`coingecko_id` and `display_name` from the CoinGecko ranking → upsert, and deactivate the rows of
that exchange this run did not see.

Bases CoinGecko does not rank are still listed, with `global_rank` NULL: Tier 1 is chosen by the
exchange's own volume (SPEC section 8), so dropping a liquid product because it is missing from the
first CoinGecko pages (as the original did) would hide it. If CoinGecko is unreachable the run goes
on with volumes only and leaves every row's CoinGecko columns as they were.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum

import aiohttp
import structlog
from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from livermore_exchange_core.base import ProductInfo
from livermore_exchange_core.config import resolve_exchange_config
from livermore_exchange_core.errors import LivermoreExchangeError
from livermore_exchange_core.factory import create_rest_client
from livermore_exchange_core.symbols.coingecko import CoinGeckoClient, CoinMarket
from livermore_schema.enums import ExchangeName
from livermore_schema.settings import EndpointSettings
from livermore_schema.tables import Exchange, ExchangeSymbol

log = structlog.get_logger(__name__)

SessionFactory = Callable[[], AsyncSession]
"""Anything that returns a new async session (an `async_sessionmaker`)."""

QUOTE_PREFERENCE: tuple[str, ...] = ("USD", "USDT")
"""Quote currencies a listed product may have, best first."""

STABLE_OR_FIAT: frozenset[str] = frozenset(
    {
        *("USD", "EUR", "GBP", "AUD", "CAD", "JPY", "CHF", "SGD", "TRY", "BRL", "MXN"),
        *("USDT", "USDC", "DAI", "BUSD", "TUSD", "USDP", "PAX", "PYUSD", "FDUSD", "GUSD"),
        *("USDS", "USDE", "UST", "EURC", "EURT", "EURI", "AEUR", "RLUSD", "LUSD", "FRAX"),
    }
)
"""Bases that are fiat or pegged to it: never listed, never held as a position."""

REFRESHABLE: frozenset[ExchangeName] = frozenset(
    {ExchangeName.COINBASE, ExchangeName.BINANCE, ExchangeName.BINANCE_US}
)
"""Exchanges with a REST client; the others are reported as skipped."""

_LOCK_NAMESPACE = 0x53594D42  # "SYMB": one refresh of an exchange's rows at a time


def is_stable_or_fiat(asset: str) -> bool:
    """Return whether `asset` is fiat or a stablecoin."""
    return asset.upper() in STABLE_OR_FIAT


class RefreshStatus(StrEnum):
    """What happened to one exchange in a refresh."""

    REFRESHED = "refreshed"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class SymbolListing:
    """One row-to-be of `exchange_symbols`, before it is written."""

    product: ProductInfo
    volume_rank: int
    coin: CoinMarket | None


@dataclass(frozen=True, slots=True)
class ExchangeRefresh:
    """The outcome for one exchange."""

    exchange: ExchangeName
    exchange_id: int
    status: RefreshStatus
    listed: int = 0
    added: int = 0
    updated: int = 0
    deactivated: int = 0
    error: str | None = None

    def summary(self) -> str:
        """Return a one-line human summary."""
        if self.status is RefreshStatus.REFRESHED:
            return (
                f"{self.exchange.value}: {self.listed} active symbols (added {self.added}, "
                f"updated {self.updated}, deactivated {self.deactivated})"
            )
        return f"{self.exchange.value}: {self.status.value}: {self.error}"


@dataclass(slots=True)
class RefreshReport:
    """The outcome of one `SymbolRefresh.refresh` run, per exchange."""

    timestamp: datetime
    exchanges: list[ExchangeRefresh] = field(default_factory=list)
    coingecko_error: str | None = None

    def result(self, exchange: ExchangeName) -> ExchangeRefresh:
        """Return the outcome of `exchange` (KeyError if it was not part of the run)."""
        for item in self.exchanges:
            if item.exchange is exchange:
                return item
        raise KeyError(exchange.value)

    @property
    def errors(self) -> dict[str, str]:
        """Exchange name (or `coingecko`) → error, for everything that failed."""
        found = {
            e.exchange.value: e.error or ""
            for e in self.exchanges
            if e.status is RefreshStatus.FAILED
        }
        if self.coingecko_error is not None:
            found["coingecko"] = self.coingecko_error
        return found

    @property
    def added(self) -> int:
        """Rows inserted across exchanges."""
        return sum(e.added for e in self.exchanges)

    @property
    def updated(self) -> int:
        """Existing rows refreshed across exchanges."""
        return sum(e.updated for e in self.exchanges)

    @property
    def deactivated(self) -> int:
        """Rows deactivated across exchanges."""
        return sum(e.deactivated for e in self.exchanges)


def select_products(products: Iterable[ProductInfo]) -> list[ProductInfo]:
    """Keep one trading product per base: USD quote over USDT, then the higher volume."""
    best: dict[str, ProductInfo] = {}
    for product in products:
        quote, base = product.quote_currency.upper(), product.base_currency.upper()
        if not product.is_trading or quote not in QUOTE_PREFERENCE or is_stable_or_fiat(base):
            continue
        held = best.get(base)
        if held is None or _preference(product) < _preference(held):
            best[base] = product
    return list(best.values())


def _preference(product: ProductInfo) -> tuple[int, float, str]:
    quote_rank = QUOTE_PREFERENCE.index(product.quote_currency.upper())
    return (quote_rank, -product.quote_volume_24h, product.symbol)


def rank_products(
    products: Iterable[ProductInfo], coins: Mapping[str, CoinMarket] | None
) -> list[SymbolListing]:
    """Order by 24h quote volume (ties by symbol) and attach rank 1..N and the CoinGecko coin."""
    ordered = sorted(products, key=lambda p: (-p.quote_volume_24h, p.symbol))
    return [
        SymbolListing(p, rank, (coins or {}).get(p.base_currency.upper()))
        for rank, p in enumerate(ordered, start=1)
    ]


class SymbolRefresh:
    """Refreshes `exchange_symbols` for one or every active exchange."""

    def __init__(
        self,
        session_factory: SessionFactory,
        http_session: aiohttp.ClientSession,
        endpoints: EndpointSettings,
        coingecko: CoinGeckoClient,
    ) -> None:
        self._sessions = session_factory
        self._http = http_session
        self._endpoints = endpoints
        self._coingecko = coingecko

    async def refresh(self, exchange: ExchangeName | None = None) -> RefreshReport:
        """Refresh `exchange` (even if inactive) or every active exchange, concurrently.

        Raises:
            LookupError: `exchange` has no `exchanges` row (the database is not seeded).
        """
        report = RefreshReport(timestamp=datetime.now(UTC))
        rows = await self._exchange_rows(exchange)
        coins: dict[str, CoinMarket] | None = None
        if any(ExchangeName(row.name) in REFRESHABLE for row in rows):
            try:
                coins = await self._coingecko.coins_by_symbol()
            except LivermoreExchangeError as error:
                report.coingecko_error = str(error)
                log.warning("symbols.coingecko_failed", error=str(error))
        results = await asyncio.gather(*(self._refresh_one(row, coins) for row in rows))
        report.exchanges.extend(results)
        return report

    async def _exchange_rows(self, exchange: ExchangeName | None) -> list[Exchange]:
        async with self._sessions() as session:
            query = select(Exchange).order_by(col(Exchange.id))
            if exchange is None:
                query = query.where(col(Exchange.is_active))
            else:
                query = query.where(col(Exchange.name) == exchange.value)
            rows = list((await session.exec(query)).all())
        if exchange is not None and not rows:
            raise LookupError(f"no exchanges row named {exchange.value}; run livermore-db upgrade")
        return rows

    async def _refresh_one(
        self, row: Exchange, coins: Mapping[str, CoinMarket] | None
    ) -> ExchangeRefresh:
        name = ExchangeName(row.name)
        exchange_id = int(row.id or 0)
        if name not in REFRESHABLE:
            reason = (
                "no Livermore client for this exchange (supported: coinbase, binance, binance_us)"
            )
            return ExchangeRefresh(name, exchange_id, RefreshStatus.SKIPPED, error=reason)
        bound = log.bind(exchange=name.value)
        client = create_rest_client(
            resolve_exchange_config(row, self._endpoints), session=self._http
        )
        try:
            products = await client.list_products()
        except LivermoreExchangeError as error:
            bound.warning("symbols.products_failed", error=str(error))
            return ExchangeRefresh(name, exchange_id, RefreshStatus.FAILED, error=str(error))
        finally:
            await client.aclose()
        listings = rank_products(select_products(products), coins)
        added, updated, deactivated = await self._store(exchange_id, listings, coins is not None)
        bound.info(
            "symbols.refreshed",
            listed=len(listings),
            added=added,
            updated=updated,
            deactivated=deactivated,
        )
        return ExchangeRefresh(
            name, exchange_id, RefreshStatus.REFRESHED, len(listings), added, updated, deactivated
        )

    async def _store(
        self, exchange_id: int, listings: Sequence[SymbolListing], coins_known: bool
    ) -> tuple[int, int, int]:
        now = datetime.now(UTC)
        async with self._sessions() as session:
            await session.exec(select(func.pg_advisory_xact_lock(_LOCK_NAMESPACE, exchange_id)))
            existing = {
                row.symbol: row
                for row in (
                    await session.exec(
                        select(ExchangeSymbol).where(col(ExchangeSymbol.exchange_id) == exchange_id)
                    )
                ).all()
            }
            added = 0
            for listing in listings:
                row = existing.pop(listing.product.symbol, None)
                if row is None:
                    row = ExchangeSymbol(
                        exchange_id=exchange_id,
                        symbol=listing.product.symbol,
                        base_currency=listing.product.base_currency.upper(),
                        quote_currency=listing.product.quote_currency.upper(),
                    )
                    added += 1
                _apply(row, listing, now, coins_known=coins_known)
                session.add(row)
            deactivated = 0
            for row in existing.values():
                if row.is_active:
                    row.is_active, row.volume_rank = False, None
                    session.add(row)
                    deactivated += 1
            await session.commit()
        return added, len(listings) - added, deactivated


def _apply(
    row: ExchangeSymbol, listing: SymbolListing, now: datetime, *, coins_known: bool
) -> None:
    row.volume_24h = Decimal(str(listing.product.quote_volume_24h))
    row.volume_rank = listing.volume_rank
    row.is_active = True
    row.last_volume_update = now
    if not coins_known:
        return
    coin = listing.coin
    row.global_rank = coin.market_cap_rank if coin else None
    row.market_cap = coin.market_cap if coin else None
    row.coingecko_id = coin.coingecko_id if coin else None
    row.display_name = coin.name[:100] if coin else listing.product.base_currency.upper()
