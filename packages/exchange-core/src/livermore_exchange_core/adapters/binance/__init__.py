"""Binance and Binance US (same protocol, `.us` hosts): REST client, streaming adapter, parsing.

Modules: `urls` (every endpoint), `parsing` (wire → domain), `rest` (`BinanceRestClient`).
Public market data needs no signing; the HMAC signing of account calls lives in `rest`, so there
is no separate `auth` module as Coinbase has.
"""
