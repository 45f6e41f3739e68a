"""The package's public surface is declared once and pinned here."""

from __future__ import annotations

import inspect

import livermore_exchange_core

EXPECTED = {
    "ExchangeConfig", "RateLimits", "Credentials", "resolve_exchange_config",
    "default_exchange_config", "create_adapter", "create_rest_client", "ExchangeAdapter",
    "CoinbaseAdapter", "BinanceAdapter", "RestClient", "ProductInfo", "Balance",
    "MarketDataSink", "AdapterLifecycle", "GapNotice", "CandlePipeline", "ClosedBarStage",
    "ExchangeClock",
    "SocketPolicy", "ConnectionAttemptLimiter", "Backoff", "BackoffPolicy", "RateLimiter",
    "rate_limiter_for", "StartupBackfill", "BackfillProgress", "BackfillReport",
    "BoundaryRestService", "GapRepairer", "Gap", "detect_gaps", "ReconciliationSweep",
    "SweepConfig", "MacdVParams", "MacdVState",
    "macd_v_series", "IndicatorCalculator", "AlertEvaluator", "AlertSink", "FanOutSink",
    "AlertHistoryWriter", "DiscordNotifier", "alert_stream", "ConfluenceWatcher",
    "AlertSelection", "select_alert", "AssetMap", "load_asset_map", "SymbolSourceService",
    "SourcedSymbol", "UserContext", "SymbolRefresh", "PositionSync", "LivermoreExchangeError",
    "RetryableError", "RateLimitedError", "ExchangeUnavailableError", "TransientNetworkError",
    "DataNotReadyError", "FatalError", "UnsupportedExchange", "GeoBlockedError",
    "AuthenticationError", "InvalidSymbolError", "BadRequestError",
}  # fmt: skip


def test_all_is_pinned() -> None:
    assert set(livermore_exchange_core.__all__) == EXPECTED
    assert len(livermore_exchange_core.__all__) == len(EXPECTED)  # no duplicates


def test_every_exported_name_resolves_and_is_documented() -> None:
    for name in livermore_exchange_core.__all__:
        obj = getattr(livermore_exchange_core, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert inspect.getdoc(obj), f"{name} has no docstring"


def test_retryable_and_fatal_errors_are_disjoint() -> None:
    retryable = livermore_exchange_core.RetryableError
    fatal = livermore_exchange_core.FatalError
    assert not issubclass(retryable, fatal) and not issubclass(fatal, retryable)
    assert issubclass(livermore_exchange_core.RateLimitedError, retryable)
    assert issubclass(livermore_exchange_core.UnsupportedExchange, fatal)
