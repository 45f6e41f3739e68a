"""DiscordNotifier: alert embeds posted to a Discord webhook from a queue, inside its rate limit.

One background sender posts queued alerts in order. It honours the webhook's bucket headers
(`X-RateLimit-Remaining` 0 means wait `X-RateLimit-Reset-After` seconds before the next post) and
a 429's `retry_after` (JSON body) or `Retry-After` header; network errors and 5xx are retried with
backoff a few times. Each result is recorded on the alert's `alert_history` row through the
`AlertHistoryWriter`. The webhook URL carries its token, so it is never logged: errors are
reported by type and status only.

With an `AlertChartRenderer`, each embed carries a PNG of the series' last bars with MACD-V and
the alert marked, posted as Discord expects files: `multipart/form-data` with `payload_json` and
`files[0]`, the embed's image pointing at `attachment://chart.png`. No chart (a failure, a
timeout, no bars) means the plain JSON embed, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import aiohttp
import structlog
from pydantic import SecretStr

from livermore_exchange_core.alerts.chart import AlertChartRenderer
from livermore_exchange_core.alerts.history import AlertHistoryWriter
from livermore_schema.alerts import AlertEvent, TimeframeContext
from livermore_schema.enums import AlertDirection

log = structlog.get_logger(__name__)

EMBED_COLOR = 0x0099FF
"""The original's embed colour."""
FOOTER = "Livermore Trading System"
"""Footer text of every alert embed."""
MAX_RETRY_AFTER_S = 60.0
"""Longest wait a 429 may impose before the next attempt."""
CHART_FILENAME = "chart.png"
"""Name of the attached chart; the embed's image refers to it as `attachment://chart.png`."""


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1f}"


def _timeframe_block(contexts: list[TimeframeContext]) -> str:
    cells = [f"{c.timeframe.value}: {_fmt(c.macd_v)}" for c in contexts]
    rows = [" | ".join(cells[i : i + 2]) for i in range(0, len(cells), 2)]
    return "```\n" + "\n".join(rows) + "\n```"


def _level_text(event: AlertEvent, details: Mapping[str, Any]) -> tuple[str, str]:
    level = int(details["level"])
    up = event.direction is AlertDirection.UP
    title = (
        f"{event.symbol}: MACD-V crossed {'above' if up else 'below'} {level} ({event.timeframe})"
    )
    # Level alerts only enter an extreme (SPEC section 7): up into overbought, down into oversold.
    return title, f"Entering {'overbought' if up else 'oversold'} territory"


def _reversal_text(event: AlertEvent, details: Mapping[str, Any]) -> tuple[str, str]:
    zone = str(details["zone"])
    way = "up" if zone == "oversold" else "down"
    title = f"{event.symbol}: Potential reversal {way} from {zone} ({event.timeframe})"
    lines = [
        "Signal line crossover confirmed",
        f"Histogram: {_fmt(event.signal_delta)}",
        f"Buffer: {float(details['buffer']):.2f} ({float(details['buffer_pct']):g}%)",
    ]
    return title, "\n".join(lines)


def build_embed(event: AlertEvent, details: Mapping[str, Any]) -> dict[str, Any]:
    """Return the Discord webhook body of an alert."""
    is_level = event.trigger_label.startswith("level_")
    title, headline = (_level_text if is_level else _reversal_text)(event, details)
    description = "\n".join(
        [
            headline,
            f"MACD-V: {_fmt(event.trigger_value)}",
            _timeframe_block(event.timeframes),
            f"**Bias: {event.bias.value.capitalize()}**",
            f"Source: {event.source_exchange_name} (exchange {event.source_exchange_id})",
            *(["Delayed: the bar was judged after it closed"] if event.delayed else []),
        ]
    )
    return {
        "embeds": [
            {
                "title": title,
                "description": description,
                "color": EMBED_COLOR,
                "fields": [{"name": "Price", "value": f"{event.price:,.8g}", "inline": True}],
                "footer": {"text": FOOTER},
                "timestamp": event.triggered_at.isoformat(),
            }
        ]
    }


def with_chart(body: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of an embed body whose first embed shows the attached chart."""
    embeds = [dict(embed) for embed in body["embeds"]]
    embeds[0]["image"] = {"url": f"attachment://{CHART_FILENAME}"}
    return {**body, "embeds": embeds, "attachments": [{"id": 0, "filename": CHART_FILENAME}]}


def _multipart(body: Mapping[str, Any], png: bytes) -> aiohttp.FormData:
    """Build a fresh form for one attempt (a sent FormData cannot be sent again)."""
    form = aiohttp.FormData()
    form.add_field("payload_json", json.dumps(body), content_type="application/json")
    form.add_field("files[0]", png, filename=CHART_FILENAME, content_type="image/png")
    return form


class DiscordNotifier:
    """Queues alert embeds and posts them to one webhook; use it as an async context manager."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        webhook_url: SecretStr,
        *,
        history: AlertHistoryWriter | None = None,
        charts: AlertChartRenderer | None = None,
        max_attempts: int = 5,
        backoff_s: float = 1.0,
    ) -> None:
        self._session = session
        self._url = webhook_url
        self._history = history
        self._charts = charts
        self._max_attempts = max_attempts
        self._backoff_s = backoff_s
        self._queue: asyncio.Queue[tuple[AlertEvent, dict[str, Any]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._not_before = 0.0  # monotonic time the bucket allows the next post

    async def __aenter__(self) -> DiscordNotifier:
        self._task = asyncio.create_task(self._run(), name="discord-notifier")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def submit(self, event: AlertEvent, details: Mapping[str, Any]) -> None:
        """Queue an alert for posting (returns at once)."""
        self._queue.put_nowait((event, dict(details)))

    async def wait_idle(self) -> None:
        """Wait until every queued alert has been posted or given up on."""
        await self._queue.join()

    async def _run(self) -> None:
        while True:
            event, details = await self._queue.get()
            try:
                png = await self._charts.render(event) if self._charts is not None else None
                body = build_embed(event, details)
                sent, error = await self.deliver(with_chart(body) if png else body, png)
                log.info(
                    "discord.result",
                    alert_id=str(event.id),
                    sent=sent,
                    error=error,
                    chart=bool(png),
                )
                if self._history is not None:
                    await self._history.record_notification(event.id, sent, error)
            except Exception as exc:  # never let one alert stop the sender
                log.error("discord.failed", alert_id=str(event.id), error=type(exc).__name__)
            finally:
                self._queue.task_done()

    async def deliver(
        self, body: Mapping[str, Any], png: bytes | None = None
    ) -> tuple[bool, str | None]:
        """Post one body (with `png` attached) within the rate limit; return (sent, error)."""
        error: str | None = None
        for attempt in range(1, self._max_attempts + 1):
            await self._wait_for_bucket()
            try:
                payload: dict[str, Any] = (
                    {"data": _multipart(body, png)} if png is not None else {"json": body}
                )
                async with self._session.post(
                    self._url.get_secret_value(), allow_redirects=False, **payload
                ) as response:
                    self._track_bucket(response.headers)
                    if response.status < 300:
                        return True, None
                    error = f"HTTP {response.status}"
                    if response.status == 429:
                        await self._hold_for(response)
                        continue
                    if response.status < 500:
                        return False, error
            except (aiohttp.ClientError, TimeoutError) as exc:
                error = type(exc).__name__
            log.warning("discord.retry", attempt=attempt, error=error)
            await asyncio.sleep(self._backoff_s * 2 ** (attempt - 1))
        return False, error

    async def _wait_for_bucket(self) -> None:
        delay = self._not_before - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    def _track_bucket(self, headers: Mapping[str, str]) -> None:
        """Hold the next post until the bucket resets when this response emptied it."""
        try:
            remaining = float(headers.get("X-RateLimit-Remaining", "1"))
            reset_after = float(headers.get("X-RateLimit-Reset-After", "0"))
        except ValueError:
            return
        if remaining <= 0:
            wait = min(reset_after, MAX_RETRY_AFTER_S)
            self._not_before = max(self._not_before, time.monotonic() + wait)

    async def _hold_for(self, response: aiohttp.ClientResponse) -> None:
        """Push the next attempt back by the 429's retry-after (body first, then header)."""
        retry_after: float | None = None
        with contextlib.suppress(aiohttp.ContentTypeError, ValueError, TypeError):
            body = await response.json()
            if isinstance(body, dict) and body.get("retry_after") is not None:
                retry_after = float(body["retry_after"])
        if retry_after is None:
            with contextlib.suppress(ValueError, TypeError):
                retry_after = float(response.headers.get("Retry-After", "1"))
        wait = min(retry_after if retry_after is not None else 1.0, MAX_RETRY_AFTER_S)
        self._not_before = max(self._not_before, time.monotonic() + wait)
        log.warning("discord.rate_limited", retry_after_s=wait)
