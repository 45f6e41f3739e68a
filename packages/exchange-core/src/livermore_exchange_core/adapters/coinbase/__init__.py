"""Coinbase Advanced Trade: REST client, streaming adapter and wire parsing.

Modules: `urls` (every endpoint), `parsing` (wire → domain), `rest` (`CoinbaseRestClient`); the
signed accounts call (CDP JWTs) is coinbase-advanced-py's, in `livermore_exchange_core.accounts`.
Coinbase has no request-weight header, so unlike Binance there is no weight bookkeeping here;
its WebSocket only serves 5m candles, which is why the boundary REST service exists for 15m and
up. `minute_bars` (1m from trades) and `level2` (local
order books from snapshot + updates) exist only here: Binance streams 1m klines and sends partial
books whole.
"""
