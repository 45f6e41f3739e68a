from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from livermore_schema.enums import CandleSource, Timeframe
from livermore_schema.market import Candle, OrderBookLevel, OrderBookTop, Ticker

CANDLE: dict[str, Any] = {
    "exchange_id": 1,
    "exchange": "coinbase",
    "symbol": "BTC-USD",
    "timeframe": "5m",
    "open_time": 1_714_564_800_000,
    "close_time": 1_714_565_099_999,
    "open": 64000.5,
    "high": 64100.0,
    "low": 63950.25,
    "close": 64050.0,
    "volume": 12.5,
    "closed": True,
    "sequence": 42,
    "source": "ws",
    "synthetic": False,
}


def test_candle_json_round_trip() -> None:
    candle = Candle.model_validate_json(json.dumps(CANDLE))
    assert candle.timeframe is Timeframe.M5
    assert candle.source is CandleSource.WS
    assert json.loads(candle.model_dump_json()) == CANDLE
    assert Candle.model_validate_json(candle.model_dump_json()) == candle


def test_candle_storage_json_drops_synthetic_only() -> None:
    candle = Candle.model_validate({**CANDLE, "synthetic": True})
    stored = json.loads(candle.storage_json())
    assert "synthetic" not in stored
    assert stored == {k: v for k, v in CANDLE.items() if k != "synthetic"}
    assert Candle.model_validate_json(candle.storage_json()).synthetic is False


@pytest.mark.parametrize(
    "change",
    [
        {"high": 63000.0},  # high below open
        {"low": 64060.0},  # low above close
        {"close_time": 1_714_564_799_999},  # closes before it opens
        {"timeframe": "7m"},
        {"source": "fix"},
        {"open": 0},
        {"volume": -1},
        {"exchange_id": 0},
        {"symbol": ""},
        {"sequence": -1},
        {"unexpected": 1},
    ],
)
def test_candle_rejects_malformed(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Candle.model_validate_json(json.dumps({**CANDLE, **change}))


def test_candle_requires_fields_and_is_frozen() -> None:
    with pytest.raises(ValidationError):
        Candle.model_validate({k: v for k, v in CANDLE.items() if k != "closed"})
    candle = Candle.model_validate(CANDLE)
    with pytest.raises(ValidationError):
        candle.close = 1.0  # type: ignore[misc]


def test_ticker_json_round_trip_and_optional_fields() -> None:
    full = {
        "exchange_id": 2,
        "exchange": "binance",
        "symbol": "BTCUSDT",
        "price": 64000.1,
        "bid": 64000.0,
        "ask": 64000.2,
        "volume_24h": 1.5e9,
        "change_24h": -120.5,
        "change_pct_24h": -0.19,
        "high_24h": 65000.0,
        "low_24h": 63000.0,
        "timestamp": 1_714_564_800_123,
    }
    ticker = Ticker.model_validate_json(json.dumps(full))
    assert json.loads(ticker.model_dump_json()) == full
    minimal = Ticker(exchange_id=2, exchange="binance", symbol="ETHUSDT", price=3000.0, timestamp=1)
    assert Ticker.model_validate_json(minimal.model_dump_json()) == minimal
    assert minimal.bid is None


@pytest.mark.parametrize("change", [{"price": 0}, {"bid": -1.0}, {"timestamp": -5}, {"x": 1}])
def test_ticker_rejects_malformed(change: dict[str, Any]) -> None:
    base = {"exchange_id": 1, "exchange": "coinbase", "symbol": "BTC-USD", "price": 1.0,
            "timestamp": 0}  # fmt: skip
    with pytest.raises(ValidationError):
        Ticker.model_validate({**base, **change})


def test_order_book_round_trip() -> None:
    book = OrderBookTop(
        exchange_id=1,
        symbol="BTC-USD",
        bids=[OrderBookLevel(price=100.0, quantity=2.0)],
        asks=[OrderBookLevel(price=100.5, quantity=1.0)],
        timestamp=10,
    )
    assert OrderBookTop.model_validate_json(book.model_dump_json()) == book
    with pytest.raises(ValidationError):
        OrderBookLevel.model_validate({"price": 1.0, "quantity": 0})
