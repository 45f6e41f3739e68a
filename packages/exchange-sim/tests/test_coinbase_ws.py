from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from coinbase.websocket import WSClient

from livermore_exchange_sim.faults import WsAction, WsActionKind
from livermore_exchange_sim.market import Venue
from livermore_exchange_sim.testing import RunningSim, running_sim

START = 1_759_968_000_000


class Inbox:
    """Collects SDK on_message payloads and wakes waiters."""

    def __init__(self) -> None:
        self.raw: list[str] = []
        self.changed = asyncio.Event()

    def __call__(self, message: str) -> None:
        self.raw.append(message)
        self.changed.set()

    def parsed(self) -> list[dict[str, Any]]:
        out = []
        for text in self.raw:
            try:
                out.append(json.loads(text))
            except json.JSONDecodeError:
                out.append({"malformed": text})
        return out

    async def wait(
        self, predicate: Callable[[list[dict[str, Any]]], bool], within: float = 10.0
    ) -> None:
        async with asyncio.timeout(within):
            while not predicate(self.parsed()):
                self.changed.clear()
                await self.changed.wait()


def of(channel: str) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    return lambda msgs: [m for m in msgs if m.get("channel") == channel]


@pytest.fixture
async def sim() -> AsyncIterator[RunningSim]:
    async with running_sim(seed=7, speed=60.0, start_ms=START) as running:
        yield running


async def open_client(sim: RunningSim, inbox: Inbox) -> Any:
    client = WSClient(
        base_url=sim.ws_url(Venue.COINBASE), on_message=inbox, api_key=None, api_secret=None
    )
    await client.open_async()
    return client


async def test_sdk_receives_every_public_channel(sim: RunningSim) -> None:
    inbox = Inbox()
    client = await open_client(sim, inbox)
    await client.candles_async(["BTC-USD", "ETH-USD"])
    await client.heartbeats_async()
    await client.ticker_async(["BTC-USD"])
    await client.market_trades_async(["BTC-USD"])
    await client.level2_async(["BTC-USD"])

    def complete(msgs: list[dict[str, Any]]) -> bool:
        updates = [e for m in of("candles")(msgs) for e in m["events"] if e["type"] == "update"]
        return len(of("heartbeats")(msgs)) >= 3 and bool(updates) and len(of("l2_data")(msgs)) >= 2

    await inbox.wait(complete)
    await client.close_async()
    msgs = inbox.parsed()
    assert msgs[0]["channel"] == "subscriptions"
    assert msgs[0]["events"][0]["subscriptions"] == {"candles": ["BTC-USD", "ETH-USD"]}
    assert [m["sequence_num"] for m in msgs] == list(range(len(msgs)))
    assert all(m["client_id"] == "" for m in msgs)
    snapshot = next(m for m in of("candles")(msgs) if m["events"][0]["type"] == "snapshot")
    candle = snapshot["events"][0]["candles"][0]
    assert set(candle) == {"start", "high", "low", "open", "close", "volume", "product_id"}
    assert all(isinstance(v, str) for v in candle.values()) and int(candle["start"]) % 300 == 0
    counters = [m["events"][0]["heartbeat_counter"] for m in of("heartbeats")(msgs)]
    assert counters == list(range(1, len(counters) + 1))
    ticker = of("ticker")(msgs)[0]["events"][0]["tickers"][0]
    assert float(ticker["best_bid"]) < float(ticker["price"]) < float(ticker["best_ask"])
    trades = of("market_trades")(msgs)[0]["events"][0]["trades"]
    assert trades and trades[0]["side"] in ("BUY", "SELL")
    book = of("l2_data")(msgs)[0]["events"][0]
    assert book["type"] == "snapshot" and {u["side"] for u in book["updates"]} == {"bid", "offer"}
    stamp = msgs[-1]["timestamp"]
    assert stamp.endswith("Z") and len(stamp.split(".")[1]) == 10


async def test_unsubscribe_with_empty_products_drops_the_channel(sim: RunningSim) -> None:
    inbox = Inbox()
    client = await open_client(sim, inbox)
    await client.candles_async(["BTC-USD", "ETH-USD"])
    await client.candles_unsubscribe_async(["ETH-USD"])
    await inbox.wait(lambda msgs: len(of("subscriptions")(msgs)) >= 2)
    await client.websocket.send(
        json.dumps({"type": "unsubscribe", "product_ids": [], "channel": "candles"})
    )
    await inbox.wait(lambda msgs: len(of("subscriptions")(msgs)) >= 3)
    acks = [m["events"][0]["subscriptions"] for m in of("subscriptions")(inbox.parsed())]
    assert acks[1] == {"candles": ["BTC-USD"]}
    assert acks[2] == {}
    await client.close_async()


async def test_no_subscribe_within_the_timeout_closes_the_socket() -> None:
    async with (
        running_sim(start_ms=START, coinbase_subscribe_timeout_s=0.3) as sim,
        aiohttp.ClientSession() as http,
        http.ws_connect(sim.ws_url(Venue.COINBASE)) as ws,
    ):
        msg = await asyncio.wait_for(ws.receive(), 5)
        assert msg.type is aiohttp.WSMsgType.CLOSE
        assert ws.close_code == 1008


async def test_bad_subscribes_get_error_frames_of_both_shapes(sim: RunningSim) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(sim.ws_url(Venue.COINBASE)) as ws:
        await ws.send_json({"type": "subscribe", "product_ids": ["NOPE-USD"], "channel": "candles"})
        unknown = await ws.receive_json(timeout=5)
        await ws.send_json({"type": "subscribe", "product_ids": [], "channel": "user"})
        auth = await ws.receive_json(timeout=5)
        await ws.send_str("{nope")
        malformed = await ws.receive_json(timeout=5)
    assert unknown == {
        "type": "error",
        "message": "Failed to subscribe",
        "reason": "NOPE-USD is not a valid product",
    }
    assert auth == {"type": "error", "message": "authentication failure"}
    assert malformed["type"] == "error" and "reason" not in malformed


@pytest.mark.parametrize("code", [1000, 1001])
async def test_close_1000_and_1001_end_the_sdk_loop_silently(sim: RunningSim, code: int) -> None:
    inbox = Inbox()
    client = await open_client(sim, inbox)
    await client.heartbeats_async()
    await inbox.wait(lambda msgs: len(of("heartbeats")(msgs)) >= 1)
    assert sim.faults.inject_ws(Venue.COINBASE, WsAction(WsActionKind.CLOSE, code)) == 1
    await asyncio.wait_for(client._task, 5)
    assert client._background_exception is None
    assert not client._is_websocket_open()
    assert sim.faults.connections(Venue.COINBASE) == 0


@pytest.mark.parametrize("kind", [WsActionKind.CLOSE, WsActionKind.DROP])
async def test_close_1011_and_tcp_drop_make_the_sdk_reconnect_and_resubscribe(
    sim: RunningSim, kind: WsActionKind
) -> None:
    inbox = Inbox()
    client = await open_client(sim, inbox)
    await client.heartbeats_async()
    await client.candles_async(["BTC-USD"])
    await inbox.wait(lambda msgs: len(of("subscriptions")(msgs)) >= 2)
    sim.faults.inject_ws(Venue.COINBASE, WsAction(kind, 1011))
    # a fresh connection's ack starts again at sequence 0
    await inbox.wait(
        lambda msgs: [m["sequence_num"] for m in of("subscriptions")(msgs)].count(0) >= 2
    )
    await sim.faults.wait_connections(Venue.COINBASE, 1)
    await inbox.wait(lambda msgs: of("candles")(msgs)[-1]["sequence_num"] > 0)
    assert client._background_exception is None
    await client.close_async()


async def test_skipped_sequence_and_heartbeat_are_visible(sim: RunningSim) -> None:
    inbox = Inbox()
    client = await open_client(sim, inbox)
    await client.heartbeats_async()
    await inbox.wait(lambda msgs: len(of("heartbeats")(msgs)) >= 2)
    sim.faults.inject_ws(Venue.COINBASE, WsAction(WsActionKind.SKIP_SEQUENCE))
    sim.faults.inject_ws(Venue.COINBASE, WsAction(WsActionKind.SKIP_HEARTBEAT))
    await inbox.wait(lambda msgs: len(of("heartbeats")(msgs)) >= 5)
    await client.close_async()
    seqs = [m["sequence_num"] for m in inbox.parsed()]
    counters = [m["events"][0]["heartbeat_counter"] for m in of("heartbeats")(inbox.parsed())]
    assert sum(b - a - 1 for a, b in itertools.pairwise(seqs)) == 1
    assert sum(b - a - 1 for a, b in itertools.pairwise(counters)) == 1


async def test_malformed_frame_and_missing_client_id(sim: RunningSim) -> None:
    inbox = Inbox()
    client = await open_client(sim, inbox)
    await client.heartbeats_async()
    await inbox.wait(lambda msgs: len(of("heartbeats")(msgs)) >= 1)
    sim.faults.inject_ws(Venue.COINBASE, WsAction(WsActionKind.OMIT_CLIENT_ID))
    sim.faults.inject_ws(Venue.COINBASE, WsAction(WsActionKind.MALFORMED))
    await inbox.wait(lambda msgs: len(of("heartbeats")(msgs)) >= 4)
    await client.close_async()
    msgs = inbox.parsed()
    assert sum(1 for m in msgs if "malformed" in m) == 1
    assert sum(1 for m in msgs if "channel" in m and "client_id" not in m) == 1


async def test_stall_keeps_the_socket_open_but_silent(sim: RunningSim) -> None:
    inbox = Inbox()
    client = await open_client(sim, inbox)
    await client.heartbeats_async()
    await inbox.wait(lambda msgs: len(of("heartbeats")(msgs)) >= 2)
    sim.faults.stall(Venue.COINBASE, sim_seconds=30)  # 0.5 s of wall time at speed 60
    stalled_at = sim.clock.now_ms()
    await inbox.wait(
        lambda msgs: any(stamp_ms(m) > stalled_at + 30_000 for m in of("heartbeats")(msgs))
    )
    assert client._is_websocket_open()
    stamps = [stamp_ms(m) for m in of("heartbeats")(inbox.parsed())]
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert max(gaps) >= 29_000
    assert min(gaps) < 5_000
    await client.close_async()


def stamp_ms(message: dict[str, Any]) -> int:
    moment = dt.datetime.strptime(message["timestamp"][:23] + "+0000", "%Y-%m-%dT%H:%M:%S.%f%z")
    return int(moment.timestamp() * 1000)


async def test_user_channel_accepts_a_valid_jwt(sim: RunningSim) -> None:
    key = sim.coinbase_key
    assert key is not None
    inbox = Inbox()
    client = WSClient(
        base_url=sim.ws_url(Venue.COINBASE),
        on_message=inbox,
        api_key=key.name,
        api_secret=key.private_pem,
    )
    await client.open_async()
    await client.user_async(["BTC-USD"])
    await inbox.wait(lambda msgs: bool(of("subscriptions")(msgs)))
    assert of("subscriptions")(inbox.parsed())[0]["events"][0]["subscriptions"] == {
        "user": ["BTC-USD"]
    }
    await client.close_async()


async def test_http_fault_api_closes_with_the_requested_code(sim: RunningSim) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(sim.ws_url(Venue.COINBASE)) as ws:
        await ws.send_json({"type": "subscribe", "product_ids": [], "channel": "heartbeats"})
        assert (await ws.receive_json(timeout=5))["channel"] == "subscriptions"
        async with http.post(
            f"{sim.base_url}/_sim/faults/coinbase/ws", json={"action": "close", "code": 1011}
        ) as resp:
            assert (await resp.json()) == {"connections": 1}
        async with asyncio.timeout(5):
            while (msg := await ws.receive()).type is aiohttp.WSMsgType.TEXT:
                pass
        assert msg.type is aiohttp.WSMsgType.CLOSE
        assert ws.close_code == 1011
        async with http.post(
            f"{sim.base_url}/_sim/faults/coinbase/ws", json={"action": "nope"}
        ) as resp:
            assert resp.status == 400
