"""End to end: one Coinbase and one Binance worker (no --user) serve three traders at once.

alice (Coinbase; watchlist: SOL-USD, Tier 2), bob (Binance; synced balances: ADA held, DOGE dust,
credentials in env vars) and carol (both; watchlist BTC-USD, Tier 1, and SOL-USD, shared with
alice, plus NOPE-USD written straight into the database, which Coinbase refuses; her Binance key
is refused with 401, which her account's sync reports without stopping the worker). Proven here:
each Tier 2 symbol is streamed once and written to every holder's user keys with the SPEC TTL,
never to the shared pool; the Tier 1 overlap uses the shared pool only; dust is ignored; the
refused symbol is reported while the rest stream; a watchlist add through the api streams within
10 s and its removal stops it; a balance change reaches the worker at the next position sync.
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis
from sqlalchemy import delete, update
from sqlmodel import col, select

from livermore_api.users import create_user
from livermore_cache import keys
from livermore_cache.commands import CommandBus
from livermore_cache.scan import iter_matching
from livermore_cache.status import StatusStore
from livermore_exchange_sim.market import Venue
from livermore_exchange_sim.testing import RunningSim, running_sim
from livermore_schema.control import StartCommand
from livermore_schema.db import async_session_factory, create_async_engine
from livermore_schema.enums import ConnectionState, IndicatorType, ResponseStatus, Timeframe
from livermore_schema.settings import DatabaseSettings
from livermore_schema.status import ConnectionStatus
from livermore_schema.tables import ExchangeSymbol, Position, User, UserExchange

from .conftest import BINANCE, COINBASE, SIM_SPEED, poll

PRODUCTS = {
    COINBASE: ["BTC-USD", "ETH-USD", "SOL-USD", "ADA-USD"],
    BINANCE: ["BTCUSDT", "ETHUSDT", "ADAUSDT", "DOGEUSDT", "SOLUSDT"],
}
TIER1_LIMITS = '{"coinbase": 2, "binance": 2}'
BINANCE_KEY, BINANCE_SECRET = "livermore-sim-binance-key", "livermore-sim-binance-secret"
M1, M5 = Timeframe.M1, Timeframe.M5


@pytest.fixture
async def sim() -> AsyncIterator[RunningSim]:
    """A simulator at `SIM_SPEED` listing the products above on every venue."""
    bases = ["BTC", "ETH", "SOL", "ADA", "DOGE"]
    async with running_sim(seed=11, speed=SIM_SPEED, symbols=bases) as running:
        yield running


def _row(exchange_id: int, symbol: str, rank: int) -> ExchangeSymbol:
    quote = "USDT" if exchange_id == BINANCE else "USD"
    base = symbol.removesuffix(quote).removesuffix("-")
    return ExchangeSymbol(
        exchange_id=exchange_id,
        symbol=symbol,
        base_currency=base,
        quote_currency=quote,
        volume_rank=rank,
        is_active=True,
    )


@pytest.fixture
async def traders(pg_settings: DatabaseSettings) -> AsyncIterator[dict[str, Any]]:
    """Products, the three users (and alice's api token); every other account deactivated."""
    engine = create_async_engine(pg_settings)
    sessions = async_session_factory(engine)
    tag = uuid.uuid4().hex[:6]
    async with sessions() as db:
        await db.exec(delete(ExchangeSymbol).where(col(ExchangeSymbol.exchange_id).in_(PRODUCTS)))
        await db.exec(update(UserExchange).values(is_active=False))  # only these three are served
        db.add_all(
            _row(ex, symbol, rank)
            for ex, symbols in PRODUCTS.items()
            for rank, symbol in enumerate(symbols, start=1)
        )
        await db.commit()
        alice, alice_token = await create_user(db, f"alice{tag}", None, admin=False)
        bob, _ = await create_user(db, f"bob{tag}", None, admin=False)
        carol, _ = await create_user(db, f"carol{tag}", None, admin=False)
        assert alice.id and bob.id and carol.id
        alice.settings = {"version": 1, "watchlist": {"coinbase": ["SOL-USD"]}}
        carol.settings = {
            "version": 1,
            "watchlist": {"coinbase": ["BTC-USD", "SOL-USD", "NOPE-USD"]},
        }
        db.add_all(
            [
                alice,
                carol,
                UserExchange(user_id=alice.id, exchange_id=COINBASE),
                UserExchange(
                    user_id=bob.id,
                    exchange_id=BINANCE,
                    api_key_env_var="BOB_BINANCE_KEY",
                    api_secret_env_var="BOB_BINANCE_SECRET",
                ),
                UserExchange(user_id=carol.id, exchange_id=COINBASE),
                UserExchange(
                    user_id=carol.id,
                    exchange_id=BINANCE,
                    api_key_env_var="CAROL_BINANCE_KEY",  # a key Binance does not know: 401
                    api_secret_env_var="CAROL_BINANCE_SECRET",
                ),
            ]
        )
        await db.commit()
        ids = {"alice": alice.id, "bob": bob.id, "carol": carol.id}
    try:
        yield {"ids": ids, "alice_token": alice_token.token, "sessions": sessions}
    finally:
        async with sessions() as db:
            await db.exec(delete(User).where(col(User.id).in_(list(ids.values()))))
            await db.exec(
                delete(ExchangeSymbol).where(col(ExchangeSymbol.exchange_id).in_(PRODUCTS))
            )
            await db.commit()
        await engine.dispose()


async def _set_balances(sim: RunningSim, balances: dict[str, float]) -> None:
    async with aiohttp.ClientSession() as http:
        url = f"{sim.base_url}/_sim/accounts/binance"
        async with http.put(url, json={"balances": balances}) as reply:
            assert reply.status == 200


async def _coinbase_candles_subscriptions(sim: RunningSim) -> list[str]:
    url = f"{sim.rest_url(Venue.COINBASE)}/_sim/subscriptions"
    async with aiohttp.ClientSession() as http, http.get(url) as reply:
        connections = (await reply.json())["connections"]
    return [p for conn in connections for p in conn.get("candles", [])]


async def _status(redis: Redis, exchange_id: int) -> ConnectionStatus | None:
    return await StatusStore(redis).read(exchange_id)


async def _count(redis: Redis, key: str) -> int:
    return int(await redis.zcard(key))


async def _keys(redis: Redis, pattern: str) -> list[str]:
    return [key async for key in iter_matching(redis, pattern)]


async def _positions(traders: dict[str, Any], user_id: int) -> set[str]:
    async with traders["sessions"]() as db:
        rows = await db.exec(
            select(Position.symbol).where(
                col(Position.user_id) == user_id, col(Position.exchange_id) == BINANCE
            )
        )
        return set(rows.all())


async def test_one_worker_per_exchange_serves_every_trader(
    sim: RunningSim,
    redis: Redis,
    traders: dict[str, Any],
    spawn_worker: Callable[..., Any],
    spawn_api: Callable[..., Any],
) -> None:
    alice, bob, carol = (traders["ids"][n] for n in ("alice", "bob", "carol"))
    await _set_balances(sim, {"USDT": 500.0, "ADA": 5000.0, "DOGE": 1.0})  # DOGE: $0.15 dust
    common = {"LIVERMORE_TIER1_LIMITS": TIER1_LIMITS, "LIVERMORE_POSITION_SYNC_INTERVAL_S": "2"}
    coinbase = spawn_worker("coinbase", sim=sim, **common)
    binance = spawn_worker(
        "binance",
        "--autostart",
        sim=sim,
        BOB_BINANCE_KEY=BINANCE_KEY,
        BOB_BINANCE_SECRET=BINANCE_SECRET,
        CAROL_BINANCE_KEY="not-a-key",
        CAROL_BINANCE_SECRET=BINANCE_SECRET,
        **common,
    )

    # Coinbase: a start command; the refused product is reported in its response, the rest stream.
    bus = CommandBus(redis)
    await poll(lambda: _status(redis, COINBASE), 120, "the idle Coinbase worker's status")
    started = await bus.await_response(COINBASE, await bus.send(COINBASE, StartCommand()), 120)
    assert started.status is ResponseStatus.SUCCESS, (started, coinbase.tail())
    data = started.data or {}
    assert set(data["failed_symbols"]) == {"NOPE-USD"}, data
    assert "not a valid product" in data["failed_symbols"]["NOPE-USD"]
    assert (data["tier1_count"], data["tier2_count"], data["users_served"]) == (2, 2, 2), data
    cb = await _status(redis, COINBASE)
    assert cb is not None and cb.connection_state is ConnectionState.CONNECTED
    assert set(cb.failed_symbols) == {"NOPE-USD"}
    assert sorted(await _coinbase_candles_subscriptions(sim)) == ["BTC-USD", "ETH-USD", "SOL-USD"]
    state = json.loads(await redis.get(keys.worker_state_key(COINBASE)))
    sol = [s for s in state["symbols"] if s["symbol"] == "SOL-USD"]
    assert len(sol) == 1 and sol[0]["holders"] == [alice, carol]  # streamed once, two holders

    # Binance: bob's synced positions (ADA held, DOGE dust ignored) are his Tier 2.
    async def binance_connected() -> ConnectionStatus | None:
        found = await _status(redis, BINANCE)
        return found if found and found.connection_state is ConnectionState.CONNECTED else None

    bn = await poll(binance_connected, 120, "the Binance worker connected")
    assert (bn.tier1_count, bn.tier2_count, bn.users_served) == (2, 1, 2), bn
    synced = {s.user_id: s for s in bn.position_sync}
    assert synced[bob].outcome == "synced" and synced[bob].positions == 1
    assert synced[carol].outcome == "failed" and "401" in synced[carol].message  # not fatal
    assert BINANCE_SECRET not in synced[carol].message
    assert await _positions(traders, bob) == {"ADAUSDT"}
    assert await _keys(redis, "*DOGEUSDT*") == []

    # Tier 2 keys: each holder's, with the TTL; never the shared pool. Tier 1 overlap: shared only.
    for user_id in (alice, carol):
        key = keys.user_candles_key(user_id, COINBASE, "SOL-USD", M5)
        await poll(lambda key=key: _count(redis, key), 30, f"{key} filled")
        assert 0 < await redis.ttl(key) <= 24 * 3600
        ind = keys.user_indicator_key(user_id, COINBASE, "SOL-USD", M5, IndicatorType.MACD_V)
        await poll(lambda ind=ind: redis.exists(ind), 60, f"{ind} written")
        assert 0 < await redis.ttl(ind) <= 25 * 3600
    assert await _keys(redis, "candles:1:SOL-USD:*") == []
    assert await _keys(redis, "indicator:1:SOL-USD:*") == []
    assert await _count(redis, keys.candles_key(COINBASE, "BTC-USD", M5)) > 0
    assert await _keys(redis, "usercandles:*:1:BTC-USD:*") == []
    bob_ada = keys.user_candles_key(bob, BINANCE, "ADAUSDT", M1)
    await poll(lambda: _count(redis, bob_ada), 30, "bob's ADAUSDT candles")
    assert await _keys(redis, "candles:2:ADAUSDT:*") == []

    # A watchlist add through the api streams into alice's keys within 10 s; removal stops it.
    api = spawn_api(sim)
    await api.wait_ready(120)
    headers = {"Authorization": f"Bearer {traders['alice_token']}"}
    ada = keys.user_candles_key(alice, COINBASE, "ADA-USD", M1)
    async with aiohttp.ClientSession(base_url=api.base_url, headers=headers) as http:
        async with http.post("/api/watchlist/coinbase", json={"symbol": "NOPE2-USD"}) as reply:
            assert reply.status == 422
        added_at = time.monotonic()
        async with http.post("/api/watchlist/coinbase", json={"symbol": "ADA-USD"}) as reply:
            assert reply.status == 200, await reply.text()

        async def ada_streaming() -> bool:
            subscribed = "ADA-USD" in await _coinbase_candles_subscriptions(sim)
            return subscribed and await _count(redis, ada) > 0

        await poll(ada_streaming, 10, "ADA-USD streaming into alice's keys")
        assert await _keys(redis, "candles:1:ADA-USD:*") == []  # alice's Tier 2: her keys only
        assert time.monotonic() - added_at < 10
        async with http.delete("/api/watchlist/coinbase/ADA-USD") as reply:
            assert reply.status == 200

        async def ada_dropped() -> bool:
            status = await _status(redis, COINBASE)
            applied = status is not None and status.tier2_count == 2  # SOL-USD, NOPE-USD
            return applied and "ADA-USD" not in await _coinbase_candles_subscriptions(sim)

        await poll(ada_dropped, 10, "ADA-USD unsubscribed")
    sol_1m = keys.user_candles_key(alice, COINBASE, "SOL-USD", M1)
    soon = await _count(redis, sol_1m) + 1
    await poll(lambda: _grew(redis, sol_1m, soon), 30, "a SOL-USD minute after the removal")
    frozen = await _count(redis, ada)
    later = await _count(redis, sol_1m) + 3
    await poll(lambda: _grew(redis, sol_1m, later), 30, "three more SOL-USD minutes")
    assert await _count(redis, ada) == frozen  # no more writes; the TTL cleans it up
    assert await _keys(redis, "candles:1:ADA-USD:*") == []  # nor any leak into the shared pool

    # A balance change in the simulator reaches bob's Tier 2 at the next position sync.
    await _set_balances(sim, {"USDT": 500.0, "ADA": 5000.0, "DOGE": 1.0, "SOL": 20.0})
    bob_sol = keys.user_candles_key(bob, BINANCE, "SOLUSDT", M1)
    await poll(lambda: _count(redis, bob_sol), 30, "bob's new SOLUSDT position streaming")
    assert await _positions(traders, bob) == {"ADAUSDT", "SOLUSDT"}

    async def bob_tier2_grew() -> ConnectionStatus | None:
        found = await binance_connected()
        return found if found and found.tier2_count == 2 else None

    await poll(bob_tier2_grew, 30, "the Binance worker connected with two Tier 2 symbols")

    for worker in (coinbase, binance):
        worker.terminate(signal.SIGTERM)
    assert await coinbase.wait_exit(30) == 0
    assert await binance.wait_exit(30) == 0


async def _grew(redis: Redis, key: str, at_least: int) -> bool:
    return await _count(redis, key) >= at_least
