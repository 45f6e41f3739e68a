"""Fault injection shared by every venue, with a Python API and HTTP endpoints.

Python API (tests hold the `FaultController` of a running sim, e.g. `sim.faults`):

- WebSocket, per connection: each live connection registers an inbox with
  `inbox = faults.attach(venue)` and `faults.detach(inbox)` when it ends. Its send loop calls
  `inbox.pop()` before each frame (and may await `inbox.wake`) and applies the `WsAction`.
  `faults.inject_ws(venue, WsAction(...))` puts one action into every live connection's inbox of
  that venue and returns how many received it. Kinds: CLOSE (with `code`: 1000/1001/1011/1008),
  DROP (abort the TCP transport), SKIP_SEQUENCE, SKIP_HEARTBEAT, MALFORMED (one invalid frame),
  OMIT_CLIENT_ID (next frame without it), SERVER_SHUTDOWN (Binance `serverShutdown` event).
- Stall (venue state): `faults.stall(venue, sim_seconds=None)` keeps sockets open but silent
  until simulated time passes the deadline or `faults.clear(venue)`;
  loops check `faults.is_stalled(venue, now_ms)`.
- REST (venue state): `faults.set_rest(venue, RestMode.RATE_LIMIT_JSON, count=3)`; a handler
  calls `faults.rest_mode(venue)` once per request, which returns the `RestFault` and consumes
  one of its remaining responses (`count=None`: until cleared). Modes: 429 JSON, 429 HTML,
  418, 451, 401-as-throttle, 503 (the venue's REST is down: an outage), slow (`delay_s` before
  the normal answer).
- Late trades (Coinbase `market_trades`, venue state): `faults.delay_trades(venue, sim_seconds,
  for_sim_seconds=None)` holds every trade back until it is `sim_seconds` old, as a venue whose
  trade feed lags does; a connection that drops meanwhile never sends what it held (a new
  connection's snapshot covers only the last minute's last 50 trades). Streams read
  `faults.trade_delay_ms(venue, now_ms)`.
- Connection counts: `faults.connections(venue)`, `await faults.wait_connections(venue, n)`.

HTTP (`fault_routes`, mounted under /_sim/faults):
`POST /_sim/faults/{venue}/ws` `{"action": "close", "code": 1011}` (also `"sim_seconds"` for
`stall`), `POST /_sim/faults/{venue}/rest` `{"mode": "429", "count": 2, "delay_s": 0.5}`,
`DELETE /_sim/faults/{venue}` clears everything, `GET /_sim/faults` shows the state.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import asdict, dataclass, field
from enum import StrEnum

from aiohttp import web

from livermore_exchange_sim.assets import Venue
from livermore_exchange_sim.clock import SimClock


class WsActionKind(StrEnum):
    """One-shot actions a WebSocket connection applies."""

    CLOSE = "close"
    DROP = "drop"
    SKIP_SEQUENCE = "skip_sequence"
    SKIP_HEARTBEAT = "skip_heartbeat"
    MALFORMED = "malformed"
    OMIT_CLIENT_ID = "omit_client_id"
    SERVER_SHUTDOWN = "server_shutdown"


class RestMode(StrEnum):
    """REST fault answers."""

    RATE_LIMIT_JSON = "429"
    RATE_LIMIT_HTML = "429_html"
    BANNED = "418"
    GEO_BLOCKED = "451"
    UNAUTHORIZED = "401"
    SLOW = "slow"
    UNAVAILABLE = "503"


@dataclass(frozen=True, slots=True)
class WsAction:
    """A WebSocket fault; `code` applies to CLOSE."""

    kind: WsActionKind
    code: int = 1000


@dataclass(slots=True)
class RestFault:
    """A REST override: answer the next `remaining` requests (None: until cleared) this way."""

    mode: RestMode
    remaining: int | None = 1
    delay_s: float = 0.0
    retry_after_s: int = 1


@dataclass(eq=False, slots=True)
class FaultInbox:
    """The pending actions of one live connection."""

    venue: Venue
    actions: deque[WsAction] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def pop(self) -> WsAction | None:
        """Return the next pending action, or None."""
        if not self.actions:
            self.wake.clear()
            return None
        return self.actions.popleft()


class FaultController:
    """Venue-keyed fault state; see the module docstring for the contract."""

    def __init__(self, clock: SimClock) -> None:
        self.clock = clock
        self._inboxes: dict[Venue, list[FaultInbox]] = {venue: [] for venue in Venue}
        self._changed: dict[Venue, asyncio.Event] = {venue: asyncio.Event() for venue in Venue}
        self._stalls: dict[Venue, int | None] = {}
        self._rest: dict[Venue, RestFault] = {}
        self._trade_delays: dict[Venue, tuple[int, int | None]] = {}

    # ---------------------------------------------------------------- websocket
    def attach(self, venue: Venue) -> FaultInbox:
        """Register a live connection and return its inbox."""
        inbox = FaultInbox(venue)
        self._inboxes[venue].append(inbox)
        self._changed[venue].set()
        return inbox

    def detach(self, inbox: FaultInbox) -> None:
        """Unregister a connection that ended."""
        if inbox in self._inboxes[inbox.venue]:
            self._inboxes[inbox.venue].remove(inbox)
            self._changed[inbox.venue].set()

    def inject_ws(self, venue: Venue, action: WsAction) -> int:
        """Queue `action` on every live connection of `venue`; return how many got it."""
        for inbox in self._inboxes[venue]:
            inbox.actions.append(action)
            inbox.wake.set()
        return len(self._inboxes[venue])

    def connections(self, venue: Venue) -> int:
        """Return how many WebSocket connections of `venue` are live."""
        return len(self._inboxes[venue])

    async def wait_connections(self, venue: Venue, count: int, within_s: float = 10.0) -> None:
        """Wait until exactly `count` connections of `venue` are live."""
        async with asyncio.timeout(within_s):
            while self.connections(venue) != count:
                self._changed[venue].clear()
                await self._changed[venue].wait()

    # ---------------------------------------------------------------- stall
    def stall(self, venue: Venue, sim_seconds: float | None = None) -> None:
        """Keep `venue`'s sockets open but silent for `sim_seconds` (None: until cleared)."""
        until = None if sim_seconds is None else self.clock.now_ms() + int(sim_seconds * 1000)
        self._stalls[venue] = until

    def is_stalled(self, venue: Venue, now_ms: int) -> bool:
        """Return whether `venue`'s sockets must stay silent at simulated time `now_ms`."""
        if venue not in self._stalls:
            return False
        until = self._stalls[venue]
        if until is not None and now_ms >= until:
            del self._stalls[venue]
            return False
        return True

    # ---------------------------------------------------------------- late trades
    def delay_trades(
        self, venue: Venue, sim_seconds: float, *, for_sim_seconds: float | None = None
    ) -> None:
        """Hold `venue`'s trades back `sim_seconds` (for `for_sim_seconds`; None: until cleared)."""
        now = self.clock.now_ms()
        until = None if for_sim_seconds is None else now + int(for_sim_seconds * 1000)
        self._trade_delays[venue] = (int(sim_seconds * 1000), until)

    def trade_delay_ms(self, venue: Venue, now_ms: int) -> int:
        """Return how far behind simulated time `now_ms` `venue`'s trade feed runs (0: live)."""
        held = self._trade_delays.get(venue)
        if held is None:
            return 0
        delay, until = held
        if until is not None and now_ms >= until:
            del self._trade_delays[venue]
            return 0
        return delay

    # ---------------------------------------------------------------- rest
    def set_rest(
        self,
        venue: Venue,
        mode: RestMode,
        *,
        count: int | None = 1,
        delay_s: float = 0.0,
        retry_after_s: int = 1,
    ) -> None:
        """Answer the next `count` REST requests of `venue` with `mode` (None: until cleared)."""
        self._rest[venue] = RestFault(mode, count, delay_s, retry_after_s)

    def rest_mode(self, venue: Venue) -> RestFault | None:
        """Return the REST fault for this request of `venue`, consuming one response of it."""
        fault = self._rest.get(venue)
        if fault is None:
            return None
        if fault.remaining is not None:
            fault.remaining -= 1
            if fault.remaining <= 0:
                del self._rest[venue]
        return fault

    # ---------------------------------------------------------------- all
    def clear(self, venue: Venue) -> None:
        """Clear every fault of `venue` (pending actions, stall, REST override)."""
        self._stalls.pop(venue, None)
        self._rest.pop(venue, None)
        self._trade_delays.pop(venue, None)
        for inbox in self._inboxes[venue]:
            inbox.actions.clear()
            inbox.wake.set()

    def state(self) -> dict[str, object]:
        """Return a JSON-able view of the current faults."""
        return {
            venue.value: {
                "connections": self.connections(venue),
                "stalled": venue in self._stalls,
                "stalled_until_ms": self._stalls.get(venue),
                "rest": asdict(self._rest[venue]) if venue in self._rest else None,
                "trade_delay_ms": self._trade_delays.get(venue, (0, None))[0],
                "pending_ws": sum(len(i.actions) for i in self._inboxes[venue]),
            }
            for venue in Venue
        }


_WS_KINDS = {kind.value: kind for kind in WsActionKind}


def fault_routes(faults: FaultController) -> web.RouteTableDef:
    """Return the /_sim/faults HTTP endpoints driving `faults`."""
    routes = web.RouteTableDef()

    def venue_of(request: web.Request) -> Venue:
        try:
            return Venue(request.match_info["venue"])
        except ValueError:
            raise web.HTTPNotFound(text="unknown venue") from None

    @routes.get("/_sim/faults")
    async def show(request: web.Request) -> web.Response:
        return web.json_response(faults.state())

    @routes.post("/_sim/faults/{venue}/ws")
    async def inject_ws(request: web.Request) -> web.Response:
        venue, body = venue_of(request), await request.json()
        action = str(body.get("action", ""))
        if action == "stall":
            seconds = body.get("sim_seconds")
            faults.stall(venue, None if seconds is None else float(seconds))
            return web.json_response({"stalled": True})
        if action not in _WS_KINDS:
            raise web.HTTPBadRequest(
                text=f"unknown action {action!r}; one of stall, {list(_WS_KINDS)}"
            )
        reached = faults.inject_ws(venue, WsAction(_WS_KINDS[action], int(body.get("code", 1000))))
        return web.json_response({"connections": reached})

    @routes.post("/_sim/faults/{venue}/rest")
    async def set_rest(request: web.Request) -> web.Response:
        venue, body = venue_of(request), await request.json()
        try:
            mode = RestMode(str(body.get("mode", "")))
        except ValueError:
            raise web.HTTPBadRequest(
                text=f"mode must be one of {[m.value for m in RestMode]}"
            ) from None
        count = body.get("count", 1)
        faults.set_rest(
            venue,
            mode,
            count=None if count is None else int(count),
            delay_s=float(body.get("delay_s", 0.0)),
            retry_after_s=int(body.get("retry_after_s", 1)),
        )
        return web.json_response(faults.state()[venue.value])

    @routes.delete("/_sim/faults/{venue}")
    async def clear(request: web.Request) -> web.Response:
        faults.clear(venue_of(request))
        return web.json_response(faults.state())

    return routes
