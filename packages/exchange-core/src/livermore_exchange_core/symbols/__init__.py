"""Symbol sourcing: which symbols a worker streams (tiers) and the universe refresh."""

from livermore_exchange_core.symbols.assets import (
    AssetMap,
    AssetRef,
    ListedSymbol,
    canonical_asset,
    load_asset_map,
    split_symbol,
)
from livermore_exchange_core.symbols.source import (
    SourcedSymbol,
    SymbolSource,
    SymbolSourceService,
    UnknownUserError,
    UserContext,
    load_exchange_users,
    load_user_context,
    watchlist_symbols,
)

__all__ = [
    "AssetMap",
    "AssetRef",
    "ListedSymbol",
    "SourcedSymbol",
    "SymbolSource",
    "SymbolSourceService",
    "UnknownUserError",
    "UserContext",
    "canonical_asset",
    "load_asset_map",
    "load_exchange_users",
    "load_user_context",
    "split_symbol",
    "watchlist_symbols",
]
