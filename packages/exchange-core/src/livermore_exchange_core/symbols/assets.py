"""Canonical assets: which coin an exchange-native symbol trades, so venues can be compared.

An alert's `asset` is the CoinGecko id of its symbol's `exchange_symbols` row, else the CoinGecko
id another row with the same base currency carries (a venue whose listing lacks the id still
maps to the coin the others name), else the upper-case base currency (SPEC section 7). `quote` is
the row's quote currency. A symbol without a row (a watchlist symbol outside the refreshed
universe) is split by `split_symbol`: `BTC-USD` on the dash, `BTCUSDT` by its known quote suffix.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlmodel import col, select

from livermore_exchange_core.symbols.source import SessionFactory
from livermore_schema.tables import ExchangeSymbol

KNOWN_QUOTES: tuple[str, ...] = (
    "FDUSD", "USDT", "USDC", "TUSD", "BUSD", "USD", "EUR", "GBP", "TRY", "BRL", "JPY", "BTC",
    "ETH", "BNB",
)  # fmt: skip
"""Quote currencies recognised at the end of a dash-less symbol (longest match wins)."""


@dataclass(frozen=True, slots=True)
class AssetRef:
    """The canonical asset and the quote currency of one exchange symbol."""

    asset: str
    quote: str


@dataclass(frozen=True, slots=True)
class ListedSymbol:
    """The columns of an `exchange_symbols` row the asset mapping needs."""

    exchange_id: int
    symbol: str
    base_currency: str
    quote_currency: str
    coingecko_id: str | None = None


def canonical_asset(base_currency: str, coingecko_id: str | None) -> str:
    """Return the CoinGecko id when known, else the upper-case base currency."""
    cleaned = (coingecko_id or "").strip()
    return cleaned or base_currency.strip().upper()


def split_symbol(symbol: str) -> tuple[str, str] | None:
    """Return (base, quote) of a native symbol (`BTC-USD`, `BTCUSDT`), or None if unknown."""
    text = symbol.strip().upper()
    if "-" in text:
        base, _, quote = text.partition("-")
        return (base, quote) if base and quote else None
    for quote in sorted(KNOWN_QUOTES, key=len, reverse=True):
        if text.endswith(quote) and len(text) > len(quote):
            return text[: -len(quote)], quote
    return None


class AssetMap:
    """Maps (exchange id, symbol) to its `AssetRef`, built once from `exchange_symbols` rows."""

    def __init__(self, rows: Iterable[ListedSymbol]) -> None:
        listed = list(rows)
        ids: dict[str, str] = {}
        for row in sorted(listed, key=lambda r: (r.exchange_id, r.symbol)):
            base = row.base_currency.strip().upper()
            if row.coingecko_id and base not in ids:
                ids[base] = row.coingecko_id
        self._ids_by_base = ids
        self._refs: dict[tuple[int, str], AssetRef] = {
            (row.exchange_id, row.symbol): AssetRef(
                canonical_asset(row.base_currency, row.coingecko_id or self._id_of(row)),
                row.quote_currency.strip().upper(),
            )
            for row in listed
        }
        self._known = {ref.asset for ref in self._refs.values()}

    def _id_of(self, row: ListedSymbol) -> str | None:
        return self._ids_by_base.get(row.base_currency.strip().upper())

    def of(self, exchange_id: int, symbol: str) -> AssetRef | None:
        """Return the asset and quote of a symbol, or None when it cannot be told."""
        ref = self._refs.get((exchange_id, symbol))
        if ref is not None:
            return ref
        split = split_symbol(symbol)
        if split is None:
            return None
        base, quote = split
        return AssetRef(canonical_asset(base, self._ids_by_base.get(base)), quote)

    def canonical(self, name: str) -> str:
        """Return the canonical asset a user typed (`bitcoin`, `BTC` and `btc` give `bitcoin`)."""
        cleaned = name.strip()
        if cleaned in self._known:
            return cleaned
        return self._ids_by_base.get(cleaned.upper(), cleaned.upper())

    def __len__(self) -> int:
        return len(self._refs)


async def load_listed_symbols(
    session_factory: SessionFactory, exchange_ids: Sequence[int] | None = None
) -> list[ListedSymbol]:
    """Return the mapping columns of `exchange_symbols` (of some exchanges, or all), any activity.

    With `exchange_ids`, rows of other exchanges that carry a CoinGecko id still come back (only
    their base and id matter) so a listing without an id maps to the coin the others name.
    """
    query = select(ExchangeSymbol)
    if exchange_ids is not None:
        query = query.where(
            col(ExchangeSymbol.exchange_id).in_(list(exchange_ids))
            | col(ExchangeSymbol.coingecko_id).is_not(None)
        )
    async with session_factory() as session:
        rows = (await session.exec(query)).all()
    return [
        ListedSymbol(r.exchange_id, r.symbol, r.base_currency, r.quote_currency, r.coingecko_id)
        for r in rows
    ]


async def load_asset_map(
    session_factory: SessionFactory, exchange_ids: Sequence[int] | None = None
) -> AssetMap:
    """Return the `AssetMap` of some exchanges' symbols (or every exchange's)."""
    return AssetMap(await load_listed_symbols(session_factory, exchange_ids))
