"""Coinbase Advanced Trade REST under /api/v3/brokerage: public market data, time, accounts.

Public endpoints are limited to `coinbase_public_rate_per_s` requests per second per client IP
(429 beyond); `accounts` needs an ES256/EdDSA JWT as coinbase-advanced-py signs it. Candles
cover buckets whose start lies in [start, end), newest first, closed ones plus the bucket still
in progress, omitting buckets without trades.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import jwt
from aiohttp import web

from livermore_exchange_sim import coinbase_wire as wire
from livermore_exchange_sim.config import SimConfig
from livermore_exchange_sim.faults import FaultController, RestMode
from livermore_exchange_sim.market import Market, Venue

PREFIX = "/api/v3/brokerage"
_MAX_CANDLES = 350
_TOO_MANY = (
    "start and end argument is invalid - number of candles requested should be less than 350"
)
_HTML_429 = (
    "<html>\r\n<head><title>429 Too Many Requests</title></head>\r\n<body>\r\n"
    "<center><h1>429 Too Many Requests</h1></center>\r\n</body>\r\n</html>\r\n"
)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, code: str, message: str, details: str | None = None) -> web.Response:
    body = {"error": code, "error_details": details or message, "message": message}
    return web.json_response(body, status=status)


class _Window:
    """Requests per second per key, over a sliding one-second window (wall time)."""

    def __init__(self, per_second: int) -> None:
        self.per_second = per_second
        self._hits: dict[str, deque[float]] = {}

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - 1.0:
            hits.popleft()
        if len(hits) >= self.per_second:
            return False
        hits.append(now)
        return True


class CoinbaseRest:
    """The REST handlers, the rate-limit/fault middleware and JWT checking."""

    def __init__(self, market: Market, faults: FaultController, config: SimConfig) -> None:
        self._market = market
        self._faults = faults
        self._config = config
        self._public = _Window(config.coinbase_public_rate_per_s)
        self._private = _Window(config.coinbase_private_rate_per_s)
        self.requests = 0
        self.http_429 = 0

    def routes(self) -> list[web.RouteDef]:
        """Return the route table (paths relative to the venue prefix)."""
        return [
            web.get(f"{PREFIX}/market/products", self.products),
            web.get(f"{PREFIX}/market/products/{{product_id}}", self.product),
            web.get(f"{PREFIX}/market/products/{{product_id}}/candles", self.candles),
            web.get(f"{PREFIX}/time", self.time),
            web.get(f"{PREFIX}/accounts", self.accounts),
        ]

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Apply injected REST faults, then the public/private rate limits."""
        if PREFIX not in request.path:
            return await handler(request)
        self.requests += 1
        fault = self._faults.rest_mode(Venue.COINBASE)
        if fault is not None:
            if fault.mode is RestMode.SLOW:
                await asyncio.sleep(fault.delay_s)
            else:
                response = _fault_response(fault.mode, fault.retry_after_s)
                if response.status == 429:
                    self.http_429 += 1
                return response
        private = request.path.endswith("/accounts")
        window = self._private if private else self._public
        if not window.allow(request.remote or "?"):
            self.http_429 += 1
            return _error(429, "RATE_LIMIT_EXCEEDED", "Too many requests")
        return await handler(request)

    async def stats(self, request: web.Request) -> web.Response:
        """`GET /_sim/stats`: REST requests seen and 429s answered (tests assert zero)."""
        return web.json_response({"requests": self.requests, "http_429": self.http_429})

    async def products(self, request: web.Request) -> web.Response:
        """GET market/products (accepts the SDK's limit/offset/product_ids/get_all_products)."""
        items = self._market.products(Venue.COINBASE)
        wanted = request.query.getall("product_ids", [])
        if wanted:
            items = [p for p in items if p.symbol in wanted]
        kind = request.query.get("product_type")
        if kind not in (None, "SPOT", "UNKNOWN_PRODUCT_TYPE"):
            items = []
        offset = int(request.query.get("offset", "0") or 0)
        limit = int(request.query.get("limit", "0") or 0)
        items = items[offset : offset + limit] if limit else items[offset:]
        return web.json_response(
            wire.products_body(self._market, items, self._market.clock.now_ms())
        )

    async def product(self, request: web.Request) -> web.Response:
        """GET market/products/{product_id}."""
        product_id = request.match_info["product_id"]
        item = self._market.product(Venue.COINBASE, product_id)
        if item is None:
            return _error(404, "NOT_FOUND", f"Product {product_id} not supported")
        snap = self._market.ticker(Venue.COINBASE, item.symbol, self._market.clock.now_ms())
        return web.json_response(wire.product(item, snap))

    async def candles(self, request: web.Request) -> web.Response:
        """GET market/products/{product_id}/candles."""
        product_id = request.match_info["product_id"]
        item = self._market.product(Venue.COINBASE, product_id)
        if item is None:
            return _error(404, "NOT_FOUND", f"Product {product_id} not supported")
        query = request.query
        granularity = wire.GRANULARITY_MS.get(query.get("granularity", ""))
        if granularity is None:
            return _error(400, "INVALID_ARGUMENT", "granularity argument is invalid")
        try:
            start_ms, end_ms = int(query["start"]) * 1000, int(query["end"]) * 1000
        except (KeyError, ValueError):
            return _error(400, "INVALID_ARGUMENT", "start and end argument is invalid")
        if end_ms < start_ms or (end_ms - start_ms) / granularity > _MAX_CANDLES:
            return _error(400, "INVALID_ARGUMENT", _TOO_MANY)
        bars = self._bars(item.symbol, granularity, start_ms, end_ms)
        limit = int(query.get("limit", "0") or 0)
        if limit:
            bars = bars[:limit]
        decimals = item.price_decimals
        return web.json_response({"candles": [wire.candle(b, decimals, None) for b in bars]})

    def _bars(self, symbol: str, granularity: int, start_ms: int, end_ms: int) -> list[Any]:
        market, now = self._market, self._market.clock.now_ms()
        bars: list[Any] = market.closed_bars(Venue.COINBASE, symbol, granularity, start_ms, end_ms)
        live = market.partial_bar(Venue.COINBASE, symbol, granularity, now)
        if start_ms <= live.open_time < end_ms and live.trades:
            bars.append(live)
        return bars[::-1]

    async def time(self, request: web.Request) -> web.Response:
        """GET time (simulated)."""
        now = self._market.clock.now_ms()
        return web.json_response(
            {"iso": wire.rfc3339_us(now), "epochSeconds": str(now // 1000), "epochMillis": str(now)}
        )

    async def accounts(self, request: web.Request) -> web.Response:
        """GET accounts (JWT required)."""
        problem = self._check_jwt(request)
        if problem is not None:
            return _error(401, "UNAUTHENTICATED", problem)
        balances = self._market.balances.get(Venue.COINBASE)
        return web.json_response(accounts_body(self._market.clock.now_ms(), balances))

    def _check_jwt(self, request: web.Request) -> str | None:
        auth = self._config.coinbase_auth
        header = request.headers.get("Authorization", "")
        if auth is None or not header.startswith("Bearer "):
            return "missing or unusable credentials"
        token = header.removeprefix("Bearer ")
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            claims = jwt.decode(
                token,
                auth.public_key_pem,
                algorithms=["ES256", "EdDSA"],
                issuer="cdp",
                options={"require": ["exp", "nbf", "sub", "iss"]},
                leeway=5,
            )
        except jwt.PyJWTError as exc:
            return f"invalid JWT: {exc}"
        if kid != auth.api_key_name or claims.get("sub") != auth.api_key_name:
            return "unknown API key"
        method, _, target = str(claims.get("uri", "")).partition(" ")
        if method != request.method or not target.endswith(request.path):
            return "JWT uri does not match the request"
        return None


def _fault_response(mode: RestMode, retry_after_s: int) -> web.Response:
    headers = {"Retry-After": str(retry_after_s)}
    if mode is RestMode.RATE_LIMIT_HTML:
        return web.Response(status=429, text=_HTML_429, content_type="text/html", headers=headers)
    if mode is RestMode.UNAUTHORIZED:
        return web.Response(status=401, text="Unauthorized\n", content_type="text/plain")
    if mode is RestMode.UNAVAILABLE:
        return _error(503, "UNAVAILABLE", "service unavailable")
    statuses = {RestMode.RATE_LIMIT_JSON: 429, RestMode.BANNED: 418, RestMode.GEO_BLOCKED: 451}
    status = statuses[mode]
    response = _error(status, "RATE_LIMIT_EXCEEDED" if status == 429 else "FORBIDDEN", mode.value)
    response.headers.update(headers)
    return response


_BALANCES: tuple[tuple[str, str, str], ...] = (
    ("USD", "12500.00", "ACCOUNT_TYPE_FIAT"),
    ("BTC", "0.51230000", "ACCOUNT_TYPE_CRYPTO"),
    ("ETH", "3.20000000", "ACCOUNT_TYPE_CRYPTO"),
    ("SOL", "40.00000000", "ACCOUNT_TYPE_CRYPTO"),
    ("XRP", "1.20000000", "ACCOUNT_TYPE_CRYPTO"),
    ("DOGE", "0.00001000", "ACCOUNT_TYPE_CRYPTO"),
)
"""Deterministic balances; XRP and DOGE are dust (worth under $2)."""


def accounts_body(now_ms: int, balances: dict[str, float] | None = None) -> dict[str, Any]:
    """Return the `accounts` response (`balances`, when set, replace the defaults)."""
    rows = _BALANCES
    if balances is not None:
        rows = tuple(
            (
                asset,
                f"{amount:.8f}",
                "ACCOUNT_TYPE_FIAT" if asset == "USD" else "ACCOUNT_TYPE_CRYPTO",
            )
            for asset, amount in balances.items()
        )
    accounts = [
        {
            "uuid": f"8bfc20d7-f7c6-4422-bf07-8243ca4169{i:02d}",
            "name": f"{currency} Wallet",
            "currency": currency,
            "available_balance": {"value": value, "currency": currency},
            "default": True,
            "active": True,
            "created_at": "2021-05-31T09:59:59.000Z",
            "updated_at": wire.rfc3339_us(now_ms),
            "deleted_at": None,
            "type": kind,
            "ready": True,
            "hold": {"value": "0", "currency": currency},
            "retail_portfolio_id": "b87a2d3f-8a1e-49b3-a4ea-402d8c389aca",
            "platform": "ACCOUNT_PLATFORM_CONSUMER",
        }
        for i, (currency, value, kind) in enumerate(rows)
    ]
    return {"accounts": accounts, "has_next": False, "cursor": "", "size": len(accounts)}
