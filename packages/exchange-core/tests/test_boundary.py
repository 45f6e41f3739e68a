import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from livermore_cache.candles import CandleCache
from livermore_cache.pubsub import Publisher
from livermore_exchange_core.adapters.coinbase.rest import CoinbaseRestClient
from livermore_exchange_core.boundary import BoundaryRestService
from livermore_exchange_core.ratelimit import SpacingLimiter
from livermore_exchange_core.stage import ClosedBarStage
from livermore_exchange_sim.market import Venue
from livermore_exchange_sim.testing import RunningSim, running_sim
from livermore_schema.enums import CandleSource, ExchangeName, Timeframe
from livermore_schema.market import Candle
from livermore_schema.settings import CacheSettings
from livermore_schema.timeframes import duration_ms, floor_to_boundary

from ._rest_support import RequestLog, recording_session, sim_config

SPEED = 300.0  # a 15m bar closes every 3 wall seconds
FIVE_MIN = duration_ms(Timeframe.M5)
SYMBOLS = ["BTC-USD", "ETH-USD", "SOL-USD", "XRP-USD", "DOGE-USD"]


@pytest.fixture
async def sim() -> AsyncIterator[RunningSim]:
    async with running_sim(seed=9, speed=SPEED) as running:
        yield running


def _five_minute_close(symbol: str, boundary_ms: int) -> Candle:
    """The closed 5m bar an adapter reports when `boundary_ms` passes."""
    open_time = boundary_ms - FIVE_MIN
    return Candle(
        exchange_id=1,
        exchange="coinbase",
        symbol=symbol,
        timeframe=Timeframe.M5,
        open_time=open_time,
        close_time=boundary_ms - 1,
        open=1.0,
        high=1.0,
        low=1.0,
        close=1.0,
        volume=1.0,
        closed=True,
        source=CandleSource.WS,
    )


async def _service(
    sim: RunningSim, redis: Redis, log: RequestLog, delivered: list[Candle]
) -> tuple[BoundaryRestService, CoinbaseRestClient, CandleCache]:
    client = CoinbaseRestClient(
        sim_config(sim, ExchangeName.COINBASE),
        session=recording_session(log),
        limiter=SpacingLimiter(10.0),
        clock_rate=SPEED,
    )
    cache = CandleCache(redis, CacheSettings())

    stage = ClosedBarStage(candles=cache, publisher=Publisher(redis, CacheSettings()))

    class Sink:
        """Records each bar and runs it through the closed-bar stage (as the pipeline would)."""

        async def on_candle(self, candle: Candle) -> None:
            delivered.append(candle)
            await stage.process([candle])

    service = BoundaryRestService(
        client, cache, exchange_id=1, exchange_name="coinbase", symbols=SYMBOLS, sink=Sink()
    )
    return service, client, cache


async def test_one_wave_per_boundary_fetches_the_bar_that_just_closed(
    sim: RunningSim, redis: Redis
) -> None:
    log, delivered = RequestLog(), []
    service, client, cache = await _service(sim, redis, log, delivered)
    now = await client.server_time_ms()
    boundary = floor_to_boundary(now - 5_000, Timeframe.M15)
    try:
        wave = service.on_five_minute_close(_five_minute_close("BTC-USD", boundary))
        # The other symbols' closes for the same boundary start nothing new.
        assert all(
            service.on_five_minute_close(_five_minute_close(s, boundary)) is None for s in SYMBOLS
        )
        assert wave is not None
        fetched = await asyncio.wait_for(wave, 30)
    finally:
        await service.aclose()
        await client.aclose()
        assert client._session is not None
        await client._session.close()
    due = service.due(boundary)
    assert due == []
    expected_tfs = [
        tf
        for tf in (Timeframe.M15, Timeframe.H1, Timeframe.H4, Timeframe.D1)
        if boundary % duration_ms(tf) == 0
    ]
    assert service.waves == 1
    assert len(fetched) == len(SYMBOLS) * len(expected_tfs)
    candle_requests = [p for _, p in log.sent if p.endswith("/candles")]
    assert len(candle_requests) == len(SYMBOLS) * len(expected_tfs)  # once per symbol x tf
    for candle in fetched:
        step = duration_ms(candle.timeframe)
        assert candle.open_time == boundary - step and candle.closed  # just closed, not just opened
        truth = sim.truth(Venue.COINBASE, candle.symbol, step, candle.open_time, boundary)
        assert [(b.open, b.high, b.low, b.close) for b in truth] == [
            (candle.open, candle.high, candle.low, candle.close)
        ]
        cached = await cache.recent(1, candle.symbol, candle.timeframe, 5)
        assert [c.open_time for c in cached] == [candle.open_time]
    assert sorted((c.symbol, c.open_time) for c in delivered) == sorted(
        (c.symbol, c.open_time) for c in fetched
    )


async def test_bar_not_yet_published_is_retried_until_rest_has_it(
    sim: RunningSim, redis: Redis
) -> None:
    log, delivered = RequestLog(), []
    service, client, _cache = await _service(sim, redis, log, delivered)
    service.set_symbols(["BTC-USD"])
    now = await client.server_time_ms()
    # The 5m close is reported as soon as the next 15m boundary is reached, before REST (per the
    # exchange clock and its grace) considers the 15m bar closed: the first answer lacks it.
    boundary = floor_to_boundary(now, Timeframe.M15) + duration_ms(Timeframe.M15)
    try:
        wave = service.on_five_minute_close(_five_minute_close("BTC-USD", boundary))
        assert wave is not None
        fetched = await asyncio.wait_for(wave, 30)
    finally:
        await service.aclose()
        assert client._session is not None
        await client._session.close()
    assert [c.open_time for c in fetched if c.timeframe is Timeframe.M15] == [
        boundary - duration_ms(Timeframe.M15)
    ]
    due_tfs = [
        tf
        for tf in (Timeframe.M15, Timeframe.H1, Timeframe.H4, Timeframe.D1)
        if boundary % duration_ms(tf) == 0
    ]
    assert sorted(c.timeframe for c in fetched) == sorted(due_tfs)
    # Until exchange time says the bar is closed the client has nothing to ask for (an empty
    # answer, retried with backoff); then exactly one request per timeframe fetches it.
    assert len([p for _, p in log.sent if p.endswith("/candles")]) == len(due_tfs)


async def test_a_wave_catches_its_series_up_after_missed_boundaries_in_the_same_request(
    sim: RunningSim, redis: Redis
) -> None:
    log, delivered = RequestLog(), []
    service, client, cache = await _service(sim, redis, log, delivered)
    service.set_symbols(["BTC-USD"])
    fifteen = duration_ms(Timeframe.M15)
    now = await client.server_time_ms()
    boundary = floor_to_boundary(now - 5_000, Timeframe.M15)
    if boundary % duration_ms(Timeframe.H1) == 0:
        boundary -= fifteen  # keep this wave to the 15m series alone
    try:
        # The cache ends 4 bars early: three boundaries passed without a wave (say, during the
        # startup backfill).
        old = await client.get_candles(
            "BTC-USD", Timeframe.M15, start_ms=boundary - 5 * fifteen, end_ms=boundary - 3 * fifteen
        )
        await cache.write_many(old)
        requests_before = len(log.sent)
        wave = service.on_five_minute_close(_five_minute_close("BTC-USD", boundary))
        assert wave is not None
        fetched = await asyncio.wait_for(wave, 30)
    finally:
        await service.aclose()
        assert client._session is not None
        await client._session.close()
    assert [c.open_time for c in fetched] == [boundary - fifteen]
    missed = [boundary - i * fifteen for i in (3, 2, 1)]
    assert [c.open_time for c in delivered] == missed  # oldest first, the just-closed one last
    assert len(log.sent) - requests_before == 1  # the catch-up rode on the wave's one request
    cached = await cache.between(1, "BTC-USD", Timeframe.M15, 0, boundary)
    truth = sim.truth(Venue.COINBASE, "BTC-USD", fifteen, boundary - 5 * fifteen, boundary)
    assert [(c.open_time, c.close) for c in cached] == [(b.open_time, b.close) for b in truth]


async def test_start_catches_every_timeframe_up_at_once(redis: Redis) -> None:
    """Boundaries passed while the worker started are fetched at start, not at their next one."""
    day_boundary = 1_796_428_800_000  # a UTC midnight: every higher timeframe closes at once
    symbols = ["BTC-USD", "ETH-USD"]
    tfs = (Timeframe.M15, Timeframe.H1, Timeframe.H4, Timeframe.D1)
    async with running_sim(seed=9, speed=SPEED, start_ms=day_boundary - 8 * 60_000) as sim:
        log, delivered = RequestLog(), []
        service, client, cache = await _service(sim, redis, log, delivered)
        service.set_symbols(symbols)
        try:
            # The startup backfill, before midnight.
            for symbol in symbols:
                for timeframe in tfs:
                    bars = await client.get_candles(symbol, timeframe, limit=3)
                    await cache.write_many([b for b in bars if b.closed])
            await sim.clock.sleep_until(day_boundary + 60_000)  # midnight passes meanwhile
            now = await client.server_time_ms()
            requests_before = len(log.sent)
            fetched = await asyncio.wait_for(service.start(now), 30)
            candle_requests = len(log.sent) - requests_before
            again = await asyncio.wait_for(service.catch_up(now), 30)
            requests_again = len(log.sent) - requests_before - candle_requests
        finally:
            await service.aclose()
            await client.aclose()
            assert client._session is not None
            await client._session.close()
    assert sorted((c.symbol, c.timeframe) for c in fetched) == sorted(
        (s, tf) for s in symbols for tf in tfs
    )
    assert candle_requests == len(symbols) * len(tfs)  # one per series, catch-up included
    assert again == [] and requests_again == 0  # an up-to-date series costs nothing
    assert service.due(day_boundary) == []  # the 5m close at midnight starts no second wave
    for symbol in symbols:
        for timeframe in tfs:
            step = duration_ms(timeframe)
            cached = await cache.between(1, symbol, timeframe, 0, 2**62)
            assert cached[-1].open_time == floor_to_boundary(now, timeframe) - step
            truth = sim.truth(Venue.COINBASE, symbol, step, cached[0].open_time, now)
            assert [(c.open_time, c.close, c.closed) for c in cached] == [
                (b.open_time, b.close, True) for b in truth
            ], f"{symbol} {timeframe.value}"
