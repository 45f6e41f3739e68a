"""Binance WebSocket streams on the simulator: python-binance sockets, control messages, faults."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from binance import AsyncClient, BinanceSocketManager

from livermore_exchange_sim.binance import BINANCE_STATE, create_binance_app, reconfigure
from livermore_exchange_sim.binance_wire import BinanceVenueState
from livermore_exchange_sim.faults import FaultController, WsAction, WsActionKind
from livermore_exchange_sim.market import Market, SimClock, Venue

START_MS = 1_750_000_000_000
MINUTE = 60_000
FAST = 600.0  # a 1m bar closes every 0.1 s of wall time


@dataclass
class LocalSim:
    port: int
    market: Market
    faults: FaultController
    apps: dict[Venue, web.Application]

    def url(self, path: str, venue: Venue = Venue.BINANCE, scheme: str = "ws") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/{venue.value}{path}"

    def state(self, venue: Venue = Venue.BINANCE) -> BinanceVenueState:
        return self.apps[venue][BINANCE_STATE]

    async def socket_manager(self, venue: Venue = Venue.BINANCE) -> BinanceSocketManager:
        class LocalAsyncClient(AsyncClient):  # type: ignore[misc]
            API_URL = self.url("/api", venue, scheme="http")

        client = await LocalAsyncClient.create()
        bsm = BinanceSocketManager(client)
        bsm.STREAM_URL = self.url("/", venue)
        return bsm


SimFactory = Callable[..., Awaitable[LocalSim]]


@pytest.fixture
async def make_sim() -> AsyncIterator[SimFactory]:
    runners: list[web.AppRunner] = []

    async def start(speed: float = FAST) -> LocalSim:
        market = Market(seed=11, clock=SimClock(start_ms=START_MS, speed=speed))
        faults = FaultController(market.clock)
        root = web.Application()
        apps = {}
        for venue in (Venue.BINANCE, Venue.BINANCE_US):
            apps[venue] = create_binance_app(market, venue, faults)
            root.add_subapp(f"/{venue.value}", apps[venue])
        runner = web.AppRunner(root)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        return LocalSim(runner.addresses[0][1], market, faults, apps)

    yield start
    for runner in runners:
        await runner.cleanup()


async def _next_final(stream: Any, within_s: float = 5.0) -> dict[str, Any]:
    while True:
        message = await asyncio.wait_for(stream.recv(), within_s)
        data = message.get("data", message)
        if data.get("e") == "kline" and data["k"]["x"]:
            return dict(data)


async def _json_frame(ws: aiohttp.ClientWebSocketResponse, within_s: float = 5.0) -> Any:
    message = await asyncio.wait_for(ws.receive(), within_s)
    assert message.type is aiohttp.WSMsgType.TEXT, message
    return json.loads(message.data)


async def test_kline_socket_final_frame_equals_ground_truth(make_sim: SimFactory) -> None:
    sim = await make_sim()
    bsm = await sim.socket_manager()
    partials: list[dict[str, Any]] = []
    async with bsm.kline_socket("BTCUSDT", interval="1m") as stream:
        first = await asyncio.wait_for(stream.recv(), 5)
        partials.append(first)
        final = await _next_final(stream)
    await bsm._client.close_connection()
    assert first["e"] == "kline"
    assert first["s"] == "BTCUSDT"
    assert first["k"]["x"] is False
    kline = final["k"]
    bar = sim.market.bar(Venue.BINANCE, "BTCUSDT", MINUTE, kline["t"])
    assert kline["T"] == kline["t"] + MINUTE - 1
    assert kline["i"] == "1m"
    assert final["E"] > kline["T"]
    values = [float(kline[k]) for k in ("o", "h", "l", "c", "v")]
    assert values == [bar.open, bar.high, bar.low, bar.close, bar.volume]
    assert kline["n"] == bar.trades
    assert all(isinstance(kline[k], str) for k in ("o", "c", "h", "l", "v", "q", "V", "Q", "B"))
    truth = sim.market.closed_bars(Venue.BINANCE, "BTCUSDT", MINUTE, kline["t"], kline["t"] + 1)
    assert truth == [bar]


async def test_finals_endpoint_lists_each_closing_frame_with_its_send_time(
    make_sim: SimFactory,
) -> None:
    sim = await make_sim()
    url = sim.url("/ws/btcusdt@kline_1m")
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        while not (frame := await _json_frame(ws))["k"]["x"]:
            pass
        received_us = time.time_ns() // 1000
        async with session.get(sim.url("/_sim/finals", scheme="http")) as response:
            finals = await response.json()
    matching = [f for f in finals if f[:2] == ["btcusdt@kline_1m", frame["k"]["t"]]]
    assert len(matching) == 1
    assert received_us - 5_000_000 < matching[0][2] <= received_us


async def test_multiplex_socket_wraps_frames(make_sim: SimFactory) -> None:
    sim = await make_sim()
    bsm = await sim.socket_manager(Venue.BINANCE_US)
    seen: dict[str, dict[str, Any]] = {}
    async with bsm.multiplex_socket(["ethusdt@kline_5m", "btcusdt@miniTicker"]) as stream:
        while len(seen) < 2:
            message = await asyncio.wait_for(stream.recv(), 5)
            seen[message["stream"]] = message["data"]
    await bsm._client.close_connection()
    assert seen["ethusdt@kline_5m"]["k"]["i"] == "5m"
    mini = seen["btcusdt@miniTicker"]
    assert mini["e"] == "24hrMiniTicker"
    assert set(mini) == {"e", "E", "s", "c", "o", "h", "l", "v", "q"}
    assert isinstance(mini["q"], str)


async def test_control_messages_and_errors(make_sim: SimFactory) -> None:
    sim = await make_sim()
    reconfigure(sim.state(), {"max_incoming_per_s": 100, "max_streams": 3})
    async with aiohttp.ClientSession() as session, session.ws_connect(sim.url("/ws")) as ws:
        replies = []
        for request in (
            {"method": "SUBSCRIBE", "params": ["btcusdt@kline_1m", "ethusdt@ticker"], "id": 1},
            {"method": "LIST_SUBSCRIPTIONS", "id": "abc"},
            {"method": "UNSUBSCRIBE", "params": ["ethusdt@ticker"], "id": 2},
            {"method": "GET_PROPERTY", "params": ["combined"], "id": 3},
            {"method": "SUBSCRIBE", "params": ["BTCUSDT@kline_1m"], "id": 4},
            {"method": "SUBSCRIBE", "params": ["a@ticker", "xrpusdt@ticker", "dotusdt@ticker"]},
            {"method": "FROB", "id": 5},
            {"method": "LIST_SUBSCRIPTIONS", "id": "not-alnum"},
            {"method": "SET_PROPERTY", "params": ["speed", True], "id": 6},
        ):
            await ws.send_str(json.dumps(request))
            replies.append(await _first_reply(ws))
        await ws.send_str("{nope")
        replies.append(await _first_reply(ws))
        await ws.send_str(
            json.dumps({"method": "SET_PROPERTY", "params": ["combined", True], "id": 7})
        )
        replies.append(await _first_reply(ws))
        wrapped = await _json_frame(ws)
    assert replies[0] == {"result": None, "id": 1}
    assert replies[1] == {"result": ["btcusdt@kline_1m", "ethusdt@ticker"], "id": "abc"}
    assert replies[2] == {"result": None, "id": 2}
    assert replies[3] == {"result": False, "id": 3}
    assert replies[4] == {"error": {"code": 2, "msg": "Invalid request: invalid stream"}, "id": 4}
    assert replies[5]["error"]["code"] == 2  # 1 + 3 streams > max_streams
    assert replies[6]["error"]["code"] == 2
    assert "unknown variant `FROB`" in replies[6]["error"]["msg"]
    assert replies[7]["error"] == {
        "code": 2,
        "msg": "Invalid request: request ID must be an unsigned integer",
    }
    assert replies[8] == {"error": {"code": 0, "msg": "Unknown property"}, "id": 6}
    assert replies[9]["error"]["code"] == 3
    assert replies[9]["error"]["msg"].startswith("Invalid JSON")
    assert replies[10] == {"result": None, "id": 7}
    assert wrapped["stream"] == "btcusdt@kline_1m"
    assert wrapped["data"]["e"] == "kline"


async def _first_reply(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    while True:
        frame = await _json_frame(ws)
        if "result" in frame or "error" in frame:
            return dict(frame)


async def test_more_than_five_messages_a_second_closes_1008(make_sim: SimFactory) -> None:
    sim = await make_sim()
    async with aiohttp.ClientSession() as session, session.ws_connect(sim.url("/ws")) as ws:
        for request_id in range(6):
            await ws.send_str(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": request_id}))
        while (message := await asyncio.wait_for(ws.receive(), 5)).type is aiohttp.WSMsgType.TEXT:
            pass
        assert message.type is aiohttp.WSMsgType.CLOSE
        assert ws.close_code == 1008
        assert message.extra == "Too many requests"


async def test_too_many_streams_in_url_closes(make_sim: SimFactory) -> None:
    sim = await make_sim()
    reconfigure(sim.state(), {"max_streams": 2})
    names = "/".join(["btcusdt@kline_1m", "ethusdt@kline_1m", "solusdt@kline_1m"])
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(sim.url(f"/stream?streams={names}")) as ws,
    ):
        message = await asyncio.wait_for(ws.receive(), 5)
    assert message.type is aiohttp.WSMsgType.CLOSE
    assert ws.close_code == 1008


async def test_server_ping_and_shutdown_event(make_sim: SimFactory) -> None:
    sim = await make_sim()
    reconfigure(sim.state(), {"ping_interval_s": 0.2})
    async with aiohttp.ClientSession() as session:
        raw = await session.ws_connect(sim.url("/ws/btcusdt@miniTicker"), autoping=False)
        combined = await session.ws_connect(sim.url("/stream?streams=btcusdt@miniTicker"))
        await sim.faults.wait_connections(Venue.BINANCE, 2)
        ping = await asyncio.wait_for(raw.receive(), 5)
        while ping.type is aiohttp.WSMsgType.TEXT:
            ping = await asyncio.wait_for(raw.receive(), 5)
        assert ping.type is aiohttp.WSMsgType.PING
        await raw.pong(ping.data)
        assert sim.faults.inject_ws(Venue.BINANCE, WsAction(WsActionKind.SERVER_SHUTDOWN)) == 2
        raw_event = await _until(raw, lambda f: f.get("e") == "serverShutdown")
        combined_event = await _until(combined, lambda f: f.get("stream") == "!serverShutdown")
        await raw.close()
        await combined.close()
    assert set(raw_event) == {"e", "E"}
    assert combined_event["data"]["e"] == "serverShutdown"
    assert combined_event["data"]["E"] >= START_MS


async def _until(
    ws: aiohttp.ClientWebSocketResponse, wanted: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    while True:
        message = await asyncio.wait_for(ws.receive(), 5)
        if message.type is aiohttp.WSMsgType.TEXT and wanted(frame := json.loads(message.data)):
            return dict(frame)


async def test_close_1000_yields_error_then_reconnects(make_sim: SimFactory) -> None:
    sim = await make_sim()
    bsm = await sim.socket_manager()
    async with bsm.kline_socket("ETHUSDT", interval="1m") as stream:
        await asyncio.wait_for(stream.recv(), 5)
        await sim.faults.wait_connections(Venue.BINANCE, 1)
        sim.faults.inject_ws(Venue.BINANCE, WsAction(WsActionKind.CLOSE, code=1000))
        errors = []
        while True:
            message = await asyncio.wait_for(stream.recv(), 10)
            if message.get("e") == "error":
                errors.append(message)
            elif errors:
                break
        assert message["e"] == "kline"
    await bsm._client.close_connection()
    assert errors[0]["type"] in {"ConnectionClosedOK", "BinanceWebsocketClosed"}
    assert sim.state().stats.ws_connections == 2


async def test_malformed_frame_surfaces_as_error(make_sim: SimFactory) -> None:
    sim = await make_sim()
    bsm = await sim.socket_manager()
    async with bsm.kline_socket("BTCUSDT", interval="1m") as stream:
        await asyncio.wait_for(stream.recv(), 5)
        await sim.faults.wait_connections(Venue.BINANCE, 1)
        sim.faults.inject_ws(Venue.BINANCE, WsAction(WsActionKind.MALFORMED))
        message = await asyncio.wait_for(stream.recv(), 5)
        while message.get("e") != "error":
            message = await asyncio.wait_for(stream.recv(), 5)
    await bsm._client.close_connection()
    assert message["type"] == "JSONDecodeError"


async def test_skip_sequence_drops_exactly_one_final_frame(make_sim: SimFactory) -> None:
    sim = await make_sim()
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(sim.url("/ws/solusdt@kline_1m")) as ws,
    ):
        is_final = _is_final
        finals = [(await _until(ws, is_final))["k"]["t"]]
        sim.faults.inject_ws(Venue.BINANCE, WsAction(WsActionKind.SKIP_SEQUENCE))
        while len(finals) < 4:
            finals.append((await _until(ws, is_final))["k"]["t"])
    steps = [b - a for a, b in itertools.pairwise(finals)]
    assert sorted(steps) == [MINUTE, MINUTE, 2 * MINUTE]


def _is_final(frame: dict[str, Any]) -> bool:
    return frame.get("e") == "kline" and bool(frame["k"]["x"])


async def test_stall_silences_then_resumes(make_sim: SimFactory) -> None:
    sim = await make_sim()
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(sim.url("/ws/btcusdt@kline_1m")) as ws,
    ):
        await _json_frame(ws)
        sim.faults.stall(Venue.BINANCE)
        with pytest.raises(TimeoutError):
            while True:  # drain what was in flight, then nothing arrives
                await _json_frame(ws, within_s=0.5)
        sim.faults.clear(Venue.BINANCE)
        assert (await _json_frame(ws))["e"] == "kline"


@pytest.mark.parametrize(
    "changes", [{"connection_lifetime_wall_s": 0.2}, {"connection_lifetime_ms": 2 * MINUTE}]
)
async def test_connection_lifetime_forces_disconnect(
    make_sim: SimFactory, changes: dict[str, Any]
) -> None:
    sim = await make_sim()
    reconfigure(sim.state(), changes)
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(sim.url("/ws/btcusdt@kline_1m")) as ws,
    ):
        message = await asyncio.wait_for(ws.receive(), 5)
        while message.type is aiohttp.WSMsgType.TEXT:
            message = await asyncio.wait_for(ws.receive(), 5)
    assert message.type is aiohttp.WSMsgType.CLOSE
    assert ws.close_code == 1001


async def test_drop_ends_connection_without_close_frame(make_sim: SimFactory) -> None:
    sim = await make_sim()
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(sim.url("/ws/btcusdt@kline_1m")) as ws,
    ):
        await _json_frame(ws)
        sim.faults.inject_ws(Venue.BINANCE, WsAction(WsActionKind.DROP))
        message = await asyncio.wait_for(ws.receive(), 5)
        while message.type is aiohttp.WSMsgType.TEXT:
            message = await asyncio.wait_for(ws.receive(), 5)
    assert message.type in {aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR}
    assert ws.close_code not in {1000, 1001}


async def test_full_simulator_serves_both_binance_venues() -> None:
    from livermore_exchange_sim.testing import running_sim

    async with running_sim(seed=3, speed=FAST) as sim:
        for venue, limit in ((Venue.BINANCE, 6000), (Venue.BINANCE_US, 1200)):

            class LocalAsyncClient(AsyncClient):  # type: ignore[misc]
                API_URL = sim.rest_url(venue) + "/api"

            client = await LocalAsyncClient.create()
            bsm = BinanceSocketManager(client)
            bsm.STREAM_URL = sim.ws_url(venue) + "/"
            try:
                info = await client.get_exchange_info()
                async with bsm.kline_socket("BTCUSDT", interval="1m") as stream:
                    final = (await _next_final(stream))["k"]
            finally:
                await client.close_connection()
            assert info["rateLimits"][0]["limit"] == limit
            truth = sim.truth(venue, "BTCUSDT", MINUTE, final["t"], final["t"] + MINUTE)
            assert [float(final[k]) for k in ("o", "h", "l", "c")] == [
                truth[0].open,
                truth[0].high,
                truth[0].low,
                truth[0].close,
            ]
        async with aiohttp.ClientSession() as session:
            config_url = sim.rest_url(Venue.BINANCE) + "/_sim/config"
            async with session.post(config_url, json={"weight_limit": 50}) as response:
                assert (await response.json())["weight_limit"] == 50
            async with session.post(config_url, json={"nope": 1}) as response:
                assert response.status == 400
