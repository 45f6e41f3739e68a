"""`BaseRestClient`: the plumbing every venue's REST client shares.

Session ownership (a client creates its aiohttp session only when none is passed in, and closes only
what it created), the process-wide rate limiter of its exchange, the exchange-time clock fed by the
venue's `/time` endpoint, and a request counter. Venue clients add their endpoints and parsing.
"""

from __future__ import annotations

import abc
import random

import aiohttp
import structlog

from livermore_exchange_core.config import Credentials, ExchangeConfig
from livermore_exchange_core.ratelimit import RateLimiter, rate_limiter_for
from livermore_exchange_core.servertime import ServerClock

_TIMEOUT = aiohttp.ClientTimeout(total=20)


class BaseRestClient(abc.ABC):
    """Shared state and lifecycle of the venue REST clients."""

    def __init__(
        self,
        config: ExchangeConfig,
        credentials: Credentials | None = None,
        *,
        session: aiohttp.ClientSession | None = None,
        limiter: RateLimiter | None = None,
        clock_rate: float = 1.0,
        rng: random.Random | None = None,
    ) -> None:
        self._config = config
        self._credentials = credentials
        self._session = session
        self._owns_session = session is None
        self._limiter = limiter or rate_limiter_for(config.name, config.limits)
        self._rng = rng or random.Random()
        self._name = config.name.value
        self._log = structlog.get_logger(type(self).__module__).bind(exchange=self._name)
        self.clock = ServerClock(self._fetch_server_time, rate=clock_rate)
        self.requests = 0

    @property
    def exchange_id(self) -> int:
        """The `exchanges.id` stamped on every candle."""
        return self._config.exchange_id

    @property
    def limiter(self) -> RateLimiter:
        """The shared limiter every request of this client goes through."""
        return self._limiter

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=_TIMEOUT)
        return self._session

    async def aclose(self) -> None:
        """Close the HTTP session if this client created it."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def server_time_ms(self) -> int:
        """Return the exchange's clock (epoch ms), fetched now (and re-anchoring `clock`)."""
        return await self.clock.sync()

    @abc.abstractmethod
    async def _fetch_server_time(self) -> int:
        """Ask the venue for its clock (epoch ms); feeds `self.clock`."""
