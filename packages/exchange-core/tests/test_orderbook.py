"""Local level-2 books and the order-book frame parsers of both venues (recorded-format frames)."""

from __future__ import annotations

import random

from livermore_exchange_core.adapters.binance.messages import depth_stream
from livermore_exchange_core.adapters.binance.parsing import parse_ws_partial_depth
from livermore_exchange_core.adapters.coinbase.level2 import Level2Books
from livermore_exchange_core.orderbook import Level, LocalOrderBook, is_crossed

from ._frames import frame

T0 = 1_775_572_200_123


def _reference(levels: dict[float, float], *, descending: bool, depth: int) -> list[Level]:
    return sorted(levels.items(), reverse=descending)[:depth]


def test_top_matches_a_sorted_reference_through_random_updates_and_deletes() -> None:
    rng = random.Random(17)
    book = LocalOrderBook("BTC-USD", cache_levels=8)
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    for step in range(5_000):
        price = round(100 + rng.randrange(-300, 300) * 0.01, 2)
        quantity = 0.0 if rng.random() < 0.45 else round(rng.uniform(0.1, 5.0), 4)
        side, setter = (bids, book.set_bid) if rng.random() < 0.5 else (asks, book.set_ask)
        setter(price, quantity)
        if quantity > 0:
            side[price] = quantity
        else:
            side.pop(price, None)
        if step % 7 == 0:
            top_bids, top_asks = book.top(5)
            assert top_bids == _reference(bids, descending=True, depth=5)
            assert top_asks == _reference(asks, descending=False, depth=5)
    assert book.level_count == len(bids) + len(asks)


def test_deleting_the_cached_top_refills_from_the_whole_side() -> None:
    book = LocalOrderBook("ETH-USD", cache_levels=3)
    for index in range(10):
        book.set_bid(100.0 - index, 1.0 + index)
        book.set_ask(101.0 + index, 1.0)
    for index in range(3):
        book.set_bid(100.0 - index, 0)  # drain the three cached best bids
    bids, asks = book.top(2)
    assert bids == [(97.0, 4.0), (96.0, 5.0)]
    assert asks == [(101.0, 1.0), (102.0, 1.0)]
    book.set_bid(99.5, 2.0)
    assert book.top(1)[0] == [(99.5, 2.0)]
    book.reset()
    assert book.top(5) == ([], []) and not book.synced


def test_coinbase_snapshot_then_update_gives_sorted_tops() -> None:
    books = Level2Books(1, depth=10)
    assert books.add(["BTC-USD", "ETH-USD"]) == ["BTC-USD", "ETH-USD"]
    update = frame("coinbase", "ws_l2_data_update")["events"]
    tops, broken = books.apply(update, T0)
    assert (tops, broken) == ([], False)  # updates before a snapshot describe no book we hold

    tops, broken = books.apply(frame("coinbase", "ws_l2_data_snapshot")["events"], T0)
    assert not broken and len(tops) == 1
    top = tops[0]
    assert (top.exchange_id, top.symbol, top.timestamp_ms) == (1, "BTC-USD", T0)
    assert top.bids == [(68900.0, 1.5), (68899.5, 0.75), (68899.0, 2.3)]
    assert [price for price, _ in top.asks] == [68901.0, 68901.5, 68902.0]

    tops, broken = books.apply(update, T0 + 1_000)
    top = tops[0]
    assert top.bids[0] == (68900.0, 2.0)  # absolute, not added
    assert [price for price, _ in top.asks] == [68901.5, 68902.0]  # "0.00000000" removed 68901
    model = top.to_model()
    assert (model.exchange_id, model.symbol, model.timestamp) == (1, "BTC-USD", T0 + 1_000)
    assert model.model_dump()["bids"][0] == {"price": 68900.0, "quantity": 2.0}


def test_coinbase_crossed_book_is_dropped_and_reported() -> None:
    books = Level2Books(1, depth=5)
    books.add(["BTC-USD"])
    books.apply(frame("coinbase", "ws_l2_data_snapshot")["events"], T0)
    crossing = {
        "type": "update",
        "product_id": "BTC-USD",
        "updates": [
            {"side": "bid", "event_time": "", "price_level": "68950.00", "new_quantity": "1"}
        ],
    }
    tops, broken = books.apply([crossing], T0 + 1)
    assert tops == [] and broken
    assert not books.is_synced("BTC-USD")
    assert books.remove(["BTC-USD", "SOL-USD"]) == ["BTC-USD"]
    assert books.symbols == frozenset()


def test_binance_partial_depth_frame_becomes_a_book_top() -> None:
    wrapped = frame("binance", "ws_partial_depth")
    assert wrapped["stream"] == depth_stream("BNBBTC", 5)
    top = parse_ws_partial_depth(wrapped["data"], "BNBBTC", 2, T0)
    assert top is not None
    assert (top.exchange_id, top.symbol, top.timestamp_ms) == (2, "BNBBTC", T0)
    assert top.bids == [(0.0024, 10.0), (0.0023, 4.0)]
    assert top.asks == [(0.0026, 100.0), (0.0027, 7.0)]
    model = top.to_model()
    assert [(b.price, b.quantity) for b in model.bids] == [(0.0024, 10.0), (0.0023, 4.0)]
    assert depth_stream("BTCUSDT", 10) == "btcusdt@depth10@100ms"
    assert depth_stream("BTCUSDT", 20, 1000) == "btcusdt@depth20"


def test_binance_empty_or_crossed_depth_is_not_a_book() -> None:
    empty = {"lastUpdateId": 1, "bids": [], "asks": [["1.0", "2"]]}
    crossed = {"lastUpdateId": 2, "bids": [["1.1", "1"]], "asks": [["1.0", "2"]]}
    assert parse_ws_partial_depth(empty, "X", 2, T0) is None  # type: ignore[arg-type]
    assert parse_ws_partial_depth(crossed, "X", 2, T0) is None  # type: ignore[arg-type]
    assert is_crossed([(1.0, 1.0)], [(1.0, 1.0)])
    assert not is_crossed([], [(1.0, 1.0)])
