"""Every Binance / Binance US spot REST endpoint, built from the configured base URL.

Reference: https://github.com/binance/binance-spot-api-docs/blob/master/rest-api.md. Binance US
serves the same paths on `https://api.binance.us`. The WebSocket URL is the config's `ws_url`.
"""

from __future__ import annotations

API_PREFIX = "/api/v3"


def _url(rest_url: str, path: str) -> str:
    return f"{rest_url.rstrip('/')}{API_PREFIX}/{path}"


def time_url(rest_url: str) -> str:
    """`GET /api/v3/time` (weight 1)."""
    return _url(rest_url, "time")


def exchange_info_url(rest_url: str) -> str:
    """`GET /api/v3/exchangeInfo` (weight 20): rate limits and symbols."""
    return _url(rest_url, "exchangeInfo")


def klines_url(rest_url: str) -> str:
    """`GET /api/v3/klines` (weight 2): ascending rows, the open bar included."""
    return _url(rest_url, "klines")


def ticker_24hr_url(rest_url: str) -> str:
    """`GET /api/v3/ticker/24hr` (weight 80 for every symbol): 24h `quoteVolume`."""
    return _url(rest_url, "ticker/24hr")


def account_url(rest_url: str) -> str:
    """`GET /api/v3/account` (SIGNED, weight 20): balances."""
    return _url(rest_url, "account")


WEIGHTS: dict[str, int] = {
    "time": 1,
    "exchangeInfo": 20,
    "klines": 2,
    "ticker/24hr": 80,
    "account": 20,
}
"""Request weight of each endpoint we call (the all-symbols form of ticker/24hr)."""
