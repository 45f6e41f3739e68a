"""What the demo prints: progress, the banner, one line per alert, and failures."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from datetime import UTC
from typing import TextIO

from livermore_schema.alerts import AlertEvent
from livermore_schema.enums import AlertType, ConnectionState
from livermore_schema.status import StartupProgress

ALERT_HEADER = (
    f"{'triggered':<10} {'exchange':<10} {'symbol':<10} {'tf':>3}  {'label':<20} {'dir':<4} "
    f"{'MACD-V':>8}  price"
)


def format_price(price: float) -> str:
    """Return a price with thousands separators, keeping small prices' significant digits."""
    return f"{price:,.2f}" if price >= 100 else f"{price:.6g}"


def format_alert(event: AlertEvent) -> str:
    """Return the one console line of an alert (columns as in `ALERT_HEADER`).

    The time is the alert's `triggered_at` in UTC: exchange time, which the simulator runs fast.
    An alert judged after its bar closed (a revised or repaired bar) ends with `delayed`. A
    confluence names its asset and every venue's trigger instead.
    """
    when = event.triggered_at.astimezone(UTC).strftime("%H:%M:%S")
    if event.alert_type is AlertType.CONFLUENCE:
        venues = ", ".join(
            f"{v.exchange} {v.symbol} {v.trigger_label} {v.trigger_value:+.1f}"
            for v in event.venues or []
        )
        return (
            f"{when:<10} {'CONFLUENCE':<10} {event.asset or event.symbol:<10} "
            f"{event.timeframe.value:>3}  {event.direction.value}: {venues}"
        )
    line = (
        f"{when:<10} {event.source_exchange_name:<10} {event.symbol:<10} "
        f"{event.timeframe.value:>3}  {event.trigger_label:<20} {event.direction.value:<4} "
        f"{event.trigger_value:>+8.1f}  {format_price(event.price)}"
    )
    return f"{line}  delayed" if event.delayed else line


def format_progress(
    exchange: str, state: ConnectionState, progress: StartupProgress | None, reason: str | None
) -> str:
    """Return a worker progress line, e.g. `[coinbase] starting: backfill 40% (BTC-USD 1h)`."""
    line = f"[{exchange}] {state.value}"
    if progress is not None and state is not ConnectionState.CONNECTED:
        line += f": {progress.phase.value} {progress.percent:.0f}%"
        if progress.current_item:
            line += f" ({progress.current_item})"
    if reason and state in (ConnectionState.ERROR, ConnectionState.RECONNECTING):
        line += f" - {reason}"
    return line


def banner_lines(admin_url: str, token: str, log_dir: str, exchanges: Iterable[str]) -> list[str]:
    """Return the block printed once every worker is connected."""
    names = " and ".join(exchanges)
    return [
        "",
        f"Livermore demo is running: {names} workers connected.",
        f"  admin page:  {admin_url}",
        f"  admin token: {token}",
        f"  logs:        {log_dir}",
        "Alerts from every exchange appear below as they fire; Ctrl-C stops everything.",
        "",
        ALERT_HEADER,
    ]


class Console:
    """Line-oriented output: information to stdout, failures to stderr, flushed at once."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self._out = out if out is not None else sys.stdout
        self._err = err if err is not None else sys.stderr

    def say(self, line: str) -> None:
        """Print one line of information."""
        print(line, file=self._out, flush=True)

    def fail(self, line: str, details: Iterable[str] = ()) -> None:
        """Print `details` (indented) and then the one-line reason, prefixed with the program."""
        for detail in details:
            print(f"    | {detail}", file=self._err)
        print(f"livermore-demo: {line}", file=self._err, flush=True)
