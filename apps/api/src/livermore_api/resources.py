"""Response models: what each route returns, serialised with `model_dump(mode="json")`."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, Literal, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from livermore_schema.alerts import LocalSymbol
from livermore_schema.enums import AlertDirection, ConnectionState, SymbolTier, UserRole
from livermore_schema.indicators import IndicatorValue
from livermore_schema.market import Candle
from livermore_schema.status import AccountSyncStatus, ConnectionStatus

T = TypeVar("T")


class Resource(BaseModel):
    """Base of response models."""

    model_config = ConfigDict(frozen=True)


class Page(Resource, Generic[T]):
    """One page of a listing."""

    items: list[T]
    total: int
    limit: int
    offset: int


class Items(Resource, Generic[T]):
    """A complete (unpaged) listing."""

    items: list[T]


class WorkerState(Resource):
    """A worker as the API sees it: the published status, judged for liveness now.

    `liveness` is `alive`, `dead` (a status whose heartbeat is stale) or `absent` (no status:
    no worker has run, or its status expired); `state` is the last state it published.
    """

    alive: bool
    liveness: Literal["alive", "dead", "absent"]
    state: ConnectionState | None
    status: ConnectionStatus | None


class ExchangeOut(Resource):
    """An exchange with its worker's live state."""

    id: int
    name: str
    display_name: str
    is_active: bool
    supported_timeframes: list[str]
    streaming: bool
    """Whether a worker can stream this exchange (false: no streaming client exists yet)."""
    worker: WorkerState


class SymbolOut(Resource):
    """A symbol of an exchange, with its tier for the caller (null: not streamed for them)."""

    id: int
    exchange_id: int
    symbol: str
    base_currency: str
    quote_currency: str
    display_name: str | None
    volume_24h: Decimal | None
    volume_rank: int | None
    global_rank: int | None
    market_cap: Decimal | None
    is_active: bool
    tier: SymbolTier | None


class RefreshOut(Resource):
    """The outcome of a symbol refresh of one exchange (CoinGecko failing is not fatal)."""

    exchange: str
    status: str
    listed: int
    added: int
    updated: int
    deactivated: int
    error: str | None
    coingecko_error: str | None


class AccountOut(Resource):
    """An exchange account; env var names are reported with their presence, never their values."""

    id: int
    user_id: int
    exchange_id: int
    exchange: str
    display_name: str | None
    api_key_env_var: str | None
    api_key_env_var_present: bool | None
    api_secret_env_var: str | None
    api_secret_env_var_present: bool | None
    is_active: bool
    is_default: bool
    last_connected_at: datetime | None
    created_at: datetime
    updated_at: datetime
    position_sync: AccountSyncStatus | None = None
    """The exchange worker's last position sync of this account (null: none reported)."""


class PositionOut(Resource):
    """A position."""

    id: int
    user_id: int
    exchange_id: int
    exchange: str
    symbol: str
    quantity: Decimal
    available_quantity: Decimal | None
    cost_basis: Decimal | None
    last_synced_at: datetime | None
    updated_at: datetime


class WatchlistOut(Resource):
    """Watchlist symbols keyed by exchange name."""

    user_id: int
    watchlist: dict[str, list[str]]


class CandlesOut(Resource):
    """Candles of one series, oldest first."""

    exchange_id: int
    symbol: str
    timeframe: str
    items: list[Candle]


class IndicatorsOut(Resource):
    """MACD-V readings by timeframe (null where nothing is cached)."""

    exchange_id: int
    symbol: str
    type: str
    timeframes: dict[str, IndicatorValue | None]


class MacdVPointOut(Resource):
    """MACD-V, its signal and histogram at one bar (null until seeded)."""

    open_time: int
    macd_v: float | None
    signal: float | None
    histogram: float | None


class ChartAlertOut(Resource):
    """A stored alert of the charted series, placed at the bar that fired it."""

    uid: UUID
    bar_open_time: int
    trigger_label: str
    trigger_value: Decimal | None
    price: Decimal
    triggered_at: datetime


class ChartOut(Resource):
    """What the chart page draws: candles, MACD-V from them, and the series' stored alerts."""

    exchange_id: int
    exchange: str
    symbol: str
    timeframe: str
    candles: list[Candle]
    macdv: list[MacdVPointOut]
    alerts: list[ChartAlertOut]


class CommandAccepted(Resource):
    """A long-running command was queued; fetch its outcome at `result_url`."""

    correlation_id: UUID
    type: str
    exchange: str
    result_url: str


class AlertOut(Resource):
    """A stored alert."""

    id: int
    uid: UUID
    exchange_id: int
    exchange: str
    symbol: str
    timeframe: str
    alert_type: str
    trigger_label: str
    trigger_value: Decimal | None
    price: Decimal
    triggered_at: datetime
    direction: AlertDirection | None
    """From `details`; None only for rows stored before alerts carried one."""
    delayed: bool
    details: dict[str, Any] | None
    notification_sent: bool
    asset: str | None = Field(
        default=None, description="canonical asset: CoinGecko id, else the upper-case base"
    )
    quote: str | None = Field(default=None, description="quote currency of `symbol`")
    local: list[LocalSymbol] | None = Field(
        default=None, description="with `mine=true`: the caller's own symbols for `asset`"
    )


class UserOut(Resource):
    """A user."""

    id: int
    username: str
    email: str
    role: UserRole
    is_active: bool
    created_at: datetime


class MeOut(UserOut):
    """The caller, with the exchanges they may command."""

    token_id: int
    commandable_exchanges: list[str]


class TokenOut(Resource):
    """A token's metadata (never the token or its hash)."""

    id: int
    user_id: int
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class IssuedTokenOut(Resource):
    """A new token: `token` is shown here once and cannot be retrieved again."""

    token_id: int
    user_id: int
    token: str


class UserCreated(Resource):
    """A new user and their first token."""

    user: UserOut
    token: IssuedTokenOut


class HealthOut(Resource):
    """Liveness of PostgreSQL, Redis and each exchange's worker, and the api's version."""

    status: str
    version: str
    postgres: bool
    redis: bool
    workers: dict[str, WorkerState]


class PublicWorkerState(Resource):
    """What anyone may know of a worker: alive or not, and its last state."""

    alive: bool
    state: ConnectionState | None


class PublicHealthOut(Resource):
    """`/health` without a token: the stores and each worker's liveness, nothing more."""

    status: str
    version: str
    postgres: bool
    redis: bool
    workers: dict[str, PublicWorkerState]


class ErrorBody(Resource):
    """Inside the error envelope."""

    code: str
    message: str
    details: Any | None


class ErrorOut(Resource):
    """Every error response."""

    error: ErrorBody
