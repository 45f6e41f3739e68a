"""Symbol sourcing: which symbols a worker streams (tiers) and the universe refresh."""

from livermore_exchange_core.symbols.source import (
    SourcedSymbol,
    SymbolSource,
    SymbolSourceService,
    UnknownUserError,
    UserContext,
    load_user_context,
    watchlist_symbols,
)

__all__ = [
    "SourcedSymbol",
    "SymbolSource",
    "SymbolSourceService",
    "UnknownUserError",
    "UserContext",
    "load_user_context",
    "watchlist_symbols",
]
