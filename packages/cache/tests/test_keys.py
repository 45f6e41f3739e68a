from __future__ import annotations

import pytest

from livermore_cache import keys
from livermore_cache.keys import SeriesKey
from livermore_schema.enums import IndicatorType, Timeframe

M5, H1 = Timeframe.M5, Timeframe.H1
MACDV = IndicatorType.MACD_V


@pytest.mark.parametrize(
    ("built", "expected"),
    [
        (keys.candles_key(1, "BTC-USD", M5), "candles:1:BTC-USD:5m"),
        (keys.candles_key(2, "BTCUSDT", Timeframe.D1), "candles:2:BTCUSDT:1d"),
        (keys.user_candles_key(7, 1, "BTC-USD", M5), "usercandles:7:1:BTC-USD:5m"),
        (keys.legacy_candles_key(7, 1, "BTC-USD", M5), "candles:7:1:BTC-USD:5m"),
        (keys.indicator_key(1, "BTC-USD", H1, MACDV), "indicator:1:BTC-USD:1h:macd-v"),
        (keys.user_indicator_key(7, 3, "ETHUSD", H1, MACDV), "userindicator:7:3:ETHUSD:1h:macd-v"),
        (keys.legacy_indicator_key(7, 1, "BTC-USD", H1, MACDV), "indicator:7:1:BTC-USD:1h:macd-v"),
        (keys.ticker_key(1, "BTC-USD"), "ticker:1:BTC-USD"),
        (keys.orderbook_key(2, "BTCUSDT"), "orderbook:2:BTCUSDT"),
        (keys.status_key(1), "exchange:status:1"),
        (keys.lease_key(3), "livermore:lease:3"),
        (keys.command_stream_key(1), "livermore:commandstream:1"),
        (keys.response_key(1, "abc"), "livermore:response:1:abc"),
        (keys.alert_state_key(1, "BTC-USD", Timeframe.H4), "alertstate:1:BTC-USD:4h"),
        (
            keys.alert_cooldown_key(1, "BTC-USD", M5, "level_-150"),
            "alertcooldown:1:BTC-USD:5m:level_-150",
        ),
        (keys.alert_outbox_key(2), "alertoutbox:2"),
        (keys.repairs_key(2), "repairs:2"),
        (
            keys.confluence_claim_key("bitcoin", M5, "level", "down"),
            "alertconfluence:bitcoin:5m:level:down",
        ),
        (keys.confluence_outbox_key(), "alertoutbox:confluence"),
        (keys.candles_pattern(1), "candles:1:*:*"),
        (keys.candles_pattern(1, "BTC-USD"), "candles:1:BTC-USD:*"),
        (keys.candles_pattern(1, timeframe="5m"), "candles:1:*:5m"),
        (keys.user_candles_pattern(1), "usercandles:*:1:*:*"),
        (keys.indicators_pattern(1, "BTC-USD"), "indicator:1:BTC-USD:*:*"),
        (keys.user_indicators_pattern(1), "userindicator:*:1:*:*:*"),
        (keys.tickers_pattern(1), "ticker:1:*"),
        (keys.orderbooks_pattern(2), "orderbook:2:*"),
    ],
)
def test_golden_key_strings(built: str, expected: str) -> None:
    assert built == expected


def test_candle_key_parsers_round_trip() -> None:
    tier1 = SeriesKey(1, "BTC-USD", M5)
    assert keys.parse_candles_key(keys.candles_key(1, "BTC-USD", M5)) == tier1
    user = SeriesKey(1, "BTC-USD", M5, user_id=7)
    assert keys.parse_user_candles_key(keys.user_candles_key(7, 1, "BTC-USD", M5)) == user
    assert keys.parse_legacy_candles_key(keys.legacy_candles_key(7, 1, "BTC-USD", M5)) == user


def test_other_key_parsers_round_trip() -> None:
    series = SeriesKey(2, "BTCUSDT", H1)
    built = keys.indicator_key(2, "BTCUSDT", H1, MACDV)
    assert keys.parse_indicator_key(built) == (series, MACDV)
    user_built = keys.user_indicator_key(9, 2, "BTCUSDT", H1, MACDV)
    assert keys.parse_user_indicator_key(user_built) == (SeriesKey(2, "BTCUSDT", H1, 9), MACDV)
    assert keys.parse_ticker_key(keys.ticker_key(3, "ETHUSD")) == (3, "ETHUSD")
    assert keys.parse_status_key(keys.status_key(4)) == 4
    assert keys.parse_response_key(keys.response_key(1, "c-1")) == (1, "c-1")


@pytest.mark.parametrize(
    ("parser", "text"),
    [
        (keys.parse_candles_key, "candles:7:1:BTC-USD:5m"),  # legacy is not Tier 1
        (keys.parse_candles_key, "candles:x:BTC-USD:5m"),
        (keys.parse_candles_key, "candles:1:BTC-USD:7m"),
        (keys.parse_candles_key, "candles:1::5m"),
        (keys.parse_candles_key, "usercandles:1:BTC-USD:5m"),
        (keys.parse_legacy_candles_key, "candles:1:BTC-USD:5m"),
        (keys.parse_user_candles_key, "usercandles:u:1:BTC-USD:5m"),
        (keys.parse_indicator_key, "indicator:7:1:BTC-USD:1h:macd-v"),
        (keys.parse_indicator_key, "indicator:1:BTC-USD:1h:rsi"),
        (keys.parse_user_indicator_key, "userindicator:7:1:BTC-USD:1h"),
        (keys.parse_ticker_key, "ticker:1"),
        (keys.parse_status_key, "exchange:state:1"),
        (keys.parse_status_key, "exchange:status:one"),
        (keys.parse_response_key, "livermore:lease:1:x"),
    ],
)
def test_key_parsers_reject_other_names(parser: object, text: str) -> None:
    with pytest.raises(ValueError):
        parser(text)  # type: ignore[operator]
