"""The exchange-core error tree, named for what the caller should do.

`RetryableError` means "wait (see `retry_after_s` when set) and try again"; `FatalError` means
"retrying will not help: fix configuration, credentials or input". Every error carries the exchange
it came from so a log line or a lifecycle reason can say where it happened.
"""

from __future__ import annotations


class LivermoreExchangeError(Exception):
    """Base of every error raised by livermore_exchange_core."""

    def __init__(self, message: str, *, exchange: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.exchange = exchange

    def __str__(self) -> str:
        return f"[{self.exchange}] {self.message}" if self.exchange else self.message


# ------------------------------------------------------------------ retryable


class RetryableError(LivermoreExchangeError):
    """A transient failure: back off and try again."""

    retry_after_s: float | None = None


class RateLimitedError(RetryableError):
    """The exchange throttled us (429, 418 ban, Coinbase 401-as-throttle); wait `retry_after_s`."""

    def __init__(
        self,
        message: str,
        *,
        exchange: str | None = None,
        retry_after_s: float | None = None,
        status: int | None = None,
        banned: bool = False,
    ) -> None:
        super().__init__(message, exchange=exchange)
        self.retry_after_s = retry_after_s
        self.status = status
        self.banned = banned


class ExchangeUnavailableError(RetryableError):
    """The exchange answered 5xx or is in maintenance; the outcome of the request is unknown."""

    def __init__(self, message: str, *, exchange: str | None = None, status: int | None = None):
        super().__init__(message, exchange=exchange)
        self.status = status


class TransientNetworkError(RetryableError):
    """The request never got an answer: connection refused or reset, DNS, timeout."""


class DataNotReadyError(RetryableError):
    """The exchange has not published the requested bar yet (it lags the bar's close)."""


# ------------------------------------------------------------------ fatal


class FatalError(LivermoreExchangeError):
    """A permanent failure: retrying the same request will fail the same way."""


class UnsupportedExchange(FatalError):
    """No adapter or REST client exists for this exchange (kraken, kucoin, mexc); no fallback."""


class GeoBlockedError(FatalError):
    """The exchange refuses this location (Binance HTTP 451)."""

    def __init__(
        self,
        message: str = "binance is geo-blocked from here (HTTP 451); use binance_us",
        *,
        exchange: str | None = None,
    ) -> None:
        super().__init__(message, exchange=exchange)


class AuthenticationError(FatalError):
    """Credentials are missing, malformed or rejected for a signed call."""


class InvalidSymbolError(FatalError):
    """The exchange does not list this symbol (Coinbase 404, Binance -1121)."""

    def __init__(self, message: str, *, exchange: str | None = None, symbol: str | None = None):
        super().__init__(message, exchange=exchange)
        self.symbol = symbol


class BadRequestError(FatalError):
    """The exchange rejected the request's parameters (4xx other than the cases above)."""

    def __init__(self, message: str, *, exchange: str | None = None, status: int | None = None):
        super().__init__(message, exchange=exchange)
        self.status = status


__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "DataNotReadyError",
    "ExchangeUnavailableError",
    "FatalError",
    "GeoBlockedError",
    "InvalidSymbolError",
    "LivermoreExchangeError",
    "RateLimitedError",
    "RetryableError",
    "TransientNetworkError",
    "UnsupportedExchange",
]
