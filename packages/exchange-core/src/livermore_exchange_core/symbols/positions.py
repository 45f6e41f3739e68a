"""`PositionSync`: a user's `positions` on one exchange, read from the exchange account.

Runs only when the user's `user_exchanges` row names env vars (`api_key_env_var`,
`api_secret_env_var`) that are set in the `environ` the caller passes in; the library never reads
the process environment itself. Without them the positions are managed through the API and the
sync reports so, changing nothing.

A position's `symbol` is the exchange-native *tradable* symbol of the asset (`BTC-USD` on Coinbase,
`BTCUSDT` on Binance), chosen like symbol refresh chooses products (USD quote over USDT). That is
the spelling `exchange_symbols`, the caches and Tier 2 use, so a held asset can be streamed as is.
Fiat and stablecoin balances are ignored (nothing to chart), so are balances worth under $2 (dust),
and assets the exchange quotes in neither USD nor USDT (they cannot be valued or streamed). The
exchange's balance carries no cost basis, so `cost_basis` is left as it was.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum

import aiohttp
import structlog
from pydantic import SecretStr
from sqlmodel import col, delete, select

from livermore_exchange_core.base import Balance, ProductInfo
from livermore_exchange_core.config import Credentials, resolve_exchange_config
from livermore_exchange_core.errors import LivermoreExchangeError
from livermore_exchange_core.factory import create_rest_client
from livermore_exchange_core.symbols.refresh import (
    SessionFactory,
    is_stable_or_fiat,
    select_products,
)
from livermore_schema.enums import ExchangeName
from livermore_schema.settings import EndpointSettings
from livermore_schema.tables import Exchange, Position, UserExchange

log = structlog.get_logger(__name__)

DUST_USD = 2.0
"""Balances worth less than this (in USD) are not positions."""


class SyncOutcome(StrEnum):
    """How a position sync ended."""

    SYNCED = "synced"
    API_MANAGED = "api_managed"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class HeldPosition:
    """A balance that is a position: its tradable symbol, quantities and USD value."""

    symbol: str
    asset: str
    quantity: float
    available: float
    value_usd: float


@dataclass(frozen=True, slots=True)
class Valuation:
    """Balances sorted into positions and the reasons the rest were left out."""

    held: list[HeldPosition] = field(default_factory=list)
    dust: list[str] = field(default_factory=list)
    stable: list[str] = field(default_factory=list)
    unpriced: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SyncReport:
    """The outcome of one `PositionSync.sync`."""

    user_id: int
    exchange_id: int
    outcome: SyncOutcome
    message: str
    valuation: Valuation = field(default_factory=Valuation)
    added: int = 0
    updated: int = 0
    removed: int = 0


def value_balances(
    balances: Iterable[Balance], products: Iterable[ProductInfo], *, dust_usd: float = DUST_USD
) -> Valuation:
    """Price each balance with its asset's USD (else USDT) product and sort it (pure)."""
    by_base = {p.base_currency.upper(): p for p in select_products(products)}
    valuation = Valuation()
    for balance in sorted(balances, key=lambda b: b.asset):
        asset = balance.asset.upper()
        product = by_base.get(asset)
        if is_stable_or_fiat(asset):
            valuation.stable.append(asset)
        elif product is None or product.price is None:
            valuation.unpriced.append(asset)
        elif balance.total * product.price < dust_usd:
            valuation.dust.append(asset)
        else:
            value = balance.total * product.price
            valuation.held.append(
                HeldPosition(product.symbol, asset, balance.total, balance.available, value)
            )
    return valuation


def credentials_from_environ(
    account: UserExchange, environ: Mapping[str, str], exchange: ExchangeName
) -> Credentials | None:
    """Return the key pair the account's env var names point at, or None if any is unset."""
    names = (account.api_key_env_var, account.api_secret_env_var)
    if not all(names) or not all(environ.get(name or "") for name in names):
        return None
    key, secret = environ[account.api_key_env_var or ""], environ[account.api_secret_env_var or ""]
    if exchange is ExchangeName.COINBASE:
        secret = secret.replace("\\n", "\n")  # PEMs in .env files often carry escaped newlines
    return Credentials(api_key=key.strip(), api_secret=SecretStr(secret))


class PositionSync:
    """Syncs `positions` from exchange accounts for users whose credentials are configured."""

    def __init__(
        self,
        session_factory: SessionFactory,
        endpoints: EndpointSettings,
        *,
        http_session: aiohttp.ClientSession | None = None,
        dust_usd: float = DUST_USD,
    ) -> None:
        self._sessions = session_factory
        self._endpoints = endpoints
        self._http = http_session
        self._dust_usd = dust_usd

    async def sync(self, user_id: int, exchange_id: int, environ: Mapping[str, str]) -> SyncReport:
        """Replace the user's positions on the exchange with its account's balances.

        Raises:
            LookupError: no `exchanges` row has `exchange_id`.
        """
        exchange, account = await self._load(user_id, exchange_id)
        name = ExchangeName(exchange.name)
        credentials = None if account is None else credentials_from_environ(account, environ, name)
        if credentials is None:
            return SyncReport(user_id, exchange_id, SyncOutcome.API_MANAGED, _api_managed(account))
        bound = log.bind(exchange=name.value, user_id=user_id)
        try:
            valuation = await self._fetch(exchange, credentials)
        except LivermoreExchangeError as error:
            bound.warning("positions.sync_failed", error=str(error))
            return SyncReport(user_id, exchange_id, SyncOutcome.FAILED, str(error))
        added, updated, removed = await self._store(user_id, exchange_id, valuation.held)
        bound.info("positions.synced", held=len(valuation.held), dust=len(valuation.dust))
        message = f"{len(valuation.held)} positions from the {name.value} account"
        return SyncReport(
            user_id, exchange_id, SyncOutcome.SYNCED, message, valuation, added, updated, removed
        )

    async def _load(self, user_id: int, exchange_id: int) -> tuple[Exchange, UserExchange | None]:
        async with self._sessions() as session:
            exchange = await session.get(Exchange, exchange_id)
            if exchange is None:
                raise LookupError(f"no exchanges row with id {exchange_id}")
            account = (
                await session.exec(
                    select(UserExchange).where(
                        col(UserExchange.user_id) == user_id,
                        col(UserExchange.exchange_id) == exchange_id,
                        col(UserExchange.is_active),
                    )
                )
            ).first()
        return exchange, account

    async def _fetch(self, exchange: Exchange, credentials: Credentials) -> Valuation:
        config = resolve_exchange_config(exchange, self._endpoints)
        client = create_rest_client(config, credentials, session=self._http)
        try:
            balances = await client.get_balances()  # the exchange's SDK (`accounts`)
            products = await client.list_products()
        finally:
            await client.aclose()
        return value_balances(balances, products, dust_usd=self._dust_usd)

    async def _store(
        self, user_id: int, exchange_id: int, held: list[HeldPosition]
    ) -> tuple[int, int, int]:
        now = datetime.now(UTC)
        mine = (col(Position.user_id) == user_id, col(Position.exchange_id) == exchange_id)
        async with self._sessions() as session:
            existing = {p.symbol: p for p in (await session.exec(select(Position).where(*mine)))}
            for item in held:
                row = existing.get(item.symbol) or Position(
                    user_id=user_id,
                    exchange_id=exchange_id,
                    symbol=item.symbol,
                    quantity=Decimal(0),
                )
                row.quantity = Decimal(str(item.quantity))
                row.available_quantity = Decimal(str(item.available))
                row.last_synced_at = now
                session.add(row)
            gone = [symbol for symbol in existing if symbol not in {h.symbol for h in held}]
            if gone:
                await session.exec(delete(Position).where(*mine, col(Position.symbol).in_(gone)))
            await session.commit()
        added = sum(1 for item in held if item.symbol not in existing)
        return added, len(held) - added, len(gone)


def _api_managed(account: UserExchange | None) -> str:
    if account is None:
        return "no account on this exchange; positions are managed through the API"
    names = [n for n in (account.api_key_env_var, account.api_secret_env_var) if n]
    if len(names) < 2:
        return "no credential env vars configured; positions are managed through the API"
    return (
        f"credential env vars {', '.join(names)} are not set; positions are managed through the API"
    )
