from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta, timezone

from livermore_demo.console import (
    ALERT_HEADER,
    Console,
    banner_lines,
    format_alert,
    format_price,
    format_progress,
)
from livermore_schema.alerts import AlertEvent, ConfluenceVenue
from livermore_schema.enums import AlertType, Bias, ConnectionState, StartupPhase, Timeframe
from livermore_schema.status import StartupProgress


def _alert(**changes: object) -> AlertEvent:
    fields: dict[str, object] = {
        "exchange_id": 2,
        "symbol": "BTCUSDT",
        "timeframe": Timeframe.M5,
        "trigger_label": "level_150",
        "trigger_value": 152.34,
        "signal_delta": 3.1,
        "price": 65432.1,
        "triggered_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "timeframes": [],
        "bias": Bias.BULLISH,
        "source_exchange_id": 2,
        "source_exchange_name": "binance",
        "direction": "up",
    }
    fields.update(changes)
    return AlertEvent.model_validate(fields)


def test_alert_line_names_time_exchange_symbol_timeframe_label_direction_macdv_price() -> None:
    line = format_alert(_alert())
    assert line.split() == [
        *("03:04:05", "binance", "BTCUSDT", "5m"),
        *("level_150", "up", "+152.3", "65,432.10"),
    ]
    assert ALERT_HEADER.split() == [
        *("triggered", "exchange", "symbol", "tf"),
        *("label", "dir", "MACD-V", "price"),
    ]
    assert format_alert(_alert(delayed=True)) == f"{line}  delayed"


def test_a_confluence_is_printed_with_its_asset_and_every_venue() -> None:
    coinbase = _alert(exchange_id=1, symbol="BTC-USD", source_exchange_name="coinbase")
    binance = _alert(trigger_label="level_200", trigger_value=201.0)
    venues = [
        ConfluenceVenue(
            alert_id=e.id, exchange_id=e.exchange_id, exchange=e.source_exchange_name,
            symbol=e.symbol, trigger_label=e.trigger_label, trigger_value=e.trigger_value,
            price=e.price, triggered_at=e.triggered_at,
        )
        for e in (coinbase, binance)
    ]  # fmt: skip
    event = _alert(alert_type=AlertType.CONFLUENCE, asset="bitcoin", venues=venues)

    assert format_alert(event) == (
        "03:04:05   CONFLUENCE bitcoin     5m  up: "
        "coinbase BTC-USD level_150 +152.3, binance BTCUSDT level_200 +201.0"
    )


def test_alert_time_is_converted_to_utc_and_negative_values_keep_their_sign() -> None:
    plus_two = timezone(timedelta(hours=2))
    event = _alert(
        triggered_at=datetime(2026, 1, 2, 5, 4, 5, tzinfo=plus_two),
        trigger_label="level_-200",
        trigger_value=-201.04,
        price=0.5512,
        source_exchange_name="coinbase",
        symbol="XRP-USD",
        direction="down",
    )
    assert format_alert(event).split() == [
        "03:04:05",
        "coinbase",
        "XRP-USD",
        "5m",
        "level_-200",
        "down",
        "-201.0",
        "0.5512",
    ]


def test_price_keeps_small_prices_significant_digits() -> None:
    assert format_price(3400.5) == "3,400.50"
    assert format_price(0.000123456) == "0.000123456"


def test_progress_line_shows_phase_percent_and_item_until_connected() -> None:
    progress = StartupProgress(phase=StartupPhase.BACKFILL, percent=40, current_item="BTC-USD 1h")
    starting = format_progress("coinbase", ConnectionState.STARTING, progress, None)
    assert starting == "[coinbase] starting: backfill 40% (BTC-USD 1h)"
    connected = format_progress("coinbase", ConnectionState.CONNECTED, progress, None)
    assert connected == "[coinbase] connected"
    failed = format_progress("binance", ConnectionState.ERROR, None, "HTTP 451")
    assert failed == "[binance] error - HTTP 451"


def test_banner_holds_admin_url_and_token() -> None:
    lines = banner_lines("http://127.0.0.1:1/admin", "lvm_tok", "/tmp/x", ["coinbase", "binance"])
    assert "  admin page:  http://127.0.0.1:1/admin" in lines
    assert "  admin token: lvm_tok" in lines
    assert lines[-1] == ALERT_HEADER


def test_console_sends_failures_to_stderr_as_one_prefixed_line_after_details() -> None:
    out, err = io.StringIO(), io.StringIO()
    console = Console(out, err)
    console.say("hello")
    console.fail("api exited", ["Traceback", "boom"])
    assert out.getvalue() == "hello\n"
    lines = err.getvalue().splitlines()
    assert lines == ["    | Traceback", "    | boom", "livermore-demo: api exited"]
