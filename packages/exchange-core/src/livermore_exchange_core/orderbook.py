"""`LocalOrderBook`: a level-2 book kept from a snapshot plus absolute updates, with a cheap top.

Coinbase `level2` sends the whole book once and then absolute quantities per price level ("0"
removes a level). A busy book holds tens of thousands of levels while a trader wants the top ten,
so each side keeps a short sorted cache of its best prices beside the price -> quantity dict: an
update away from the top only touches the dict, `top(n)` costs O(n), and the cache is rebuilt
from the dict (O(levels)) only when deletions have drained it below what is asked for.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, insort
from collections.abc import Sequence
from dataclasses import dataclass

from livermore_schema.market import OrderBookLevel, OrderBookTop

Level = tuple[float, float]
"""(price, quantity)."""


class _Side:
    """One side of a book; `_best` holds sort keys (price, negated for bids) best first.

    Invariant: `_best` is a prefix of the whole side in best-first order (possibly empty or
    shorter than the side after deletions; `top` refills it when it is too short).
    """

    __slots__ = ("_best", "_capacity", "_levels", "_sign")

    def __init__(self, *, descending: bool, capacity: int) -> None:
        self._levels: dict[float, float] = {}
        self._best: list[float] = []
        self._sign = -1.0 if descending else 1.0
        self._capacity = capacity

    def __len__(self) -> int:
        return len(self._levels)

    def clear(self) -> None:
        self._levels.clear()
        self._best.clear()

    def set(self, price: float, quantity: float) -> None:
        levels = self._levels
        if quantity <= 0:
            if levels.pop(price, None) is not None:
                self._forget(price * self._sign)
            return
        known = price in levels
        levels[price] = quantity
        if known:
            return
        key, best = price * self._sign, self._best
        if best and key < best[-1]:
            insort(best, key)
            if len(best) > self._capacity:
                best.pop()
        elif len(best) == len(levels) - 1 and len(best) < self._capacity:
            best.append(key)  # the cache held the whole side, so the new level extends it

    def _forget(self, key: float) -> None:
        best = self._best
        index = bisect_left(best, key)
        if index < len(best) and best[index] == key:
            del best[index]

    def top(self, depth: int) -> list[Level]:
        best = self._best
        if len(best) < depth and len(best) < len(self._levels):
            sign = self._sign
            self._best = best = heapq.nsmallest(self._capacity, (p * sign for p in self._levels))
        sign, levels = self._sign, self._levels
        return [(key * sign, levels[key * sign]) for key in best[:depth]]


class LocalOrderBook:
    """The full level-2 book of one symbol; `synced` is False until a snapshot arrived."""

    __slots__ = ("asks", "bids", "symbol", "synced")

    def __init__(self, symbol: str, *, cache_levels: int = 50) -> None:
        self.symbol = symbol
        self.bids = _Side(descending=True, capacity=cache_levels)
        self.asks = _Side(descending=False, capacity=cache_levels)
        self.synced = False

    def reset(self) -> None:
        """Empty the book and wait for the next snapshot."""
        self.bids.clear()
        self.asks.clear()
        self.synced = False

    def set_bid(self, price: float, quantity: float) -> None:
        """Set the absolute quantity of a bid level (0 removes it)."""
        self.bids.set(price, quantity)

    def set_ask(self, price: float, quantity: float) -> None:
        """Set the absolute quantity of an ask level (0 removes it)."""
        self.asks.set(price, quantity)

    def top(self, depth: int) -> tuple[list[Level], list[Level]]:
        """Return the best `depth` bids (highest first) and asks (lowest first)."""
        return self.bids.top(depth), self.asks.top(depth)

    @property
    def level_count(self) -> int:
        """Return how many price levels both sides hold."""
        return len(self.bids) + len(self.asks)


def is_crossed(bids: Sequence[Level], asks: Sequence[Level]) -> bool:
    """Return whether the best bid reaches the best ask (a book that lost updates)."""
    return bool(bids and asks and bids[0][0] >= asks[0][0])


@dataclass(frozen=True, slots=True)
class BookTop:
    """The best levels of one symbol's book as an adapter read them, best first on each side.

    Plain tuples, not `OrderBookTop`: adapters emit one per book frame (ten a second per symbol
    on Binance) while the pipeline keeps only the latest every 250 ms, so the pydantic model is
    built by `to_model()` at write time, once per kept book.
    """

    exchange_id: int
    symbol: str
    bids: Sequence[Level]
    asks: Sequence[Level]
    timestamp_ms: int

    def to_model(self) -> OrderBookTop:
        """Return the validated `OrderBookTop` stored under `orderbook:{exchange_id}:{symbol}`."""
        return OrderBookTop(
            exchange_id=self.exchange_id,
            symbol=self.symbol,
            bids=[OrderBookLevel(price=p, quantity=q) for p, q in self.bids],
            asks=[OrderBookLevel(price=p, quantity=q) for p, q in self.asks],
            timestamp=max(self.timestamp_ms, 0),
        )
