"""End to end: hot standby. kill -9 of the active worker; the standby takes over within 10 s,
resumes the same symbols and mode, repairs the gap (cache == simulator truth) and no alert
fires twice.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from livermore_cache.candles import CandleCache
from livermore_cache.commands import CommandBus
from livermore_cache.status import StatusStore
from livermore_exchange_sim.market import Venue
from livermore_exchange_sim.scenarios import macdv_excursion
from livermore_exchange_sim.testing import running_sim
from livermore_schema.control import SwitchModeCommand
from livermore_schema.enums import (
    ConnectionState,
    ResponseStatus,
    Timeframe,
    WorkerMode,
    WorkerRole,
)
from livermore_schema.settings import CacheSettings

BINANCE = 2
MINUTE_MS = 60_000


async def test_standby_takes_over_after_kill_9(
    seeded_symbols: dict[int, tuple[str, ...]],
    spawn_worker: Callable[..., Any],
    redis: Redis,
    lifecycle: Any,
    alerts: Any,
    poll_until: Any,
) -> None:
    start_ms = int(time.time() * 1000) // MINUTE_MS * MINUTE_MS
    excursion = macdv_excursion("BTC", start_ms + 6 * MINUTE_MS, timeframe_ms=MINUTE_MS)
    async with running_sim(
        seed=3, speed=60.0, symbols=["BTC", "ETH"], scenarios=[excursion], start_ms=start_ms
    ) as sim:
        active = spawn_worker("binance", "--autostart", sim=sim)
        await lifecycle.wait_for(
            lambda e: (
                e.exchange_id == BINANCE
                and e.state is ConnectionState.CONNECTED
                and e.progress is not None
                and e.progress.phase == "complete"
            ),
            60,
            "active connected",
        )
        bus = CommandBus(redis)
        switched = await bus.await_response(
            BINANCE,
            await bus.send(
                BINANCE, SwitchModeCommand.model_validate({"payload": {"mode": "scalper-macdv"}})
            ),
            30,
        )
        assert switched.status is ResponseStatus.SUCCESS, switched
        before = await StatusStore(redis).read(BINANCE)
        assert before is not None and before.role is WorkerRole.ACTIVE

        standby = spawn_worker("binance", sim=sim)
        await lifecycle.wait_for(
            lambda e: e.exchange_id == BINANCE and (e.reason or "").startswith("standby"),
            30,
            "standby announced",
        )
        assert (await StatusStore(redis).read(BINANCE)).worker_id == before.worker_id  # type: ignore[union-attr]

        active.terminate(signal.SIGKILL)
        killed_at = time.monotonic()
        killed_sim_ms = sim.clock.now_ms()

        async def taken_over() -> Any:
            status = await StatusStore(redis).read(BINANCE)
            ok = (
                status is not None
                and status.worker_id != before.worker_id
                and status.connection_state is ConnectionState.CONNECTED
            )
            return status if ok else None

        after = await poll_until(taken_over, 15, "standby connected")
        took_s = time.monotonic() - killed_at
        assert took_s < 10, f"takeover took {took_s:.1f}s"
        assert after.role is WorkerRole.ACTIVE and after.mode is WorkerMode.SCALPER_MACDV
        assert after.symbol_count == before.symbol_count

        window_start = (killed_sim_ms // MINUTE_MS - 15) * MINUTE_MS
        window_end = (sim.clock.now_ms() // MINUTE_MS - 1) * MINUTE_MS
        truth = sim.truth(Venue.BINANCE, "BTCUSDT", MINUTE_MS, window_start, window_end)
        candles = CandleCache(redis, CacheSettings())

        async def cached_window() -> Any:
            got = await candles.between(BINANCE, "BTCUSDT", Timeframe.M1, window_start, window_end)
            closed = [c for c in got if c.closed and c.open_time < window_end]
            return closed if len(closed) >= len(truth) else None

        cached = await poll_until(cached_window, 10, "gap repaired")
        assert [c.open_time for c in cached] == [b.open_time for b in truth]
        for got, want in zip(cached, truth, strict=True):
            assert (got.open, got.high, got.low, got.close) == (
                want.open,
                want.high,
                want.low,
                want.close,
            )
        await alerts.wait_for(lambda a: a.symbol == "BTCUSDT", 40, "the scripted BTC alert")
        standby.terminate(signal.SIGTERM)
        assert await standby.wait_exit(15) == 0, standby.tail()

    seen = [
        (a.exchange_id, a.symbol, a.timeframe, a.trigger_label, a.triggered_at)
        for _, a in alerts.items
    ]
    assert len(seen) == len(set(seen)), f"an alert fired twice: {seen}"
