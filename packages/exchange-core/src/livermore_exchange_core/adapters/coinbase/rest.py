"""`CoinbaseRestClient`: Coinbase Advanced Trade REST over our own aiohttp session.

Why not coinbase-advanced-py's `RESTClient`: it is synchronous (`requests`; every call would block
the worker's event loop or need a thread), it hard-codes `https://` (so it cannot reach the
simulator without a TLS fake or a rewriting adapter) and it has no retry, backoff or 429 handling
(`rest_base.handle_exception` raises a bare `requests.HTTPError`). Market data is public, so we
go around it; the signed accounts call is the SDK's (`livermore_exchange_core.accounts`, run in
a thread), taken through the same limiter.

Coinbase quirks handled here: at most 300 candles a page (350 is the hard cap, 400 beyond),
newest-first pages reversed, the in-progress bucket dropped unless asked for, and throttling that
shows up as 429 with a JSON *or* HTML body, or as 401 on public candles (coinbase-advanced-py#60).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog

from livermore_exchange_core.accounts import fetch_balances
from livermore_exchange_core.adapters.coinbase import parsing, urls
from livermore_exchange_core.base import Balance, ProductInfo
from livermore_exchange_core.candle_range import resolve_range
from livermore_exchange_core.errors import (
    AuthenticationError,
    BadRequestError,
    ExchangeUnavailableError,
    InvalidSymbolError,
    RateLimitedError,
)
from livermore_exchange_core.http import DEFAULT_RETRY, HttpReply, call_with_retries, http_get
from livermore_exchange_core.rest_base import BaseRestClient
from livermore_schema.enums import Timeframe
from livermore_schema.market import Candle
from livermore_schema.timeframes import duration_ms

log = structlog.get_logger(__name__)


class CoinbaseRestClient(BaseRestClient):
    """Public candles and products, server time and (with credentials) account balances."""

    # ------------------------------------------------------------------ transport

    async def _get(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        what: str,
    ) -> Any:
        async def attempt() -> Any:
            granted_at = await self._limiter.acquire()
            self.requests += 1
            try:
                reply = await http_get(self._http(), url, params=params, exchange="coinbase")
            finally:
                self._limiter.settle(granted_at)
            return self._check(reply, public=True)

        return await call_with_retries(
            attempt,
            limiter=self._limiter,
            policy=DEFAULT_RETRY,
            rng=self._rng,
            what=what,
            exchange="coinbase",
        )

    def _check(self, reply: HttpReply, *, public: bool) -> Any:
        status = reply.status
        if status == 200:
            return reply.body
        message = parsing.error_message(reply.body, f"HTTP {status}")
        if status == 429 or (status == 401 and public):
            raise RateLimitedError(
                f"throttled (HTTP {status}): {message[:120]}",
                exchange="coinbase",
                retry_after_s=reply.header_float("Retry-After"),
                status=status,
            )
        if status in (401, 403):
            raise AuthenticationError(f"HTTP {status}: {message}", exchange="coinbase")
        if status == 404:
            raise InvalidSymbolError(message, exchange="coinbase")
        if status >= 500:
            raise ExchangeUnavailableError(f"HTTP {status}", exchange="coinbase", status=status)
        raise BadRequestError(f"HTTP {status}: {message}", exchange="coinbase", status=status)

    # ------------------------------------------------------------------ public API

    async def _fetch_server_time(self) -> int:
        body = await self._get(urls.time_url(self._config.rest_url), what="time")
        return parsing.parse_server_time(body)

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
        """Return candles oldest first over as many <= 300-bar pages as the range needs.

        Raises:
            InvalidSymbolError: Coinbase answered 404 for the product.
            BadRequestError: the timeframe has no Coinbase granularity.
        """
        granularity = parsing.GRANULARITY.get(timeframe)
        if granularity is None:
            raise BadRequestError(f"Coinbase has no {timeframe} candles", exchange="coinbase")
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
        url = urls.candles_url(self._config.rest_url, symbol)
        for page in wanted.pages(parsing.PAGE_SIZE):
            # `end` one second before the page end keeps the page the same whether Coinbase
            # treats `end` as inclusive or exclusive.
            params = {
                "start": str(page.start_ms // 1000),
                "end": str(page.end_ms // 1000 - 1),
                "granularity": granularity,
            }
            body = await self._get(url, params=params, what=f"candles {symbol} {timeframe}")
            for candle in parsing.parse_candles_response(
                body,
                exchange_id=self.exchange_id,
                symbol=symbol,
                timeframe=timeframe,
                now_ms=closed_before,
            ):
                if wanted.contains(candle.open_time) and (candle.closed or include_open):
                    found[candle.open_time] = candle
        return [found[key] for key in sorted(found)]

    async def list_products(self) -> list[ProductInfo]:
        """Return every spot product with `approximate_quote_24h_volume`."""
        body = await self._get(
            urls.products_url(self._config.rest_url),
            params={"product_type": "SPOT"},
            what="products",
        )
        return parsing.parse_products_response(body)

    async def get_balances(self) -> list[Balance]:
        """Return non-zero balances of every account (coinbase-advanced-py, `accounts`).

        Raises:
            AuthenticationError: no credentials, or Coinbase rejected them.
        """
        if self._credentials is None:
            raise AuthenticationError("no Coinbase credentials", exchange="coinbase")
        granted_at = await self._limiter.acquire()
        try:
            return await fetch_balances(self._config, self._credentials)
        finally:
            self._limiter.settle(granted_at)
