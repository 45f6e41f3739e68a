"""`Refusals`: symbols an exchange refused to subscribe, found without failing the others.

Both venues refuse a subscribe request *whole* when one symbol in it is unknown (Coinbase sends
an error frame "Failed to subscribe" whose reason names the product; Binance answers the request
id with an error object that names nothing). An adapter hands the refused request's symbols to
`narrow`: symbols the reason names are rejected at once and the rest are retried together; when
the reason names none, each symbol is retried on its own, and a request of one symbol that is
refused rejects that symbol. The other symbols stream; the rejected ones are reported
(`rejected`, symbol -> reason) until they are subscribed again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import structlog

log = structlog.get_logger(__name__)


class Refusals:
    """The rejected symbols of one adapter and the retries that isolate them."""

    def __init__(self, exchange: str) -> None:
        self.rejected: dict[str, str] = {}
        self._log = log.bind(exchange=exchange)

    def forgive(self, symbols: Iterable[str]) -> None:
        """Forget earlier refusals of `symbols` (they are being subscribed again)."""
        for symbol in symbols:
            self.rejected.pop(symbol, None)

    def narrow(self, symbols: Sequence[str], reason: str) -> list[list[str]]:
        """Record what a refusal of a request for `symbols` proves; return the retries to send."""
        unique = list(dict.fromkeys(symbols))
        named = [s for s in unique if re.search(rf"(?<![\w-]){re.escape(s)}(?![\w-])", reason)]
        if len(unique) == 1:
            named = unique
        for symbol in named:
            self._log.warning("adapter.symbol_rejected", symbol=symbol, reason=reason)
            self.rejected[symbol] = reason
        rest = [s for s in unique if s not in named]
        if not rest:
            return []
        return [rest] if named else [[s] for s in rest]
