"""Binance and Binance US (same protocol, `.us` hosts): REST client, streaming adapter, parsing.

Modules: `urls` (every endpoint), `parsing` (wire → domain), `rest` (`BinanceRestClient`),
`connections` (per-connection state: Binance splits streams over several sockets).
Public market data needs no signing; the one signed call (balances) is python-binance's, in
`livermore_exchange_core.accounts`, so neither venue has an `auth` module.
"""
