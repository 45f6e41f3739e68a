"""Remote signals on local symbols: which alerts one subscriber gets, annotated with their symbols.

`select_alert` is pure: an alert (from any exchange, or a confluence) and a subscriber's
`AlertSelection` in, the alert to send out (with `local` set in `mine` mode) or None. Holdings are
the assets of a user's positions and watchlists, each with the user's own symbol(s) for it on
their exchange(s), so Kaia, watching BTCUSDT on Binance, sees a Coinbase BTC-USD signal as
"your Binance BTCUSDT" (`load_holdings`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlmodel import col, select

from livermore_exchange_core.symbols.assets import AssetMap
from livermore_exchange_core.symbols.source import SessionFactory, watchlist_symbols
from livermore_schema.alerts import AlertEvent, LocalSymbol
from livermore_schema.tables import Exchange, Position, User

Holdings = Mapping[str, tuple[LocalSymbol, ...]]
"""Canonical asset -> the subscriber's own symbols for it (exchange name, native symbol)."""


@dataclass(frozen=True, slots=True)
class AlertSelection:
    """What one subscriber asked for; None fields do not filter.

    Attributes:
        exchange_ids: exchanges whose alerts pass (a confluence passes if any venue is one).
        assets: canonical assets whose alerts pass.
        holdings: `mine` mode: only alerts for these assets pass, annotated with `local`.
    """

    exchange_ids: frozenset[int] | None = None
    assets: frozenset[str] | None = None
    holdings: Holdings | None = field(default=None)


def _exchanges_of(event: AlertEvent) -> set[int]:
    if event.venues:
        return {v.exchange_id for v in event.venues}
    return {event.exchange_id}


def select_alert(event: AlertEvent, selection: AlertSelection) -> AlertEvent | None:
    """Return the event as this subscriber should get it, or None when it is not for them."""
    if selection.exchange_ids is not None and not (_exchanges_of(event) & selection.exchange_ids):
        return None
    if selection.assets is not None and event.asset not in selection.assets:
        return None
    if selection.holdings is None:
        return event
    local = selection.holdings.get(event.asset) if event.asset else None
    if not local:
        return None
    return event.model_copy(update={"local": list(local)})


async def load_holdings(
    session_factory: SessionFactory, user_id: int, assets: AssetMap
) -> Holdings:
    """Return the assets of a user's positions and watchlists with their symbols for each."""
    async with session_factory() as session:
        exchanges = {
            name: exchange_id
            for exchange_id, name in (await session.exec(select(Exchange.id, Exchange.name))).all()
            if exchange_id is not None
        }
        positions = (
            await session.exec(
                select(Exchange.name, Position.symbol)
                .join(Exchange, col(Exchange.id) == col(Position.exchange_id))
                .where(col(Position.user_id) == user_id, col(Position.quantity) > 0)
                .order_by(col(Position.id))
            )
        ).all()
        settings = (await session.exec(select(User.settings).where(User.id == user_id))).first()
    held: list[tuple[str, str]] = [(name, symbol.upper()) for name, symbol in positions]
    for name in exchanges:
        held.extend((name, symbol) for symbol in watchlist_symbols(settings, name))
    holdings: dict[str, list[LocalSymbol]] = {}
    for name, symbol in dict.fromkeys(held):
        ref = assets.of(exchanges[name], symbol)
        if ref is not None:
            holdings.setdefault(ref.asset, []).append(LocalSymbol(exchange=name, symbol=symbol))
    return {asset: tuple(symbols) for asset, symbols in holdings.items()}
