"""Partial book depth streams on the simulated Binance venue, read with python-binance's sockets."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from binance import AsyncClient, BinanceSocketManager

from livermore_exchange_sim.binance import BINANCE_STATE, create_binance_app, reconfigure
from livermore_exchange_sim.binance_market import depth_event
from livermore_exchange_sim.binance_wire import BinanceVenueState, StreamKind, parse_stream_name
from livermore_exchange_sim.faults import FaultController
from livermore_exchange_sim.market import Market, SimClock, Venue

START_MS = 1_750_000_000_000


@dataclass
class DepthSim:
    port: int
    market: Market
    state: BinanceVenueState
    client: AsyncClient
    bsm: BinanceSocketManager

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}/binance{path}"


DepthSimFactory = Callable[[float], Awaitable[DepthSim]]


@pytest.fixture
async def make_sim() -> AsyncIterator[DepthSimFactory]:
    runners: list[web.AppRunner] = []
    clients: list[AsyncClient] = []

    async def start(speed: float) -> DepthSim:
        market = Market(seed=11, clock=SimClock(start_ms=START_MS, speed=speed))
        root = web.Application()
        app = create_binance_app(market, Venue.BINANCE, FaultController(market.clock))
        root.add_subapp("/binance", app)
        runner = web.AppRunner(root)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        port = runner.addresses[0][1]

        class LocalAsyncClient(AsyncClient):  # type: ignore[misc]
            API_URL = f"http://127.0.0.1:{port}/binance/api"

        client = await LocalAsyncClient.create()
        clients.append(client)
        bsm = BinanceSocketManager(client)
        bsm.STREAM_URL = f"ws://127.0.0.1:{port}/binance/"
        return DepthSim(port, market, app[BINANCE_STATE], client, bsm)

    yield start
    for client in clients:
        await client.close_connection()
    for runner in runners:
        await runner.cleanup()


async def _books(stream: Any, count: int) -> list[dict[str, Any]]:
    books: list[dict[str, Any]] = []
    while len(books) < count:
        message = await asyncio.wait_for(stream.recv(), 5)
        assert message.get("e") != "error", message
        books.append(message)
    return books


def _assert_sane(book: dict[str, Any], levels: int) -> None:
    assert set(book) == {"lastUpdateId", "bids", "asks"}
    bids = [float(price) for price, _ in book["bids"]]
    asks = [float(price) for price, _ in book["asks"]]
    assert len(bids) == len(asks) == levels
    assert bids == sorted(bids, reverse=True) and len(set(bids)) == levels
    assert asks == sorted(asks) and len(set(asks)) == levels
    assert bids[0] < asks[0]
    assert all(isinstance(p, str) and isinstance(q, str) for p, q in book["bids"] + book["asks"])
    assert all(float(q) > 0 for _, q in book["bids"] + book["asks"])


async def test_depth_socket_top_of_book_is_the_tickers_best_bid_and_ask(
    make_sim: DepthSimFactory,
) -> None:
    sim = await make_sim(10.0)
    async with sim.bsm.depth_socket("BTCUSDT", depth=BinanceSocketManager.WEBSOCKET_DEPTH_10) as s:
        books = await _books(s, 3)
    for book in books:
        _assert_sane(book, 10)
        ticker = sim.market.ticker(Venue.BINANCE, "BTCUSDT", book["lastUpdateId"])
        assert float(book["bids"][0][0]) == ticker.best_bid
        assert float(book["asks"][0][0]) == ticker.best_ask
        assert float(book["bids"][0][1]) == ticker.best_bid_qty
    # The default partial book pushes once a simulated second.
    steps = [b["lastUpdateId"] - a["lastUpdateId"] for a, b in itertools.pairwise(books)]
    assert all(1000 <= step < 3000 for step in steps), steps


async def test_100ms_cadence_in_sim_time_capped_in_wall_time(make_sim: DepthSimFactory) -> None:
    real_time = await make_sim(1.0)
    async with real_time.bsm.depth_socket("ETHUSDT", depth="5", interval=100) as s:
        books = await _books(s, 4)
    steps = [b["lastUpdateId"] - a["lastUpdateId"] for a, b in itertools.pairwise(books)]
    assert all(100 <= step < 400 for step in steps), steps
    _assert_sane(books[-1], 5)

    fast = await make_sim(60.0)  # 100 sim ms = 1.7 wall ms: the 50 ms frame gap caps it
    async with fast.bsm.depth_socket("ETHUSDT", depth="5", interval=100) as s:
        books = await _books(s, 4)
    steps = [b["lastUpdateId"] - a["lastUpdateId"] for a, b in itertools.pairwise(books)]
    assert all(step >= 60.0 * 50 for step in steps), steps


async def test_combined_stream_wraps_depth_frames(make_sim: DepthSimFactory) -> None:
    sim = await make_sim(60.0)
    seen: dict[str, dict[str, Any]] = {}
    names = ["btcusdt@depth5", "ethusdt@depth20@100ms", "solusdt@depth10@1000ms"]
    async with sim.bsm.multiplex_socket(names) as stream:
        while len(seen) < 3:
            message = await asyncio.wait_for(stream.recv(), 5)
            seen[message["stream"]] = message["data"]
    _assert_sane(seen["btcusdt@depth5"], 5)
    _assert_sane(seen["ethusdt@depth20@100ms"], 20)
    _assert_sane(seen["solusdt@depth10@1000ms"], 10)


async def test_depth_streams_count_toward_the_stream_limit(make_sim: DepthSimFactory) -> None:
    sim = await make_sim(60.0)
    reconfigure(sim.state, {"max_streams": 2, "max_incoming_per_s": 100})
    async with aiohttp.ClientSession() as session, session.ws_connect(sim.url("/ws")) as ws:
        replies = []
        for request in (
            {"method": "SUBSCRIBE", "params": ["btcusdt@depth10@100ms"], "id": 1},
            {"method": "SUBSCRIBE", "params": ["btcusdt@depth7"], "id": 2},
            {"method": "SUBSCRIBE", "params": ["btcusdt@depth10@250ms"], "id": 3},
            {"method": "SUBSCRIBE", "params": ["ethusdt@depth5", "solusdt@depth5"], "id": 4},
            {"method": "LIST_SUBSCRIPTIONS", "id": 5},
        ):
            await ws.send_str(json.dumps(request))
            replies.append(await _reply(ws))
    assert replies[0] == {"result": None, "id": 1}
    assert replies[1]["error"]["code"] == 2  # only 5, 10 and 20 levels exist
    assert replies[2]["error"]["code"] == 2  # only 100ms and 1000ms exist
    assert replies[3]["error"]["code"] == 2  # 1 + 2 streams > max_streams
    assert replies[4] == {"result": ["btcusdt@depth10@100ms"], "id": 5}


async def _reply(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    while True:
        message = await asyncio.wait_for(ws.receive(), 5)
        assert message.type is aiohttp.WSMsgType.TEXT, message
        frame = json.loads(message.data)
        if "result" in frame or "error" in frame:
            return dict(frame)


def test_depth_payload_is_deterministic_per_time() -> None:
    stream = parse_stream_name("btcusdt@depth20@100ms")
    assert stream is not None
    assert (stream.kind, stream.symbol, stream.depth, stream.update_ms) == (
        StreamKind.DEPTH,
        "BTCUSDT",
        20,
        100,
    )
    default = parse_stream_name("btcusdt@depth5")
    assert default is not None and default.update_ms == 1000
    assert parse_stream_name("btcusdt@depth") is None  # the diff stream is not served

    def market() -> Market:
        return Market(seed=5, clock=SimClock(start_ms=START_MS, speed=1.0))

    first, second = market(), market()
    at = START_MS + 12_345
    book = depth_event(first, Venue.BINANCE, stream, at)
    assert book == depth_event(second, Venue.BINANCE, stream, at)
    assert book != depth_event(first, Venue.BINANCE, stream, at + 100)
    _assert_sane(book, 20)
