"""The seeded fault plan of a chaos soak: which fault, on which venue, with which parameters.

The short soak draws every kind once, in a seeded order; the long one draws `rounds` of them. Each
fault waits a seeded gap (simulated minutes) after the previous one ended, so faults never overlap
by accident; the ones meant to combine (a WebSocket drop inside a REST outage, a kill -9 while a
repair's REST request hangs) are one fault kind each.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import StrEnum

from livermore_exchange_sim.market import Venue


class Kind(StrEnum):
    """Fault kinds the soak injects."""

    WS_DROP = "ws_drop"
    """TCP abort of every WebSocket of the venue."""
    WS_CLOSE = "ws_close"
    """A close frame (1011 or 1001) on every WebSocket of the venue."""
    STALL = "stall"
    """Sockets open but silent for some simulated minutes, then a drop."""
    REST_OUTAGE = "rest_outage"
    """REST answers 503 for longer than the old repair retry budget, with a WS drop inside it."""
    LATE_TRADES = "late_trades"
    """Coinbase trades held back, then a drop before they were sent (lost from the stream)."""
    KILL_ACTIVE = "kill_active"
    """kill -9 of the active worker while a repair's REST request hangs; the standby takes over."""
    REDIS_RESTART = "redis_restart"
    """kill -9 of redis-server (AOF, fsync always), down for a few seconds, started again."""


ALL_KINDS: tuple[Kind, ...] = tuple(Kind)


@dataclass(frozen=True, slots=True)
class Fault:
    """One planned fault."""

    kind: Kind
    venue: Venue
    gap_sim_s: float
    """Simulated seconds to wait after the previous fault ended."""
    params: dict[str, float] = field(default_factory=dict)


def make_plan(
    seed: int,
    *,
    rounds: int,
    standby_venue: Venue,
    venues: tuple[Venue, ...] = (Venue.COINBASE, Venue.BINANCE),
    outage_wall_s: float = 30.0,
) -> list[Fault]:
    """Return `rounds` x every kind, each round in a seeded order with seeded parameters."""
    rng = random.Random(seed)
    plan: list[Fault] = []
    for _ in range(rounds):
        kinds = list(ALL_KINDS)
        rng.shuffle(kinds)
        for kind in kinds:
            plan.append(_fault(rng, kind, venues, standby_venue, outage_wall_s))
    return plan


def _fault(
    rng: random.Random,
    kind: Kind,
    venues: tuple[Venue, ...],
    standby_venue: Venue,
    outage_wall_s: float,
) -> Fault:
    gap = rng.uniform(120.0, 300.0)
    venue = rng.choice(venues)
    params: dict[str, float] = {}
    if kind is Kind.WS_CLOSE:
        params["code"] = rng.choice((1011.0, 1001.0))
    elif kind is Kind.STALL:
        params["sim_s"] = rng.uniform(90.0, 240.0)
    elif kind is Kind.REST_OUTAGE:
        params["wall_s"] = outage_wall_s * rng.uniform(1.0, 1.3)
    elif kind is Kind.LATE_TRADES:
        venue = Venue.COINBASE
        params["lag_sim_s"] = rng.uniform(20.0, 45.0)
    elif kind is Kind.KILL_ACTIVE:
        venue = standby_venue
        params["stall_sim_s"] = rng.uniform(120.0, 240.0)
    elif kind is Kind.REDIS_RESTART:
        params["down_wall_s"] = rng.uniform(1.0, 3.0)
    return Fault(kind, venue, gap, params)
