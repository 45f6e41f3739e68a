"""One aiohttp application serving every simulated venue on one port, by path prefix.

URL layout (base = `http://HOST:PORT`; the env override `livermore-sim` prints in brackets):

- Coinbase WS `/coinbase/ws` [LIVERMORE_COINBASE_WS_URL=ws://HOST:PORT/coinbase/ws]
- Coinbase REST `/coinbase/api/v3/brokerage/...`
  [LIVERMORE_COINBASE_REST_URL=http://HOST:PORT/coinbase]
- Binance WS `/binance/ws/<stream>`, `/binance/stream?streams=`
  [LIVERMORE_BINANCE_WS_URL=ws://HOST:PORT/binance]
- Binance REST `/binance/api/v3/...` [LIVERMORE_BINANCE_REST_URL=http://HOST:PORT/binance]
- Binance US: the same under `/binance_us`
  [LIVERMORE_BINANCE_US_WS_URL, LIVERMORE_BINANCE_US_REST_URL]
- CoinGecko `/coingecko/api/v3/coins/markets`
  [LIVERMORE_COINGECKO_URL=http://HOST:PORT/coingecko/api/v3]
- Webhook sink `/webhook/{name}`
  [LIVERMORE_DISCORD_WEBHOOK_URL=http://HOST:PORT/webhook/livermore]
  [LIVERMORE_EXCHANGE_CLOCK_RATE=<speed>] (printed by livermore-sim)

Simulator control: `GET /_sim/clock`, `GET /_sim/truth?exchange=&symbol=&timeframe=&start=&end=`
(closed candles, ms), `/_sim/faults/...` (faults.py), `POST /_sim/webhook/throttle`,
`POST /_sim/scenarios/demo?lead_ms=` (start the demo MACD-V excursions `lead_ms` from now),
`PUT /_sim/accounts/{venue}` `{"balances": {"BTC": 0.5}}` (the account's balances from now on).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from livermore_exchange_sim.coinbase import create_coinbase_app
from livermore_exchange_sim.coingecko import create_coingecko_app
from livermore_exchange_sim.config import SimConfig
from livermore_exchange_sim.faults import FaultController, fault_routes
from livermore_exchange_sim.market import Market, SimClock, Venue
from livermore_exchange_sim.scenarios import demo_scenarios
from livermore_exchange_sim.webhook import WebhookSink

MARKET = web.AppKey("market", Market)
FAULTS = web.AppKey("faults", FaultController)
WEBHOOKS = web.AppKey("webhooks", WebhookSink)

PREFIXES: dict[Venue, str] = {
    Venue.COINBASE: "/coinbase",
    Venue.BINANCE: "/binance",
    Venue.BINANCE_US: "/binance_us",
}
COINGECKO_PREFIX = "/coingecko"
TIMEFRAME_MS: dict[str, int] = {
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
    "1w": 604_800_000,
}


def ws_url(base_url: str, venue: Venue) -> str:
    """Return the WebSocket base URL of `venue` on a sim at `base_url` (http://host:port)."""
    suffix = "/ws" if venue is Venue.COINBASE else ""
    return base_url.replace("http://", "ws://", 1) + PREFIXES[venue] + suffix


def rest_url(base_url: str, venue: Venue) -> str:
    """Return the REST base URL of `venue` (the client appends /api/v3/...)."""
    return base_url + PREFIXES[venue]


def env_overrides(
    base_url: str, webhook_name: str = "livermore", *, speed: float | None = None
) -> dict[str, str]:
    """Return the LIVERMORE_* variables that point Livermore at a sim at `base_url`.

    With `speed`, also `LIVERMORE_EXCHANGE_CLOCK_RATE`, so a worker's estimate of exchange time
    runs as fast as the simulated clock.
    """
    env: dict[str, str] = {}
    for venue in Venue:
        name = venue.value.upper()
        env[f"LIVERMORE_{name}_WS_URL"] = ws_url(base_url, venue)
        env[f"LIVERMORE_{name}_REST_URL"] = rest_url(base_url, venue)
    env["LIVERMORE_COINGECKO_URL"] = f"{base_url}{COINGECKO_PREFIX}/api/v3"
    env["LIVERMORE_DISCORD_WEBHOOK_URL"] = f"{base_url}/webhook/{webhook_name}"
    if speed is not None:
        env["LIVERMORE_EXCHANGE_CLOCK_RATE"] = f"{speed:g}"
    return env


def create_app(config: SimConfig) -> web.Application:
    """Return the simulator application for `config` (market, venues, faults, sinks)."""
    clock = SimClock(start_ms=config.start_ms, speed=config.speed)
    market = Market(
        seed=config.seed,
        clock=clock,
        symbols=config.symbols,
        scenarios=config.scenarios,
        extra_assets=config.extra_assets,
    )
    faults = FaultController(clock)
    webhooks = WebhookSink()
    app = web.Application()
    app[MARKET], app[FAULTS], app[WEBHOOKS] = market, faults, webhooks
    app.add_subapp(PREFIXES[Venue.COINBASE], create_coinbase_app(market, faults, config))
    for venue in (Venue.BINANCE, Venue.BINANCE_US):
        app.add_subapp(PREFIXES[venue], _binance_app(market, venue, faults))
    app.add_subapp(COINGECKO_PREFIX, create_coingecko_app(market))
    app.router.add_routes(webhooks.routes())
    app.router.add_routes(fault_routes(faults))
    app.router.add_get("/_sim/clock", _clock)
    app.router.add_get("/_sim/truth", _truth)
    app.router.add_post("/_sim/scenarios/demo", _start_demo_scenarios)
    app.router.add_put("/_sim/accounts/{venue}", _set_balances)
    return app


async def _set_balances(request: web.Request) -> web.Response:
    """Replace a venue's account balances: `{"balances": {"BTC": 0.5, "USDT": 100}}`."""
    try:
        venue = Venue(request.match_info["venue"])
        body = await request.json()
        balances = {str(a).upper(): float(v) for a, v in body["balances"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise web.HTTPBadRequest(text=f'need {{"balances": {{ASSET: amount}}}}: {exc}') from None
    request.app[MARKET].balances[venue] = balances
    return web.json_response({"exchange": venue.value, "balances": balances})


def _binance_app(market: Market, venue: Venue, faults: FaultController) -> web.Application:
    try:
        from livermore_exchange_sim.binance import create_binance_app
    except ImportError as exc:  # the Binance venue is developed separately
        raise ImportError(
            "livermore_exchange_sim.binance.create_binance_app is missing; "
            "the Binance venue module must exist for the simulator to start"
        ) from exc
    return create_binance_app(market, venue, faults)


async def _clock(request: web.Request) -> web.Response:
    clock = request.app[MARKET].clock
    return web.json_response(
        {"now_ms": clock.now_ms(), "speed": clock.speed, "start_ms": clock.start_ms}
    )


async def _truth(request: web.Request) -> web.Response:
    market, query = request.app[MARKET], request.query
    try:
        venue = Venue(query["exchange"])
        symbol = query["symbol"]
        interval = TIMEFRAME_MS[query["timeframe"]]
        start, end = int(query["start"]), int(query["end"])
    except (KeyError, ValueError) as exc:
        raise web.HTTPBadRequest(
            text=f"need exchange, symbol, timeframe ({', '.join(TIMEFRAME_MS)}), start, end: {exc}"
        ) from None
    if market.product(venue, symbol) is None:
        raise web.HTTPNotFound(text=f"{venue.value} does not list {symbol}")
    bars = market.closed_bars(venue, symbol, interval, start, end)
    candles: list[dict[str, Any]] = [
        {
            "open_time": b.open_time,
            "close_time": b.open_time + interval - 1,
            "open": b.open,
            "high": b.high,
            "low": b.low,
            "close": b.close,
            "volume": b.volume,
            "quote_volume": b.quote_volume,
            "trades": b.trades,
        }
        for b in bars
    ]
    body = {"exchange": venue.value, "symbol": symbol, "timeframe": query["timeframe"]}
    return web.json_response(body | {"candles": candles})


async def _start_demo_scenarios(request: web.Request) -> web.Response:
    """Add the demo excursions starting `lead_ms` (simulated) from now, for listed assets."""
    market = request.app[MARKET]
    try:
        lead_ms = int(request.query.get("lead_ms", "60000"))
    except ValueError:
        raise web.HTTPBadRequest(text="lead_ms must be an integer (simulated ms)") from None
    if lead_ms < 0:
        raise web.HTTPBadRequest(text="lead_ms must not be negative")
    # Only the future changes: every scenario is zero before its start, so history stays put.
    listed = {asset.base for asset in market.assets}
    now = market.clock.now_ms()
    added = tuple(s for s in demo_scenarios(now, lead_ms=lead_ms) if s.base in listed)
    market.scenarios = (*market.scenarios, *added)
    body = [
        {"base": s.base, "label": s.label, "start_ms": s.start_ms, "end_ms": s.end_ms}
        for s in added
    ]
    return web.json_response({"now_ms": now, "scenarios": body})
