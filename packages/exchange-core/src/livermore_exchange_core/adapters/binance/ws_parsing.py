"""Binance WS frame parsing: kline and miniTicker payloads into `Candle` and `Ticker`."""

from __future__ import annotations

from livermore_exchange_core.adapters.binance.messages import (
    INTERVAL_TIMEFRAMES,
    KlineMessage,
    MiniTickerMessage,
)
from livermore_schema.enums import CandleSource
from livermore_schema.market import Candle, Ticker


def parse_ws_kline(message: KlineMessage, exchange_id: int, exchange: str) -> Candle:
    """Return the candle of a kline event (closed iff `k.x`); strings become floats here.

    Raises:
        KeyError: the interval is not one Livermore knows.
        pydantic.ValidationError: the bar is inconsistent (high below low, ...).
    """
    k = message["k"]
    return Candle(
        exchange_id=exchange_id,
        exchange=exchange,
        symbol=k["s"],
        timeframe=INTERVAL_TIMEFRAMES[k["i"]],
        open_time=k["t"],
        close_time=k["T"],
        open=float(k["o"]),
        high=float(k["h"]),
        low=float(k["l"]),
        close=float(k["c"]),
        volume=float(k["v"]),
        closed=bool(k["x"]),
        source=CandleSource.WS,
    )


def parse_ws_mini_ticker(message: MiniTickerMessage, exchange_id: int, exchange: str) -> Ticker:
    """Return the ticker of a miniTicker event; `volume_24h` is the base-asset volume."""
    last = float(message["c"])
    opened = float(message["o"])
    change = last - opened
    return Ticker(
        exchange_id=exchange_id,
        exchange=exchange,
        symbol=message["s"],
        price=last,
        volume_24h=float(message["v"]),
        change_24h=change,
        change_pct_24h=change / opened * 100.0 if opened else None,
        high_24h=float(message["h"]) or None,
        low_24h=float(message["l"]) or None,
        timestamp=message["E"],
    )
