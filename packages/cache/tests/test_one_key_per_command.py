"""Every command the caches send (and every command their Lua scripts run) touches one key.

MONITOR records what the server really executed; `COMMAND GETKEYS` asks the server which
arguments are keys, so the check does not depend on our own idea of each command's key layout.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from livermore_cache import keys
from livermore_cache.candles import CandleCache
from livermore_cache.commands import CommandBus, CommandInbox
from livermore_cache.indicators import IndicatorCache
from livermore_cache.pubsub import Publisher
from livermore_cache.scan import delete_matching
from livermore_cache.status import StatusStore
from livermore_cache.tickers import OrderBookCache, TickerCache
from livermore_schema.control import CommandResponse, StartCommand
from livermore_schema.enums import ConnectionState, ResponseStatus, Timeframe
from livermore_schema.market import OrderBookLevel, OrderBookTop, Ticker
from livermore_schema.settings import CacheSettings
from livermore_schema.status import ConnectionStatus

from ._factories import candle, indicator

LINE = re.compile(r"^[\d.]+ \[\d+ ([^\s\]]+)[^\]]*\] (.*)$")  # a script may hold "]"
ARG = re.compile(r'"((?:[^"\\]|\\.)*)"')
NOW = datetime(2024, 1, 1, tzinfo=UTC)
M5 = Timeframe.M5


def parse_line(line: str) -> tuple[bool, list[str]]:
    match = LINE.match(line)
    assert match, line
    args = [a.replace('\\"', '"').replace("\\\\", "\\") for a in ARG.findall(match.group(2))]
    return match.group(1) == "lua", args


async def keys_of(redis: Redis, args: list[str]) -> list[str]:
    try:
        found: list[Any] = await redis.command_getkeys(*args)
    except ResponseError:  # no key arguments (PUBLISH, SCAN, PING, ...)
        return []
    return [k.decode() if isinstance(k, bytes) else k for k in found]


async def test_every_cache_command_touches_one_key(redis: Redis) -> None:
    settings = CacheSettings(candle_retention=10)
    candles = CandleCache(redis, settings)
    indicators = IndicatorCache(redis, settings)
    tickers, books = TickerCache(redis, settings), OrderBookCache(redis, settings)
    status = StatusStore(redis)
    publisher = Publisher(redis, settings)
    bus, inbox = CommandBus(redis), CommandInbox(redis, 1, "host:1")
    ticker = Ticker(exchange_id=1, exchange="coinbase", symbol="BTC-USD", price=2.0, timestamp=1)
    book = OrderBookTop(
        exchange_id=1,
        symbol="BTC-USD",
        bids=[OrderBookLevel(price=1.0, quantity=1.0)],
        asks=[OrderBookLevel(price=2.0, quantity=1.0)],
        timestamp=1,
    )
    conn = ConnectionStatus(
        exchange_id=1,
        exchange_name="coinbase",
        connection_state=ConnectionState.CONNECTED,
        last_heartbeat=NOW,
        worker_id="h:1",
    )

    async def commands() -> None:
        await bus.send(1, StartCommand())
        got = await inbox.next(timeout=1)
        assert got is not None
        await inbox.ack(got[0])
        cid = StartCommand().correlation_id
        await inbox.respond(CommandResponse(correlation_id=cid, status=ResponseStatus.SUCCESS))
        await bus.fetch_response(1, cid)

    async def reads() -> None:
        for user in (None, 7):
            await candles.recent(1, "ETH-USD", M5, 5, user_id=user)
            await candles.between(1, "ETH-USD", M5, 0, 10**13, user_id=user)
            await candles.latest(1, "ETH-USD", M5, user_id=user)
            await candles.open_times(1, "ETH-USD", M5, user_id=user)
            await candles.count(1, "ETH-USD", M5, user_id=user)
            await indicators.read(1, "BTC-USD", Timeframe.H4, user_id=user)
            await indicators.read_many(1, "BTC-USD", [Timeframe.H1, M5], user_id=user)

    async def batched() -> None:
        batch = candles.batch()
        candles.add_write(batch, candle(4), user_id=7)
        publisher.add_candle_close(batch, candle(4), user_id=7)
        indicators.add_write(batch, indicator(Timeframe.M15), user_id=7)
        publisher.add_indicator(batch, indicator(Timeframe.M15))
        await batch.flush()

    steps: list[Callable[[], Awaitable[Any]]] = [
        batched,
        lambda: candles.write(candle(0, closed=False, sequence=1)),
        lambda: candles.write(candle(0, closed=True, sequence=2), user_id=7),
        lambda: candles.write_many([candle(i) for i in range(15)]),
        lambda: candles.write_many([candle(1, symbol=s) for s in ("A-USD", "B-USD")], user_id=7),
        reads,
        lambda: candles.delete_series(1, "BTC-USD", M5, user_id=7),
        lambda: indicators.write(indicator(Timeframe.H1), user_id=7),
        lambda: tickers.write(ticker),
        lambda: tickers.read_many(1, ["BTC-USD", "ETH-USD"]),
        lambda: tickers.latest_price(1, "BTC-USD"),
        lambda: books.write(book),
        lambda: books.write_many([book, book.model_copy(update={"symbol": "ETH-USD"})]),
        lambda: books.delete(1, ["BTC-USD", "ETH-USD"]),
        lambda: status.write(conn),
        lambda: status.heartbeat(1, NOW),
        lambda: status.read_all([1, 2]),
        lambda: status.liveness(1, NOW),
        lambda: publisher.publish_candle_close(candle(3), user_id=7),
        lambda: publisher.publish_ticker(ticker),
        lambda: publisher.publish_indicator(indicator()),
        commands,
        lambda: delete_matching(redis, keys.candles_pattern(1), batch=2),
    ]
    async with redis.monitor() as monitor:
        for index, step in enumerate(steps):
            await redis.echo(f"step-{index}")
            await step()
        await redis.mget("probe-a", "probe-b")  # proves the checker sees a two-key command
        await redis.echo("end")
        lines: list[str] = []
        while not lines or '"end"' not in lines[-1]:
            raw = await monitor.connection.read_response()
            lines.append(raw.decode() if isinstance(raw, bytes) else raw)

    segment: list[tuple[bool, list[str]]] = []
    checked = 0
    multi_key: list[list[str]] = []
    for line in lines:
        from_lua, args = parse_line(line)
        if args[0].upper() == "ECHO" or line is lines[-1]:
            checked += await check_segment(redis, segment, multi_key)
            segment = []
        else:
            segment.append((from_lua, args))
    assert multi_key == [["MGET", "probe-a", "probe-b"]]
    assert checked > 60
    lua_commands = {parse_line(line)[1][0].upper() for line in lines if parse_line(line)[0]}
    assert {"ZADD", "ZRANGEBYSCORE", "ZREMRANGEBYRANK", "EXPIRE", "SET"} <= lua_commands


async def check_segment(
    redis: Redis, segment: list[tuple[bool, list[str]]], multi_key: list[list[str]]
) -> int:
    script_keys: set[str] = set()
    for from_lua, args in segment:
        assert args[0].upper() != "KEYS"
        found = await keys_of(redis, args)
        if len(found) > 1:
            multi_key.append(args)
        if not from_lua and args[0].upper() in ("EVALSHA", "EVAL"):
            script_keys.update(found)
    # WriteBatch's dispatcher (EVALSHA sha 0 packed; a single node only, never on a cluster)
    # declares no keys: each command it runs must still touch one key.
    dispatched = any(
        not from_lua and args[0].upper() == "EVALSHA" and args[2] == "0" and len(args) == 4
        for from_lua, args in segment
    )
    for from_lua, args in segment:
        if from_lua and dispatched:
            assert len(await keys_of(redis, args)) <= 1, args
        elif from_lua:
            assert set(await keys_of(redis, args)) <= script_keys, args
    return len(segment)
