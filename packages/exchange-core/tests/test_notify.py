from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from structlog.testing import capture_logs

from livermore_exchange_core.alerts.evaluator import FanOutSink
from livermore_exchange_core.alerts.history import AlertHistoryWriter
from livermore_exchange_core.alerts.notify import EMBED_COLOR, FOOTER, DiscordNotifier, build_embed
from livermore_exchange_sim.testing import RunningSim, running_sim
from livermore_schema.alerts import AlertEvent, TimeframeContext
from livermore_schema.db import async_session_factory, create_async_engine
from livermore_schema.enums import Bias, Stage, Timeframe
from livermore_schema.settings import DatabaseSettings
from livermore_schema.tables import AlertHistory

CONTEXTS = [
    TimeframeContext(timeframe=tf, macd_v=v, stage=s)
    for tf, v, s in [
        (Timeframe.M1, -180.25, Stage.OVERSOLD),
        (Timeframe.M5, -201.5, Stage.OVERSOLD),
        (Timeframe.M15, -90.0, Stage.REVERSING),
        (Timeframe.H1, 12.0, Stage.RANGING),
        (Timeframe.H4, None, Stage.UNKNOWN),
        (Timeframe.D1, 60.0, Stage.RALLYING),
    ]
]
LEVEL = {"level": -200, "direction": "down", "delayed": False, "histogram": -4.0}
REVERSAL = {"zone": "oversold", "buffer": 10.08, "buffer_pct": 5.0, "histogram": 12.0}


def make_event(label: str = "level_-200", **changes: Any) -> AlertEvent:
    fields: dict[str, Any] = {
        "exchange_id": 2,
        "symbol": "ETHUSDT",
        "timeframe": Timeframe.M5,
        "trigger_label": label,
        "trigger_value": -201.5,
        "signal_delta": -4.0,
        "price": 3012.5,
        "triggered_at": datetime(2024, 5, 1, 12, 5, tzinfo=UTC),
        "timeframes": CONTEXTS,
        "bias": Bias.BULLISH,
        "source_exchange_id": 2,
        "source_exchange_name": "binance",
        "direction": "down",
    }
    fields.update(changes)
    return AlertEvent(**fields)


def test_level_embed_matches_the_original_layout() -> None:
    [embed] = build_embed(make_event(), LEVEL)["embeds"]
    assert embed["title"] == "ETHUSDT: MACD-V crossed below -200 (5m)"
    assert embed["color"] == EMBED_COLOR
    assert embed["footer"] == {"text": FOOTER}
    assert embed["fields"] == [{"name": "Price", "value": "3,012.5", "inline": True}]
    assert embed["timestamp"] == "2024-05-01T12:05:00+00:00"
    lines = embed["description"].splitlines()
    assert lines[0] == "Entering oversold territory"
    assert lines[1] == "MACD-V: -201.5"
    assert lines[2:6] == [
        "```",
        "1m: -180.2 | 5m: -201.5",
        "15m: -90.0 | 1h: +12.0",
        "4h: n/a | 1d: +60.0",
    ]
    assert "**Bias: Bullish**" in lines
    assert lines[-1] == "Source: binance (exchange 2)"


@pytest.mark.parametrize(
    ("level", "direction", "title_word", "headline"),
    [
        (150, "up", "above", "Entering overbought territory"),
        (400, "up", "above", "Entering overbought territory"),
        (-150, "down", "below", "Entering oversold territory"),
        (-350, "down", "below", "Entering oversold territory"),
    ],
)
def test_level_embed_wording(level: int, direction: str, title_word: str, headline: str) -> None:
    event = make_event(f"level_{level}", direction=direction)
    [embed] = build_embed(event, {**LEVEL, "level": level, "direction": direction})["embeds"]
    assert embed["title"] == f"ETHUSDT: MACD-V crossed {title_word} {level} (5m)"
    assert embed["description"].startswith(headline)


def test_a_delayed_alert_says_so_in_its_embed() -> None:
    [live] = build_embed(make_event(), LEVEL)["embeds"]
    [late] = build_embed(make_event(delayed=True), {**LEVEL, "delayed": True})["embeds"]
    assert "Delayed" not in live["description"]
    assert late["description"].splitlines()[-1].startswith("Delayed: ")


def test_reversal_embed() -> None:
    [embed] = build_embed(
        make_event("reversal_oversold", signal_delta=12.0, direction="up"), REVERSAL
    )["embeds"]
    assert embed["title"] == "ETHUSDT: Potential reversal up from oversold (5m)"
    lines = embed["description"].splitlines()
    assert lines[:3] == [
        "Signal line crossover confirmed",
        "Histogram: +12.0",
        "Buffer: 10.08 (5%)",
    ]
    assert "MACD-V: -201.5" in lines


@pytest.fixture
async def sim() -> AsyncIterator[RunningSim]:
    async with running_sim() as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def sessions(
    pg_settings: DatabaseSettings,
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_async_engine(pg_settings)
    yield async_session_factory(engine)
    await engine.dispose()


async def test_an_alert_is_posted_and_its_result_recorded(
    sim: RunningSim,
    http: aiohttp.ClientSession,
    redis: Any,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    event = make_event(exchange_id=1, source_exchange_id=1, source_exchange_name="coinbase")
    async with (
        AlertHistoryWriter(sessions, redis, exchange_id=1) as writer,
        DiscordNotifier(http, SecretStr(sim.webhook_url), history=writer) as notifier,
    ):
        await FanOutSink(writer, notifier).submit(event, LEVEL)
        [post] = await sim.webhooks.wait_for("livermore", 1)
        assert post == build_embed(event, LEVEL)
        await asyncio.wait_for(notifier.wait_idle(), 10)
        await asyncio.wait_for(writer.wait_idle(), 10)
    async with sessions() as session:
        row = (await session.exec(select(AlertHistory).where(AlertHistory.uid == event.id))).one()
    assert row.notification_sent is True and row.notification_error is None


async def test_a_429_is_retried_after_its_retry_after(
    sim: RunningSim, http: aiohttp.ClientSession
) -> None:
    sim.webhooks.throttle(1, retry_after_s=0.3)
    notifier = DiscordNotifier(http, SecretStr(sim.webhook_url), backoff_s=0.01)
    started = time.monotonic()
    assert await notifier.deliver(build_embed(make_event(), LEVEL)) == (True, None)
    assert time.monotonic() - started >= 0.3
    assert len(sim.webhooks.received("livermore")) == 1


async def test_an_empty_bucket_holds_the_next_post_until_reset(
    sim: RunningSim, http: aiohttp.ClientSession
) -> None:
    notifier = DiscordNotifier(http, SecretStr(sim.webhook_url))
    body = build_embed(make_event(), LEVEL)
    for _ in range(5):  # the sink's bucket holds 5 posts; the 5th answers Remaining 0
        assert await notifier.deliver(body) == (True, None)
    emptied = time.monotonic()
    assert await notifier.deliver(body) == (True, None)
    assert time.monotonic() - emptied >= 2.0  # X-RateLimit-Reset-After: 2.000
    assert len(sim.webhooks.received("livermore")) == 6


async def test_a_client_error_is_not_retried(sim: RunningSim, http: aiohttp.ClientSession) -> None:
    notifier = DiscordNotifier(http, SecretStr(sim.webhook_url), backoff_s=5.0)
    assert await notifier.deliver({"content": ""}) == (False, "HTTP 400")


async def test_an_unreachable_webhook_is_reported_without_its_url(
    http: aiohttp.ClientSession,
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api/webhooks/123/s3cr3t-T0KEN"
    notifier = DiscordNotifier(http, SecretStr(url), max_attempts=2, backoff_s=0.01)
    with capture_logs() as logs:
        async with notifier:
            await notifier.submit(make_event(), LEVEL)
            await asyncio.wait_for(notifier.wait_idle(), 10)
    results = [entry for entry in logs if entry["event"] == "discord.result"]
    assert [(r["sent"], r["error"]) for r in results] == [(False, "ClientConnectorError")]
    assert "s3cr3t-T0KEN" not in repr(logs)
    assert "s3cr3t-T0KEN" not in repr(notifier.__dict__)
