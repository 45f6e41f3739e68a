"""Request models: path, query and body of every route, validated before a view runs.

The same classes feed the OpenAPI document, so what is documented is what is enforced.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from livermore_schema.control import Symbol
from livermore_schema.enums import CommandType, SymbolTier, Timeframe

ExchangeRef = Annotated[
    str, Field(min_length=1, max_length=50, pattern=r"^[a-z0-9_]+$", description="name or id")
]
EnvVarName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=100,
        pattern=r"^[A-Z_][A-Z0-9_]*$",
        description="name of an environment variable of the worker/api (never its value)",
    ),
]
Username = Annotated[str, Field(min_length=2, max_length=50, pattern=r"^[A-Za-z0-9_.\-]+$")]
Email = Annotated[str, Field(min_length=3, max_length=255, pattern=r"^[^@\s]+@[^@\s]+$")]
Id = Annotated[int, Field(ge=1, le=2**31 - 1)]
WATCHLIST_MAX = 500
"""Symbols one exchange's watchlist may hold."""

Money = Annotated[Decimal, Field(ge=0, max_digits=30, decimal_places=8)]  # NUMERIC(30, 8)
Quantity = Annotated[Decimal, Field(ge=0, max_digits=38, decimal_places=18)]


class Strict(BaseModel):
    """Base of request models: unknown fields are an error, not ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# ------------------------------------------------------------------ path


class ExchangePath(Strict):
    """`{exchange}`."""

    exchange: ExchangeRef


class SymbolPath(ExchangePath):
    """`{exchange}/…/{symbol}`."""

    symbol: Symbol


class CommandPath(ExchangePath):
    """`{exchange}/commands/{correlation_id}`."""

    correlation_id: UUID


class AccountPath(Strict):
    """`{account_id}`."""

    account_id: Id


class PositionPath(Strict):
    """`{position_id}`."""

    position_id: Id


class UserPath(Strict):
    """`{user_id}`."""

    user_id: Id


class TokenPath(Strict):
    """`{token_id}`."""

    token_id: Id


class StaticPath(Strict):
    """`{filename}` of an admin page asset."""

    filename: Annotated[str, Field(pattern=r"^[a-z0-9_\-]+\.(js|css|html)$")]


# ------------------------------------------------------------------ query


class OwnerQuery(Strict):
    """Admins may act on another user's resources with `user_id`; users only on their own."""

    user_id: Id | None = None


class PageQuery(Strict):
    """Offset paging."""

    limit: Annotated[int, Field(ge=1, le=500)] = 50
    offset: Annotated[int, Field(ge=0, le=10_000_000)] = 0


class SymbolQuery(PageQuery):
    """Symbol listing: search on symbol, base currency or name; filter by tier or activity."""

    search: Annotated[str, Field(min_length=1, max_length=50)] | None = None
    tier: SymbolTier | None = None
    active: bool | None = True


class CandleQuery(Strict):
    """Candles of one timeframe: the newest `limit`, or those with open time in [start, end] ms."""

    timeframe: Timeframe
    limit: Annotated[int, Field(ge=1, le=1000)] = 100
    start: Annotated[int, Field(ge=0)] | None = None
    end: Annotated[int, Field(ge=0)] | None = None


class IndicatorQuery(Strict):
    """One timeframe, or every runtime timeframe when omitted."""

    timeframe: Timeframe | None = None


AssetList = Annotated[
    str,
    Field(
        min_length=1,
        max_length=400,
        pattern=r"^[A-Za-z0-9_.\-]+(,[A-Za-z0-9_.\-]+)*$",
    ),
]
ASSET_DESCRIPTION = "comma-separated assets: CoinGecko ids or base currencies (bitcoin, BTC)"


MINE_DESCRIPTION = (
    "only alerts, from any exchange (and confluences), for the assets of the caller's watchlists "
    "and positions; each carries `local`: the caller's own symbols for that asset, e.g. "
    '[{"exchange": "binance", "symbol": "BTCUSDT"}]'
)


class AlertQuery(PageQuery):
    """Alert history filters; `since`/`until` are ISO 8601 and bound `triggered_at`.

    `asset` keeps alerts of those assets from any exchange; `mine=true` keeps alerts, from any
    exchange, for the assets of the caller's watchlists and positions, each with `local`: the
    caller's own symbols for that asset.
    """

    exchange: ExchangeRef | None = None
    asset: AssetList | None = Field(default=None, description=ASSET_DESCRIPTION)
    mine: bool = Field(default=False, description=MINE_DESCRIPTION)
    symbol: Symbol | None = None
    timeframe: Timeframe | None = None
    since: datetime | None = None
    until: datetime | None = None


class StreamQuery(Strict):
    """Exchanges to follow (comma-separated names or ids; all when omitted).

    `asset` and `mine` select as on alert history (a confluence passes an exchange filter when
    any of its venues is selected). `token` is for browsers, which cannot set headers on
    EventSource or WebSocket.
    """

    exchanges: Annotated[str, Field(min_length=1, max_length=400)] | None = None
    asset: AssetList | None = Field(default=None, description=ASSET_DESCRIPTION)
    mine: bool = Field(default=False, description=MINE_DESCRIPTION)
    token: Annotated[str, Field(min_length=1, max_length=200)] | None = None


# ------------------------------------------------------------------ bodies


class AccountCreate(Strict):
    """A new exchange account of the caller."""

    exchange: ExchangeRef
    display_name: Annotated[str, Field(max_length=100)] | None = None
    api_key_env_var: EnvVarName | None = None
    api_secret_env_var: EnvVarName | None = None
    is_active: bool = True
    is_default: bool = False


class AccountUpdate(Strict):
    """Fields of an account to change; omitted fields stay as they are."""

    display_name: Annotated[str, Field(max_length=100)] | None = None
    api_key_env_var: EnvVarName | None = None
    api_secret_env_var: EnvVarName | None = None
    is_active: bool | None = None
    is_default: bool | None = None


class WatchlistReplace(Strict):
    """The whole watchlist of one exchange."""

    symbols: Annotated[list[Symbol], Field(max_length=WATCHLIST_MAX)]


class WatchlistAdd(Strict):
    """One symbol to add to a watchlist."""

    symbol: Symbol


class PositionCreate(Strict):
    """A manually managed position."""

    exchange: ExchangeRef
    symbol: Symbol
    quantity: Quantity
    available_quantity: Quantity | None = None
    cost_basis: Money | None = None


class PositionUpdate(Strict):
    """Fields of a position to change."""

    quantity: Quantity | None = None
    available_quantity: Quantity | None = None
    cost_basis: Money | None = None


class CommandRequest(Strict):
    """A command for an exchange's worker; `payload` is validated per `type` (SPEC 9)."""

    type: CommandType
    payload: dict[str, Any] = Field(default_factory=dict)
    priority: Annotated[int, Field(ge=1, le=100)] = 50
    timeout_s: Annotated[float, Field(ge=0.1, le=120)] | None = None


class UserCreate(Strict):
    """A new user; the response carries their first token, shown once."""

    username: Username
    email: Email | None = None
    admin: bool = False


class TokenCreate(Strict):
    """A new token for a user."""

    name: Annotated[str, Field(min_length=1, max_length=100)] = "api"


class ChartQuery(Strict):
    """The newest `limit` bars of one timeframe for the chart page."""

    timeframe: Timeframe
    limit: Annotated[int, Field(ge=30, le=1000)] = 300


class SeriesStreamQuery(Strict):
    """One series to follow; `token` is for browsers (EventSource cannot set headers)."""

    timeframe: Timeframe
    token: Annotated[str, Field(min_length=1, max_length=200)] | None = None
