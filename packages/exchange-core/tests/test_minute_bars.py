from __future__ import annotations

from livermore_exchange_core.adapters.coinbase.minute_bars import CandleUpserter, MinuteBarBuilder
from livermore_schema.enums import Timeframe

T0 = 1_712_232_000_000  # 2024-04-04 12:00:00 UTC, a 5-minute boundary
MIN = 60_000


def _builder(grace_ms: int = 2_000) -> MinuteBarBuilder:
    return MinuteBarBuilder(1, "coinbase", grace_ms=grace_ms)


def test_trades_build_ohlcv_by_trade_time_not_arrival_order() -> None:
    bars = _builder()
    assert bars.add_trade("BTC-USD", T0 + 30_000, 2, 105.0, 1.0) is None
    assert bars.add_trade("BTC-USD", T0 + 1_000, 1, 100.0, 2.0) is None  # older, arrives later
    assert bars.add_trade("BTC-USD", T0 + 59_000, 3, 101.0, 0.5) is None
    [bar] = bars.close_due(T0 + MIN + 2_000)
    assert (bar.open, bar.high, bar.low, bar.close) == (100.0, 105.0, 100.0, 101.0)
    assert bar.volume == 3.5
    assert bar.closed and bar.timeframe is Timeframe.M1
    assert (bar.open_time, bar.close_time) == (T0, T0 + MIN - 1)


def test_bar_closes_on_exchange_time_without_a_next_trade() -> None:
    bars = _builder()
    bars.add_trade("BTC-USD", T0 + 5_000, 1, 100.0, 1.0)
    assert bars.close_due(T0 + MIN + 1_999) == []
    assert [b.open_time for b in bars.close_due(T0 + MIN + 2_000)] == [T0]
    assert bars.close_due(T0 + 10 * MIN) == []  # closed once


def test_next_minute_trade_closes_the_previous_bar() -> None:
    bars = _builder()
    bars.add_trade("BTC-USD", T0 + 5_000, 1, 100.0, 1.0)
    closed = bars.add_trade("BTC-USD", T0 + MIN + 1, 2, 102.0, 1.0)
    assert closed is not None and closed.open_time == T0 and closed.close == 100.0


def test_minutes_without_trades_produce_no_bar() -> None:
    bars = _builder()
    bars.add_trade("BTC-USD", T0 + 5_000, 1, 100.0, 1.0)
    closed = bars.add_trade("BTC-USD", T0 + 3 * MIN + 1, 2, 99.0, 1.0)
    assert closed is not None and closed.open_time == T0
    assert [b.open_time for b in bars.close_due(T0 + 4 * MIN + 2_000)] == [T0 + 3 * MIN]


def test_late_trade_after_the_on_time_close_revises_the_closed_bar_once() -> None:
    bars = _builder()
    bars.add_trade("BTC-USD", T0 + 5_000, 1, 100.0, 1.0)
    [first] = bars.close_due(T0 + MIN + 2_000)
    assert (first.close, first.volume) == (100.0, 1.0)
    assert bars.add_trade("BTC-USD", T0 + 50_000, 9, 103.0, 2.0) is None  # late: after the close
    assert bars.add_trade("BTC-USD", T0 + 59_000, 10, 97.0, 0.5) is None
    [revised] = bars.take_revisions()
    assert (revised.open_time, revised.closed) == (T0, True)
    assert (revised.open, revised.high, revised.low, revised.close) == (100.0, 103.0, 97.0, 97.0)
    assert revised.volume == 3.5
    assert bars.take_revisions() == []  # handed out once
    assert bars.close_due(T0 + 5 * MIN) == []  # never closed a second time
    # A re-delivered trade (not newer than the bar's last one) changes nothing.
    assert bars.add_trade("BTC-USD", T0 + 50_000, 9, 103.0, 2.0) is None
    assert bars.add_trade("BTC-USD", T0 + 59_000, 10, 97.0, 0.5) is None
    assert bars.take_revisions() == [] and bars.late == 2 and bars.revised == 1


def test_late_trade_revises_a_bar_closed_by_a_later_minute_and_precedes_it() -> None:
    bars = _builder()
    bars.add_trade("BTC-USD", T0 + 5_000, 1, 100.0, 1.0)
    bars.add_trade("BTC-USD", T0 + MIN + 1_000, 3, 110.0, 1.0)  # closes T0
    assert bars.add_trade("BTC-USD", T0 + 58_000, 2, 90.0, 1.0) is None
    [revised] = bars.take_revisions()
    assert (revised.open_time, revised.low, revised.close, revised.volume) == (T0, 90.0, 90.0, 2.0)
    [open_bar] = bars.close_due(T0 + 2 * MIN + 2_000)
    assert (open_bar.open_time, open_bar.volume) == (T0 + MIN, 1.0)  # untouched by the late trade


def test_late_trades_are_dropped_for_unkept_tainted_or_barless_minutes() -> None:
    bars = MinuteBarBuilder(1, "coinbase", grace_ms=2_000, keep_closed=2)
    for minute in range(4):
        bars.add_trade("BTC-USD", T0 + minute * MIN + 1_000, minute, 100.0, 1.0)
    bars.close_due(T0 + 4 * MIN + 2_000)  # closes T0 .. T0+3m; only the newest 2 stay revisable
    bars.add_trade("BTC-USD", T0 + MIN + 30_000, 100, 1.0, 1.0)  # not kept any more
    assert bars.take_revisions() == [] and bars.late == 1
    bars.add_trade("BTC-USD", T0 + 6 * MIN + 1_000, 101, 1.0, 1.0)
    bars.add_trade("BTC-USD", T0 + 5 * MIN + 1_000, 102, 1.0, 1.0)  # no bar ever opened at 5m
    assert bars.take_revisions() == [] and bars.late == 2
    bars.taint(T0 + 7 * MIN)  # a loss: everything before 7m comes from REST now
    bars.add_trade("BTC-USD", T0 + 3 * MIN + 30_000, 103, 1.0, 1.0)
    assert bars.take_revisions() == [] and bars.late == 3


def test_taint_drops_the_open_bar_and_earlier_trades() -> None:
    bars = _builder()
    bars.add_trade("BTC-USD", T0 + 5_000, 1, 100.0, 1.0)
    bars.taint(T0 + MIN)
    assert bars.close_due(T0 + 5 * MIN) == []
    assert bars.add_trade("BTC-USD", T0 + 40_000, 2, 100.0, 1.0) is None
    bars.add_trade("BTC-USD", T0 + MIN + 5, 3, 101.0, 1.0)
    assert [b.open_time for b in bars.close_due(T0 + 2 * MIN + 2_000)] == [T0 + MIN]


def test_symbols_are_independent_and_closed_oldest_first() -> None:
    bars = _builder()
    bars.add_trade("ETH-USD", T0 + MIN + 5, 1, 10.0, 1.0)
    bars.add_trade("BTC-USD", T0 + 5, 2, 100.0, 1.0)
    closed = bars.close_due(T0 + 3 * MIN)
    assert [(b.symbol, b.open_time) for b in closed] == [("BTC-USD", T0), ("ETH-USD", T0 + MIN)]


def test_candles_upsert_by_start_and_close_on_later_start() -> None:
    fives = CandleUpserter(1, "coinbase", grace_ms=5_000)
    assert fives.upsert("BTC-USD", T0, (100.0, 101.0, 99.0, 100.5, 1.0)) is None
    assert fives.upsert("BTC-USD", T0, (100.0, 103.0, 98.0, 102.0, 2.0)) is None
    closed = fives.upsert("BTC-USD", T0 + 5 * MIN, (102.0, 102.0, 102.0, 102.0, 0.1))
    assert closed is not None
    assert (closed.high, closed.low, closed.close, closed.volume) == (103.0, 98.0, 102.0, 2.0)
    assert closed.timeframe is Timeframe.M5


def test_candles_close_on_time_and_ignore_older_snapshot_buckets() -> None:
    fives = CandleUpserter(1, "coinbase", grace_ms=5_000)
    fives.upsert("BTC-USD", T0 + 5 * MIN, (1.0, 1.0, 1.0, 1.0, 1.0))
    # a snapshot lists buckets newest first: the older one must not replace the live bar
    assert fives.upsert("BTC-USD", T0, (2.0, 2.0, 2.0, 2.0, 2.0)) is None
    assert fives.close_due(T0 + 10 * MIN + 4_999) == []
    [bar] = fives.close_due(T0 + 10 * MIN + 5_000)
    assert bar.open_time == T0 + 5 * MIN and bar.close == 1.0
    assert fives.close_due(T0 + 60 * MIN) == []


def test_candles_update_after_the_on_time_close_revises_the_bucket() -> None:
    fives = CandleUpserter(1, "coinbase", grace_ms=5_000)
    fives.upsert("BTC-USD", T0, (1.0, 2.0, 0.5, 1.5, 4.0))
    [closed] = fives.close_due(T0 + 5 * MIN + 5_000)
    assert (closed.close, closed.volume) == (1.5, 4.0)
    # The bucket's final values arrive after exchange time already closed it.
    assert fives.upsert("BTC-USD", T0, (1.0, 2.5, 0.5, 2.25, 6.0)) is None
    assert fives.upsert("BTC-USD", T0 + 5 * MIN, (2.25, 2.25, 2.25, 2.25, 0.1)) is None
    [revised] = fives.take_revisions()
    assert (revised.open_time, revised.high, revised.close, revised.volume) == (T0, 2.5, 2.25, 6.0)
    assert revised.closed and revised.timeframe is Timeframe.M5
    fives.upsert("BTC-USD", T0, (1.0, 2.5, 0.5, 2.25, 6.0))  # the same restatement again
    fives.upsert("BTC-USD", T0, (1.0, 2.0, 0.5, 1.5, 4.0))  # stale: less volume than known
    assert fives.take_revisions() == [] and fives.late == 1
    [later] = fives.close_due(T0 + 10 * MIN + 5_000)
    assert later.open_time == T0 + 5 * MIN
