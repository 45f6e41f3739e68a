"""Trigger remotely, buy locally: a Coinbase signal on Kaia's Binance symbol, then one confluence.

Real processes: the simulator, a Coinbase worker, a Binance worker and `livermore-api` (which runs
the confluence watcher). Kaia has a Binance account and BTCUSDT on her watchlist; Eve watches
only ETH-USD. Both follow `/api/alerts/stream?mine=true`. BTC is scripted up on Coinbase, and a
bar later on Binance: Kaia must get the Coinbase alert annotated with her BTCUSDT, then exactly
one confluence (1m, level, up) naming both venues; Eve must get none of it (an ETH alert sent
afterwards reaches her, proving her stream was live all along; her ETH-USD may fire on its own).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
from redis.asyncio import Redis
from sqlalchemy import update
from sqlmodel import col

from livermore_api.users import create_user
from livermore_cache.pubsub import Publisher
from livermore_exchange_sim.market import Venue
from livermore_exchange_sim.scenarios import macdv_excursion
from livermore_exchange_sim.testing import running_sim
from livermore_schema.alerts import AlertEvent
from livermore_schema.db import async_session_factory, create_async_engine
from livermore_schema.enums import AlertType, ConnectionState, Timeframe
from livermore_schema.settings import CacheSettings, DatabaseSettings
from livermore_schema.tables import ExchangeSymbol, UserExchange

from .conftest import ApiProcess, Recorder, WorkerProcess

COINBASE, BINANCE = 1, 2
MINUTE_MS = 60_000
STARTUP_S = 60.0
ALERT_S = 60.0


async def _traders(pg_settings: DatabaseSettings) -> tuple[str, str]:
    """Create Kaia (Binance account, BTCUSDT watched) and Eve (ETH-USD only); return tokens."""
    engine = create_async_engine(pg_settings)
    try:
        async with async_session_factory(engine)() as db:
            # Coinbase lists BTC with its CoinGecko id; Binance's row lacks it and borrows it.
            await db.exec(
                update(ExchangeSymbol)
                .where(col(ExchangeSymbol.symbol) == "BTC-USD")
                .values(coingecko_id="bitcoin")
            )
            kaia, kaia_token = await create_user(db, "kaia", None, admin=False)
            eve, eve_token = await create_user(db, "eve", None, admin=False)
            assert kaia.id is not None
            kaia.settings = {"watchlist": {"binance": ["BTCUSDT"]}}
            eve.settings = {"watchlist": {"coinbase": ["ETH-USD"]}}
            db.add(UserExchange(user_id=kaia.id, exchange_id=BINANCE))
            await db.commit()
        return kaia_token.token, eve_token.token
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def _following(
    http: aiohttp.ClientSession, api: ApiProcess, token: str
) -> AsyncIterator[Recorder[AlertEvent]]:
    """Follow `mine=true` over SSE; yield once `ready` arrived, recording every alert."""
    recorder: Recorder[AlertEvent] = Recorder()
    ready = asyncio.Event()

    async def read(response: aiohttp.ClientResponse) -> None:
        event, data = "", ""
        async for raw in response.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = line.removeprefix("data: ")
            elif not line and event:
                if event == "ready":
                    ready.set()
                else:
                    recorder.add(event, AlertEvent.model_validate_json(data))
                event, data = "", ""

    url = f"{api.base_url}/api/alerts/stream"
    headers = {"Authorization": f"Bearer {token}"}
    async with http.get(url, params={"mine": "true"}, headers=headers) as response:
        assert response.status == 200, await response.text()
        task = asyncio.create_task(read(response))
        try:
            await asyncio.wait_for(ready.wait(), 10)
            yield recorder
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _connected(exchange_id: int) -> Callable[[Any], bool]:
    return lambda e: (
        e.exchange_id == exchange_id
        and e.state is ConnectionState.CONNECTED
        and e.progress is not None
        and e.progress.phase == "complete"
    )


def _eth_alert(model: AlertEvent) -> AlertEvent:
    """An ETH alert as the Coinbase worker would publish it (a marker for Eve's stream)."""
    return AlertEvent.model_validate(
        model.model_dump(exclude={"id", "local"}) | {"symbol": "ETH-USD", "asset": "ETH"}
    )


async def _wait_for_the_excursions_to_top_out(alerts: Recorder[AlertEvent]) -> None:
    """Wait for the 1m overbought reversal on both venues: every level crossing came before."""
    for exchange_id in (COINBASE, BINANCE):
        await alerts.wait_for(
            lambda a, ex=exchange_id: (
                a.exchange_id == ex
                and a.alert_type is AlertType.MACDV
                and a.timeframe is Timeframe.M1
                and a.trigger_label == "reversal_overbought"
            ),
            ALERT_S,
            f"the 1m reversal on exchange {exchange_id}",
        )


def _is_level_confluence(event: AlertEvent) -> bool:
    return (
        event.alert_type is AlertType.CONFLUENCE
        and event.timeframe is Timeframe.M1
        and event.trigger_label.startswith("level_")
    )


async def test_kaia_gets_the_coinbase_signal_on_her_binance_symbol_then_one_confluence(
    seeded_symbols: dict[int, tuple[str, ...]],
    spawn_worker: Callable[..., WorkerProcess],
    spawn_api: Callable[..., ApiProcess],
    lifecycle: Any,
    alerts: Recorder[AlertEvent],
    redis: Redis,
    pg_settings: DatabaseSettings,
) -> None:
    kaia_token, eve_token = await _traders(pg_settings)
    async with (
        running_sim(seed=5, speed=60.0, symbols=["BTC", "ETH"]) as sim,
        aiohttp.ClientSession() as http,
    ):
        api = spawn_api(sim)
        spawn_worker("coinbase", "--autostart", sim=sim)
        spawn_worker("binance", "--autostart", sim=sim)
        await api.wait_ready(STARTUP_S)
        await lifecycle.wait_for(_connected(COINBASE), STARTUP_S, "coinbase connected")
        await lifecycle.wait_for(_connected(BINANCE), STARTUP_S, "binance connected")
        async with (
            _following(http, api, kaia_token) as kaia,
            _following(http, api, eve_token) as eve,
        ):
            start_ms = (sim.clock.now_ms() // MINUTE_MS + 1) * MINUTE_MS
            sim.market.scenarios = (
                *sim.market.scenarios,
                macdv_excursion(
                    "BTC", start_ms, timeframe_ms=MINUTE_MS, venues=frozenset({Venue.COINBASE})
                ),
                macdv_excursion(
                    "BTC",
                    start_ms + MINUTE_MS,
                    timeframe_ms=MINUTE_MS,
                    venues=frozenset({Venue.BINANCE}),
                ),
            )
            first = await kaia.wait_for(
                lambda a: a.alert_type is AlertType.MACDV and a.exchange_id == COINBASE,
                ALERT_S,
                "a Coinbase BTC alert on Kaia's stream",
            )
            confluence = await kaia.wait_for(_is_level_confluence, ALERT_S, "a confluence")
            await _wait_for_the_excursions_to_top_out(alerts)
            marker = _eth_alert(first)
            await Publisher(redis, CacheSettings()).publish_alert(marker)
            await eve.wait_for(lambda a: a.id == marker.id, 10, "the ETH marker on Eve's stream")

    assert (first.source_exchange_name, first.symbol, first.asset) == (
        "coinbase",
        "BTC-USD",
        "bitcoin",
    )
    assert [(s.exchange, s.symbol) for s in first.local or []] == [("binance", "BTCUSDT")]
    received = [a for _, a in kaia.items]
    assert received.index(first) < received.index(confluence)
    assert [a for a in received if _is_level_confluence(a)] == [confluence]
    venues = confluence.venues or []
    assert sorted((v.exchange, v.symbol) for v in venues) == [
        ("binance", "BTCUSDT"),
        ("coinbase", "BTC-USD"),
    ]
    # Exchange-time order; which venue crossed first depends on where the walk stood.
    assert [v.triggered_at for v in venues] == sorted(v.triggered_at for v in venues)
    assert confluence.asset == "bitcoin" and confluence.direction.value == "up"
    assert [(s.exchange, s.symbol) for s in confluence.local or []] == [("binance", "BTCUSDT")]
    # Eve's own ETH-USD may fire on its own (the sim's walk); nothing of BTC may reach her.
    eves = [a for _, a in eve.items]
    assert marker.id in [a.id for a in eves]
    assert {(a.alert_type, a.symbol) for a in eves} == {(AlertType.MACDV, "ETH-USD")}
    published = [a for _, a in alerts.items if _is_level_confluence(a)]
    assert [a.id for a in published] == [confluence.id]  # one publish, not one per subscriber
