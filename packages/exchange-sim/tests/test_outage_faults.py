"""The outage faults the chaos soak needs: REST down (503) on both venues, late Coinbase trades."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from livermore_exchange_sim.faults import RestMode
from livermore_exchange_sim.market import Venue
from livermore_exchange_sim.testing import RunningSim, running_sim

START = 1_759_968_000_000


@pytest.fixture
async def sim() -> AsyncIterator[RunningSim]:
    async with running_sim(seed=7, speed=60.0, start_ms=START, symbols=["BTC"]) as running:
        yield running


async def test_an_outage_answers_503_until_cleared_on_both_venues(sim: RunningSim) -> None:
    paths = {
        Venue.COINBASE: "/api/v3/brokerage/market/products/BTC-USD",
        Venue.BINANCE: "/api/v3/time",
    }
    async with aiohttp.ClientSession() as http:
        for venue, path in paths.items():
            sim.faults.set_rest(venue, RestMode.UNAVAILABLE, count=None)
            for _ in range(3):
                async with http.get(sim.rest_url(venue) + path) as resp:
                    assert resp.status == 503, venue
            sim.faults.clear(venue)
            async with http.get(sim.rest_url(venue) + path) as resp:
                assert resp.status == 200, venue
            async with http.get(sim.rest_url(venue) + "/_sim/stats") as resp:
                assert (await resp.json())["http_429"] == 0  # an outage is no rate limit


async def _trades(ws: aiohttp.ClientWebSocketResponse, frames: int) -> list[dict[str, Any]]:
    """Read `frames` market_trades updates; return their trades, newest first per frame."""
    seen: list[dict[str, Any]] = []
    got = 0
    async with asyncio.timeout(20):
        while got < frames:
            body = json.loads((await ws.receive()).data)
            if body.get("channel") != "market_trades":
                continue
            for event in body["events"]:
                if event["type"] == "update":
                    seen += event["trades"]
                    got += 1
    return seen


async def test_delayed_trades_arrive_late_then_catch_up(sim: RunningSim) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(sim.ws_url(Venue.COINBASE)) as ws,
    ):
        subscribe = {"type": "subscribe", "channel": "market_trades", "product_ids": ["BTC-USD"]}
        await ws.send_str(json.dumps(subscribe))
        await _trades(ws, 1)
        sim.faults.delay_trades(Venue.COINBASE, 30)
        held_from = sim.clock.now_ms()
        await _trades(ws, 1)  # a frame that may have been on its way already
        lagging = await _trades(ws, 3)
        cleared_at = sim.clock.now_ms()
        sim.faults.clear(Venue.COINBASE)
        stamps = [_ms(t["time"]) for t in lagging]
        assert max(stamps) <= cleared_at - 30_000, "a held trade was sent on time"
        assert sim.clock.now_ms() - held_from > 30_000
        caught_up = await _trades(ws, 2)
        assert max(_ms(t["time"]) for t in caught_up) > cleared_at - 30_000, "no catch-up"
        assert sim.faults.trade_delay_ms(Venue.COINBASE, sim.clock.now_ms()) == 0


def _ms(rfc3339: str) -> int:
    """`2023-06-09T20:19:35.396000000Z` -> epoch ms."""
    whole, _, fraction = rfc3339.rstrip("Z").partition(".")
    stamp = datetime.fromisoformat(whole).replace(tzinfo=UTC)
    return int(stamp.timestamp()) * 1000 + int(fraction[:3] or 0)
