from __future__ import annotations

import inspect
from types import ModuleType

import livermore_schema

EXPECTED = {
    # messages
    "AlertEvent", "TimeframeContext", "ConfluenceVenue", "LocalSymbol",
    "Candle", "Ticker", "OrderBookLevel", "OrderBookTop",
    "IndicatorValue", "MacdVValues", "ConnectionStatus", "LifecycleEvent", "StartupProgress",
    "COMMAND_ADAPTER", "COMMAND_TTL", "Command", "CommandResponse", "parse_command",
    "AddSymbolCommand", "BulkAddSymbolsCommand", "ClearCacheCommand", "ForceBackfillCommand",
    "PauseCommand", "ReloadSettingsCommand", "RemoveSymbolCommand", "ResumeCommand",
    "StartCommand", "StopCommand", "SwitchModeCommand",
    # enums
    "RUNTIME_TIMEFRAMES", "STREAMING_EXCHANGES", "AlertDirection", "AlertType", "Bias",
    "CandleSource", "ClearScope", "CommandType", "ConnectionState", "ExchangeName",
    "IndicatorType", "Liquidity", "ResponseStatus", "Stage", "StartupPhase", "SymbolTier",
    "Timeframe", "UserRole", "WorkerMode", "WorkerRole",
    # timeframes
    "bar_open_times", "close_time_ms", "duration_ms", "floor_to_boundary", "is_boundary",
    # settings and logging
    "ApiSettings", "CacheSettings", "DatabaseSettings", "EndpointSettings", "LogSettings",
    "RedisSettings", "WorkerSettings", "configure_logging",
    # tables
    "DEFAULT_USER_SETTINGS", "AlertHistory", "ApiToken", "Exchange", "ExchangeSymbol",
    "Position", "User", "UserExchange",
    # database
    "EXCHANGE_SEEDS", "ExchangeSeed", "MigrationState", "async_session_factory",
    "check_connection", "create_async_engine", "create_engine", "ensure_database",
    "head_revision", "migration_state", "seed_exchanges", "upgrade",
    # errors
    "DatabaseError", "DatabaseMissingError", "DatabaseUnavailableError", "SeedConflictError",
}  # fmt: skip


def test_all_is_pinned() -> None:
    assert len(livermore_schema.__all__) == len(set(livermore_schema.__all__))
    assert set(livermore_schema.__all__) == EXPECTED


def test_all_imports_are_exported() -> None:
    public = {
        name
        for name, value in vars(livermore_schema).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
    }
    assert public == set(livermore_schema.__all__)


def test_every_export_resolves_and_is_documented() -> None:
    undocumented = [
        name
        for name in livermore_schema.__all__
        if (inspect.isclass(value := getattr(livermore_schema, name)) or inspect.isfunction(value))
        and not (value.__doc__ or "").strip()
    ]
    assert undocumented == []
