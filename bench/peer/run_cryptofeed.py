"""The peer of bench/bench_peer.py: cryptofeed's Binance feed on the simulator, into Redis.

Runs in its own environment (`bench/peer/pyproject.toml`: cryptofeed needs websockets >= 14,
the workspace's exchange SDKs need websockets < 14). It imports nothing of Livermore.

Six `Binance` feeds (cryptofeed takes one candle interval per feed) on the simulator's URLs, every
symbol's kline stream of each interval, plus the 24h mini tickers on the first; closed candles go
to cryptofeed's `CandlesRedis` backend and tickers to `TickerRedis`, on the bench's private
redis-server. Twice a second the process prints `messages <frames handled> candles <closed
candles> tickers <tickers>` on stdout for the bench to read.

The simulator serves the stream Livermore consumes (klines + `@miniTicker`); cryptofeed's Binance
feed knows `@bookTicker` as its ticker channel, so the subclass below subscribes to
`@miniTicker` instead and turns each into a cryptofeed `Ticker` (bid = ask = last price). The
message handler is upstream's for the two event types used, plus that one.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from decimal import Decimal
from typing import Any

import cryptofeed.feed
from cryptofeed import FeedHandler
from cryptofeed.backends.redis import CandlesRedis, TickerRedis
from cryptofeed.connection import RestEndpoint, Routes, WebsocketEndpoint, WSAsyncConn
from cryptofeed.defines import CANDLES, TICKER
from cryptofeed.exchanges import Binance
from cryptofeed.types import Ticker
from yapic import json

INTERVALS = ("1m", "5m", "15m", "1h", "4h", "1d")
COUNTS = {"messages": 0, "candles": 0, "tickers": 0}


class PlainWSAsyncConn(WSAsyncConn):  # type: ignore[misc]
    """cryptofeed's connection without its `wss://`-only check (the simulator is plain ws)."""

    def __init__(self, address: str, conn_id: str, **kwargs: Any) -> None:
        super().__init__("wss://" + address.removeprefix("ws://"), conn_id, **kwargs)
        self.address = address


cryptofeed.feed.WSAsyncConn = PlainWSAsyncConn


def feed_class(ws_url: str, rest_url: str) -> type[Binance]:
    """Return cryptofeed's Binance feed pointed at the simulator."""

    class SimBinance(Binance):  # type: ignore[misc]
        websocket_endpoints = [WebsocketEndpoint(ws_url)]
        rest_endpoints = [
            RestEndpoint(
                rest_url,
                routes=Routes(
                    "/api/v3/exchangeInfo",
                    l2book="/api/v3/depth?symbol={}&limit={}",
                    authentication="/api/v3/userDataStream",
                ),
            )
        ]
        websocket_channels = {**Binance.websocket_channels, TICKER: "miniTicker"}

        async def _mini_ticker(self, msg: dict[str, Any], timestamp: float) -> None:
            price = Decimal(msg["c"])
            ticker = Ticker(
                self.id,
                self.exchange_symbol_to_std_symbol(msg["s"]),
                price,
                price,
                self.timestamp_normalize(msg["E"]),
                raw=msg,
            )
            await self.callback(TICKER, ticker, timestamp)
            COUNTS["tickers"] += 1

        async def message_handler(self, msg: str, conn: Any, timestamp: float) -> None:
            COUNTS["messages"] += 1
            data = json.loads(msg, parse_float=Decimal)["data"]
            kind = data.get("e")
            if kind == "kline":
                if data["k"]["x"]:
                    COUNTS["candles"] += 1
                await self._candle(data, timestamp)
            elif kind == "24hrMiniTicker":
                await self._mini_ticker(data, timestamp)

    return SimBinance


def report() -> None:
    """Print the counters twice a second (a daemon thread; ints are read atomically)."""
    while True:
        line = " ".join(f"{name} {value}" for name, value in COUNTS.items())
        print(line, flush=True)
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--ws", required=True, help="the simulator's Binance WS base URL")
    parser.add_argument("--rest", required=True, help="the simulator's Binance REST base URL")
    parser.add_argument("--redis-port", type=int, required=True)
    parser.add_argument("symbols", nargs="+", help="cryptofeed symbols, e.g. AA1-USDT")
    args = parser.parse_args()
    feed = feed_class(args.ws, args.rest)
    handler = FeedHandler(config={"log": {"disabled": True}})
    backends = {CANDLES: CandlesRedis, TICKER: TickerRedis}
    for number, interval in enumerate(INTERVALS):
        channels = [CANDLES, TICKER] if number == 0 else [CANDLES]
        port = args.redis_port
        handler.add_feed(
            feed(
                symbols=args.symbols,
                channels=channels,
                candle_interval=interval,
                callbacks={c: backends[c](host="127.0.0.1", port=port) for c in channels},
            )
        )
    threading.Thread(target=report, daemon=True).start()
    print("started", file=sys.stderr, flush=True)
    handler.run()


if __name__ == "__main__":
    main()
