"""End to end: a gap whose REST repair cannot be made yet stays pending, durably, and the next
worker completes it; the alerts of its bars fire once, flagged delayed.

A Binance worker streams; the simulator's stream goes silent (a stall) while its REST answers
503, and a scripted BTC excursion crosses MACD-V levels inside the silent stretch. The worker
reconnects, gates the series and keeps the repair pending: visible in its status and in
`repairs:2`, no alert fires on the holed series. The worker is killed (-9) mid-repair; REST
comes back and a plain restart takes over, inherits the pending repairs and completes them.
Afterwards the cache equals the simulator's truth, `repairs:2` is empty, and the crossings
inside the silent stretch were published exactly once, `delayed`, at their bars' close times.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from livermore_cache import keys
from livermore_cache.candles import CandleCache
from livermore_cache.status import StatusStore
from livermore_exchange_sim.faults import RestMode
from livermore_exchange_sim.market import Venue
from livermore_exchange_sim.scenarios import macdv_excursion
from livermore_exchange_sim.testing import running_sim
from livermore_schema.alerts import AlertEvent
from livermore_schema.enums import ConnectionState, StartupPhase, Timeframe
from livermore_schema.settings import CacheSettings
from livermore_schema.status import LifecycleEvent

BINANCE = 2
MINUTE_MS = 60_000
SILENT_MINUTES = 14
"""Simulated minutes (real seconds at 60x) the stream stays silent: past the 10 s watchdog."""


def _connected(worker_id: str | None = None) -> Callable[[LifecycleEvent], bool]:
    return lambda e: (
        e.exchange_id == BINANCE
        and e.state is ConnectionState.CONNECTED
        and e.progress is not None
        and e.progress.phase is StartupPhase.COMPLETE
        and (worker_id is None or e.worker_id == worker_id)
    )


def _btc(event: AlertEvent) -> bool:
    return event.exchange_id == BINANCE and event.symbol == "BTCUSDT"


async def test_a_pending_repair_survives_a_kill_and_its_bars_alert_once_delayed(
    seeded_symbols: dict[int, tuple[str, ...]],
    spawn_worker: Callable[..., Any],
    redis: Redis,
    lifecycle: Any,
    alerts: Any,
    poll_until: Any,
) -> None:
    start_ms = int(time.time() * 1000) // MINUTE_MS * MINUTE_MS
    statuses = StatusStore(redis)
    async with running_sim(seed=5, speed=60.0, symbols=["BTC", "ETH"], start_ms=start_ms) as sim:
        fast = {"LIVERMORE_REPAIR_RETRY_CAP_S": "0.5"}
        first = spawn_worker("binance", "--autostart", sim=sim, **fast)
        started = await lifecycle.wait_for(_connected(), 60, "first worker connected")
        state = keys.alert_state_key(BINANCE, "BTCUSDT", Timeframe.M1)

        async def judging() -> bool:
            return bool(await redis.exists(state))

        await poll_until(judging, 30, "the first worker judging BTCUSDT 1m bars live")

        silent_from = (sim.clock.now_ms() // MINUTE_MS + 1) * MINUTE_MS
        silent_to = silent_from + SILENT_MINUTES * MINUTE_MS
        excursion = macdv_excursion("BTC", silent_from + 2 * MINUTE_MS, timeframe_ms=MINUTE_MS)
        sim.market.scenarios = (*sim.market.scenarios, excursion)
        sim.faults.set_rest(Venue.BINANCE, RestMode.UNAVAILABLE, count=None)
        sim.faults.stall(Venue.BINANCE, (silent_to - sim.clock.now_ms()) / 1000)

        async def pending() -> Any:
            status = await statuses.read(BINANCE)
            stored = await redis.hlen(keys.repairs_key(BINANCE))
            if status is None or status.pending_repairs < 1 or stored < 1:
                return None
            return status

        held = await poll_until(pending, 60, "a repair pending in the status and in Redis")
        assert held.oldest_repair_age_s is not None and held.worker_id == started.worker_id
        assert sim.clock.now_ms() >= silent_to, "the repair went pending before the gap was known"
        assert not [e for _, e in alerts.items if _btc(e)], "alerts resumed on a holed series"

        first.terminate(signal.SIGKILL)  # mid-repair: the repair must outlive its worker
        assert await first.wait_exit(10) == -signal.SIGKILL
        assert await redis.hlen(keys.repairs_key(BINANCE)) >= 1
        sim.faults.clear(Venue.BINANCE)
        second = spawn_worker("binance", sim=sim, **fast)
        await lifecycle.wait_for(
            lambda e: _connected()(e) and e.worker_id != started.worker_id, 60, "takeover"
        )

        async def repaired() -> bool:
            status = await statuses.read(BINANCE)
            empty = await redis.exists(keys.repairs_key(BINANCE)) == 0
            return empty and status is not None and status.pending_repairs == 0

        await poll_until(repaired, 60, "the inherited repairs completed")
        inside = await alerts.wait_for(
            lambda e: _btc(e) and silent_from < _close_ms(e) <= silent_to, 30, "a gap alert"
        )
        cached = await CandleCache(redis, CacheSettings()).between(
            BINANCE, "BTCUSDT", Timeframe.M1, start_ms - 3_600_000, silent_to
        )
        truth = sim.truth(Venue.BINANCE, "BTCUSDT", MINUTE_MS, start_ms - 3_600_000, silent_to)
        second.terminate(signal.SIGTERM)
        assert await second.wait_exit(15) == 0, second.tail()

    assert inside.delayed, inside
    seen = [(e.symbol, e.timeframe, e.trigger_label, e.triggered_at) for _, e in alerts.items]
    assert len(seen) == len(set(seen)), "an alert fired twice"
    in_gap = [e for _, e in alerts.items if _btc(e) and silent_from < _close_ms(e) <= silent_to]
    assert all(e.delayed for e in in_gap), in_gap
    by_time = {c.open_time: c for c in cached if c.closed and c.open_time < silent_to}
    expected = {b.open_time for b in truth if b.open_time >= min(by_time)}
    assert set(by_time) == expected, "the cache is not the venue's truth"
    assert all(by_time[b.open_time].close == b.close for b in truth if b.open_time in by_time)


def _close_ms(event: AlertEvent) -> int:
    return int(event.triggered_at.timestamp() * 1000)
