"""`SymbolSourceService`: the symbols a worker streams, merged from the shared pool and its users.

Tier 1 is the shared pool: active `exchange_symbols` rows with `volume_rank <= tier1_limit`, written
to exchange-scoped keys. Tier 2 is every symbol a given user holds (`positions`) or watches
(`users.settings.watchlist[exchange name]`) on that exchange that is not in Tier 1; it writes the
user-scoped keys of every user holding it (`holders`, in the order the users were given; the
first is `user_id`, whose keys are read). A symbol in both uses the shared pool (SPEC section 8).
Each symbol appears once, annotated with why it is there. `load_exchange_users` returns the users
a worker serves: every active user with an active account on its exchange.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from livermore_schema.enums import SymbolTier
from livermore_schema.tables import Exchange, ExchangeSymbol, Position, User, UserExchange

SessionFactory = Callable[[], AsyncSession]
"""Anything that returns a new async session (an `async_sessionmaker`)."""


class SymbolSource(StrEnum):
    """Why a symbol is streamed."""

    EXCHANGE_VOLUME = "exchange_volume"
    USER_POSITION = "user_position"
    USER_WATCHLIST = "user_watchlist"


class UnknownUserError(LookupError):
    """No active user has that username: fix the `--user` / `LIVERMORE_SYSTEM_USER` value."""


@dataclass(frozen=True, slots=True)
class UserContext:
    """A user a worker serves: who they are and their account on the worker's exchange.

    The account's credentials are env var *names* (`user_exchanges.api_key_env_var`), never
    secrets; the edge reads the variables when it builds a REST client.
    """

    user_id: int
    username: str
    api_key_env_var: str | None = None
    api_secret_env_var: str | None = None
    has_account: bool = False


@dataclass(frozen=True, slots=True)
class SourcedSymbol:
    """A streamed symbol: tier, sources and (Tier 2) the users whose keys it writes."""

    symbol: str
    tier: SymbolTier
    sources: frozenset[SymbolSource] = field(default_factory=frozenset)
    user_id: int | None = None
    volume_rank: int | None = None
    holders: tuple[int, ...] = ()


def watchlist_symbols(settings: Any, exchange_name: str) -> list[str]:
    """Return the watchlist of one exchange from a `users.settings` document (tolerant of junk)."""
    if not isinstance(settings, dict):
        return []
    watchlist = settings.get("watchlist")
    if not isinstance(watchlist, dict):
        return []
    symbols = watchlist.get(exchange_name)
    if not isinstance(symbols, list):
        return []
    return [s.strip().upper() for s in symbols if isinstance(s, str) and s.strip()]


async def load_user_context(
    session_factory: SessionFactory, username: str, exchange_id: int
) -> UserContext:
    """Return the context of an active user and their account on `exchange_id` (if any).

    Raises:
        UnknownUserError: no active user is called `username`.
    """
    async with session_factory() as session:
        user = (
            await session.exec(
                select(User).where(User.username == username, col(User.is_active).is_(True))
            )
        ).one_or_none()
        if user is None or user.id is None:
            raise UnknownUserError(f"unknown or inactive user {username!r}")
        account = (
            await session.exec(
                select(UserExchange).where(
                    UserExchange.user_id == user.id,
                    UserExchange.exchange_id == exchange_id,
                    col(UserExchange.is_active).is_(True),
                )
            )
        ).one_or_none()
    return UserContext(
        user_id=user.id,
        username=user.username,
        api_key_env_var=account.api_key_env_var if account else None,
        api_secret_env_var=account.api_secret_env_var if account else None,
        has_account=account is not None,
    )


async def load_exchange_users(
    session_factory: SessionFactory, exchange_id: int
) -> list[UserContext]:
    """Return every active user with an active account on `exchange_id`, by user id."""
    async with session_factory() as session:
        rows = (
            await session.exec(
                select(User, UserExchange)
                .join(UserExchange, col(UserExchange.user_id) == col(User.id))
                .where(
                    UserExchange.exchange_id == exchange_id,
                    col(UserExchange.is_active).is_(True),
                    col(User.is_active).is_(True),
                )
                .order_by(col(User.id))
            )
        ).all()
    return [
        UserContext(
            user_id=user.id,
            username=user.username,
            api_key_env_var=account.api_key_env_var,
            api_secret_env_var=account.api_secret_env_var,
            has_account=True,
        )
        for user, account in rows
        if user.id is not None
    ]


class SymbolSourceService:
    """Reads Tier 1 from `exchange_symbols` and Tier 2 from users' positions and watchlists."""

    def __init__(self, session_factory: SessionFactory, *, tier1_limit: int = 100) -> None:
        if tier1_limit < 1:
            raise ValueError("tier1_limit must be at least 1")
        self._sessions = session_factory
        self._tier1_limit = tier1_limit

    async def tier1(self, exchange_id: int) -> list[SourcedSymbol]:
        """Return the shared pool of an exchange, highest volume first."""
        async with self._sessions() as session:
            rows = (
                await session.exec(
                    select(ExchangeSymbol.symbol, ExchangeSymbol.volume_rank)
                    .where(
                        ExchangeSymbol.exchange_id == exchange_id,
                        col(ExchangeSymbol.is_active).is_(True),
                        col(ExchangeSymbol.volume_rank).is_not(None),
                        col(ExchangeSymbol.volume_rank) <= self._tier1_limit,
                    )
                    .order_by(col(ExchangeSymbol.volume_rank), col(ExchangeSymbol.symbol))
                )
            ).all()
        return [
            SourcedSymbol(
                symbol=symbol,
                tier=SymbolTier.TIER_1,
                sources=frozenset({SymbolSource.EXCHANGE_VOLUME}),
                volume_rank=rank,
            )
            for symbol, rank in rows
        ]

    async def merged(self, exchange_id: int, users: Sequence[UserContext]) -> list[SourcedSymbol]:
        """Return Tier 1 then Tier 2, each symbol once with its tier, sources and holders."""
        merged: dict[str, SourcedSymbol] = {s.symbol: s for s in await self.tier1(exchange_id)}
        for user_id, symbol, source in await self._user_symbols(exchange_id, users):
            found = merged.get(symbol)
            if found is None:
                merged[symbol] = SourcedSymbol(
                    symbol, SymbolTier.TIER_2, frozenset({source}), user_id, holders=(user_id,)
                )
                continue
            tier2 = found.tier is SymbolTier.TIER_2
            holders = found.holders
            if tier2 and user_id not in holders:
                holders = (*holders, user_id)
            merged[symbol] = SourcedSymbol(
                symbol,
                found.tier,
                found.sources | {source},
                user_id=found.user_id,
                volume_rank=found.volume_rank,
                holders=holders,
            )
        return list(merged.values())

    async def _user_symbols(
        self, exchange_id: int, users: Sequence[UserContext]
    ) -> list[tuple[int, str, SymbolSource]]:
        """Return (user id, symbol, source) in the users' order, positions before watchlist."""
        ids = [u.user_id for u in users]
        if not ids:
            return []
        async with self._sessions() as session:
            exchange_name = (
                await session.exec(select(Exchange.name).where(Exchange.id == exchange_id))
            ).one_or_none()
            positions = (
                await session.exec(
                    select(Position.user_id, Position.symbol)
                    .where(
                        Position.exchange_id == exchange_id,
                        col(Position.user_id).in_(ids),
                        col(Position.quantity) > 0,
                    )
                    .order_by(col(Position.symbol))
                )
            ).all()
            settings = (
                await session.exec(select(User.id, User.settings).where(col(User.id).in_(ids)))
            ).all()
        by_user: dict[int, list[tuple[str, SymbolSource]]] = {i: [] for i in ids}
        for user_id, symbol in positions:
            by_user[user_id].append((symbol.upper(), SymbolSource.USER_POSITION))
        for owner, document in settings:
            if owner is None:
                continue
            for symbol in watchlist_symbols(document, exchange_name or ""):
                by_user[owner].append((symbol, SymbolSource.USER_WATCHLIST))
        return list(_in_user_order(ids, by_user))


def _in_user_order(
    ids: Iterable[int], by_user: dict[int, list[tuple[str, SymbolSource]]]
) -> Iterable[tuple[int, str, SymbolSource]]:
    for user_id in dict.fromkeys(ids):
        for symbol, source in by_user[user_id]:
            yield user_id, symbol, source
