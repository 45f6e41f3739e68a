"""`Level2Books`: the local order books of the products whose Coinbase `level2` is subscribed.

Coinbase has no partial-book stream: `level2` (frames on `l2_data`) sends each product's whole
book as a `snapshot`, then `update`s with absolute quantities per level ("0" removes one). A book
is only trusted from its snapshot on; after lost frames (a sequence or heartbeat gap, a crossed
book) the adapter resubscribes and every book waits for its fresh snapshot. Binance needs none of
this: its partial depth stream sends the top levels whole.
"""

from __future__ import annotations

from collections.abc import Iterable

from livermore_exchange_core.adapters.coinbase.messages import L2Event
from livermore_exchange_core.adapters.coinbase.parsing import apply_l2_updates
from livermore_exchange_core.orderbook import BookTop, LocalOrderBook, is_crossed


class Level2Books:
    """One `LocalOrderBook` per subscribed product; `apply` turns events into book tops."""

    def __init__(self, exchange_id: int, *, depth: int = 10) -> None:
        self._exchange_id = exchange_id
        self._depth = depth
        self._books: dict[str, LocalOrderBook] = {}

    @property
    def symbols(self) -> frozenset[str]:
        """The products whose books are kept."""
        return frozenset(self._books)

    def add(self, symbols: Iterable[str]) -> list[str]:
        """Start keeping books of `symbols`; return the ones that are new, sorted."""
        added = sorted({s for s in symbols if s not in self._books})
        for symbol in added:
            self._books[symbol] = LocalOrderBook(symbol, cache_levels=max(50, 4 * self._depth))
        return added

    def remove(self, symbols: Iterable[str]) -> list[str]:
        """Drop the books of `symbols`; return the ones that were kept, sorted."""
        return sorted(s for s in set(symbols) if self._books.pop(s, None) is not None)

    def unsync_all(self) -> None:
        """Empty every book; each waits for its next snapshot."""
        for book in self._books.values():
            book.reset()

    def is_synced(self, symbol: str) -> bool:
        """Return whether `symbol`'s book holds a snapshot (and what followed it)."""
        book = self._books.get(symbol)
        return book is not None and book.synced

    def apply(self, events: Iterable[L2Event], now_ms: int) -> tuple[list[BookTop], bool]:
        """Apply `l2_data` events; return the tops to deliver and whether a book went bad.

        A crossed book means updates were lost: it is emptied and the caller must resubscribe.
        """
        tops: list[BookTop] = []
        broken = False
        for event in events:
            book = self._books.get(event["product_id"])
            if book is None:
                continue
            if event["type"] == "snapshot":
                book.reset()
                book.synced = True
            elif not book.synced:
                continue  # updates before the snapshot describe a book we do not hold
            apply_l2_updates(book, event["updates"])
            bids, asks = book.top(self._depth)
            if is_crossed(bids, asks):
                book.reset()
                broken = True
            elif bids and asks:
                tops.append(BookTop(self._exchange_id, book.symbol, bids, asks, now_ms))
        return tops, broken
