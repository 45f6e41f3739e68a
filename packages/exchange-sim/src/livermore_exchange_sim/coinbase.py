"""The Coinbase Advanced Trade venue: WebSocket at `/ws`, REST under `/api/v3/brokerage`.

`GET /_sim/stats` (under the venue prefix) reports REST requests and 429 answers;
`GET /_sim/subscriptions` lists each live WebSocket connection's channels and products.
"""

from __future__ import annotations

from aiohttp import web

from livermore_exchange_sim.coinbase_rest import CoinbaseRest
from livermore_exchange_sim.coinbase_ws import CoinbaseWs
from livermore_exchange_sim.config import SimConfig
from livermore_exchange_sim.faults import FaultController
from livermore_exchange_sim.market import Market

WS_PATH = "/ws"


def create_coinbase_app(
    market: Market, faults: FaultController, config: SimConfig
) -> web.Application:
    """Return the Coinbase sub-application (mount it under a prefix such as /coinbase)."""
    rest = CoinbaseRest(market, faults, config)
    ws = CoinbaseWs(market, faults, config)
    app = web.Application(middlewares=[rest.middleware])
    app.router.add_routes([web.get(WS_PATH, ws.handle), *rest.routes()])
    app.router.add_get("/_sim/stats", rest.stats)
    app.router.add_get("/_sim/subscriptions", ws.subscriptions)
    app.on_shutdown.append(ws.close_all)
    return app
