"""Account balances through the exchanges' own SDKs: python-binance and coinbase-advanced-py.

Signed account calls are what the SDKs are for: they own the signing (Binance HMAC with the
server-time offset `AsyncClient.create()` measures; Coinbase CDP JWTs) and the account wire
shapes. Both are pointed at the configured REST URL, so the simulator serves them in tests
(exchange-protocols B4):

- python-binance: a subclass whose `API_URL` is `{rest_url}/api`; `create()` pings and reads the
  server time, then `get_account()` is one signed call with the widest `recvWindow` (60 s), so
  an accelerated simulator's clock cannot drift past it between the two.
- coinbase-advanced-py: `RESTClient` is synchronous (`requests`), so every page runs in a worker
  thread (`asyncio.to_thread`), never on the event loop. It hard-codes `https://`; for a plain
  `http://` REST URL (a local endpoint such as the simulator) its session rewrites the scheme.

The SDKs are imported when an account is first read, not with this module: a worker process
would otherwise pay for them at every start (they cost a noticeable part of its import time).

SDK failures become our error tree: 401 / invalid key -> `AuthenticationError`, 418 / 429 ->
`RateLimitedError`, anything else (5xx, network) -> `ExchangeUnavailableError`.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

from livermore_exchange_core.adapters.binance.parsing import parse_account_balances
from livermore_exchange_core.adapters.coinbase.parsing import parse_accounts_response
from livermore_exchange_core.base import Balance
from livermore_exchange_core.config import Credentials, ExchangeConfig
from livermore_exchange_core.errors import (
    AuthenticationError,
    ExchangeUnavailableError,
    LivermoreExchangeError,
    RateLimitedError,
    UnsupportedExchange,
)
from livermore_schema.enums import ExchangeName

_RECV_WINDOW_MS = 60_000
_PAGE = 250


async def fetch_balances(config: ExchangeConfig, credentials: Credentials) -> list[Balance]:
    """Return the account's non-zero balances, read with the exchange's SDK.

    Raises:
        AuthenticationError: the key is unknown or the signature is refused (401).
        RateLimitedError: the exchange throttled or banned us (429 / 418).
        ExchangeUnavailableError: any other failure (5xx, network).
        UnsupportedExchange: kraken, kucoin, mexc.
    """
    match config.name:
        case ExchangeName.BINANCE | ExchangeName.BINANCE_US:
            return await _binance_balances(config, credentials)
        case ExchangeName.COINBASE:
            return await asyncio.to_thread(_coinbase_balances, config, credentials)
        case _:
            raise UnsupportedExchange(f"no account client for {config.name.value}")


async def _binance_balances(config: ExchangeConfig, credentials: Credentials) -> list[Balance]:
    from binance import AsyncClient
    from binance.exceptions import BinanceAPIException, BinanceRequestException

    exchange = config.name.value

    class _Client(AsyncClient):  # type: ignore[misc]  # the SDK is untyped
        API_URL = f"{config.rest_url.rstrip('/')}/api"

    client: Any = None
    try:
        client = await _Client.create(
            api_key=credentials.api_key, api_secret=credentials.api_secret.get_secret_value()
        )
        account = await client.get_account(recvWindow=_RECV_WINDOW_MS)
    except BinanceAPIException as error:
        raise _from_status(error.status_code, f"{error.code}: {error.message}", exchange) from None
    except (BinanceRequestException, OSError, TimeoutError) as error:
        raise ExchangeUnavailableError(f"account call failed: {error}", exchange=exchange) from None
    finally:
        if client is not None:
            await client.close_connection()
    return parse_account_balances(account)


def _https_to_http() -> Any:
    """Return a requests adapter sending the SDK's hard-coded `https://` as `http://`."""
    from requests.adapters import HTTPAdapter

    class _HttpsToHttp(HTTPAdapter):
        def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
            request.url = request.url.replace("https://", "http://", 1)
            return super().send(request, *args, **kwargs)

    return _HttpsToHttp()


def _coinbase_balances(config: ExchangeConfig, credentials: Credentials) -> list[Balance]:
    import requests
    from coinbase.rest import RESTClient

    url = urlsplit(config.rest_url)
    base_url = url.netloc + url.path.rstrip("/")
    client = RESTClient(
        api_key=credentials.api_key,
        api_secret=credentials.api_secret.get_secret_value(),
        base_url=base_url,
    )
    if url.scheme == "http":
        client.session.trust_env = False
        client.session.mount(f"https://{url.netloc}", _https_to_http())
    balances: list[Balance] = []
    cursor: str | None = None
    try:
        while True:
            page = client.get_accounts(limit=_PAGE, cursor=cursor)
            found, cursor = parse_accounts_response(page.to_dict())
            balances.extend(found)
            if cursor is None:
                return balances
    except requests.HTTPError as error:
        status = error.response.status_code if error.response is not None else 0
        raise _from_status(status, str(error), "coinbase") from None
    except requests.RequestException as error:
        raise ExchangeUnavailableError(
            f"accounts call failed: {error}", exchange="coinbase"
        ) from None
    except LivermoreExchangeError:
        raise
    except Exception as error:  # the SDK wraps every key problem (bad PEM) in a bare Exception
        raise AuthenticationError(
            f"cannot sign with this key: {error}", exchange="coinbase"
        ) from None
    finally:
        client.session.close()


def _from_status(status: int, message: str, exchange: str) -> LivermoreExchangeError:
    if status in (401, 403):
        return AuthenticationError(f"credentials refused ({status}): {message}", exchange=exchange)
    if status in (418, 429):
        return RateLimitedError(
            f"throttled ({status}): {message}",
            exchange=exchange,
            status=status,
            banned=status == 418,
        )
    return ExchangeUnavailableError(f"account call failed ({status}): {message}", exchange=exchange)
