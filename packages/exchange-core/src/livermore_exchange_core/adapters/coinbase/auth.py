"""Coinbase CDP request signing: a fresh ES256/EdDSA JWT per request via coinbase-advanced-py.

The SDK's `jwt_generator.build_rest_jwt` does the signing (key loading, `kid`, `nonce`, 120 s
expiry); we only build the `uri` claim ourselves, because the SDK's `format_jwt_uri` hard-codes
`api.coinbase.com` and so cannot sign for a simulator or a proxy host.
"""

from __future__ import annotations

from coinbase import jwt_generator

from livermore_exchange_core.adapters.coinbase.urls import jwt_target
from livermore_exchange_core.config import Credentials
from livermore_exchange_core.errors import AuthenticationError


def rest_jwt(credentials: Credentials, method: str, rest_url: str, path: str) -> str:
    """Return a bearer JWT for one REST request (`path` without the query string).

    Raises:
        AuthenticationError: the secret is not a usable EC/Ed25519 private key.
    """
    uri = f"{method.upper()} {jwt_target(rest_url, path)}"
    try:
        token: str = jwt_generator.build_rest_jwt(
            uri, credentials.api_key, credentials.api_secret.get_secret_value()
        )
    except Exception as error:  # the SDK wraps every key problem in a bare Exception
        raise AuthenticationError(
            "Coinbase API secret is not a valid private key", exchange="coinbase"
        ) from error
    return token


def ws_jwt(credentials: Credentials) -> str:
    """Return a JWT for a WebSocket subscribe message (no `uri` claim)."""
    try:
        token: str = jwt_generator.build_ws_jwt(
            credentials.api_key, credentials.api_secret.get_secret_value()
        )
    except Exception as error:  # the SDK wraps every key problem in a bare Exception
        raise AuthenticationError(
            "Coinbase API secret is not a valid private key", exchange="coinbase"
        ) from error
    return token
