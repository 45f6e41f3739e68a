from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from coinbase.websocket import WSClient

from livermore_exchange_sim.market import Venue
from livermore_exchange_sim.testing import running_sim

START = 1_759_968_000_000 + 290_000  # 10 s of sim time before a 5m boundary


def final_candles(messages: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, str]]:
    """Last values the candles channel sent per (product, start), for buckets known to be closed."""
    last: dict[tuple[str, int], dict[str, str]] = {}
    newest: dict[str, int] = {}
    for message in messages:
        if message.get("channel") != "candles":
            continue
        for event in message["events"]:
            for candle in event["candles"]:
                key = (candle["product_id"], int(candle["start"]))
                last[key] = candle
                newest[key[0]] = max(newest.get(key[0], 0), key[1])
    return {key: c for key, c in last.items() if key[1] < newest[key[0]]}


async def test_ws_final_candles_and_rest_equal_ground_truth() -> None:
    async with running_sim(
        seed=11, speed=600.0, start_ms=START, coinbase_snapshot_candles=3
    ) as sim:
        messages: list[dict[str, Any]] = []
        enough = asyncio.Event()

        def on_message(raw: str) -> None:
            messages.append(json.loads(raw))
            if len(final_candles(messages)) >= 3 * 2 + 4:
                enough.set()

        client = WSClient(
            base_url=sim.ws_url(Venue.COINBASE),
            on_message=on_message,
            api_key=None,
            api_secret=None,
        )
        await client.open_async()
        await client.candles_async(["BTC-USD", "SOL-USD"])
        await asyncio.wait_for(enough.wait(), 15)
        await client.close_async()

        finals = final_candles(messages)
        lo = min(start for _, start in finals) * 1000
        hi = max(start for _, start in finals) * 1000 + 300_000
        live_starts = {
            start
            for m in messages
            if m.get("channel") == "candles" and m["events"][0]["type"] == "update"
            for _, start in [(c["product_id"], int(c["start"])) for c in m["events"][0]["candles"]]
        }
        assert len(live_starts) >= 3  # buckets rolled over while streaming
        for product in ("BTC-USD", "SOL-USD"):
            truth = {
                b.open_time // 1000: b for b in sim.truth(Venue.COINBASE, product, 300_000, lo, hi)
            }
            sent = {start: c for (p, start), c in finals.items() if p == product}
            assert set(sent) <= set(truth)
            for start, candle in sent.items():
                bar = truth[start]
                decimals = len(candle["open"].split(".")[1])
                expected = [f"{v:.{decimals}f}" for v in (bar.open, bar.high, bar.low, bar.close)]
                assert [candle[k] for k in ("open", "high", "low", "close")] == expected
                assert candle["volume"] == f"{bar.volume:.8f}"

        async with aiohttp.ClientSession() as http:
            params = {
                "exchange": "coinbase",
                "symbol": "BTC-USD",
                "timeframe": "5m",
                "start": str(lo),
                "end": str(hi),
            }
            async with http.get(f"{sim.base_url}/_sim/truth", params=params) as resp:
                body = await resp.json()
            rest_url = (
                f"{sim.rest_url(Venue.COINBASE)}/api/v3/brokerage/market/products/BTC-USD/candles"
            )
            rest_params = {
                "start": str(lo // 1000),
                "end": str(hi // 1000),
                "granularity": "FIVE_MINUTE",
            }
            async with http.get(rest_url, params=rest_params) as resp:
                rest = (await resp.json())["candles"]
        endpoint = {c["open_time"] // 1000: c for c in body["candles"]}
        for (product, start), candle in finals.items():
            if product == "BTC-USD":
                assert endpoint[start]["close"] == float(candle["close"])
                assert endpoint[start]["volume"] == float(candle["volume"])
        assert rest, "REST returned the same buckets"
        for candle in rest:
            start = int(candle["start"])
            if start in endpoint:
                assert float(candle["close"]) == endpoint[start]["close"]
                assert float(candle["high"]) == endpoint[start]["high"]


async def test_truth_endpoint_rejects_bad_queries_and_reports_the_clock() -> None:
    async with running_sim(start_ms=START) as sim, aiohttp.ClientSession() as http:
        async with http.get(f"{sim.base_url}/_sim/truth", params={"exchange": "coinbase"}) as resp:
            assert resp.status == 400
        params = {
            "exchange": "binance",
            "symbol": "NOPEUSDT",
            "timeframe": "1m",
            "start": "0",
            "end": "1",
        }
        async with http.get(f"{sim.base_url}/_sim/truth", params=params) as resp:
            assert resp.status == 404
        async with http.get(f"{sim.base_url}/_sim/clock") as resp:
            clock = await resp.json()
        assert clock["speed"] == 60.0 and clock["now_ms"] >= START
