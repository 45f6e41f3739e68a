"""The alert state scripts of SPEC section 7, and the claim the known state asks for.

Each script touches the one key it is given (cluster-safe). `plan` turns the state an evaluator
knows into the rule outcome and the claim script's arguments; `after` is the state once claimed.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass
from typing import Any

from livermore_cache import keys
from livermore_cache.batch import LuaScript
from livermore_exchange_core.alerts.rules import Reversal, RuleOutcome, Trigger, evaluate_rules
from livermore_exchange_core.indicators.reading import Reading
from livermore_schema.enums import Timeframe
from livermore_schema.indicators import IndicatorValue

STATE_TTL_MS = 8 * 24 * 3600 * 1000
"""Series state outlives a week without bars (1d series update daily)."""
COOLDOWN_TTL_SLACK_MS = 24 * 3600 * 1000
"""Cooldown keys expire this long after the cooldown itself (garbage collection only)."""

# KEYS[1] state hash; ARGV: open_time, then the state the rules ran on (expected open_time, prev,
# armed, before; '' = absent), then macd_v, rearm, ttl, revise ('1': a corrected value of the
# stored bar, which keeps its `before`).
# Returns 1 claimed, 0 not newer than the stored bar (nor a revision of it), -1 state moved.
CLAIM = """
local cur = redis.call('HMGET', KEYS[1], 'open_time', 'prev', 'armed', 'before')
if cur[1] then
  local stored, bar = tonumber(cur[1]), tonumber(ARGV[1])
  if stored > bar or (stored == bar and ARGV[9] ~= '1') then return 0 end
end
if (cur[1] or '') ~= ARGV[2] or (cur[2] or '') ~= ARGV[3] or (cur[3] or '') ~= ARGV[4]
    or (cur[4] or '') ~= ARGV[5] then
  return -1
end
if ARGV[9] == '1' then
  redis.call('HSET', KEYS[1], 'prev', ARGV[6])
else
  redis.call('HSET', KEYS[1], 'open_time', ARGV[1], 'prev', ARGV[6], 'before', ARGV[3])
end
if ARGV[7] == '1' or not cur[3] then
  redis.call('HSET', KEYS[1], 'armed', '1')
end
redis.call('PEXPIRE', KEYS[1], ARGV[8])
return 1
"""
# KEYS[1] state hash; ARGV: open_time. Disarms only if that bar is still the latest claimed.
DISARM = """
if redis.call('HGET', KEYS[1], 'open_time') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'armed', '0')
  return 1
end
return 0
"""
# KEYS[1] cooldown key; ARGV: bar time, cooldown ms, ttl ms. Returns 1 when the label may fire
# (never again for a bar it already fired on, whatever the cooldown).
COOLDOWN = """
local last = redis.call('GET', KEYS[1])
if last then
  local bar, fired = tonumber(ARGV[1]), tonumber(last)
  if bar <= fired or bar - fired < tonumber(ARGV[2]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
"""


CLAIM_SCRIPT, DISARM_SCRIPT, COOLDOWN_SCRIPT = (
    LuaScript(CLAIM),
    LuaScript(DISARM),
    LuaScript(COOLDOWN),
)
"""The three scripts, for `WriteBatch.add_script`."""

State = tuple[str, str, str, str]
"""A series' stored (open_time, prev, armed, before) as Redis holds them; '' = absent."""
EMPTY: State = ("", "", "", "")


@dataclass(frozen=True, slots=True)
class Claim:
    """What the rules make of a value on a known state, and the claim script's arguments."""

    outcome: RuleOutcome
    args: list[int | str]
    revising: bool
    """A corrected value of the stored bar (judged against the bar before)."""


def text(raw: Any) -> str:
    """Return a Redis reply as text."""
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def plan(state: State, value: AnyValue, macd_v: float) -> Claim | None:
    """Return the claim of `value` on `state`, or None when the bar is not to be judged."""
    stored, prev, armed, before = state
    new_prev = repr(macd_v)
    revising = bool(stored) and int(stored) == value.open_time
    if (stored and int(stored) > value.open_time) or (revising and prev == new_prev):
        return None
    basis = before if revising else prev
    outcome = RuleOutcome((), True)
    if basis:  # the first value of a series only initialises it
        outcome = evaluate_rules(
            float(basis), macd_v, value.value.histogram, armed=armed in ("1", "")
        )
    args: list[int | str] = [
        value.open_time,
        stored,
        prev,
        armed,
        before,
        new_prev,
        int(outcome.rearmed),
        STATE_TTL_MS,
        int(revising),
    ]
    return Claim(outcome, args, revising)


def after(state: State, claim: Claim) -> State:
    """Return the stored state once `claim` succeeded on `state`."""
    _, prev, armed, before = state
    new_armed = "1" if claim.outcome.rearmed or not armed else armed
    new_before = before if claim.revising else prev
    return str(claim.args[0]), str(claim.args[5]), new_armed, new_before


class StateKeys(dict[tuple[str, Timeframe], str]):
    """The alert state key of each (symbol, timeframe) of one exchange, built once per series.

    Built under the namespace current at first use (a process serves one deployment).
    """

    def __init__(self, exchange_id: int) -> None:
        super().__init__()
        self.exchange_id = exchange_id

    def __missing__(self, series: tuple[str, Timeframe]) -> str:
        key = self[series] = keys.alert_state_key(self.exchange_id, *series)
        return key


STATE_FIELDS = ("open_time", "prev", "armed", "before")
"""The fields of a series' state hash, in `State` order."""


def state_of(raw: Any) -> State:
    """Return the `State` of an HMGET of `STATE_FIELDS` (a missing field: '')."""
    fields = [text(f) if isinstance(f, str | bytes) else "" for f in raw]
    return fields[0], fields[1], fields[2], fields[3]


def reverses(claim: Claim) -> bool:
    """Whether the claim plans a reversal (which disarms the series when it fires)."""
    return any(isinstance(t, Reversal) for t in claim.outcome.triggers)


def disarmed_state(known: State | None, open_time: int, disarmed: int) -> State | None:
    """The known state after the disarm script's answer for bar `open_time` (None: forget it)."""
    if not disarmed:
        return None
    if known is not None and known[0] == str(open_time):
        return known[0], known[1], "0", known[3]
    return known


AnyValue = IndicatorValue | Reading
"""A value to judge: the model, or the burst path's `Reading` (a model only once it fires)."""
Rated = tuple[AnyValue, int | None]
"""An indicator value and the Tier 2 user whose keys hold its series (None: Tier 1)."""

BarKey = tuple[str, Timeframe, int]
"""(symbol, timeframe, open time) of one bar."""
Delayed = Set[BarKey]
"""Bars that closed while the worker could not see them live (repaired, caught up at start):
their alerts carry `delayed: true` (SPEC section 7)."""
NONE_DELAYED: Delayed = frozenset()


def is_delayed(value: AnyValue, delayed: Delayed) -> bool:
    """Return whether a value's bar is one of `delayed`."""
    return bool(delayed) and (value.symbol, value.timeframe, value.open_time) in delayed


@dataclass(frozen=True, slots=True)
class Planned:
    """A claim queued on a batch (`queue_claims`): settle it with `judge`."""

    value: AnyValue
    user_id: int | None
    state_key: str
    state: State
    claim: Claim | None
    """None: deferred (a reversal planned earlier in the batch may disarm the series), judged
    on its own once the batch's alerts fired."""
    at: int
    """Its reply's position in the batch (-1: deferred)."""
    delayed: bool = False
    """The bar was not seen live (its alerts are flagged `delayed`)."""


@dataclass(slots=True)
class Won:
    """A claimed bar of a burst whose rules triggered something (its triggers still to fire)."""

    value: IndicatorValue
    user_id: int | None
    state_key: str
    triggers: list[Trigger]
    delayed: bool
