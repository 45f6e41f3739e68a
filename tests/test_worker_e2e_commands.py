"""End to end: every control command against a Binance worker process and the simulator.

Subscriptions are read from the simulator's own view of the worker's connections, so
switch-mode is proven by what the exchange streams, not by what the worker says.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from aiohttp.web_urldispatcher import PrefixedSubAppResource
from redis.asyncio import Redis
from sqlalchemy import update

from livermore_cache import keys
from livermore_cache.candles import CandleCache
from livermore_cache.commands import CommandBus
from livermore_cache.scan import iter_matching
from livermore_cache.status import StatusStore
from livermore_exchange_sim.binance import BINANCE_HUB
from livermore_exchange_sim.market import Venue
from livermore_exchange_sim.testing import RunningSim
from livermore_schema.control import (
    AddSymbolCommand,
    BulkAddSymbolsCommand,
    ClearCacheCommand,
    Command,
    CommandResponse,
    ForceBackfillCommand,
    PauseCommand,
    ReloadSettingsCommand,
    RemoveSymbolCommand,
    ResumeCommand,
    StartCommand,
    SwitchModeCommand,
)
from livermore_schema.db import async_session_factory, create_async_engine
from livermore_schema.enums import ConnectionState, ResponseStatus, Timeframe
from livermore_schema.settings import CacheSettings, DatabaseSettings
from livermore_schema.tables import ExchangeSymbol

BINANCE = 2


def binance_streams(sim: RunningSim) -> set[str]:
    """The streams the simulator sends to every live Binance connection."""
    for resource in sim.app.router.resources():
        if (
            isinstance(resource, PrefixedSubAppResource)
            and resource.get_info()["prefix"] == "/binance"
        ):
            hub = resource.get_info()["app"][BINANCE_HUB]
            return {name for conn in hub.connections for name in conn.streams.streams}
    raise AssertionError("the simulator serves no /binance sub-app")


async def _send(bus: CommandBus, command: Command, within_s: float = 60) -> CommandResponse:
    return await bus.await_response(BINANCE, await bus.send(BINANCE, command), within_s)


def _ok(response: CommandResponse, status: str) -> dict[str, Any]:
    assert response.status is ResponseStatus.SUCCESS, response
    assert response.data is not None and response.data["status"] == status, response
    return response.data


async def test_every_command_type_and_a_command_sent_during_a_restart(
    sim: RunningSim,
    seeded_symbols: dict[int, tuple[str, ...]],
    spawn_worker: Callable[..., Any],
    redis: Redis,
    lifecycle: Any,
    poll_until: Any,
    pg_settings: DatabaseSettings,
) -> None:
    worker = spawn_worker("binance", sim=sim)
    await lifecycle.wait_for(lambda e: e.exchange_id == BINANCE and e.worker_id, 30, "idle")
    bus = CommandBus(redis)
    candles = CandleCache(redis, CacheSettings())

    _ok(await _send(bus, StartCommand()), "started")
    assert {"btcusdt@kline_1h", "ethusdt@kline_1d"} <= binance_streams(sim)

    _ok(await _send(bus, PauseCommand()), "paused")
    _ok(await _send(bus, PauseCommand()), "already_paused")
    await poll_until(lambda: _true(not binance_streams(sim)), 10, "streams closed on pause")
    _ok(await _send(bus, ResumeCommand()), "resumed")
    _ok(await _send(bus, ResumeCommand()), "already_running")

    scalper = _ok(await _send(bus, _cmd(SwitchModeCommand, {"mode": "scalper-macdv"})), "switched")
    assert set(scalper["removed"]) == {"1h", "4h", "1d"} and scalper["added"] == []
    await poll_until(
        lambda: _true(not any("kline_1h" in s for s in binance_streams(sim))), 10, "1h gone"
    )
    assert "btcusdt@kline_15m" in binance_streams(sim) and "btcusdt@kline_1m" in binance_streams(
        sim
    )
    back = _ok(await _send(bus, _cmd(SwitchModeCommand, {"mode": "position-monitor"})), "switched")
    assert set(back["added"]) == {"1h", "4h", "1d"}
    await poll_until(lambda: _true("btcusdt@kline_4h" in binance_streams(sim)), 10, "4h back")

    added = _ok(await _send(bus, _cmd(AddSymbolCommand, {"symbol": "solusdt"})), "added")
    assert added["total_symbols"] == 3
    assert await candles.count(BINANCE, "SOLUSDT", Timeframe.H1) >= 60
    await poll_until(lambda: _true("solusdt@kline_1m" in binance_streams(sim)), 10, "SOL streamed")
    _ok(await _send(bus, _cmd(AddSymbolCommand, {"symbol": "SOLUSDT"})), "already_exists")
    removed = _ok(await _send(bus, _cmd(RemoveSymbolCommand, {"symbol": "SOLUSDT"})), "removed")
    assert removed["deleted_keys"] > 0
    assert [k async for k in iter_matching(redis, keys.candles_pattern(BINANCE, "SOLUSDT"))] == []
    await poll_until(
        lambda: _true(not any("solusdt" in s for s in binance_streams(sim))), 10, "SOL gone"
    )
    _ok(await _send(bus, _cmd(RemoveSymbolCommand, {"symbol": "SOLUSDT"})), "not_found")

    bulk = _ok(
        await _send(bus, _cmd(BulkAddSymbolsCommand, {"symbols": ["SOLUSDT", "BTCUSDT"]})),
        "added",
    )
    assert bulk["added"] == ["SOLUSDT"] and bulk["skipped"] == ["BTCUSDT"]
    await redis.delete(keys.candles_key(BINANCE, "BTCUSDT", Timeframe.H1))  # the bars to refetch
    refetched = _ok(
        await _send(bus, _cmd(ForceBackfillCommand, {"symbol": "BTCUSDT", "timeframes": ["1h"]})),
        "backfilled",
    )
    assert refetched["timeframes"] == ["1h"]
    await _check_refetched(sim, candles, refetched["candles_written"])
    cleared = _ok(
        await _send(bus, _cmd(ClearCacheCommand, {"scope": "symbol", "symbol": "SOLUSDT"})),
        "cleared",
    )
    assert cleared["deleted_count"] > 0
    assert await candles.count(BINANCE, "SOLUSDT", Timeframe.H1) == 0

    await _deactivate(pg_settings, "ETHUSDT")
    reloaded = _ok(await _send(bus, ReloadSettingsCommand()), "reloaded")
    assert reloaded["removed"] == ["ETHUSDT"] and reloaded["symbol_count"] == 2  # SOL was manual
    await poll_until(
        lambda: _true(not any("ethusdt" in s for s in binance_streams(sim))), 10, "ETH gone"
    )

    await _invalid_and_expired_commands(bus, redis)

    worker.terminate(signal.SIGTERM)
    assert await worker.wait_exit(15) == 0, worker.tail()
    during_restart = await bus.send(BINANCE, _cmd(AddSymbolCommand, {"symbol": "ETHUSDT"}))
    spawn_worker("binance", sim=sim)
    response = await bus.await_response(BINANCE, during_restart, 60)
    _ok(response, "added")  # not lost across the restart; a clean stop leaves the worker idle
    status = await StatusStore(redis).read(BINANCE)
    assert status is not None and status.connection_state is ConnectionState.IDLE
    assert status.symbol_count == 3  # the stopped BTC + SOL, then ETH added by the queued command
    assert not binance_streams(sim)
    restarted = _ok(await _send(bus, StartCommand()), "started")
    assert restarted["symbol_count"] == 3


async def _check_refetched(sim: RunningSim, candles: CandleCache, written: int) -> None:
    """The deleted 1h series is back from REST: at least the backfill depth, equal to the truth."""
    cached = await candles.between(BINANCE, "BTCUSDT", Timeframe.H1, 0, 2**62)
    assert written >= 59 and len(cached) >= written  # 60 fetched, the newest may still be open
    hour = 3_600_000
    truth = sim.truth(Venue.BINANCE, "BTCUSDT", hour, cached[0].open_time, cached[-1].open_time + 1)
    assert [c.open_time for c in cached] == [b.open_time for b in truth]
    assert [(c.open, c.high, c.low, c.close) for c in cached] == [
        (b.open, b.high, b.low, b.close) for b in truth
    ]


async def _invalid_and_expired_commands(bus: CommandBus, redis: Redis) -> None:
    bad_id = uuid4()
    await bus.send_raw(BINANCE, json.dumps({"correlation_id": str(bad_id), "type": "fly"}))
    invalid = await bus.await_response(BINANCE, bad_id, 30)
    assert invalid.status is ResponseStatus.ERROR and "invalid" in invalid.message
    old = ResumeCommand(issued_at=datetime.now(UTC) - timedelta(seconds=31))
    expired = await _send(bus, old)
    assert expired.status is ResponseStatus.ERROR and "expired" in expired.message


async def _deactivate(pg_settings: DatabaseSettings, symbol: str) -> None:
    engine = create_async_engine(pg_settings)
    async with async_session_factory(engine)() as session:
        await session.exec(
            update(ExchangeSymbol)
            .where(ExchangeSymbol.exchange_id == BINANCE, ExchangeSymbol.symbol == symbol)  # type: ignore[arg-type]
            .values(is_active=False)
        )
        await session.commit()
    await engine.dispose()


def _cmd(kind: type[Any], payload: dict[str, Any]) -> Command:
    command: Command = kind.model_validate({"payload": payload})
    return command


async def _true(value: bool) -> bool:
    return value
