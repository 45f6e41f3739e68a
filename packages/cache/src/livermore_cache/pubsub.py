"""Publishing market data, alerts and lifecycle events, and validated subscriptions (SPEC 3.3)."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from types import TracebackType
from typing import Any, Generic, TypeVar

import structlog
from pydantic import BaseModel, ValidationError
from redis.asyncio.cluster import RedisCluster

from livermore_cache import channels
from livermore_cache.batch import WriteBatch
from livermore_cache.client import RedisClient, is_store_error
from livermore_schema.alerts import AlertEvent
from livermore_schema.enums import AlertType
from livermore_schema.indicators import IndicatorValue
from livermore_schema.market import Candle, Ticker
from livermore_schema.settings import CacheSettings
from livermore_schema.status import LifecycleEvent

log = structlog.get_logger(__name__)

M = TypeVar("M", bound=BaseModel)


class Publisher:
    """Publishes every payload on its channel; the caller has already written it to the cache."""

    def __init__(self, redis: RedisClient, settings: CacheSettings) -> None:
        self._redis = redis
        self._legacy = settings.legacy_channels

    async def publish_candle_close(self, candle: Candle, *, user_id: int | None = None) -> int:
        """Publish a closed candle (plus the legacy twin for a user); return the receiver count.

        Raises:
            ValueError: the candle is unfinished or synthetic; only real closed bars are published.
        """
        receivers = 0
        for channel, payload in self._candle_close_messages(candle, user_id):
            receivers += int(await self._redis.publish(channel, payload))
        return receivers

    def add_candle_close(
        self, batch: WriteBatch, candle: Candle, *, user_id: int | None = None
    ) -> None:
        """Queue `publish_candle_close` on `batch` (after the candle's write, for the order).

        Raises:
            ValueError: the candle is unfinished or synthetic; only real closed bars are published.
        """
        for channel, payload in self._candle_close_messages(candle, user_id):
            batch.add("PUBLISH", channel, payload)

    def close_channels(self, candle: Candle, *, user_id: int | None = None) -> list[str]:
        """Return the channels of a closed candle (for `CandleCache.add_write(announce=...)`).

        Raises:
            ValueError: the candle is unfinished or synthetic; only real closed bars are published.
        """
        _closed_only(candle)
        found = [channels.candle_close_channel(candle.exchange_id, candle.symbol, candle.timeframe)]
        if self._legacy and user_id is not None:
            found.append(
                channels.legacy_candle_close_channel(
                    user_id, candle.exchange_id, candle.symbol, candle.timeframe
                )
            )
        return found

    def indicator_channels(self, value: IndicatorValue) -> list[str]:
        """Return the channel of a value (for `IndicatorCache.add_write(announce=...)`)."""
        return [
            channels.indicator_channel(value.exchange_id, value.symbol, value.timeframe, value.type)
        ]

    def _candle_close_messages(self, candle: Candle, user_id: int | None) -> list[tuple[str, str]]:
        _closed_only(candle)
        payload = candle.storage_json()
        channel = channels.candle_close_channel(candle.exchange_id, candle.symbol, candle.timeframe)
        messages = [(channel, payload)]
        if self._legacy and user_id is not None:
            twin = channels.legacy_candle_close_channel(
                user_id, candle.exchange_id, candle.symbol, candle.timeframe
            )
            messages.append((twin, payload))
        return messages

    async def publish_ticker(self, ticker: Ticker) -> int:
        """Publish a ticker; return the receiver count."""
        channel = channels.ticker_channel(ticker.exchange_id, ticker.symbol)
        return int(await self._redis.publish(channel, ticker.model_dump_json()))

    async def publish_indicator(self, value: IndicatorValue) -> int:
        """Publish an indicator value; return the receiver count."""
        channel = channels.indicator_channel(
            value.exchange_id, value.symbol, value.timeframe, value.type
        )
        return int(await self._redis.publish(channel, value.model_dump_json()))

    def add_indicator(self, batch: WriteBatch, value: IndicatorValue) -> None:
        """Queue `publish_indicator` on `batch`."""
        channel = channels.indicator_channel(
            value.exchange_id, value.symbol, value.timeframe, value.type
        )
        batch.add("PUBLISH", channel, value.model_dump_json())

    async def publish_alert(self, event: AlertEvent) -> int:
        """Publish an alert on its exchange's channel (confluence: its own); return receivers."""
        if event.alert_type is AlertType.CONFLUENCE:
            channel = channels.confluence_channel()
        else:
            channel = channels.alerts_channel(event.exchange_id)
        return int(await self._redis.publish(channel, event.model_dump_json()))

    def add_alert(self, batch: WriteBatch, event: AlertEvent) -> None:
        """Queue `publish_alert` on `batch`."""
        batch.add("PUBLISH", channels.alerts_channel(event.exchange_id), event.model_dump_json())

    def add_ticker(self, batch: WriteBatch, ticker: Ticker, payload: str | None = None) -> None:
        """Queue `publish_ticker` on `batch` (`payload`: the ticker's JSON, if already made)."""
        channel = channels.ticker_channel(ticker.exchange_id, ticker.symbol)
        batch.add("PUBLISH", channel, payload or ticker.model_dump_json())

    async def publish_lifecycle(self, event: LifecycleEvent) -> int:
        """Publish a lifecycle event; return the receiver count."""
        channel = channels.lifecycle_channel(event.exchange_id)
        return int(await self._redis.publish(channel, event.model_dump_json()))


def _closed_only(candle: Candle) -> None:
    if not candle.closed or candle.synthetic:
        raise ValueError(
            f"only real closed candles are published: {candle.symbol} {candle.timeframe} "
            f"open_time={candle.open_time} closed={candle.closed} synthetic={candle.synthetic}"
        )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Subscription(Generic[M]):
    """An async context manager yielding `(channel, payload)` with payloads validated as `model`.

    Entering it waits until Redis has confirmed every subscription, so anything published
    afterwards is received. Malformed payloads are logged with their reason and skipped.
    """

    def __init__(
        self,
        redis: RedisClient,
        *,
        model: type[M],
        channels: Iterable[str] = (),
        patterns: Iterable[str] = (),
    ) -> None:
        self._redis = redis
        self._model = model
        self._channels = tuple(channels)
        self._patterns = tuple(patterns)
        if not self._channels and not self._patterns:
            raise ValueError("a subscription needs at least one channel or pattern")
        self._pubsub: Any = None
        self._early: deque[dict[str, Any]] = deque()

    async def __aenter__(self) -> Subscription[M]:
        nodes: list[Any] = [None]  # the client's own choice
        if isinstance(self._redis, RedisCluster):
            # The cluster pubsub picks its node from the slot map, which a client that has not
            # run a command yet has not read (KeyError(slot) otherwise). A classic PUBLISH
            # reaches every node: when that one is down (a killed master not yet replaced),
            # any other node will do.
            await self._redis.initialize()
            nodes += self._redis.get_nodes()
        for node in nodes[:-1]:
            try:
                await self._enter_on(node)
                return self
            except Exception as err:
                if not is_store_error(err):
                    raise
        await self._enter_on(nodes[-1])
        return self

    async def _enter_on(self, node: Any) -> None:
        self._pubsub = self._redis.pubsub() if node is None else self._redis.pubsub(node=node)
        try:
            await self._confirm()
        except BaseException:  # cancelled or failed midway: never leave a subscribed connection
            await self._pubsub.aclose()
            self._pubsub = None
            raise

    async def _confirm(self) -> None:
        if self._channels:
            await self._pubsub.subscribe(*self._channels)
        if self._patterns:
            await self._pubsub.psubscribe(*self._patterns)
        pending = len(self._channels) + len(self._patterns)
        while pending:
            message = await self._pubsub.get_message(timeout=None)
            if message is None:
                continue
            if message["type"] in ("subscribe", "psubscribe"):
                pending -= 1
            else:  # already subscribed to an earlier channel: keep it for the iterator
                self._early.append(message)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._pubsub is not None:
            await self._pubsub.aclose()
            self._pubsub = None

    def __aiter__(self) -> AsyncIterator[tuple[str, M]]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[tuple[str, M]]:
        if self._pubsub is None:
            raise RuntimeError("enter the Subscription (async with) before iterating it")
        while True:
            if self._early:
                message = self._early.popleft()
            else:
                message = await self._pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=None
                )
            if message is None or message["type"] not in ("message", "pmessage"):
                continue
            channel = _text(message["channel"])
            try:
                item = self._model.model_validate_json(message["data"])
            except ValidationError as err:
                log.warning(
                    "pubsub.malformed_payload",
                    channel=channel,
                    model=self._model.__name__,
                    reason=_reason(err),
                )
                continue
            yield channel, item


def _reason(err: ValidationError) -> str:
    first = err.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "payload"
    return f"{where}: {first['msg']} ({err.error_count()} error(s))"


async def subscribe(
    redis: RedisClient,
    *,
    model: type[M],
    channels: Iterable[str] = (),
    patterns: Iterable[str] = (),
) -> AsyncGenerator[tuple[str, M], None]:
    """Yield `(channel, payload)` for every valid message on `channels` and `patterns`."""
    async with Subscription(redis, model=model, channels=channels, patterns=patterns) as sub:
        async for item in sub:
            yield item


def alert_stream(
    redis: RedisClient, exchange_ids: Iterable[int] | None = None
) -> Subscription[AlertEvent]:
    """Follow alerts from the given exchanges, or from every exchange when None."""
    if exchange_ids is None:
        return Subscription(redis, model=AlertEvent, patterns=[channels.ALL_ALERTS_PATTERN])
    return Subscription(
        redis, model=AlertEvent, channels=[channels.alerts_channel(ex) for ex in exchange_ids]
    )


def lifecycle_stream(
    redis: RedisClient, exchange_ids: Iterable[int] | None = None
) -> Subscription[LifecycleEvent]:
    """Follow worker lifecycle events of the given exchanges, or of every exchange when None."""
    if exchange_ids is None:
        return Subscription(redis, model=LifecycleEvent, patterns=[channels.lifecycle_pattern()])
    return Subscription(
        redis,
        model=LifecycleEvent,
        channels=[channels.lifecycle_channel(ex) for ex in exchange_ids],
    )
