"""A burst holding several bars of one series judges a reversal exactly as bar-by-bar would.

A catch-up after a takeover (or any repair) hands the evaluator a series' missed bars in one
burst. A reversal disarms the series, so the bars behind it must not be planned as if it were
still armed: found by the chaos soak, where a catch-up burst fired `reversal_overbought` on two
bars five minutes apart and again on the next live bar, all in one excursion.
"""

from __future__ import annotations

from typing import Any

import pytest

from livermore_cache import keys
from livermore_cache.tickers import TickerCache
from livermore_schema.enums import Timeframe
from livermore_schema.market import Ticker
from livermore_schema.settings import CacheSettings

from .test_alert_evaluator import SYMBOL, T0, make_evaluator, reading

# an oversold excursion: the reversal shows at slot 1, and still shows after the cooldown
EXCURSION = [(-205.0, 0.0), (-210.0, 20.0), (-209.0, 25.0), (-209.5, 25.0), (-209.8, 25.0),
             (-209.9, 25.0), (-209.7, 25.0), (-209.6, 25.0), (-209.4, 25.0)]  # fmt: skip


async def _write_ticker(redis: Any) -> None:
    await TickerCache(redis, CacheSettings()).write(
        Ticker(exchange_id=1, exchange="coinbase", symbol=SYMBOL, price=43210.5, timestamp=T0)
    )


@pytest.fixture
async def ticker(redis: Any) -> None:
    await _write_ticker(redis)


@pytest.mark.usefixtures("ticker")
async def test_a_burst_fires_one_reversal_per_excursion_like_bar_by_bar(redis: Any) -> None:
    values = [reading(v, slot, histogram=h) for slot, (v, h) in enumerate(EXCURSION)]
    one_by_one = make_evaluator(redis, CacheSettings())
    fired_each = [len(await one_by_one.evaluate(v)) for v in values]
    assert sum(fired_each) == 1  # bar by bar: the reversal once, then disarmed
    await redis.flushdb()
    await _write_ticker(redis)

    batched = make_evaluator(redis, CacheSettings())
    assert await batched.evaluate_many([(values[0], None)]) == 0  # initialises the series
    fired = await batched.evaluate_many([(v, None) for v in values[1:]])
    assert fired == 1
    state = await redis.hgetall(keys.alert_state_key(1, SYMBOL, Timeframe.M1))
    assert state["armed"] == "0" and int(state["open_time"]) == values[-1].open_time
    assert await batched.evaluate(reading(-209.0, len(values), histogram=25.0)) == []
