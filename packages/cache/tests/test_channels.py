from __future__ import annotations

import pytest

from livermore_cache import channels
from livermore_cache.channels import SeriesChannel
from livermore_schema.enums import IndicatorType, Timeframe

M5, H1 = Timeframe.M5, Timeframe.H1


@pytest.mark.parametrize(
    ("built", "expected"),
    [
        (
            channels.candle_close_channel(2, "BTCUSDT", H1),
            "channel:exchange:2:candle:close:BTCUSDT:1h",
        ),
        (
            channels.legacy_candle_close_channel(7, 1, "BTC-USD", M5),
            "channel:candle:close:7:1:BTC-USD:5m",
        ),
        (channels.ticker_channel(1, "BTC-USD"), "channel:ticker:1:BTC-USD"),
        (
            channels.indicator_channel(1, "BTC-USD", H1, IndicatorType.MACD_V),
            "channel:indicator:1:BTC-USD:1h:macd-v",
        ),
        (channels.alerts_channel(3), "channel:alerts:3"),
        (channels.lifecycle_channel(1), "channel:exchange:1:lifecycle"),
        (channels.commands_channel(1), "livermore:commands:1"),
        (channels.responses_channel(2), "livermore:responses:2"),
        (channels.ALL_ALERTS_PATTERN, "channel:alerts:*"),
        (channels.confluence_channel(), "channel:alerts:confluence"),
        (channels.candle_close_pattern(), "channel:exchange:*:candle:close:*"),
        (channels.candle_close_pattern(2), "channel:exchange:2:candle:close:*"),
        (channels.indicator_pattern(1), "channel:indicator:1:*"),
        (channels.lifecycle_pattern(), "channel:exchange:*:lifecycle"),
    ],
)
def test_golden_channel_strings(built: str, expected: str) -> None:
    assert built == expected


def test_channel_parsers_round_trip() -> None:
    series = SeriesChannel(2, "BTCUSDT", H1)
    assert channels.parse_candle_close_channel(channels.candle_close_channel(2, "BTCUSDT", H1)) == (
        series
    )
    legacy = channels.legacy_candle_close_channel(7, 2, "BTCUSDT", H1)
    assert channels.parse_legacy_candle_close_channel(legacy) == (7, series)
    built = channels.indicator_channel(2, "BTCUSDT", H1, IndicatorType.MACD_V)
    assert channels.parse_indicator_channel(built) == (series, IndicatorType.MACD_V)
    assert channels.parse_alerts_channel(channels.alerts_channel(12)) == 12
    assert channels.parse_lifecycle_channel(channels.lifecycle_channel(3)) == 3
    assert channels.parse_ticker_channel(channels.ticker_channel(1, "BTC-USD")) == (1, "BTC-USD")


@pytest.mark.parametrize(
    ("parser", "text"),
    [
        (channels.parse_candle_close_channel, "channel:candle:close:7:1:BTC-USD:5m"),
        (channels.parse_candle_close_channel, "channel:exchange:x:candle:close:BTC-USD:5m"),
        (channels.parse_candle_close_channel, "channel:exchange:1:candle:close:BTC-USD:9m"),
        (channels.parse_legacy_candle_close_channel, "channel:exchange:1:candle:close:A:5m"),
        (channels.parse_indicator_channel, "channel:indicator:1:BTC-USD:1h:rsi"),
        (channels.parse_alerts_channel, "channel:alerts:"),
        (channels.parse_alerts_channel, "channel:alerts:*"),
        (channels.parse_alerts_channel, "channel:alerts:confluence"),
        (channels.parse_lifecycle_channel, "channel:exchange:1:status"),
        (channels.parse_ticker_channel, "channel:ticker:1"),
    ],
)
def test_channel_parsers_reject_other_names(parser: object, text: str) -> None:
    with pytest.raises(ValueError):
        parser(text)  # type: ignore[operator]
