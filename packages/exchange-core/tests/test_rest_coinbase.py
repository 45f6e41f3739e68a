import asyncio
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from livermore_exchange_core.adapters.coinbase.rest import CoinbaseRestClient
from livermore_exchange_core.config import Credentials
from livermore_exchange_core.errors import AuthenticationError, InvalidSymbolError
from livermore_exchange_core.ratelimit import SpacingLimiter
from livermore_exchange_sim.faults import RestMode
from livermore_exchange_sim.market import Venue
from livermore_exchange_sim.testing import RunningSim, running_sim
from livermore_schema.enums import ExchangeName, Timeframe

from ._rest_support import RequestLog, recording_session, sim_config

SPEED = 60.0
FIVE_MIN = 300_000


@pytest.fixture
async def sim() -> AsyncIterator[RunningSim]:
    async with running_sim(seed=11, speed=SPEED) as running:
        yield running


async def _client(sim: RunningSim, log: RequestLog, **kwargs: object) -> CoinbaseRestClient:
    return CoinbaseRestClient(
        sim_config(sim, ExchangeName.COINBASE),
        session=recording_session(log),
        limiter=kwargs.pop("limiter", SpacingLimiter(10.0)),  # type: ignore[arg-type]
        clock_rate=SPEED,
        **kwargs,  # type: ignore[arg-type]
    )


async def _close(client: CoinbaseRestClient) -> None:
    session = client._session
    assert session is not None
    await session.close()


async def test_candles_page_through_ranges_and_equal_ground_truth(sim: RunningSim) -> None:
    log = RequestLog()
    client = await _client(sim, log)
    try:
        candles = await client.get_candles("ETH-USD", Timeframe.M5, limit=700)
    finally:
        await _close(client)
    assert len(candles) == 700
    assert [c.open_time for c in candles] == sorted(c.open_time for c in candles)
    assert all(c.closed for c in candles)
    assert sum(1 for _, path in log.sent if path.endswith("/candles")) == 3  # 300+300+100
    truth = sim.truth(
        Venue.COINBASE, "ETH-USD", FIVE_MIN, candles[0].open_time, candles[-1].open_time + 1
    )
    assert [(b.open_time, b.open, b.high, b.low, b.close) for b in truth] == [
        (c.open_time, c.open, c.high, c.low, c.close) for c in candles
    ]
    # The newest returned bar is the latest closed one per exchange time.
    assert sim.clock.now_ms() - candles[-1].open_time < 2 * FIVE_MIN + 2 * 1000 * SPEED


async def _inside_a_traded_minute(sim: RunningSim, symbol: str) -> None:
    """Wait until the in-progress 1m bucket has traded and stays open long enough for a request.

    Coinbase omits buckets without trades, the open one included, so right after a minute starts
    there may be no open bar to return.
    """
    minute = 60_000
    while True:
        now = sim.clock.now_ms()
        start = now - now % minute
        trades = sim.market.trades(Venue.COINBASE, symbol, start, start + minute)
        first = trades[0].time_ms if trades else start + minute
        if first < now and start + minute - now > minute // 3:
            return
        late = first >= start + minute - minute // 3
        await sim.clock.sleep_until(start + minute if late else first + 1)


async def test_open_bar_only_when_asked(sim: RunningSim) -> None:
    log = RequestLog()
    client = await _client(sim, log)
    try:
        await asyncio.wait_for(_inside_a_traded_minute(sim, "BTC-USD"), 30)
        with_open = await client.get_candles("BTC-USD", Timeframe.M1, limit=5, include_open=True)
    finally:
        await _close(client)
    assert not with_open[-1].closed
    assert all(c.closed for c in with_open[:-1])


async def test_unknown_product_is_invalid_symbol(sim: RunningSim) -> None:
    client = await _client(sim, RequestLog())
    try:
        with pytest.raises(InvalidSymbolError):
            await client.get_candles("NOPE-USD", Timeframe.M5, limit=10)
    finally:
        await _close(client)


@pytest.mark.parametrize(
    "mode", [RestMode.RATE_LIMIT_JSON, RestMode.RATE_LIMIT_HTML, RestMode.UNAUTHORIZED]
)
async def test_throttling_pauses_every_caller_then_succeeds(
    sim: RunningSim, mode: RestMode
) -> None:
    log = RequestLog()
    limiter = SpacingLimiter(10.0)
    client = await _client(sim, log, limiter=limiter)
    await client.clock.sync()
    sim.faults.set_rest(Venue.COINBASE, mode, count=1, retry_after_s=1)
    try:
        results = await asyncio.wait_for(
            asyncio.gather(
                *(
                    client.get_candles(s, Timeframe.M5, limit=3)
                    for s in ("BTC-USD", "ETH-USD", "SOL-USD")
                )
            ),
            20,
        )
    finally:
        await _close(client)
    assert all(len(r) == 3 for r in results)
    statuses = log.statuses()
    assert statuses.count(429 if mode is not RestMode.UNAUTHORIZED else 401) == 1
    assert limiter.pauses == 1
    throttled_at = next(t for t, _, s in log.answered if s in (401, 429))
    later = [t for t, _ in log.sent if t > throttled_at]
    # Nobody sent anything while the pause lasted (Retry-After 1 s, or the backoff delay for 401).
    minimum = 1.0 if mode is not RestMode.UNAUTHORIZED else 0.25
    assert later and min(later) - throttled_at >= minimum * 0.95


async def test_products_and_accounts(sim: RunningSim) -> None:
    assert sim.coinbase_key is not None
    credentials = Credentials(sim.coinbase_key.name, SecretStr(sim.coinbase_key.private_pem))
    client = await _client(sim, RequestLog(), credentials=credentials)
    anonymous = await _client(sim, RequestLog())
    try:
        products = {p.symbol: p for p in await client.list_products()}
        balances = {b.asset: b for b in await client.get_balances()}
        with pytest.raises(AuthenticationError):
            await anonymous.get_balances()
    finally:
        await _close(client)
        await _close(anonymous)
    assert products["BTC-USD"].quote_volume_24h > products["FORT-USD"].quote_volume_24h > 0
    assert balances["BTC"].total == pytest.approx(0.5123)


async def test_sustained_load_causes_no_429_at_the_published_rate(sim: RunningSim) -> None:
    log = RequestLog()
    limiter = SpacingLimiter(10.0, window_limit=10)
    client = await _client(sim, log, limiter=limiter)
    symbols = [p.symbol for p in sim.market.products(Venue.COINBASE)]
    jobs = [(s, tf) for s in symbols for tf in (Timeframe.M5, Timeframe.H1)]
    await client.clock.sync()
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        await asyncio.gather(*(client.get_candles(s, tf, limit=50) for s, tf in jobs))
    finally:
        await _close(client)
    elapsed = loop.time() - started
    optimum = (len(jobs) - 1) / 10.0  # 10 req/s published; the first request is free
    print(f"{len(jobs)} requests in {elapsed:.2f}s, optimum {optimum:.2f}s")
    assert 429 not in log.statuses() and len(log.answered) == len(jobs) + 1  # + /time
    # Never faster than the published rate (how close to it is bench/bench_backfill.py's budget).
    assert elapsed >= 0.95 * optimum, (elapsed, optimum)
