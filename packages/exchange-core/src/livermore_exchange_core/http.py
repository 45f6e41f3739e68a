"""REST plumbing shared by the venue clients: one GET, and the retry loop around it.

Each venue maps its own status codes and error bodies onto the error tree (`classify`); this
module only knows that a `RateLimitedError` pauses the *shared* limiter (every caller in the
process waits, not just this one), that other `RetryableError`s back off locally, and that a
`FatalError` is raised at once.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import structlog

from livermore_exchange_core.backoff import Backoff, BackoffPolicy
from livermore_exchange_core.errors import RateLimitedError, RetryableError, TransientNetworkError
from livermore_exchange_core.ratelimit import RateLimiter
from livermore_exchange_core.telemetry import THROTTLED_STATUSES, traffic

log = structlog.get_logger(__name__)

T = TypeVar("T")

DEFAULT_RETRY = BackoffPolicy(base_s=0.5, factor=2.0, cap_s=20.0, jitter=0.5, max_attempts=6)
"""REST retries: about 40 s of patience in total before a retryable error reaches the caller."""

MAX_RETRY_AFTER_S = 180.0
"""A longer `Retry-After` (a multi-minute 418 ban) is honoured by the limiter but not waited for
inside one call: the caller gets the `RateLimitedError` and decides."""


@dataclass(frozen=True, slots=True)
class HttpReply:
    """A finished HTTP exchange: status, headers and the body (parsed JSON, else text).

    Header names are lowercased: HTTP names are case-insensitive and HTTP/2 servers (Binance
    behind its CDN) send them in lower case, so an exact-case lookup would miss them.
    """

    status: int
    headers: Mapping[str, str]
    body: Any
    url: str

    def header_float(self, name: str) -> float | None:
        """Return a numeric header (`Retry-After`, `X-MBX-USED-WEIGHT-1M`), if present."""
        raw = self.headers.get(name.lower())
        try:
            return float(raw) if raw is not None else None
        except ValueError:
            return None


async def http_get(
    session: aiohttp.ClientSession,
    url: str,
    *,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    exchange: str,
) -> HttpReply:
    """GET `url` and return the reply whatever its status; network failures become retryable."""
    counts = traffic(exchange)
    try:
        async with session.get(url, params=params, headers=headers) as response:
            text = await response.text()
            try:
                body: Any = json.loads(text) if text else None
            except ValueError:
                body = text
            headers = {name.lower(): value for name, value in response.headers.items()}
            counts.rest_requests += 1
            if response.status in THROTTLED_STATUSES:
                counts.rest_throttled += 1
            return HttpReply(response.status, headers, body, str(response.url))
    except (aiohttp.ClientError, TimeoutError) as error:
        raise TransientNetworkError(
            f"GET {url} failed: {type(error).__name__}: {error}", exchange=exchange
        ) from error


async def call_with_retries(
    attempt: Callable[[], Awaitable[T]],
    *,
    limiter: RateLimiter,
    policy: BackoffPolicy = DEFAULT_RETRY,
    rng: random.Random | None = None,
    what: str = "request",
    exchange: str,
) -> T:
    """Run `attempt` (which acquires the limiter itself) until it succeeds or retries run out.

    Raises:
        FatalError: at once.
        RetryableError: the last one, once `policy.max_attempts` tries have failed.
    """
    backoff = Backoff(policy, rng or random.Random())
    while True:
        try:
            return await attempt()
        except RateLimitedError as error:
            delay = error.retry_after_s if error.retry_after_s is not None else backoff.next_delay()
            limiter.pause(delay)
            log.warning(
                "rest.rate_limited",
                exchange=exchange,
                what=what,
                status=error.status,
                retry_after_s=round(delay, 3),
            )
            if backoff.exhausted() or delay > MAX_RETRY_AFTER_S:
                raise
            if error.retry_after_s is not None:
                backoff.attempt += 1
        except RetryableError as error:
            if backoff.exhausted():
                raise
            delay = backoff.next_delay()
            log.warning("rest.retry", exchange=exchange, what=what, error=str(error), delay_s=delay)
            await asyncio.sleep(delay)
