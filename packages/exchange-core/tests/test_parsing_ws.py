from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from livermore_exchange_core.adapters.binance.parsing import (
    parse_ws_kline,
    parse_ws_mini_ticker,
)
from livermore_exchange_core.adapters.coinbase.parsing import (
    parse_timestamp_ms,
    parse_ws_candle,
    parse_ws_ticker,
)
from livermore_schema.enums import CandleSource, Timeframe

from ._frames import frame


def _ms(*parts: int) -> int:
    return int(datetime(*parts, tzinfo=UTC).timestamp() * 1000)


def test_coinbase_timestamp_with_nanoseconds_is_epoch_ms() -> None:
    assert parse_timestamp_ms("2023-06-09T20:19:35.39625135Z") == _ms(2023, 6, 9, 20, 19, 35) + 396


def test_coinbase_timestamp_variants() -> None:
    base = _ms(2024, 4, 4, 12, 0, 1)
    assert parse_timestamp_ms("2024-04-04T12:00:01Z") == base
    assert parse_timestamp_ms("2024-04-04T12:00:01.5Z") == base + 500
    assert parse_timestamp_ms("2024-04-04T12:00:01.05Z") == base + 50


def test_coinbase_heartbeat_go_layout_is_parsed() -> None:
    event = frame("coinbase", "ws_heartbeats")["events"][0]
    assert parse_timestamp_ms(event["current_time"]) == _ms(2023, 6, 23, 20, 31, 56) + 121


def test_coinbase_candle_start_is_seconds_and_values_are_strings() -> None:
    bucket = frame("coinbase", "ws_candles")["events"][0]["candles"][0]
    candle = parse_ws_candle(bucket, Timeframe.M5, 1, "coinbase", closed=True)
    assert candle.open_time == 1_688_998_200_000
    assert candle.close_time == 1_688_998_200_000 + 300_000 - 1
    assert (candle.open, candle.high, candle.low, candle.close) == (
        1867.38,
        1867.72,
        1865.63,
        1866.81,
    )
    assert candle.volume == pytest.approx(0.20269406)
    assert candle.symbol == "ETH-USD"
    assert candle.source is CandleSource.WS


def test_coinbase_ticker_without_client_id() -> None:
    envelope = frame("coinbase", "ws_ticker")
    assert "client_id" not in envelope
    item = envelope["events"][0]["tickers"][0]
    ticker = parse_ws_ticker(item, parse_timestamp_ms(envelope["timestamp"]), 1, "coinbase")
    assert ticker.price == 68900.50
    assert (ticker.bid, ticker.ask) == (68900.49, 68900.51)
    assert ticker.change_pct_24h == 1.85
    assert ticker.timestamp == _ms(2024, 4, 4, 12, 0, 1) + 500


def test_coinbase_ticker_batch_has_no_book() -> None:
    item = dict(frame("coinbase", "ws_ticker")["events"][0]["tickers"][0])
    del item["best_bid"], item["best_ask"]
    ticker = parse_ws_ticker(item, 0, 1, "coinbase")  # type: ignore[arg-type]
    assert ticker.bid is None and ticker.ask is None


def test_binance_kline_partial_frame() -> None:
    data = frame("binance", "ws_kline")["data"]
    candle = parse_ws_kline(data, 2, "binance")
    assert candle.closed is False
    assert candle.timeframe is Timeframe.M1
    assert (candle.open_time, candle.close_time) == (1672515780000, 1672515839999)
    assert (candle.open, candle.high, candle.low, candle.close, candle.volume) == (
        0.001,
        0.0025,
        0.0005,
        0.002,
        1000.0,
    )


def test_binance_kline_closed_frame() -> None:
    data = frame("binance", "ws_kline")["data"]
    data["k"]["x"] = True
    assert parse_ws_kline(data, 2, "binance").closed is True


def test_binance_inconsistent_kline_is_rejected() -> None:
    data = frame("binance", "ws_kline")["data"]
    data["k"]["h"] = "0.0001"
    with pytest.raises(ValidationError):
        parse_ws_kline(data, 2, "binance")


def test_binance_mini_ticker() -> None:
    data = frame("binance", "ws_mini_ticker")["data"]
    ticker = parse_ws_mini_ticker(data, 2, "binance")
    assert ticker.symbol == "BNBBTC"
    assert ticker.price == 0.0025
    assert ticker.change_pct_24h == pytest.approx(150.0)
    assert ticker.timestamp == 1672515782136
