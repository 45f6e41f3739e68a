import pytest

from livermore_exchange_core.adapters.binance import parsing as bn
from livermore_exchange_core.adapters.coinbase import parsing as cb
from livermore_exchange_core.base import Balance
from livermore_exchange_core.ratelimit import WindowRule, rules_from_exchange_info
from livermore_schema.enums import CandleSource, Timeframe

from ._fixtures import http_body

FIVE_MIN = 300_000


def _row(start: str, *, low: str) -> dict[str, str]:
    return {"start": start, "low": low, "high": "2", "open": "1.5", "close": "1.5", "volume": "1"}


def test_coinbase_candles_are_reversed_to_oldest_first_with_ms_and_floats() -> None:
    body = http_body("coinbase", "http_candles")
    now_ms = 1712192500000  # inside the 1712192400 bucket: that bar is still forming
    candles = cb.parse_candles_response(
        body, exchange_id=1, symbol="BTC-USD", timeframe=Timeframe.M5, now_ms=now_ms
    )
    assert [c.open_time for c in candles] == [
        1712191500000,
        1712191800000,
        1712192100000,
        1712192400000,
    ]
    first = candles[0]
    assert first.open == 66450.25 and isinstance(first.open, float)
    assert first.close_time == 1712191500000 + FIVE_MIN - 1
    assert first.volume == 8.0
    assert first.source is CandleSource.REST
    assert first.exchange == "coinbase" and first.symbol == "BTC-USD"
    assert [c.closed for c in candles] == [True, True, True, False]


def test_coinbase_bar_is_closed_exactly_at_its_end() -> None:
    row = {
        "start": "1712192400",
        "low": "1",
        "high": "2",
        "open": "1.5",
        "close": "1.5",
        "volume": "0",
    }
    end = 1712192400000 + FIVE_MIN
    kwargs = {"exchange_id": 1, "symbol": "X-USD", "timeframe": Timeframe.M5}
    assert not cb.parse_rest_candle(row, now_ms=end - 1, **kwargs).closed  # type: ignore[arg-type]
    assert cb.parse_rest_candle(row, now_ms=end, **kwargs).closed  # type: ignore[arg-type]


def test_coinbase_malformed_rows_are_dropped_not_fatal() -> None:
    body = {
        "candles": [
            {
                "start": "1712192400",
                "low": "1",
                "high": "2",
                "open": "1.5",
                "close": "1.5",
                "volume": "1",
            },
            {
                "start": "1712192100",
                "low": "5",
                "high": "2",
                "open": "1.5",
                "close": "1.5",
                "volume": "1",
            },
            {"start": "oops"},
        ]
    }
    candles = cb.parse_candles_response(
        body, exchange_id=1, symbol="X-USD", timeframe=Timeframe.M5, now_ms=2_000_000_000_000
    )
    assert [c.open_time for c in candles] == [1712192400000]


def test_coinbase_products_keep_spot_with_quote_volume() -> None:
    products = {
        p.symbol: p for p in cb.parse_products_response(http_body("coinbase", "http_products"))
    }
    assert set(products) == {"BTC-USD", "BTC-USDC", "ETH-USD", "OLD-USD"}
    assert products["BTC-USD"].quote_volume_24h == pytest.approx(655701234.56)
    assert (
        products["BTC-USD"].base_currency == "BTC" and products["BTC-USD"].quote_currency == "USD"
    )
    # No approximate figure: base volume x price.
    assert products["ETH-USD"].quote_volume_24h == pytest.approx(50000 * 3310.5)
    assert products["BTC-USDC"].alias_of == "BTC-USD"
    assert products["BTC-USD"].alias_of is None
    assert not products["OLD-USD"].is_trading
    assert products["BTC-USD"].is_trading


def test_coinbase_time_accounts_and_errors() -> None:
    assert cb.parse_server_time(http_body("coinbase", "http_time")) == 1712192712345
    assert cb.parse_server_time({"epochSeconds": "1712192712"}) == 1712192712000
    balances, cursor = cb.parse_accounts_response(http_body("coinbase", "http_accounts"))
    assert balances == [Balance("BTC", 0.5, 0.01)]
    assert cursor == "789100"
    assert "less than 350" in cb.error_message(http_body("coinbase", "http_candles_400"), "x")
    assert cb.error_message(http_body("coinbase", "http_product_404"), "x").startswith(
        "Product NOPE"
    )
    assert cb.error_message("<html>", "fallback") == "fallback"


def test_coinbase_granularity_covers_every_runtime_timeframe() -> None:
    from livermore_schema.enums import RUNTIME_TIMEFRAMES

    assert {tf: cb.GRANULARITY[tf] for tf in RUNTIME_TIMEFRAMES} == {
        Timeframe.M1: "ONE_MINUTE",
        Timeframe.M5: "FIVE_MINUTE",
        Timeframe.M15: "FIFTEEN_MINUTE",
        Timeframe.H1: "ONE_HOUR",
        Timeframe.H4: "FOUR_HOUR",
        Timeframe.D1: "ONE_DAY",
    }
    assert cb.PAGE_SIZE < cb.MAX_CANDLES_PER_REQUEST


def test_binance_klines_oldest_first_and_open_bar_marked() -> None:
    rows = http_body("binance", "http_klines")
    candles = bn.parse_klines_response(
        rows,
        exchange_id=2,
        exchange="binance",
        symbol="BTCUSDT",
        timeframe=Timeframe.M5,
        now_ms=1712192500000,
    )
    assert [c.open_time for c in candles] == [1712191800000, 1712192100000, 1712192400000]
    assert candles[0].close_time == 1712192099999  # matches the row's closeTime
    assert candles[0].high == 66420.77 and candles[0].volume == 31.744
    assert [c.closed for c in candles] == [True, True, False]
    assert {c.exchange for c in candles} == {"binance"}


def test_binance_bad_rows_are_dropped() -> None:
    rows = [[1712192400000, "1", "2", "0.5", "1.5", "3"], [1712192100000, "x"], "junk"]
    candles = bn.parse_klines_response(
        rows,  # type: ignore[arg-type]
        exchange_id=2,
        exchange="binance",
        symbol="BTCUSDT",
        timeframe=Timeframe.M5,
        now_ms=2_000_000_000_000,
    )
    assert [c.open_time for c in candles] == [1712192400000]


def test_binance_exchange_info_and_ticker_join_into_products() -> None:
    info = bn.parse_exchange_info(http_body("binance", "http_exchange_info"))
    assert info.server_time_ms == 1712192712345
    assert rules_from_exchange_info(info.rate_limits) == [
        WindowRule(6000.0, 60.0, True),
        WindowRule(61000.0, 300.0, False),
    ]
    volumes = bn.parse_ticker_volumes(http_body("binance", "http_ticker_24hr"))
    products = {p.symbol: p for p in bn.join_products(info, volumes)}
    assert products["BTCUSDT"].quote_volume_24h == pytest.approx(1650000000.55)
    assert (
        products["BTCUSDT"].base_currency == "BTC" and products["BTCUSDT"].quote_currency == "USDT"
    )
    assert products["ETHBTC"].quote_volume_24h == 1497.0
    assert not products["OLDUSDT"].is_trading


def test_binance_used_weight_headers_carry_their_window() -> None:
    headers = {
        "x-mbx-used-weight": "7",  # legacy, no window: skipped
        "x-mbx-used-weight-1m": "40",
        "X-MBX-USED-WEIGHT-3S": "12",
        "x-mbx-used-weight-1d": "900",
        "x-mbx-used-weight-xm": "1",
        "x-mbx-used-weight-2m": "junk",
        "x-mbx-order-count-10s": "3",
    }
    assert sorted(bn.parse_used_weights(headers)) == [(12.0, 3.0), (40.0, 60.0), (900.0, 86400.0)]
    assert bn.parse_used_weights({}) == []


def test_binance_account_and_errors() -> None:
    balances = bn.parse_account_balances(http_body("binance", "http_account"))
    assert balances == [Balance("BTC", 0.25, 0.05), Balance("USDT", 1500.0, 0.0)]
    assert bn.parse_error(http_body("binance", "http_invalid_symbol")) == (-1121, "Invalid symbol.")
    code, msg = bn.parse_error(http_body("binance", "http_429"))
    assert code == bn.ERROR_TOO_MUCH_WEIGHT and "6000 request weight" in msg
    assert bn.parse_error("<html/>") == (None, "<html/>")
