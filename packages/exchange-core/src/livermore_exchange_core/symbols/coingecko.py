"""`CoinGeckoClient`: the `/api/v3/coins/markets` ranking, paced, cached and joined to products.

CoinGecko's free tiers allow somewhere between 30 and 100 calls a minute per IP (sources disagree)
and serve cached data anyway (45-60 s), so the client spaces its calls (one every `min_interval_s`,
3 s by default), honours a 429's `Retry-After` by pausing every caller, and keeps the whole ranking
in memory for `cache_ttl_s` (5 minutes): refreshing six exchanges costs one ranking fetch.

Joining products to coins is by base symbol (`BTC` → `btc`). CoinGecko symbols are not unique
(many tokens call themselves `ETH` or `UNI`), so on a clash the coin with the better market-cap
rank wins: the well-known coin an exchange lists is almost always the bigger one. A small token that
shares a big token's ticker is thus credited with the big one's rank; a curated id map would be
needed to tell them apart, and exchanges' product lists do not carry CoinGecko ids.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp
import structlog
from pydantic import SecretStr

from livermore_exchange_core.backoff import BackoffPolicy
from livermore_exchange_core.errors import (
    BadRequestError,
    ExchangeUnavailableError,
    RateLimitedError,
)
from livermore_exchange_core.http import HttpReply, call_with_retries, http_get
from livermore_exchange_core.ratelimit import SpacingLimiter

log = structlog.get_logger(__name__)

SOURCE = "coingecko"
"""The name CoinGecko errors and log lines carry in place of an exchange."""

API_KEY_HEADER = "x-cg-demo-api-key"
"""Header of a CoinGecko Demo API key."""

MAX_PER_PAGE = 250
"""CoinGecko's largest `per_page`."""

DEFAULT_RETRY = BackoffPolicy(base_s=2.0, factor=2.0, cap_s=30.0, jitter=0.5, max_attempts=4)
"""About 30 s of patience for 5xx and network failures before the caller hears of it."""


@dataclass(frozen=True, slots=True)
class CoinMarket:
    """One coin of the market-cap ranking, as symbol refresh uses it."""

    coingecko_id: str
    symbol: str
    """Upper-cased ticker (`BTC`), the join key to exchange base currencies."""
    name: str
    market_cap_rank: int | None
    market_cap: Decimal | None
    current_price: float | None


def markets_url(base_url: str) -> str:
    """Return the coins/markets URL for a base with or without the `/api/v3` suffix."""
    root = base_url.rstrip("/")
    if not root.endswith("/api/v3"):
        root += "/api/v3"
    return f"{root}/coins/markets"


def parse_coin(entry: Mapping[str, Any]) -> CoinMarket:
    """Convert one `coins/markets` object (raises KeyError/ValueError when unusable)."""
    rank = entry.get("market_cap_rank")
    cap = entry.get("market_cap")
    price = entry.get("current_price")
    return CoinMarket(
        coingecko_id=str(entry["id"]),
        symbol=str(entry["symbol"]).upper(),
        name=str(entry.get("name") or entry["symbol"]),
        market_cap_rank=int(rank) if rank is not None else None,
        market_cap=Decimal(str(cap)) if cap is not None else None,
        current_price=float(price) if price is not None else None,
    )


def _rank_key(coin: CoinMarket) -> tuple[int, int]:
    return (0, coin.market_cap_rank) if coin.market_cap_rank is not None else (1, 0)


def index_by_symbol(coins: Iterable[CoinMarket]) -> dict[str, CoinMarket]:
    """Map upper-cased symbol → coin; on duplicates the better (lower) market-cap rank wins."""
    index: dict[str, CoinMarket] = {}
    for coin in coins:
        held = index.get(coin.symbol)
        if held is None or _rank_key(coin) < _rank_key(held):
            index[coin.symbol] = coin
    return index


class CoinGeckoClient:
    """Market-cap ranking from CoinGecko over a caller-owned aiohttp session."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        api_key: SecretStr | None = None,
        *,
        pages: int = 2,
        per_page: int = MAX_PER_PAGE,
        min_interval_s: float = 3.0,
        cache_ttl_s: float = 300.0,
        retry: BackoffPolicy = DEFAULT_RETRY,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        if pages < 1 or not 1 <= per_page <= MAX_PER_PAGE:
            raise ValueError(f"pages >= 1 and 1 <= per_page <= {MAX_PER_PAGE} are required")
        self._session = session
        self._url = markets_url(base_url)
        self._api_key = api_key
        self._pages = pages
        self._per_page = per_page
        self._limiter = SpacingLimiter(1.0 / min_interval_s, safety=1.0, clock=clock)
        self._ttl_s = cache_ttl_s
        self._retry = retry
        self._clock = clock
        self._rng = rng or random.Random()
        self._cached: tuple[float, list[CoinMarket]] | None = None
        self._lock = asyncio.Lock()
        self.requests = 0

    @property
    def limiter(self) -> SpacingLimiter:
        """The limiter spacing this client's calls (paused by a 429)."""
        return self._limiter

    def invalidate(self) -> None:
        """Forget the cached ranking so the next call fetches it again."""
        self._cached = None

    async def markets(self) -> list[CoinMarket]:
        """Return the ranking (best market cap first), from the cache while it is fresh.

        Raises:
            RateLimitedError: still throttled after the bounded retries.
            ExchangeUnavailableError: CoinGecko answered 5xx (or was unreachable) throughout.
            BadRequestError: CoinGecko refused the request (a wrong or missing key: 401/403/400).
        """
        async with self._lock:  # concurrent callers share one fetch
            if self._cached is not None and self._clock() < self._cached[0]:
                return self._cached[1]
            coins: list[CoinMarket] = []
            for page in range(1, self._pages + 1):
                rows = await self._page(page)
                coins.extend(self._parse_rows(rows))
                if len(rows) < self._per_page:
                    break
            self._cached = (self._clock() + self._ttl_s, coins)
            log.info("coingecko.markets", coins=len(coins), requests=self.requests)
            return coins

    async def coins_by_symbol(self) -> dict[str, CoinMarket]:
        """Return the ranking indexed by upper-cased symbol (see `index_by_symbol`)."""
        return index_by_symbol(await self.markets())

    def _parse_rows(self, rows: list[Any]) -> list[CoinMarket]:
        coins: list[CoinMarket] = []
        for row in rows:
            try:
                coins.append(parse_coin(row))
            except (KeyError, TypeError, ValueError, ArithmeticError) as error:
                log.warning("coingecko.coin_rejected", row=str(row)[:200], error=str(error))
        return coins

    async def _page(self, page: int) -> list[Any]:
        params = {
            "vs_currency": "usd",
            "order": "market_cap_desc",
            "per_page": str(self._per_page),
            "page": str(page),
            "sparkline": "false",
        }
        headers = {API_KEY_HEADER: self._api_key.get_secret_value()} if self._api_key else None

        async def attempt() -> list[Any]:
            await self._limiter.acquire()
            self.requests += 1
            reply = await http_get(
                self._session, self._url, params=params, headers=headers, exchange=SOURCE
            )
            return _check(reply)

        return await call_with_retries(
            attempt,
            limiter=self._limiter,
            policy=self._retry,
            rng=self._rng,
            what=f"coins/markets page {page}",
            exchange=SOURCE,
        )


def _check(reply: HttpReply) -> list[Any]:
    if reply.status == 200 and isinstance(reply.body, list):
        return reply.body
    detail = str(reply.body)[:160]
    if reply.status == 429:
        raise RateLimitedError(
            f"HTTP 429: {detail}",
            exchange=SOURCE,
            retry_after_s=reply.header_float("Retry-After"),
            status=429,
        )
    if reply.status >= 500 or reply.status == 200:
        raise ExchangeUnavailableError(f"HTTP {reply.status}: {detail}", exchange=SOURCE)
    raise BadRequestError(f"HTTP {reply.status}: {detail}", exchange=SOURCE, status=reply.status)
