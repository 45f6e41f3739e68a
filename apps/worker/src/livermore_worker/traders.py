"""`Traders`: the users one worker serves, their Tier 2 holders and their synced positions.

A worker streams Tier 1 of its exchange plus the Tier 2 of every active user with an active
account there (SPEC section 8). `resolve` reads those users and their positions and watchlists
and returns the running set, each Tier 2 symbol once with all its holders; the holder map the
write path consults (`Tier2Holders`, shared with the caches) is rebuilt from a running set by
`apply_holders`. `sync_positions` runs `PositionSync` for every served user (accounts whose
credential env vars are present are read from the exchange; the others are API-managed) and
keeps the last outcome per user for the status and the api's account view.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

import structlog

from livermore_cache.holders import Tier2Holders
from livermore_exchange_core.symbols import SymbolSourceService, load_exchange_users
from livermore_exchange_core.symbols.positions import PositionSync, SyncOutcome
from livermore_exchange_core.symbols.source import SessionFactory
from livermore_schema.enums import SymbolTier
from livermore_schema.status import AccountSyncStatus
from livermore_worker.lease import StreamedSymbol

log = structlog.get_logger(__name__)


class Traders:
    """Resolves the served users' symbols and syncs their positions (see the module docstring)."""

    def __init__(
        self,
        sessions: SessionFactory,
        exchange_id: int,
        source: SymbolSourceService,
        holders: Tier2Holders,
        *,
        position_sync: PositionSync | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._sessions = sessions
        self._exchange_id = exchange_id
        self._source = source
        self.holders = holders
        self._sync = position_sync
        self._environ: Mapping[str, str] = environ if environ is not None else {}
        self.users_served = 0
        self.sync_status: dict[int, AccountSyncStatus] = {}

    async def resolve(self) -> tuple[StreamedSymbol, ...]:
        """Return Tier 1 + every served user's Tier 2, each symbol once with its holders."""
        users = await load_exchange_users(self._sessions, self._exchange_id)
        self.users_served = len(users)
        merged = await self._source.merged(self._exchange_id, users)
        return tuple(
            StreamedSymbol(
                symbol=s.symbol,
                tier=s.tier,
                user_id=s.user_id if s.tier is SymbolTier.TIER_2 else None,
                holders=s.holders if s.tier is SymbolTier.TIER_2 else (),
            )
            for s in merged
        )

    def apply_holders(self, symbols: Iterable[StreamedSymbol]) -> None:
        """Make the shared holder map match a running set."""
        self.holders.replace(
            {s.symbol: s.all_holders() for s in symbols if s.tier is SymbolTier.TIER_2}
        )

    async def sync_positions(self) -> int:
        """Sync every served user's positions; return how many positions were added or removed.

        A failure (bad key, 401, 418, an unreachable exchange) is recorded for that user and
        never raised: the worker streams on with the positions it has.
        """
        if self._sync is None:
            return 0
        changed = 0
        for user in await load_exchange_users(self._sessions, self._exchange_id):
            try:
                report = await self._sync.sync(user.user_id, self._exchange_id, self._environ)
            except Exception as error:  # never fatal: reported on status instead
                log.warning("positions.sync_error", user_id=user.user_id, error=repr(error))
                outcome, message, held = SyncOutcome.FAILED.value, str(error) or repr(error), 0
            else:
                changed += report.added + report.removed
                outcome, message = report.outcome.value, report.message
                held = len(report.valuation.held)
            self.sync_status[user.user_id] = AccountSyncStatus(
                user_id=user.user_id,
                outcome=outcome,
                message=message,
                synced_at=datetime.now(UTC),
                positions=held,
            )
        return changed
