from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from livermore_exchange_core.alerts.history import AlertHistoryWriter
from livermore_schema.alerts import AlertEvent, TimeframeContext
from livermore_schema.db import async_session_factory, create_async_engine
from livermore_schema.enums import Bias, Stage, Timeframe
from livermore_schema.settings import DatabaseSettings
from livermore_schema.tables import AlertHistory


class PgProxy:
    """A TCP proxy to PostgreSQL that can refuse service, to stage an outage on a real socket."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.up = False
        self.rejected = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def __aenter__(self) -> PgProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        if not self.up:
            self.rejected.set()
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers.append(up_writer)
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        dst.close()

    async def wait_rejections(self, count: int) -> None:
        for _ in range(count):
            self.rejected.clear()
            await asyncio.wait_for(self.rejected.wait(), 10)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once the socket is closed


def make_event(**changes: Any) -> AlertEvent:
    fields: dict[str, Any] = {
        "exchange_id": 1,
        "symbol": "BTC-USD",
        "timeframe": Timeframe.M5,
        "trigger_label": "level_-200",
        "trigger_value": -201.123456789,
        "signal_delta": 3.5,
        "price": 43210.12345678,
        "triggered_at": datetime(2024, 5, 1, 12, 5, tzinfo=UTC),
        "timeframes": [
            TimeframeContext(timeframe=Timeframe.M5, macd_v=-201.1, stage=Stage.OVERSOLD)
        ],
        "bias": Bias.BULLISH,
        "source_exchange_id": 1,
        "source_exchange_name": "coinbase",
        "direction": "down",
    }
    fields.update(changes)
    return AlertEvent(**fields)


DETAILS = {
    "level": -200,
    "direction": "down",
    "histogram": 3.5,
    "signal": -204.6,
    "bias": "bullish",
}


@pytest.fixture
async def engine(pg_settings: DatabaseSettings) -> AsyncIterator[AsyncEngine]:
    eng = create_async_engine(pg_settings)
    yield eng
    await eng.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_session_factory(engine)


@contextlib.asynccontextmanager
async def engine_at(settings: DatabaseSettings, port: int) -> AsyncIterator[AsyncEngine]:
    eng = create_async_engine(settings.model_copy(update={"port": port}))
    try:
        yield eng
    finally:
        await eng.dispose()


async def rows_for(sessions: async_sessionmaker[AsyncSession], uid: UUID) -> list[AlertHistory]:
    async with sessions() as session:
        result = await session.exec(select(AlertHistory).where(AlertHistory.uid == uid))
        return list(result.all())


async def test_an_alert_lands_once_with_its_details(
    redis: Any, sessions: async_sessionmaker[AsyncSession]
) -> None:
    event = make_event()
    async with AlertHistoryWriter(sessions, redis, exchange_id=1) as writer:
        await writer.submit(event, DETAILS)
        await writer.submit(event, DETAILS)  # idempotent on uid
        await asyncio.wait_for(writer.wait_idle(), 15)
        assert await writer.pending() == []
    [row] = await rows_for(sessions, event.id)
    assert (row.exchange_id, row.symbol, row.timeframe) == (1, "BTC-USD", "5m")
    assert (row.alert_type, row.trigger_label) == ("macdv", "level_-200")
    assert row.trigger_value == Decimal("-201.123456789000")
    assert row.price == Decimal("43210.123456780000")
    assert row.triggered_at == event.triggered_at
    assert row.details == DETAILS
    assert row.notification_sent is False and row.notification_error is None


async def test_an_outage_delays_the_row_and_a_retry_lands_it(
    redis: Any, pg_settings: DatabaseSettings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    event = make_event()
    async with PgProxy(pg_settings.port) as proxy, engine_at(pg_settings, proxy.port) as eng:
        writer = AlertHistoryWriter(
            async_session_factory(eng), redis, exchange_id=1, retry_initial_s=0.05, retry_max_s=0.2
        )
        async with writer:
            await writer.submit(event, DETAILS)
            await proxy.wait_rejections(2)  # the insert failed and was retried
            assert await writer.pending() == [str(event.id)]
            assert await rows_for(sessions, event.id) == []
            await writer.record_notification(event.id, True, None)  # while still pending
            proxy.up = True
            await asyncio.wait_for(writer.wait_idle(), 15)
            assert await writer.pending() == []
    [row] = await rows_for(sessions, event.id)
    assert row.notification_sent is True


async def test_the_outbox_is_drained_on_restart(
    redis: Any, pg_settings: DatabaseSettings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    event = make_event(trigger_label="reversal_oversold")
    async with engine_at(pg_settings, closed_port()) as dead:
        writer = AlertHistoryWriter(async_session_factory(dead), redis, exchange_id=1)
        async with writer:
            await writer.submit(event, {"zone": "oversold"})
        assert await writer.pending() == [str(event.id)]  # stopped mid-outage: kept
    async with AlertHistoryWriter(sessions, redis, exchange_id=1) as restarted:
        await asyncio.wait_for(restarted.wait_idle(), 15)
        assert await restarted.pending() == []
    [row] = await rows_for(sessions, event.id)
    assert row.details == {"zone": "oversold"}


async def test_a_notification_result_updates_a_stored_row(
    redis: Any, sessions: async_sessionmaker[AsyncSession]
) -> None:
    event = make_event(id=uuid4())
    async with AlertHistoryWriter(sessions, redis, exchange_id=1) as writer:
        await writer.submit(event, DETAILS)
        await asyncio.wait_for(writer.wait_idle(), 15)
        await writer.record_notification(event.id, False, "HTTP 400" + "x" * 600)
        await asyncio.wait_for(writer.wait_idle(), 15)
    [row] = await rows_for(sessions, event.id)
    assert row.notification_sent is False
    assert row.notification_error is not None and row.notification_error.startswith("HTTP 400")
    assert len(row.notification_error) == 500
