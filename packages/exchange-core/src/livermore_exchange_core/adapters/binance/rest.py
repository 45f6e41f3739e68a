"""`BinanceRestClient`: Binance / Binance US spot REST over our own aiohttp session.

Why not python-binance's `AsyncClient`: `create()` spends two requests (ping, time) per client;
a non-2xx becomes `BinanceAPIException` with no retry, no `Retry-After` handling and no request
weight bookkeeping; `get_historical_klines` sleeps a fixed 1 s every third call instead of
following the real limit. Market data is four public GETs, so we speak it directly; the one
signed call (balances) is python-binance's (`livermore_exchange_core.accounts`), taken through
the same limiter. Every request goes through the exchange's shared
`WeightWindowLimiter` (limits read from exchangeInfo, `X-MBX-USED-WEIGHT-1M` fed back), 429/418
pause every caller for `Retry-After`, and 451 is a `GeoBlockedError` that names binance_us.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import aiohttp
import structlog

from livermore_exchange_core.accounts import fetch_balances
from livermore_exchange_core.adapters.binance import parsing, urls
from livermore_exchange_core.base import Balance, ProductInfo
from livermore_exchange_core.candle_range import resolve_range
from livermore_exchange_core.errors import (
    AuthenticationError,
    BadRequestError,
    ExchangeUnavailableError,
    GeoBlockedError,
    InvalidSymbolError,
    RateLimitedError,
    RetryableError,
)
from livermore_exchange_core.http import DEFAULT_RETRY, HttpReply, call_with_retries, http_get
from livermore_exchange_core.ratelimit import (
    WeightWindowLimiter,
    rules_from_exchange_info,
)
from livermore_exchange_core.rest_base import BaseRestClient
from livermore_schema.enums import Timeframe
from livermore_schema.market import Candle
from livermore_schema.timeframes import duration_ms

log = structlog.get_logger(__name__)

_TIMEOUT = aiohttp.ClientTimeout(total=20)
_AUTH_CODES = {-2014, -2015}
_TIMESTAMP_CODE = -1021


class BinanceRestClient(BaseRestClient):
    """Klines, exchangeInfo + 24h volumes, server time and (with credentials) balances."""

    # exchangeInfo's rate limits are loaded once, on first use, by the first caller.
    _limits_loaded = False
    _limits_lock: asyncio.Lock | None = None

    # ------------------------------------------------------------------ transport

    async def _get(self, url: str, weight: int, params: Mapping[str, str]) -> Any:
        async def attempt() -> Any:
            query = dict(params)
            headers: dict[str, str] = {}
            granted_at = await self._limiter.acquire(weight)
            self.requests += 1
            full = f"{url}?{urlencode(query)}" if query else url
            try:
                reply = await http_get(self._http(), full, headers=headers, exchange=self._name)
            finally:
                self._limiter.settle(granted_at, weight)
            for used, window_s in parsing.parse_used_weights(reply.headers):
                self._limiter.observe_used(used, window_s, sent_at=granted_at)
            return self._check(reply)

        return await call_with_retries(
            attempt,
            limiter=self._limiter,
            policy=DEFAULT_RETRY,
            rng=self._rng,
            what=url.rsplit("/", 1)[-1],
            exchange=self._name,
        )

    def _check(self, reply: HttpReply) -> Any:
        status = reply.status
        if status == 200:
            return reply.body
        code, message = parsing.parse_error(reply.body)
        if status in (429, 418):
            raise RateLimitedError(
                f"HTTP {status}: {message[:160]}",
                exchange=self._name,
                retry_after_s=reply.header_float("Retry-After"),
                status=status,
                banned=status == 418,
            )
        if status == 451:
            raise GeoBlockedError(
                f"{self._name} is geo-blocked from here (HTTP 451); use binance_us",
                exchange=self._name,
            )
        if code == parsing.ERROR_INVALID_SYMBOL:
            raise InvalidSymbolError(message, exchange=self._name)
        if code == _TIMESTAMP_CODE:
            self.clock.invalidate()  # re-anchor on the next signed attempt
            raise RetryableError(f"clock skew: {message}", exchange=self._name)
        if status == 401 or code in _AUTH_CODES:
            raise AuthenticationError(f"HTTP {status}: {message}", exchange=self._name)
        if status == 403 or status >= 500:
            raise ExchangeUnavailableError(f"HTTP {status}", exchange=self._name, status=status)
        raise BadRequestError(f"HTTP {status} ({code}): {message}", exchange=self._name)

    # ------------------------------------------------------------------ public API

    async def _fetch_server_time(self) -> int:
        body = await self._get(urls.time_url(self._config.rest_url), urls.WEIGHTS["time"], {})
        return int(body["serverTime"])

    async def exchange_info(self) -> parsing.ExchangeInfo:
        """Fetch exchangeInfo and apply its `rateLimits` to the shared limiter."""
        body = await self._get(
            urls.exchange_info_url(self._config.rest_url), urls.WEIGHTS["exchangeInfo"], {}
        )
        info = parsing.parse_exchange_info(body)
        rules = rules_from_exchange_info(info.rate_limits)
        if rules and isinstance(self._limiter, WeightWindowLimiter):
            if rules != self._limiter.rules:
                log.info("binance.rate_limits", exchange=self._name, rules=str(rules))
            self._limiter.configure(rules)
        self._limits_loaded = True
        return info

    async def _load_limits(self) -> None:
        # One exchangeInfo (weight 20) per client, however many callers arrive at once.
        if self._limits_loaded:
            return
        self._limits_lock = self._limits_lock or asyncio.Lock()
        async with self._limits_lock:
            if not self._limits_loaded:
                await self.exchange_info()

    async def get_candles(
        self,
        symbol: str,
        timeframe: Timeframe,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int | None = None,
        *,
        include_open: bool = False,
    ) -> list[Candle]:
        """Return klines oldest first over as many <= 1000-bar pages as the range needs.

        Raises:
            InvalidSymbolError: Binance answered -1121.
            GeoBlockedError: HTTP 451 (binance.com from a restricted location).
        """
        interval = parsing.INTERVAL[timeframe]
        await self._load_limits()
        needed = self.clock.needed_for(end_ms, duration_ms(timeframe), include_open=include_open)
        now = await self.clock.now_ms(needed)
        closed_before = now - self.clock.grace_ms
        wanted = resolve_range(
            timeframe,
            start_ms=start_ms,
            end_ms=end_ms,
            limit=limit,
            now_ms=now,
            closed_before_ms=closed_before,
            include_open=include_open,
        )
        found: dict[int, Candle] = {}
        for page in wanted.pages(parsing.MAX_KLINES_PER_REQUEST):
            params = {
                "symbol": symbol,
                "interval": interval,
                "startTime": str(page.start_ms),
                "endTime": str(page.end_ms - 1),
                "limit": str(page.bars),
            }
            rows = await self._get(
                urls.klines_url(self._config.rest_url), parsing.KLINES_WEIGHT, params
            )
            for candle in parsing.parse_klines_response(
                rows,
                exchange_id=self.exchange_id,
                exchange=self._name,
                symbol=symbol,
                timeframe=timeframe,
                now_ms=closed_before,
            ):
                if wanted.contains(candle.open_time) and (candle.closed or include_open):
                    found[candle.open_time] = candle
        return [found[key] for key in sorted(found)]

    async def list_products(self) -> list[ProductInfo]:
        """Return exchangeInfo symbols with their ticker/24hr `quoteVolume`."""
        info = await self.exchange_info()
        rows = await self._get(
            urls.ticker_24hr_url(self._config.rest_url), urls.WEIGHTS["ticker/24hr"], {}
        )
        return parsing.join_products(
            info, parsing.parse_ticker_volumes(rows), parsing.parse_ticker_prices(rows)
        )

    async def get_balances(self) -> list[Balance]:
        """Return non-zero balances of the spot account (python-binance, `accounts`).

        Raises:
            AuthenticationError: no credentials, or Binance rejected them.
        """
        if self._credentials is None:
            raise AuthenticationError(f"no {self._name} credentials", exchange=self._name)
        weight = urls.WEIGHTS["account"]
        granted_at = await self._limiter.acquire(weight)
        try:
            return await fetch_balances(self._config, self._credentials)
        finally:
            self._limiter.settle(granted_at, weight)
