from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from livermore_cache import keys
from livermore_cache.candles import CandleCache
from livermore_exchange_core.adapters.coinbase.rest import CoinbaseRestClient
from livermore_exchange_core.ratelimit import SpacingLimiter
from livermore_exchange_core.reconciliation import Gap, GapRepairer, detect_gaps
from livermore_exchange_sim.market import Bar, Venue
from livermore_exchange_sim.testing import RunningSim, running_sim
from livermore_schema.enums import ExchangeName, Timeframe
from livermore_schema.settings import CacheSettings
from livermore_schema.timeframes import floor_to_boundary

from ._rest_support import RequestLog, recording_session, sim_config

M = 60_000
SPEED = 60.0


def test_detect_gaps_finds_runs_at_start_middle_and_end() -> None:
    present = [2 * M, 3 * M, 6 * M, 8 * M]
    assert detect_gaps(present, 0, 10 * M, Timeframe.M1) == [
        Gap(0, 2 * M, 2),
        Gap(4 * M, 6 * M, 2),
        Gap(7 * M, 8 * M, 1),
        Gap(9 * M, 10 * M, 1),
    ]
    assert detect_gaps(range(0, 10 * M, M), 0, 10 * M, Timeframe.M1) == []
    assert detect_gaps([], 30_000, 3 * M, Timeframe.M1) == [Gap(M, 3 * M, 2)]  # aligned up
    assert detect_gaps([], 0, 0, Timeframe.M1) == []


@pytest.fixture
async def sim() -> AsyncIterator[RunningSim]:
    async with running_sim(seed=13, speed=SPEED) as running:
        yield running


async def _setup(
    sim: RunningSim, redis: Redis, log: RequestLog
) -> tuple[CoinbaseRestClient, CandleCache, GapRepairer]:
    client = CoinbaseRestClient(
        sim_config(sim, ExchangeName.COINBASE),
        session=recording_session(log),
        limiter=SpacingLimiter(10.0),
        clock_rate=SPEED,
    )
    cache = CandleCache(redis, CacheSettings())
    return client, cache, GapRepairer(client, cache, exchange_id=1, exchange_name="coinbase")


async def test_repair_fills_exactly_the_missing_closed_bars(sim: RunningSim, redis: Redis) -> None:
    log = RequestLog()
    client, cache, repairer = await _setup(sim, redis, log)
    try:
        candles = await client.get_candles("ETH-USD", Timeframe.M1, limit=200)
        await cache.write_many(candles)
        removed = candles[10:13] + candles[50:51] + candles[-4:]
        key = keys.candles_key(1, "ETH-USD", Timeframe.M1)
        await redis.zremrangebyscore(key, removed[0].open_time, removed[2].open_time)
        await redis.zremrangebyscore(key, removed[3].open_time, removed[3].open_time)
        await redis.zremrangebyscore(key, removed[4].open_time, removed[-1].open_time)
        since, until = candles[0].open_time, candles[-1].open_time + M
        gaps = await repairer.missing("ETH-USD", Timeframe.M1, since, until)
        requests_before = len(log.sent)
        repaired = await repairer.repair("ETH-USD", Timeframe.M1, since, until)
        written = await cache.between(1, "ETH-USD", Timeframe.M1, since, until - 1)
        requests_after_first = len(log.sent)
        again = await repairer.repair("ETH-USD", Timeframe.M1, since, until)
    finally:
        assert client._session is not None
        await client._session.close()
    # Every closed bar of the range, oldest first: the fetched ones and those already cached.
    assert [c.open_time for c in repaired] == [c.open_time for c in candles]
    assert [(g.start_ms, g.count) for g in gaps] == [
        (removed[0].open_time, 3),
        (removed[3].open_time, 1),
        (removed[4].open_time, 4),
    ]
    assert requests_after_first - requests_before == len(gaps)  # one fetch per gap, no more
    assert again == written and len(log.sent) == requests_after_first  # nothing left to fetch
    stored = await cache.between(1, "ETH-USD", Timeframe.M1, since, until - 1)
    truth = sim.truth(Venue.COINBASE, "ETH-USD", M, since, until)
    assert [(c.open_time, c.close) for c in stored] == [(b.open_time, b.close) for b in truth]
    assert await redis.zcard(key) == len(truth)  # no duplicates


async def test_no_trade_buckets_are_confirmed_empty_and_not_refetched(
    sim: RunningSim, redis: Redis
) -> None:
    log = RequestLog()
    client, _cache, repairer = await _setup(sim, redis, log)
    symbol = "FORT-USD"  # thin: many minutes without trades, which Coinbase omits
    try:
        now = await client.server_time_ms()
        until = floor_to_boundary(now, Timeframe.M1) - 10 * M
        since = until - 300 * M
        first = await repairer.repair(symbol, Timeframe.M1, since, until)
        requests_after_first = len(log.sent)
        second = await repairer.repair(symbol, Timeframe.M1, since, until)
    finally:
        assert client._session is not None
        await client._session.close()
    truth = sim.truth(Venue.COINBASE, symbol, M, since, until)
    assert len(truth) < 300, "the thin product should have empty minutes"
    assert [c.open_time for c in first] == [b.open_time for b in truth]
    empty = repairer.confirmed_empty(symbol, Timeframe.M1)
    assert len(empty) == 300 - len(truth) - _tail_unconfirmed(truth, until)
    assert second == first and len(log.sent) - requests_after_first <= 1


def _tail_unconfirmed(truth: list[Bar], until: int) -> int:
    """Empty minutes after the last real bar stay unconfirmed (no later bar proves them final)."""
    return (until - truth[-1].open_time) // M - 1 if truth else 0


async def test_tier2_symbol_repairs_into_its_users_keys_only(sim: RunningSim, redis: Redis) -> None:
    log = RequestLog()
    client, cache, _ = await _setup(sim, redis, log)
    tier2: dict[str, int] = {}
    repairer = GapRepairer(client, cache, exchange_id=1, user_ids=tier2)
    tier2["SOL-USD"] = 7  # added after construction, as a worker adds a Tier 2 symbol
    try:
        candles = await client.get_candles("SOL-USD", Timeframe.M1, limit=30)
        since, until = candles[0].open_time, candles[-1].open_time + M
        repaired = await repairer.repair("SOL-USD", Timeframe.M1, since, until)
    finally:
        assert client._session is not None
        await client._session.close()
    assert [c.open_time for c in repaired] == [c.open_time for c in candles]
    assert await redis.exists(keys.candles_key(1, "SOL-USD", Timeframe.M1)) == 0  # shared pool
    user_key = keys.user_candles_key(7, 1, "SOL-USD", Timeframe.M1)
    assert await redis.zcard(user_key) == len(candles)
    assert 0 < await redis.ttl(user_key) <= CacheSettings().user_candle_ttl_s
