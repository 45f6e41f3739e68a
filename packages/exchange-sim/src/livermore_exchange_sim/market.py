"""The simulated market: deterministic bars, trades and tickers for every venue and symbol.

Everything is a pure function of (seed, venue, symbol, time) plus the scenarios given at
construction: the same seed gives the same candles on every run, and history arbitrarily far
back is available. 1m bars are exactly the aggregation of `trades()`, and every longer bar the
aggregation of 1m bars (volumes exact in 1e-8 units; `quote_volume` is exact for trades and
approximate, volume x typical price, for generated bars). Caches are LRU-bounded.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from livermore_exchange_sim.assets import (
    ASSETS,
    ASSETS_BY_BASE,
    Asset,
    Venue,
    base_of,
    extra_assets,
    quote_of,
    venue_symbol,
)
from livermore_exchange_sim.clock import SimClock
from livermore_exchange_sim.generator import (
    CHILD_LEVEL,
    DAY_MS,
    LEVELS,
    MINUTE_MS,
    UNITS_PER_BASE,
    Lru,
    Node,
    PathGenerator,
    RawTrade,
    flat_node,
)

if TYPE_CHECKING:
    from livermore_exchange_sim.scenarios import Scenario

__all__ = ["Bar", "Market", "Product", "SimClock", "TickerSnapshot", "Trade", "Venue"]

WEEK_MS = 7 * DAY_MS
_WEEK_OFFSET_MS = 4 * DAY_MS  # the epoch was a Thursday; weekly bars open on Monday 00:00 UTC


@dataclass(frozen=True, slots=True)
class Bar:
    """One complete or partial bar in simulated exchange time."""

    open_time: int
    interval_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    quote_volume: float
    trades: int


@dataclass(frozen=True, slots=True)
class Trade:
    """One simulated trade; `side` is BUY or SELL."""

    trade_id: int
    time_ms: int
    price: float
    size: float
    side: str


@dataclass(frozen=True, slots=True)
class Product:
    """A product listed by a venue, with its current price and 24h quote volume."""

    venue: Venue
    symbol: str
    base: str
    quote: str
    base_name: str
    quote_volume_24h: float
    price: float
    price_decimals: int = 2
    size_decimals: int = 8


@dataclass(frozen=True, slots=True)
class TickerSnapshot:
    """Last price, best bid/ask and rolling 24h statistics of a product at `time_ms`."""

    venue: Venue
    symbol: str
    time_ms: int
    price: float
    best_bid: float
    best_bid_qty: float
    best_ask: float
    best_ask_qty: float
    open_24h: float
    high_24h: float
    low_24h: float
    volume_24h: float
    quote_volume_24h: float
    price_change_24h: float
    price_change_pct_24h: float
    trades_24h: int
    last_trade_id: int
    low_52w: float
    high_52w: float


def aggregate(nodes: Iterable[Node]) -> Node:
    """Aggregate consecutive nodes into one (first open, max high, min low, last close, sums)."""
    items = list(nodes)
    return Node(
        items[0].open,
        max(n.high for n in items),
        min(n.low for n in items),
        items[-1].close,
        sum(n.units for n in items),
        sum(n.trades for n in items),
        sum(n.quote_volume for n in items),
    )


def align_open_time(timestamp_ms: int, interval_ms: int) -> int:
    """Return the open time of the bar of `interval_ms` containing `timestamp_ms`."""
    offset = _WEEK_OFFSET_MS if interval_ms == WEEK_MS else 0
    return (timestamp_ms - offset) // interval_ms * interval_ms + offset


class Market:
    """Deterministic bars, trades and tickers for every venue; see the module docstring."""

    def __init__(
        self,
        *,
        seed: int,
        clock: SimClock,
        symbols: Sequence[str] | None = None,
        scenarios: Sequence[Scenario] = (),
        extra_assets: int = 0,
    ) -> None:
        self.seed = seed
        self.clock = clock
        self.scenarios: tuple[Scenario, ...] = tuple(scenarios)
        self.balances: dict[Venue, dict[str, float]] = {}
        """Account balances set through `PUT /_sim/accounts/{venue}` (else the defaults)."""
        self.assets: tuple[Asset, ...] = _select_assets(symbols, extra_assets)
        self._assets = {asset.base: asset for asset in self.assets}
        self._gen = PathGenerator(seed)
        self._shaped: Lru[tuple[Venue, str, int, int], Node] = Lru(4_096)
        self._tickers: Lru[tuple[Venue, str, int], TickerSnapshot] = Lru(1_024)
        self._years: Lru[tuple[Venue, str, int], Node] = Lru(1_024)

    # ------------------------------------------------------------------ catalogue
    def asset_of(self, venue: Venue, symbol: str) -> Asset | None:
        """Return the asset behind a venue-native symbol, or None if the venue does not list it."""
        base = base_of(venue, symbol)
        return None if base is None else self._assets.get(base)

    def products(self, venue: Venue) -> list[Product]:
        """Return every product `venue` lists (venue-native symbols), priced at the clock's now."""
        now = self.clock.now_ms()
        return [self._product(venue, asset, now) for asset in self.assets]

    def product(self, venue: Venue, symbol: str) -> Product | None:
        """Return one product, or None if `venue` does not list `symbol`."""
        asset = self.asset_of(venue, symbol)
        return None if asset is None else self._product(venue, asset, self.clock.now_ms())

    def _product(self, venue: Venue, asset: Asset, now_ms: int) -> Product:
        day = self._range(venue, asset, now_ms - now_ms % MINUTE_MS - DAY_MS, now_ms)
        return Product(
            venue=venue,
            symbol=venue_symbol(venue, asset.base),
            base=asset.base,
            quote=quote_of(venue),
            base_name=asset.name,
            quote_volume_24h=round(day.quote_volume, 2),
            price=round(day.close, asset.price_decimals),
            price_decimals=asset.price_decimals,
        )

    # ------------------------------------------------------------------ bars
    def bar(self, venue: Venue, symbol: str, interval_ms: int, open_time: int) -> Bar:
        """Return the bar covering [open_time, open_time + interval_ms); pure, for closed bars."""
        asset = self._require(venue, symbol)
        node = self._range(venue, asset, open_time, open_time + interval_ms)
        return _to_bar(node, asset, open_time, interval_ms)

    def partial_bar(self, venue: Venue, symbol: str, interval_ms: int, now_ms: int) -> Bar:
        """Return the still-open bar containing `now_ms`, as of `now_ms`."""
        asset = self._require(venue, symbol)
        open_time = align_open_time(now_ms, interval_ms)
        return _to_bar(self._range(venue, asset, open_time, now_ms), asset, open_time, interval_ms)

    def closed_bars(
        self, venue: Venue, symbol: str, interval_ms: int, start_ms: int, end_ms: int
    ) -> list[Bar]:
        """Return closed bars with open_time in [start_ms, end_ms), oldest first (ground truth).

        Bars still open at the clock's now are excluded; Coinbase omits bars without trades.
        """
        asset = self._require(venue, symbol)
        limit = min(end_ms, self.clock.now_ms() - interval_ms + 1)
        first = align_open_time(start_ms, interval_ms)
        if first < start_ms:
            first += interval_ms
        bars = []
        for open_time in range(first, limit, interval_ms):
            node = self._range(venue, asset, open_time, open_time + interval_ms)
            if node.trades or venue is not Venue.COINBASE:
                bars.append(_to_bar(node, asset, open_time, interval_ms))
        return bars

    def trades(self, venue: Venue, symbol: str, start_ms: int, end_ms: int) -> list[Trade]:
        """Return the trades with time in [start_ms, end_ms), oldest first."""
        asset = self._require(venue, symbol)
        out: list[Trade] = []
        for minute in range(start_ms // MINUTE_MS, -(-end_ms // MINUTE_MS)):
            for raw in self._minute_trades(venue, asset, minute):
                if start_ms <= raw.time_ms < end_ms:
                    out.append(_to_trade(raw, minute, asset))
        return out

    # ------------------------------------------------------------------ ticker
    def ticker(self, venue: Venue, symbol: str, now_ms: int) -> TickerSnapshot:
        """Return price, best bid/ask and rolling 24h (and 52-week) statistics as of `now_ms`."""
        asset = self._require(venue, symbol)
        cached = self._tickers.get((venue, asset.base, now_ms))
        if cached is not None:
            return cached
        day = self._range(venue, asset, now_ms - now_ms % MINUTE_MS - DAY_MS, now_ms)
        today = now_ms // DAY_MS * DAY_MS
        past = self._years.get((venue, asset.base, today))
        if past is None:
            past = self._years.put(
                (venue, asset.base, today), self._year_before(venue, asset, today)
            )
        year = aggregate([past, day])
        rng = self._gen.rng("book", venue.value, asset.base, now_ms // 1000)
        tick = 10.0**-asset.price_decimals
        spread = tick * (1 + rng.randrange(3))
        price = day.close
        last = self._last_trade(venue, asset, now_ms)
        qty = 1000.0 / max(price, 1e-9)
        decimals = asset.price_decimals
        snapshot = TickerSnapshot(
            venue=venue,
            symbol=venue_symbol(venue, asset.base),
            time_ms=now_ms,
            price=round(price, decimals),
            best_bid=round(price - spread, decimals),
            best_bid_qty=round(qty * (0.2 + rng.random()), 8),
            best_ask=round(price + spread, decimals),
            best_ask_qty=round(qty * (0.2 + rng.random()), 8),
            open_24h=round(day.open, decimals),
            high_24h=round(day.high, decimals),
            low_24h=round(day.low, decimals),
            volume_24h=round(day.units / UNITS_PER_BASE, 8),
            quote_volume_24h=round(day.quote_volume, 8),
            price_change_24h=round(price - day.open, decimals),
            price_change_pct_24h=round((price - day.open) / day.open * 100.0, 3),
            trades_24h=day.trades,
            last_trade_id=last,
            low_52w=round(year.low, decimals),
            high_52w=round(year.high, decimals),
        )
        return self._tickers.put((venue, asset.base, now_ms), snapshot)

    def _year_before(self, venue: Venue, asset: Asset, today_ms: int) -> Node:
        """Aggregate the 364 days before `today_ms` (one uncached pass; scenario days shaped)."""
        first = today_ms // DAY_MS - 364
        days = self._gen.day_nodes(venue, asset, first, first + 364)
        for i, start in enumerate(range(first * DAY_MS, today_ms, DAY_MS)):
            if self._scenarios_for(venue, asset.base, start, start + DAY_MS):
                days[i] = self._node(venue, asset, DAY_MS, first + i)
        return aggregate(days)

    def _last_trade(self, venue: Venue, asset: Asset, now_ms: int) -> int:
        minute = now_ms // MINUTE_MS
        for back in range(minute, minute - 240, -1):
            done = [t for t in self._minute_trades(venue, asset, back) if t.time_ms <= now_ms]
            if done:
                return _trade_id(back, done[-1].seq)
        return _trade_id(minute - 240, 0)

    # ------------------------------------------------------------------ internals
    def _require(self, venue: Venue, symbol: str) -> Asset:
        asset = self.asset_of(venue, symbol)
        if asset is None:
            raise KeyError(f"{venue.value} does not list {symbol!r}")
        return asset

    def _scenarios_for(self, venue: Venue, base: str, start: int, end: int) -> list[Scenario]:
        return [s for s in self.scenarios if s.applies(venue, base) and s.overlaps(start, end)]

    def _node(self, venue: Venue, asset: Asset, level_ms: int, index: int) -> Node:
        start = index * level_ms
        active = self._scenarios_for(venue, asset.base, start, start + level_ms)
        if not active:
            return self._gen.node(venue, asset, level_ms, index)
        key = (venue, asset.base, level_ms, index)
        cached = self._shaped.get(key)
        if cached is not None:
            return cached
        if level_ms == MINUTE_MS:
            trades = self._minute_trades(venue, asset, index)
            if trades:
                node = _trades_node(trades)
            else:
                base = self._gen.node(venue, asset, level_ms, index)
                node = flat_node(base.open * math.exp(_offset(active, start)))
        else:
            child = CHILD_LEVEL[level_ms]
            first = start // child
            node = aggregate(
                self._node(venue, asset, child, i) for i in range(first, first + level_ms // child)
            )
        return self._shaped.put(key, node)

    def _minute_trades(self, venue: Venue, asset: Asset, minute: int) -> tuple[RawTrade, ...]:
        raw = self._gen.minute_trades(venue, asset, minute)
        start = minute * MINUTE_MS
        active = self._scenarios_for(venue, asset.base, start, start + MINUTE_MS)
        if not active:
            return raw
        return tuple(t._replace(price=t.price * math.exp(_offset(active, t.time_ms))) for t in raw)

    def _range(self, venue: Venue, asset: Asset, start_ms: int, end_ms: int) -> Node:
        """Aggregate [start_ms, end_ms) from the largest aligned nodes and partial-minute trades."""
        pieces: list[Node] = []
        pos = start_ms
        while pos < end_ms:
            for size in LEVELS:
                if pos % size == 0 and pos + size <= end_ms:
                    pieces.append(self._node(venue, asset, size, pos // size))
                    pos += size
                    break
            else:
                minute_end = min(end_ms, pos - pos % MINUTE_MS + MINUTE_MS)
                pieces.append(self._partial_minute(venue, asset, pos, minute_end))
                pos = minute_end
        if not pieces:
            pieces.append(self._partial_minute(venue, asset, start_ms, start_ms))
        return aggregate(pieces)

    def _partial_minute(self, venue: Venue, asset: Asset, start_ms: int, end_ms: int) -> Node:
        minute = start_ms // MINUTE_MS
        trades = [
            t for t in self._minute_trades(venue, asset, minute) if start_ms <= t.time_ms < end_ms
        ]
        if trades:
            return _trades_node(tuple(trades))
        opening = self._node(venue, asset, MINUTE_MS, minute).open
        return flat_node(opening)


def _offset(active: Sequence[Scenario], time_ms: int) -> float:
    return sum(s.offset(time_ms) for s in active)


def _trades_node(trades: tuple[RawTrade, ...] | list[RawTrade]) -> Node:
    return Node(
        trades[0].price,
        max(t.price for t in trades),
        min(t.price for t in trades),
        trades[-1].price,
        sum(t.units for t in trades),
        len(trades),
        sum(t.price * t.units / UNITS_PER_BASE for t in trades),
    )


def _trade_id(minute: int, index: int) -> int:
    return minute * 10_000 + index


def _to_trade(raw: RawTrade, minute: int, asset: Asset) -> Trade:
    return Trade(
        trade_id=_trade_id(minute, raw.seq),
        time_ms=raw.time_ms,
        price=round(raw.price, asset.price_decimals),
        size=raw.units / UNITS_PER_BASE,
        side=raw.side,
    )


def _to_bar(node: Node, asset: Asset, open_time: int, interval_ms: int) -> Bar:
    decimals = asset.price_decimals
    return Bar(
        open_time=open_time,
        interval_ms=interval_ms,
        open=round(node.open, decimals),
        high=round(node.high, decimals),
        low=round(node.low, decimals),
        close=round(node.close, decimals),
        volume=round(node.units / UNITS_PER_BASE, 8),
        quote_volume=round(node.quote_volume, 8),
        trades=node.trades,
    )


def _select_assets(symbols: Sequence[str] | None, extra: int) -> tuple[Asset, ...]:
    """The default universe plus `extra` synthetic assets, narrowed to `symbols` when given."""
    universe = ASSETS + extra_assets(extra) if extra else ASSETS
    if symbols is None:
        return universe
    by_base = {asset.base: asset for asset in universe} if extra else ASSETS_BY_BASE
    chosen: list[Asset] = []
    for raw in symbols:
        base = raw.upper()
        for venue in Venue:
            base = base_of(venue, base) or base
        if base not in by_base:
            known = ", ".join(ASSETS_BY_BASE) + (f", AA1..AA{extra}" if extra else "")
            raise ValueError(f"unknown asset {raw!r}; known: {known}")
        if by_base[base] not in chosen:
            chosen.append(by_base[base])
    return tuple(chosen)
