"""`WorkerControl`: what control commands may read and do on a worker, and nothing else.

`WorkerCommands` is written against this protocol, not against `Worker`'s attributes: the
worker keeps its services, status bookkeeping and session wiring to itself, and a command
asks for what it needs (the running state, the op lock, a persisted change, a mode's profile,
clearing a series' keys). `Worker` implements it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol

from livermore_schema.enums import ConnectionState, WorkerMode
from livermore_worker.lease import RunningState, StreamedSymbol
from livermore_worker.traders import Traders
from livermore_worker.wiring import ModeProfile, StreamingSession


class WorkerControl(Protocol):
    """The operations a control command performs on its worker (see the module docstring)."""

    @property
    def op_lock(self) -> asyncio.Lock:
        """Held by every operation that changes what is streamed."""
        ...

    @property
    def running(self) -> RunningState:
        """The persisted running state (symbols, mode, started, paused)."""
        ...

    @property
    def state(self) -> ConnectionState:
        """The current connection state."""
        ...

    @property
    def traders(self) -> Traders:
        """The users the worker serves, their Tier 2 holders and position syncs."""
        ...

    @property
    def session(self) -> StreamingSession | None:
        """The streaming session while started and not paused."""
        ...

    async def start(self, symbols: Sequence[StreamedSymbol] | None = None) -> dict[str, Any]:
        """Run the start sequence."""
        ...

    async def stop_streaming(self, state: ConnectionState, reason: str) -> None:
        """Close the session and move to `state`."""
        ...

    async def persist(self, **changes: Any) -> None:
        """Update and persist the running state."""
        ...

    async def resolve_symbols(self) -> tuple[StreamedSymbol, ...]:
        """Return the symbol set the worker's users ask for now."""
        ...

    def profile(self, mode: WorkerMode) -> ModeProfile:
        """Return what `mode` streams and its alert cooldown on this worker."""
        ...

    def mark_changed(self) -> None:
        """Note a change the status must show (written before the command's response)."""
        ...

    async def clear_series(self, symbol: str = "*", timeframe: str = "*") -> int:
        """Delete this exchange's cached keys of the series matching; return how many."""
        ...
