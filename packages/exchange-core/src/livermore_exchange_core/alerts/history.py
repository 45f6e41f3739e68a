"""AlertHistoryWriter: published alerts into `alert_history`, through a durable Redis outbox.

`submit` puts the event in the exchange's outbox hash (`alert_outbox_key`) and queues it; one
background task inserts it (idempotent on `uid`) and only then removes it from the outbox. An
insert that fails because PostgreSQL is unreachable is retried with capped exponential backoff
until it lands, so an outage delays rows but never loses them (nor touches the publish, which
happened before). On start the outbox is drained: anything a previous process left is inserted.

A notification result (`record_notification`) is written next to the pending event in the outbox,
so a row inserted later carries it, and is then applied as an UPDATE queued behind the insert.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import TracebackType
from typing import Any
from uuid import UUID

import structlog
from redis import exceptions as redis_exc
from sqlalchemy import exc as sa_exc
from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from livermore_cache import keys
from livermore_cache.client import RedisClient
from livermore_schema.alerts import AlertEvent
from livermore_schema.tables import AlertHistory

log = structlog.get_logger(__name__)

NOTIFY_SUFFIX = ":notify"
"""Outbox field suffix holding a pending event's notification result."""
MAX_ERROR_CHARS = 500
"""`alert_history.notification_error` width."""

_RETRYABLE = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    redis_exc.ConnectionError,
    redis_exc.TimeoutError,
    OSError,
    TimeoutError,
)

# KEYS[1] outbox; ARGV: uid, result. Stores the result only while the event is still pending.
_PATCH = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], ARGV[1] .. ARGV[3], ARGV[2])
  return 1
end
return 0
"""


@dataclass(frozen=True, slots=True)
class _Insert:
    uid: str


@dataclass(frozen=True, slots=True)
class _Notify:
    uid: str
    sent: bool
    error: str | None


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _notify_field(sent: bool, error: str | None) -> str:
    return json.dumps({"sent": sent, "error": error})


def history_row(
    event: AlertEvent, details: Mapping[str, Any], sent: bool, error: str | None
) -> dict[str, Any]:
    """Return the `alert_history` column values of a published event."""
    return {
        "uid": event.id,
        "exchange_id": event.exchange_id,
        "symbol": event.symbol,
        "timeframe": event.timeframe.value,
        "alert_type": event.alert_type.value,
        "trigger_label": event.trigger_label,
        "trigger_value": Decimal(repr(event.trigger_value)),
        "price": Decimal(repr(event.price)),
        "triggered_at": event.triggered_at,
        "details": dict(details),
        "notification_sent": sent,
        "notification_error": None if error is None else error[:MAX_ERROR_CHARS],
        "asset": event.asset,
        "quote": event.quote,
    }


class AlertHistoryWriter:
    """Stores published alerts of one exchange in PostgreSQL; use it as an async context manager.

    `outbox_key` instead of `exchange_id` gives another outbox (the confluence alerts' one).
    """

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        redis: RedisClient,
        *,
        exchange_id: int | None = None,
        outbox_key: str | None = None,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
    ) -> None:
        if (exchange_id is None) == (outbox_key is None):
            raise ValueError("give exactly one of exchange_id and outbox_key")
        self._sessions = session_factory
        self._redis = redis
        self._outbox = outbox_key or keys.alert_outbox_key(exchange_id or 0)
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._queue: asyncio.Queue[_Insert | _Notify] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._patch = redis.register_script(_PATCH)
        self._log = log.bind(exchange_id=exchange_id, outbox=self._outbox)

    async def __aenter__(self) -> AlertHistoryWriter:
        pending = await self.pending()
        for uid in pending:
            self._queue.put_nowait(_Insert(uid))
        if pending:
            self._log.info("alert_history.outbox_drain", pending=len(pending))
        self._task = asyncio.create_task(self._run(), name="alert-history-writer")
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
        """Put the event in the outbox and queue its insert (returns without waiting for it)."""
        record = {"event": event.model_dump(mode="json"), "details": dict(details)}
        await self._redis.hset(self._outbox, str(event.id), json.dumps(record))
        self._queue.put_nowait(_Insert(str(event.id)))

    async def record_notification(self, uid: UUID, sent: bool, error: str | None) -> None:
        """Record a notification result on the alert's row (or on its pending outbox entry)."""
        field = _notify_field(sent, error)
        await self._patch(keys=[self._outbox], args=[str(uid), field, NOTIFY_SUFFIX])
        self._queue.put_nowait(_Notify(str(uid), sent, error))

    async def pending(self) -> list[str]:
        """Return the ids of alerts in the outbox, not yet stored."""
        fields = await self._redis.hkeys(self._outbox)
        return [_text(f) for f in fields if not _text(f).endswith(NOTIFY_SUFFIX)]

    async def wait_idle(self) -> None:
        """Wait until every queued insert and update has been applied."""
        await self._queue.join()

    async def _run(self) -> None:
        while True:
            op = await self._queue.get()
            try:
                await self._apply_until_done(op)
            except Exception as exc:  # one bad record must not stop the writer; it stays queued
                self._log.error("alert_history.failed", alert_id=op.uid, error=_summary(exc))
            finally:
                self._queue.task_done()
            _raise_if_cancelling()

    async def _apply_until_done(self, op: _Insert | _Notify) -> None:
        delay = self._retry_initial_s
        attempt = 0
        while True:
            attempt += 1
            try:
                await (self._insert(op.uid) if isinstance(op, _Insert) else self._notify(op))
                return
            except _RETRYABLE as exc:
                self._log.warning(
                    "alert_history.retry", alert_id=op.uid, attempt=attempt, delay_s=delay,
                    error=_summary(exc),
                )  # fmt: skip
            except sa_exc.DBAPIError as exc:  # bad data: left in the outbox for a later drain
                self._log.error("alert_history.rejected", alert_id=op.uid, error=_summary(exc))
                return
            _raise_if_cancelling()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._retry_max_s)

    async def _insert(self, uid: str) -> None:
        raw_record, raw_notify = await self._redis.hmget(self._outbox, [uid, uid + NOTIFY_SUFFIX])
        if raw_record is None:
            return  # already stored (a duplicate queue entry)
        record = json.loads(_text(raw_record))
        notify = json.loads(_text(raw_notify)) if raw_notify is not None else {}
        event = AlertEvent.model_validate(record["event"])
        row = history_row(event, record["details"], notify.get("sent", False), notify.get("error"))
        statement = (
            pg_insert(AlertHistory).values(**row).on_conflict_do_nothing(index_elements=["uid"])
        )
        async with self._sessions() as session:
            await session.exec(statement)
            await session.commit()
        await self._redis.hdel(self._outbox, uid, uid + NOTIFY_SUFFIX)
        self._log.debug("alert_history.stored", alert_id=uid)

    async def _notify(self, op: _Notify) -> None:
        error = None if op.error is None else op.error[:MAX_ERROR_CHARS]
        statement = (
            update(AlertHistory)
            .where(AlertHistory.uid == UUID(op.uid))  # type: ignore[arg-type]
            .values(notification_sent=op.sent, notification_error=error)
        )
        async with self._sessions() as session:
            await session.exec(statement)
            await session.commit()


def _raise_if_cancelling() -> None:
    """Re-raise a cancellation a driver turned into an error (else `__aexit__` waits forever)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _summary(exc: BaseException) -> str:
    """First line of a driver error (SQLAlchemy messages never carry the password)."""
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
