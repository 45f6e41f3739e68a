"""Pure parts of the Binance venue: weight ledger, kline window selection, signing, stream names."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from livermore_exchange_sim.binance_control import StreamSet, handle_control
from livermore_exchange_sim.binance_limits import (
    Admission,
    WeightLedger,
    WeightPolicy,
    is_valid_signature,
)
from livermore_exchange_sim.binance_market import kline_open_times
from livermore_exchange_sim.binance_wire import (
    StreamKind,
    parse_stream_name,
    used_weight_header,
    weight_exceeded_msg,
)

POLICY = WeightPolicy(limit=10, ban_seconds=120, requests_after_429_before_ban=2)
H = 3_600_000


def test_ledger_rolls_off_after_a_minute_and_reports_retry_after() -> None:
    ledger = WeightLedger()
    assert ledger.charge("a", 6, POLICY, now=100.0).used == 6
    assert ledger.charge("a", 4, POLICY, now=130.0).used == 10
    refused = ledger.charge("a", 1, POLICY, now=131.0)
    assert refused.admission is Admission.THROTTLED
    assert refused.retry_after_s == 29  # the 6 spent at t=100 expire at t=160
    assert ledger.charge("b", 1, POLICY, now=131.0).admission is Admission.OK  # per IP
    assert ledger.used("a", now=161.0) == 4
    assert ledger.charge("a", 6, POLICY, now=161.0).used == 10


def test_ledger_window_follows_the_policy() -> None:
    ledger = WeightLedger()
    short = WeightPolicy(limit=10, ban_seconds=120, requests_after_429_before_ban=5, window_s=3.0)
    assert ledger.charge("a", 10, short, now=0.0).used == 10
    refused = ledger.charge("a", 1, short, now=1.0)
    assert refused.admission is Admission.THROTTLED and refused.retry_after_s == 2
    assert ledger.used("a", now=2.9, window_s=3.0) == 10
    assert ledger.charge("a", 4, short, now=3.0).used == 4
    assert weight_exceeded_msg(10, 3).startswith(
        "Too much request weight used; current limit is 10 request weight per 3 SECOND."
    )
    assert used_weight_header(60) == "X-MBX-USED-WEIGHT-1M"
    assert used_weight_header(3) == "X-MBX-USED-WEIGHT-3S"


def test_ledger_bans_after_ignoring_429() -> None:
    ledger = WeightLedger()
    ledger.charge("a", 10, POLICY, now=0.0)
    assert ledger.charge("a", 1, POLICY, now=1.0).admission is Admission.THROTTLED
    assert ledger.charge("a", 1, POLICY, now=2.0).admission is Admission.THROTTLED
    banned = ledger.charge("a", 1, POLICY, now=3.0)
    assert banned.admission is Admission.BANNED
    assert banned.retry_after_s == 120
    assert ledger.charge("a", 1, POLICY, now=100.0).admission is Admission.BANNED
    assert ledger.charge("a", 1, POLICY, now=124.0).admission is Admission.OK


@pytest.mark.parametrize(
    ("start", "end", "limit", "expected"),
    [
        (None, None, 3, [8 * H, 9 * H, 10 * H]),  # newest, still-open bar last
        (None, 5 * H + 1, 2, [4 * H, 5 * H]),  # endTime only: newest up to it
        (0, None, 2, [2 * H, 3 * H]),  # startTime=0: from the listing
        (3 * H + 1, 6 * H, 10, [4 * H, 5 * H, 6 * H]),  # start aligned up, end inclusive
        (12 * H, None, 5, []),  # nothing in the future
    ],
)
def test_kline_open_times(
    start: int | None, end: int | None, limit: int, expected: list[int]
) -> None:
    times = kline_open_times(
        H, listing_ms=2 * H - 5, now_ms=10 * H + 7, start=start, end=end, limit=limit
    )
    assert list(times) == expected


def test_signature_is_hmac_of_query_without_signature() -> None:
    query = "recvWindow=5000&timestamp=1700000000000"
    good = hmac.new(b"s3cret", query.encode(), hashlib.sha256).hexdigest()
    assert is_valid_signature("s3cret", f"{query}&signature={good}")
    assert not is_valid_signature("other", f"{query}&signature={good}")
    assert not is_valid_signature("s3cret", query)


def test_stream_names() -> None:
    kline = parse_stream_name("btcusdt@kline_15m")
    assert kline is not None
    assert (kline.symbol, kline.kind, kline.interval_ms) == ("BTCUSDT", StreamKind.KLINE, 900_000)
    assert parse_stream_name("btcusdt@kline_7m") is None
    assert parse_stream_name("BTCUSDT@kline_1m") is None
    mini = parse_stream_name("ethusdt@miniTicker")
    assert mini is not None
    assert mini.kind is StreamKind.MINI_TICKER


def test_control_ids_and_duplicate_subscriptions() -> None:
    streams = StreamSet(max_streams=2, combined=False)
    twice = '{"method":"SUBSCRIBE","params":["btcusdt@kline_1m","btcusdt@kline_1m"],"id":null}'
    assert handle_control(streams, twice) == {"result": None, "id": None}
    assert list(streams.streams) == ["btcusdt@kline_1m"]
    negative = handle_control(streams, '{"method":"LIST_SUBSCRIPTIONS","id":-1}')
    assert negative["error"]["code"] == 2
    as_bool = handle_control(streams, '{"method":"SET_PROPERTY","params":["combined",1],"id":1}')
    assert as_bool == {"error": {"code": 1, "msg": "Invalid value type: expected Boolean"}, "id": 1}
