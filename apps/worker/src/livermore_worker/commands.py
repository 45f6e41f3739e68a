"""What each control command does to a worker (`WorkerControl`); `handlers()` is the dispatch dict.

Symbol commands change the running set: live (backfill, warm up, subscribe / unsubscribe) while
streaming, or only the persisted set while paused, applied at resume (a start always re-reads
the users). Added symbols use the shared pool (Tier 1 keys) unless the issuer is a user, whose
keys they then write (Tier 2). The users' watchlists, positions and accounts live in PostgreSQL
and are edited through the api, which sends `reload-settings` on every change: the worker
re-reads every served user and applies the difference — symbols added (backfilled first),
symbols dropped, and holders joining or leaving a Tier 2 symbol that stays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from livermore_exchange_core.errors import InvalidSymbolError
from livermore_schema.control import (
    AddSymbolCommand,
    BulkAddSymbolsCommand,
    ClearCacheCommand,
    Command,
    ForceBackfillCommand,
    RemoveSymbolCommand,
    SwitchModeCommand,
)
from livermore_schema.enums import (
    RUNTIME_TIMEFRAMES,
    ClearScope,
    CommandType,
    ConnectionState,
    SymbolTier,
)
from livermore_worker.control import CommandFailed, Handler
from livermore_worker.control_state import WorkerControl
from livermore_worker.lease import StreamedSymbol
from livermore_worker.wiring import StreamingSession


class WorkerCommands:
    """Carries out control commands on one worker (each under the worker's `op_lock`)."""

    def __init__(self, worker: WorkerControl) -> None:
        self._w = worker

    def handlers(self) -> dict[CommandType, Handler]:
        """Return the dispatch dict, one entry per command type."""
        table: dict[CommandType, Handler] = {
            CommandType.START: self.start,
            CommandType.STOP: self.stop,
            CommandType.PAUSE: self.pause,
            CommandType.RESUME: self.resume,
            CommandType.RELOAD_SETTINGS: self.reload_settings,
            CommandType.SWITCH_MODE: self.switch_mode,
            CommandType.ADD_SYMBOL: self.add_symbol,
            CommandType.REMOVE_SYMBOL: self.remove_symbol,
            CommandType.BULK_ADD_SYMBOLS: self.bulk_add_symbols,
            CommandType.FORCE_BACKFILL: self.force_backfill,
            CommandType.CLEAR_CACHE: self.clear_cache,
        }
        return table

    async def start(self, command: Command) -> dict[str, Any]:
        """Run the start sequence unless already started."""
        async with self._w.op_lock:
            if self._w.running.started:
                return {"status": "already_started", "state": self._w.state.value}
            return await self._w.start()

    async def stop(self, command: Command) -> dict[str, Any]:
        """Close the exchange connection and go idle."""
        async with self._w.op_lock:
            if not self._w.running.started:
                return {"status": "already_idle"}
            await self._w.persist(started=False, paused=False)
            await self._w.stop_streaming(ConnectionState.IDLE, "stopped by command")
            return {"status": "stopped"}

    async def pause(self, command: Command) -> dict[str, Any]:
        """Stop streaming, keeping the symbol set and mode."""
        async with self._w.op_lock:
            if not self._w.running.started:
                return {"status": "already_idle"}
            if self._w.running.paused:
                return {"status": "already_paused"}
            await self._w.persist(paused=True)
            await self._w.stop_streaming(ConnectionState.DISCONNECTED, "paused")
            return {"status": "paused"}

    async def resume(self, command: Command) -> dict[str, Any]:
        """Restart streaming after a pause (the backfill repairs the gap)."""
        async with self._w.op_lock:
            if not self._w.running.started:
                return {"status": "already_idle"}
            if not self._w.running.paused:
                return {"status": "already_running"}
            data = await self._w.start(self._w.running.symbols)
            return {**data, "status": "resumed"}

    async def reload_settings(self, command: Command) -> dict[str, Any]:
        """Re-read the users' positions and watchlists and apply the symbol difference."""
        async with self._w.op_lock:
            if not self._w.running.started:
                return {"status": "reloaded", "applied": "at the next start"}
            return await self.reload_symbols()

    async def reload_symbols(self) -> dict[str, Any]:
        """Apply the served users' current symbols (the caller holds `op_lock`)."""
        fresh = await self._w.resolve_symbols()
        current = {s.symbol: s for s in self._w.running.symbols}
        target = {s.symbol: s for s in fresh}
        added = [s for s in fresh if s.symbol not in current]
        removed = sorted(s for s in current if s not in target)
        joined = {
            s.symbol: new[0]
            for s in fresh
            if s.symbol in current
            and (new := [u for u in s.all_holders() if u not in current[s.symbol].all_holders()])
        }
        await self._apply(added, removed, keep=target, joined=joined)
        return {
            "status": "reloaded",
            "added": [s.symbol for s in added],
            "removed": removed,
            "holders_joined": sorted(joined),
            "symbol_count": len(self._w.running.symbols),
            "users_served": self._w.traders.users_served,
        }

    async def switch_mode(self, command: Command) -> dict[str, Any]:
        """Switch mode; while streaming, (un)subscribe only the timeframes and books that differ.

        `order_books_added` / `order_books_removed` list the symbols whose order books started or
        stopped (scalper-orderbook); stopped books have their `orderbook:` keys deleted.
        """
        assert isinstance(command, SwitchModeCommand)
        mode = command.payload.mode
        async with self._w.op_lock:
            if mode is self._w.running.mode:
                return {"status": "already_running", "mode": mode.value}
            profile = self._w.profile(mode)
            changed: dict[str, list[str]] = {
                "added": [],
                "removed": [],
                "order_books_added": [],
                "order_books_removed": [],
            }
            if self._w.session is not None:
                names = [s.symbol for s in self._w.running.symbols]
                changed = await self._w.session.switch(profile, names)
            await self._w.persist(mode=mode)
            self._w.mark_changed()
            timeframes = [tf.value for tf in profile.timeframes]
            return {"status": "switched", "mode": mode.value, "timeframes": timeframes, **changed}

    async def add_symbol(self, command: Command) -> dict[str, Any]:
        """Add one symbol (`already_exists` if present)."""
        assert isinstance(command, AddSymbolCommand)
        symbol = command.payload.symbol.strip().upper()
        async with self._w.op_lock:
            if any(s.symbol == symbol for s in self._w.running.symbols):
                return {"status": "already_exists", "symbol": symbol}
            await self._apply([self._new_symbol(symbol, command.user_id)], [])
            return {
                "status": "added",
                "symbol": symbol,
                "total_symbols": len(self._w.running.symbols),
            }

    async def bulk_add_symbols(self, command: Command) -> dict[str, Any]:
        """Add several symbols, skipping those present."""
        assert isinstance(command, BulkAddSymbolsCommand)
        wanted = list(dict.fromkeys(s.strip().upper() for s in command.payload.symbols))
        async with self._w.op_lock:
            present = {s.symbol for s in self._w.running.symbols}
            added = [self._new_symbol(s, command.user_id) for s in wanted if s not in present]
            await self._apply(added, [])
            return {
                "status": "added" if added else "already_exists",
                "added": [s.symbol for s in added],
                "skipped": [s for s in wanted if s in present],
                "total_symbols": len(self._w.running.symbols),
            }

    async def remove_symbol(self, command: Command) -> dict[str, Any]:
        """Unsubscribe a symbol and delete its keys (`not_found` if absent)."""
        assert isinstance(command, RemoveSymbolCommand)
        symbol = command.payload.symbol.strip().upper()
        async with self._w.op_lock:
            if all(s.symbol != symbol for s in self._w.running.symbols):
                return {"status": "not_found", "symbol": symbol}
            await self._apply([], [symbol])
            deleted = await self._w.clear_series(symbol)
            return {"status": "removed", "symbol": symbol, "deleted_keys": deleted}

    async def force_backfill(self, command: Command) -> dict[str, Any]:
        """Refetch a streamed symbol's newest bars over REST and re-warm its indicators."""
        assert isinstance(command, ForceBackfillCommand)
        symbol = command.payload.symbol.strip().upper()
        timeframes = command.payload.timeframes or list(RUNTIME_TIMEFRAMES)
        async with self._w.op_lock:
            session = self._w.session
            if session is None:
                raise CommandFailed("force-backfill needs a started, unpaused worker")
            if all(s.symbol != symbol for s in self._w.running.symbols):
                return {"status": "not_found", "symbol": symbol}
            written = await session.force_backfill(symbol, timeframes)
            return {
                "status": "backfilled",
                "symbol": symbol,
                "timeframes": [tf.value for tf in timeframes],
                "candles_written": written,
            }

    async def clear_cache(self, command: Command) -> dict[str, Any]:
        """Delete cached candles, indicators and tickers of the scope (SCAN, never KEYS)."""
        assert isinstance(command, ClearCacheCommand)
        payload = command.payload
        if payload.scope is ClearScope.SYMBOL and payload.symbol is None:
            raise CommandFailed("clear-cache scope 'symbol' needs a symbol")
        if payload.scope is ClearScope.TIMEFRAME and payload.timeframe is None:
            raise CommandFailed("clear-cache scope 'timeframe' needs a timeframe")
        symbol = (
            payload.symbol.upper() if payload.scope is ClearScope.SYMBOL and payload.symbol else "*"
        )
        timeframe = (
            payload.timeframe.value
            if payload.scope is ClearScope.TIMEFRAME and payload.timeframe
            else "*"
        )
        deleted = await self._w.clear_series(symbol, timeframe)
        return {"status": "cleared", "scope": payload.scope.value, "deleted_count": deleted}

    # ------------------------------------------------------------------ helpers

    def _new_symbol(self, symbol: str, issuer: int | None) -> StreamedSymbol:
        if issuer is None:
            return StreamedSymbol(symbol=symbol, manual=True)
        return StreamedSymbol(
            symbol=symbol, tier=SymbolTier.TIER_2, user_id=issuer, holders=(issuer,), manual=True
        )

    async def _apply(
        self,
        added: Sequence[StreamedSymbol],
        removed: Sequence[str],
        *,
        keep: Mapping[str, StreamedSymbol] | None = None,
        joined: Mapping[str, int] | None = None,
    ) -> None:
        """Change the running set, live when a session streams, and persist it.

        `keep` gives the new version (tier, holders) of symbols that stay; `joined` names, per
        symbol that stays, a holder whose keys are new and need a backfill.
        """
        gone = set(removed)
        kept = [
            (keep or {}).get(s.symbol, s) for s in self._w.running.symbols if s.symbol not in gone
        ]
        session = self._w.session
        if session is not None and removed:
            # Dropped from the stream before their holders go: a repair still in flight writes
            # the holders' keys, never the shared pool.
            await session.remove_symbols(removed)
        self._w.traders.apply_holders((*kept, *added))
        try:
            if session is not None and added:
                await self._add_live(session, added)
            if session is not None and joined:
                await session.backfill_holders(joined)
        except CommandFailed:
            self._w.traders.apply_holders(kept)
            raise
        finally:
            if session is not None:
                session.holders_changed()
        await self._w.persist(symbols=(*kept, *added))
        self._w.mark_changed()

    async def _add_live(self, session: StreamingSession, added: Sequence[StreamedSymbol]) -> None:
        names = [s.symbol for s in added]
        try:
            report = await session.add_symbols(names)
        except InvalidSymbolError as err:
            await session.remove_symbols(names)
            raise CommandFailed(str(err)) from err
        failed = {f.symbol for f in report.failures}
        if failed and len(failed) == len(added) and all(s.manual for s in added):
            await session.remove_symbols(list(failed))
            raise CommandFailed(f"unknown or unavailable symbol(s): {sorted(failed)}")
