"""Binance spot REST `/api/v3/*` on the simulator: market data, signed account, weight limits.

Reference: binance/binance-spot-api-docs rest-api.md and errors.md; see exchange-protocols.md §B3.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from livermore_exchange_sim.binance_limits import (
    Admission,
    WeightLedger,
    WeightPolicy,
    is_valid_signature,
)
from livermore_exchange_sim.binance_market import (
    account_body,
    exchange_info_body,
    select_klines,
    ticker_24hr_body,
)
from livermore_exchange_sim.binance_wire import (
    GEO_BLOCK_MSG,
    INTERVAL_MS,
    BinanceVenueState,
    banned_msg,
    error_body,
    used_weight_header,
    weight_exceeded_msg,
)
from livermore_exchange_sim.faults import FaultController, RestFault, RestMode
from livermore_exchange_sim.market import Market

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_KLINE_LIMIT = 1000
MAX_RECV_WINDOW = 60_000


class BinanceRestError(Exception):
    """A Binance error answer: HTTP status plus the `{"code","msg"}` body."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status = status
        self.code = code
        self.msg = msg


_HTML_429 = (
    "<html><head><title>429 Too Many Requests</title></head><body>"
    "<center><h1>429 Too Many Requests</h1></center></body></html>"
)


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        text=json.dumps(body, separators=(",", ":")),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def _mandatory(request: web.Request, name: str) -> str:
    value = request.query.get(name, "")
    if not value:
        raise BinanceRestError(
            400,
            -1102,
            f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.",
        )
    return value


def _int_param(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 20:
        raise BinanceRestError(
            400,
            -1100,
            f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.",
        )
    return int(raw)


def _ticker_weight(request: web.Request) -> int:
    if "symbol" in request.query:
        return 2
    raw = request.query.get("symbols")
    if raw is None:
        return 80
    count = raw.count(",") + 1
    return 2 if count <= 20 else 40 if count <= 100 else 80


_WEIGHTS: dict[str, Callable[[web.Request], int]] = {
    "ping": lambda _r: 1,
    "time": lambda _r: 1,
    "exchangeInfo": lambda _r: 20,
    "klines": lambda _r: 2,
    "ticker24hr": _ticker_weight,
    "account": lambda _r: 20,
}


class BinanceRestApi:
    """The `/api/v3` handlers and the middleware that applies weight, bans and faults."""

    def __init__(self, market: Market, state: BinanceVenueState, faults: FaultController) -> None:
        self._market = market
        self._state = state
        self._faults = faults
        self.ledger = WeightLedger()

    def add_routes(self, app: web.Application) -> None:
        """Register every REST route and the weight middleware on `app`."""
        app.middlewares.append(self.middleware)
        app.router.add_get("/api/v3/ping", self.ping, name="ping")
        app.router.add_get("/api/v3/time", self.time, name="time")
        app.router.add_get("/api/v3/exchangeInfo", self.exchange_info, name="exchangeInfo")
        app.router.add_get("/api/v3/klines", self.klines, name="klines")
        app.router.add_get("/api/v3/ticker/24hr", self.ticker_24hr, name="ticker24hr")
        app.router.add_get("/api/v3/account", self.account, name="account")

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Apply geo-block, the weight limit and errors to every `/api/v3` request."""
        weigh = _WEIGHTS.get(request.match_info.route.name or "")
        if weigh is None:
            return await handler(request)
        state = self._state
        state.stats.requests += 1
        fault = self._faults.rest_mode(state.venue)
        if fault is not None and fault.mode is RestMode.SLOW:
            await asyncio.sleep(fault.delay_s)
        elif fault is not None:
            return self._fault_response(fault)
        if state.config.geo_blocked:
            return self._fault_response(RestFault(RestMode.GEO_BLOCKED))
        ip = request.remote or "unknown"
        verdict = self.ledger.charge(ip, weigh(request), self._policy(), time.monotonic())
        if verdict.admission is not Admission.OK:
            return self._refusal(verdict.admission, verdict.used, verdict.retry_after_s)
        try:
            response = await handler(request)
        except BinanceRestError as error:
            response = _json(error_body(error.code, error.msg), status=error.status)
        response.headers[used_weight_header(state.config.weight_window_s)] = str(verdict.used)
        return response

    def _fault_response(self, fault: RestFault) -> web.Response:
        stats = self._state.stats
        retry = {"Retry-After": str(fault.retry_after_s)}
        if fault.mode is RestMode.RATE_LIMIT_JSON:
            stats.http_429 += 1
            body = error_body(-1003, self._exceeded_msg())
            return _json(body, status=429, headers=retry)
        if fault.mode is RestMode.RATE_LIMIT_HTML:
            stats.http_429 += 1
            return web.Response(text=_HTML_429, status=429, content_type="text/html", headers=retry)
        if fault.mode is RestMode.BANNED:
            stats.http_418 += 1
            until = self._market.clock.now_ms() + fault.retry_after_s * 1000
            return _json(error_body(-1003, banned_msg(until)), status=418, headers=retry)
        if fault.mode is RestMode.UNAUTHORIZED:
            body = error_body(-2015, "Invalid API-key, IP, or permissions for action.")
            return _json(body, status=401)
        if fault.mode is RestMode.UNAVAILABLE:
            return web.Response(text="503 Service Unavailable", status=503)
        stats.http_451 += 1
        return _json(error_body(0, GEO_BLOCK_MSG), status=451)

    def _policy(self) -> WeightPolicy:
        config = self._state.config
        return WeightPolicy(
            config.weight_limit,
            config.ban_seconds,
            config.requests_after_429_before_ban,
            float(config.weight_window_s),
        )

    def _exceeded_msg(self) -> str:
        config = self._state.config
        return weight_exceeded_msg(config.weight_limit, config.weight_window_s)

    def _refusal(self, admission: Admission, used: int, retry_after_s: int) -> web.Response:
        stats = self._state.stats
        if admission is Admission.THROTTLED:
            stats.http_429 += 1
            body = error_body(-1003, self._exceeded_msg())
        else:
            stats.http_418 += 1
            clock = self._market.clock
            until = clock.now_ms() + int(retry_after_s * 1000 * clock.speed)
            body = error_body(-1003, banned_msg(until))
        header = used_weight_header(self._state.config.weight_window_s)
        headers = {"Retry-After": str(retry_after_s), header: str(used)}
        return _json(body, status=int(admission), headers=headers)

    async def ping(self, request: web.Request) -> web.Response:
        """`GET /api/v3/ping` → `{}`."""
        return _json({})

    async def time(self, request: web.Request) -> web.Response:
        """`GET /api/v3/time` → `{"serverTime": <sim ms>}`."""
        return _json({"serverTime": self._market.clock.now_ms()})

    async def exchange_info(self, request: web.Request) -> web.Response:
        """`GET /api/v3/exchangeInfo`: rate limits and every listed symbol."""
        symbols = self._symbols_param(request)
        return _json(
            exchange_info_body(self._market, self._state, self._market.clock.now_ms(), symbols)
        )

    async def klines(self, request: web.Request) -> web.Response:
        """`GET /api/v3/klines`: ascending rows, the still-open bar last when in range."""
        symbol = self._known_symbol(_mandatory(request, "symbol"))
        interval = _mandatory(request, "interval")
        if interval not in INTERVAL_MS:
            raise BinanceRestError(400, -1120, "Invalid interval.")
        start = _int_param(request, "startTime")
        end = _int_param(request, "endTime")
        limit = _int_param(request, "limit")
        limit = 500 if limit is None else limit
        if limit > MAX_KLINE_LIMIT or limit < 1:
            raise BinanceRestError(400, -1130, "Invalid data sent for a parameter.")
        if start is not None and end is not None and start > end:
            raise BinanceRestError(400, -1023, "Start time is greater than end time.")
        rows = select_klines(
            self._market,
            self._state,
            symbol,
            INTERVAL_MS[interval],
            start=start,
            end=end,
            limit=limit,
        )
        return _json(rows)

    async def ticker_24hr(self, request: web.Request) -> web.Response:
        """`GET /api/v3/ticker/24hr` for one symbol (object) or many (array)."""
        now = self._market.clock.now_ms()
        single = request.query.get("symbol")
        if single is not None:
            symbol = self._known_symbol(single)
            return _json(ticker_24hr_body(self._market, self._state.venue, symbol, now))
        symbols = self._symbols_param(request)
        if symbols is None:
            symbols = [p.symbol for p in self._market.products(self._state.venue)]
        return _json([ticker_24hr_body(self._market, self._state.venue, s, now) for s in symbols])

    async def account(self, request: web.Request) -> web.Response:
        """`GET /api/v3/account` (SIGNED): deterministic balances, dust included."""
        self._check_signed(request)
        return _json(account_body(self._market, self._state, self._market.clock.now_ms()))

    def _check_signed(self, request: web.Request) -> None:
        config = self._state.config
        key = request.headers.get("X-MBX-APIKEY")
        if not key:
            raise BinanceRestError(401, -2014, "API-key format invalid.")
        if key != config.api_key:
            raise BinanceRestError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        _mandatory(request, "timestamp")
        timestamp = _int_param(request, "timestamp") or 0
        window = _int_param(request, "recvWindow") or 5000
        if window > MAX_RECV_WINDOW:
            raise BinanceRestError(400, -1131, "recvWindow must be less than 60000")
        server_ms = self._market.clock.now_ms()
        if timestamp > server_ms + 1000:
            raise BinanceRestError(
                400, -1021, "Timestamp for this request was 1000ms ahead of the server's time."
            )
        if server_ms - timestamp > window:
            raise BinanceRestError(
                400, -1021, "Timestamp for this request is outside of the recvWindow."
            )
        if not is_valid_signature(config.api_secret, request.rel_url.raw_query_string):
            raise BinanceRestError(400, -1022, "Signature for this request is not valid.")

    def _known_symbol(self, symbol: str) -> str:
        if self._market.product(self._state.venue, symbol) is None:
            raise BinanceRestError(400, -1121, "Invalid symbol.")
        return symbol

    def _symbols_param(self, request: web.Request) -> list[str] | None:
        raw = request.query.get("symbols")
        if raw is None:
            single = request.query.get("symbol")
            return None if single is None else [self._known_symbol(single)]
        try:
            names = json.loads(raw)
        except ValueError:
            names = None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise BinanceRestError(400, -1100, "Illegal characters found in parameter 'symbols'.")
        return [self._known_symbol(n) for n in names]
