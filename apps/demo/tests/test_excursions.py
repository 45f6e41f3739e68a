"""The simulator route the demo uses to start scripted MACD-V excursions once workers connect."""

from __future__ import annotations

import aiohttp

from livermore_exchange_sim.market import Market, Venue
from livermore_exchange_sim.testing import running_sim

MINUTE_MS = 60_000


async def test_excursions_start_at_runtime_for_listed_assets_and_leave_history_alone() -> None:
    async with running_sim(speed=6000.0, symbols=["BTC", "ETH", "SOL"]) as sim:
        now = sim.clock.now_ms()
        before = sim.market.closed_bars(Venue.COINBASE, "BTC-USD", MINUTE_MS, now - 7_200_000, now)
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{sim.base_url}/_sim/scenarios/demo", params={"lead_ms": "0"}) as resp,
        ):
            assert resp.status == 200
            body = await resp.json()
        assert [s["base"] for s in body["scenarios"]] == ["BTC", "ETH"]
        start = body["scenarios"][0]["start_ms"]
        assert now <= start == body["now_ms"]
        after = sim.market.closed_bars(Venue.COINBASE, "BTC-USD", MINUTE_MS, now - 7_200_000, now)
        assert after[: len(before)] == before  # history is untouched (the clock runs on)

        # 30 simulated minutes into the trend, BTC is pushed up and ETH down against the
        # same market without the excursions.
        probe = start + 30 * MINUTE_MS
        await sim.clock.sleep_until(probe + MINUTE_MS)
        plain = Market(seed=sim.config.seed, clock=sim.clock, symbols=("BTC", "ETH"))
        for venue, symbol, sign in (
            (Venue.COINBASE, "BTC-USD", 1),
            (Venue.BINANCE, "BTCUSDT", 1),
            (Venue.COINBASE, "ETH-USD", -1),
            (Venue.BINANCE, "ETHUSDT", -1),
        ):
            shaped = sim.market.bar(venue, symbol, MINUTE_MS, probe).close
            base = plain.bar(venue, symbol, MINUTE_MS, probe).close
            assert sign * (shaped / base - 1) > 0.01, (symbol, shaped, base)


async def test_excursions_only_cover_assets_the_simulator_lists() -> None:
    async with running_sim(symbols=["ETH", "SOL"]) as sim, aiohttp.ClientSession() as http:
        url = f"{sim.base_url}/_sim/scenarios/demo"
        async with http.post(url, params={"lead_ms": "1000"}) as resp:
            body = await resp.json()
        assert [s["base"] for s in body["scenarios"]] == ["ETH"]
        assert body["scenarios"][0]["start_ms"] == body["now_ms"] + 1000
        for bad in ("soon", "-5"):
            async with http.post(url, params={"lead_ms": bad}) as resp:
                assert resp.status == 400
