"""livermore-exchange-core: exchange-agnostic market-data and signal services.

Adapters and REST clients per exchange, rate limiting, startup backfill, the boundary REST
service, gap repair, the in-process candle pipeline and its closed-bar stage, MACD-V, alert
evaluation and symbol tiers/refresh. Subpackages (`indicators`, `alerts`, `symbols`,
`adapters`) hold the details.
"""

from livermore_exchange_core.adapters.binance.adapter import BinanceAdapter
from livermore_exchange_core.adapters.coinbase.adapter import CoinbaseAdapter
from livermore_exchange_core.alerts import (
    AlertEvaluator,
    AlertHistoryWriter,
    AlertSelection,
    AlertSink,
    ConfluenceWatcher,
    DiscordNotifier,
    FanOutSink,
    alert_stream,
    select_alert,
)
from livermore_exchange_core.backfill import BackfillProgress, BackfillReport, StartupBackfill
from livermore_exchange_core.backoff import Backoff, BackoffPolicy
from livermore_exchange_core.base import Balance, ExchangeAdapter, ProductInfo, RestClient
from livermore_exchange_core.boundary import BoundaryRestService
from livermore_exchange_core.clock import ExchangeClock
from livermore_exchange_core.config import (
    Credentials,
    ExchangeConfig,
    RateLimits,
    default_exchange_config,
    resolve_exchange_config,
)
from livermore_exchange_core.errors import (
    AuthenticationError,
    BadRequestError,
    DataNotReadyError,
    ExchangeUnavailableError,
    FatalError,
    GeoBlockedError,
    InvalidSymbolError,
    LivermoreExchangeError,
    RateLimitedError,
    RetryableError,
    TransientNetworkError,
    UnsupportedExchange,
)
from livermore_exchange_core.events import AdapterLifecycle, GapNotice, MarketDataSink
from livermore_exchange_core.factory import create_adapter, create_rest_client
from livermore_exchange_core.indicators import (
    IndicatorCalculator,
    MacdVParams,
    MacdVState,
    macd_v_series,
)
from livermore_exchange_core.pipeline import CandlePipeline
from livermore_exchange_core.ratelimit import RateLimiter, rate_limiter_for
from livermore_exchange_core.reconciliation import Gap, GapRepairer, detect_gaps
from livermore_exchange_core.stage import ClosedBarStage
from livermore_exchange_core.sweep import ReconciliationSweep, SweepConfig
from livermore_exchange_core.symbols import (
    AssetMap,
    SourcedSymbol,
    SymbolSourceService,
    UserContext,
    load_asset_map,
)
from livermore_exchange_core.symbols.positions import PositionSync
from livermore_exchange_core.symbols.refresh import SymbolRefresh
from livermore_exchange_core.websocket import ConnectionAttemptLimiter, SocketPolicy

# Grouped by role rather than sorted: the groups are the map of the package.
__all__ = [  # noqa: RUF022
    # exchanges: configuration, factory, adapters, REST
    "ExchangeConfig",
    "RateLimits",
    "Credentials",
    "resolve_exchange_config",
    "default_exchange_config",
    "create_adapter",
    "create_rest_client",
    "ExchangeAdapter",
    "CoinbaseAdapter",
    "BinanceAdapter",
    "RestClient",
    "ProductInfo",
    "Balance",
    # streaming plumbing
    "MarketDataSink",
    "AdapterLifecycle",
    "GapNotice",
    "CandlePipeline",
    "ClosedBarStage",
    "ExchangeClock",
    "SocketPolicy",
    "ConnectionAttemptLimiter",
    "Backoff",
    "BackoffPolicy",
    "RateLimiter",
    "rate_limiter_for",
    # history: backfill, boundaries, gaps, reconciliation
    "StartupBackfill",
    "BackfillProgress",
    "BackfillReport",
    "BoundaryRestService",
    "GapRepairer",
    "Gap",
    "detect_gaps",
    "ReconciliationSweep",
    "SweepConfig",
    # signals
    "MacdVParams",
    "MacdVState",
    "macd_v_series",
    "IndicatorCalculator",
    "AlertEvaluator",
    "AlertSink",
    "FanOutSink",
    "AlertHistoryWriter",
    "DiscordNotifier",
    "alert_stream",
    "ConfluenceWatcher",
    "AlertSelection",
    "select_alert",
    # symbols
    "SymbolSourceService",
    "SourcedSymbol",
    "UserContext",
    "SymbolRefresh",
    "PositionSync",
    "AssetMap",
    "load_asset_map",
    # errors (retryable vs fatal)
    "LivermoreExchangeError",
    "RetryableError",
    "RateLimitedError",
    "ExchangeUnavailableError",
    "TransientNetworkError",
    "DataNotReadyError",
    "FatalError",
    "UnsupportedExchange",
    "GeoBlockedError",
    "AuthenticationError",
    "InvalidSymbolError",
    "BadRequestError",
]
