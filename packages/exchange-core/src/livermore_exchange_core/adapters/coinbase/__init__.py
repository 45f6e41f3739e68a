"""Coinbase Advanced Trade: REST client, streaming adapter and wire parsing.

Modules: `urls` (every endpoint), `auth` (CDP JWTs via coinbase-advanced-py), `parsing` (wire →
domain), `rest` (`CoinbaseRestClient`). Coinbase has no request-weight header, so unlike Binance
there is no weight bookkeeping here; its WebSocket only serves 5m candles, which is why the
boundary REST service exists for 15m and up. `minute_bars` (1m from trades) and `level2` (local
order books from snapshot + updates) exist only here: Binance streams 1m klines and sends partial
books whole.
"""
