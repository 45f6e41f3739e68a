"""Runs one chaos soak: simulator, workers, the fault plan, settling, and the verdicts.

Layout: the simulator in this process (Coinbase and Binance, `speed` simulated seconds per real
second, starting `lead` before a UTC midnight so every runtime timeframe closes a bar during the
run); a private redis-server with an AOF (`procs.PersistentRedis`); the caller's PostgreSQL
database; one active `livermore-worker --autostart` per venue plus a hot standby for
`standby_venue` (a fresh standby is started after each takeover). The skewed venue's workers are
told a wrong `LIVERMORE_EXCHANGE_CLOCK_RATE` (speed x `clock_skew`) for the whole run. MACD-V
excursions are scripted after the workers connect so that alerts fire, some across faults.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from redis.asyncio import Redis

from livermore_exchange_sim.market import Venue
from livermore_exchange_sim.scenarios import macdv_excursion
from livermore_exchange_sim.testing import RunningSim, running_sim
from livermore_schema.settings import DatabaseSettings

from . import db
from .checks import EXCHANGE_IDS, check_cache
from .inject import Injector
from .listen import Listener
from .plan import make_plan
from .procs import PersistentRedis, Workers, worker_env
from .report import Report, build_report

DAY_MS = 86_400_000
MINUTE_MS = 60_000


@dataclass(frozen=True)
class SoakConfig:
    """What one soak run does."""

    workdir: Path
    seed: int = 13
    speed: float = 60.0
    rounds: int = 1
    bases: tuple[str, ...] = ("BTC", "ETH")
    standby_venue: Venue = Venue.BINANCE
    skewed_venue: Venue = Venue.COINBASE
    clock_skew: float = 0.8
    outage_wall_s: float = 30.0
    tail_sim_s: float = 240.0
    settle_wall_s: float = 60.0
    lead_sim_min: int = 20
    edge_sim_s: float = 45.0
    excursions: int = 4
    reconcile_interval_s: float = 0.5
    """The sweep's pace (LIVERMORE_RECONCILE_INTERVAL_S), scaled to the simulation speed: one
    request every 0.5 s visits each of Coinbase's 12 series every 6 s (6 simulated minutes)."""
    reconcile_horizon_sim_s: float = 900.0
    """How long after late trades alerts of the damaged 1m series are tolerated (see checks)."""
    names: dict[Venue, str] = field(
        default_factory=lambda: {Venue.COINBASE: "coinbase", Venue.BINANCE: "binance"}
    )


async def run_soak(config: SoakConfig, database: DatabaseSettings) -> Report:
    """Run the soak against `database` (migrated and seeded) and return its report."""
    redis = PersistentRedis(config.workdir / "redis")
    await redis.start()
    try:
        await db.seed_symbols(database, config.bases)
        history_floor = await db.max_history_id(database)
        today = int(time.time() * 1000) // DAY_MS * DAY_MS
        start_ms = today - config.lead_sim_min * MINUTE_MS
        async with running_sim(
            seed=config.seed, speed=config.speed, symbols=list(config.bases), start_ms=start_ms
        ) as sim:
            return await _run(config, sim, redis, database, history_floor)
    finally:
        redis.stop()
        await db.clear_symbols(database)


async def _run(
    config: SoakConfig,
    sim: RunningSim,
    redis: PersistentRedis,
    database: DatabaseSettings,
    history_floor: int,
) -> Report:
    envs = {
        name: worker_env(
            redis.settings,
            database,
            sim.env,
            config.speed * (config.clock_skew if venue is config.skewed_venue else 1.0),
        )
        | {"LIVERMORE_RECONCILE_INTERVAL_S": f"{config.reconcile_interval_s:g}"}
        for venue, name in config.names.items()
    }
    workers = Workers(config.workdir, envs)
    client = Redis(host="127.0.0.1", port=redis.port, socket_timeout=5)
    wall0 = time.monotonic()
    try:
        async with Listener(redis.settings, sim.clock) as listener, aiohttp.ClientSession() as http:
            injector = Injector(config, sim, redis, workers, listener, client, http)
            started = {venue: sim.clock.now_ms() for venue in config.names}
            for name in config.names.values():
                workers.spawn(name, autostart=True)
            connected = {}
            for venue in config.names:
                seen = await listener.wait_connected(EXCHANGE_IDS[venue], 0.0, 120)
                if seen is None:
                    raise AssertionError(f"{venue.value} never connected:\n{_tails(workers)}")
                connected[venue] = seen.sim_ms
            standby = workers.spawn(config.names[config.standby_venue], autostart=False)
            injector.standby = standby
            _script_excursions(config, sim)
            plan = make_plan(
                config.seed,
                rounds=config.rounds,
                standby_venue=config.standby_venue,
                outage_wall_s=config.outage_wall_s,
            )
            for fault in plan:
                await sim.clock.sleep_until(sim.clock.now_ms() + int(fault.gap_sim_s * 1000))
                await injector.inject(fault)
            await sim.clock.sleep_until(sim.clock.now_ms() + int(config.tail_sim_s * 1000))
            for venue in config.names:
                sim.faults.clear(venue)
            settled_s, cut_ms = await _settle(config, sim, client)
            exits = await workers.stop_all()
            stats = await injector.rest_stats()
        published = listener.alerts
        history = await db.read_history(database, history_floor)
        return await build_report(
            config=config,
            sim=sim,
            redis=client,
            cut_ms=cut_ms,
            started_ms=started,
            connected_ms=connected,
            windows=injector.windows,
            injected=injector.injected,
            takeovers=injector.takeovers,
            live_alerts=published,
            history=history,
            rest_stats=stats,
            exits=exits,
            settled_s=settled_s,
            wall_s=time.monotonic() - wall0,
            listener_reconnects=listener.reconnects,
            problems=injector.problems,
            notes=injector.notes,
            timeline=injector.timeline,
        )
    finally:
        await workers.stop_all()
        await client.aclose()


def _script_excursions(config: SoakConfig, sim: RunningSim) -> None:
    """Add seeded MACD-V excursions (1m and 5m, up and down) after the workers connected."""
    rng = random.Random(config.seed * 7919)
    now = sim.clock.now_ms() // MINUTE_MS * MINUTE_MS
    added = []
    at = now + 3 * MINUTE_MS
    for index in range(config.excursions * config.rounds):
        base = config.bases[index % len(config.bases)]
        timeframe = MINUTE_MS if index % 3 != 2 else 5 * MINUTE_MS
        direction = 1 if rng.random() < 0.5 else -1
        added.append(macdv_excursion(base, at, direction=direction, timeframe_ms=timeframe))
        at += rng.randint(12, 20) * MINUTE_MS
    sim.market.scenarios = (*sim.market.scenarios, *added)


async def _settle(config: SoakConfig, sim: RunningSim, client: Redis) -> tuple[float, int]:
    """Wait until the cache matches the truth (or the deadline); return (seconds, cut-off)."""
    began = time.monotonic()
    margin = 3 * MINUTE_MS
    while True:
        cut = sim.clock.now_ms() - margin
        try:
            checks = await check_cache(client, sim, config.bases, cut)
        except Exception:  # Redis still coming back
            checks = None
        exact = checks is not None and not any(c.problems() for c in checks)
        if exact or time.monotonic() - began > config.settle_wall_s:
            return time.monotonic() - began, cut
        await sim.clock.sleep_until(sim.clock.now_ms() + MINUTE_MS)  # poll the workers' writes


def _tails(workers: Workers) -> str:
    return "\n".join(f"--- {w.log_path.name}\n{w.tail()}" for w in workers.started)
