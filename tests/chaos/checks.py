"""The soak's verdicts: the cache against the simulator's truth, the alerts against the reference.

Cache, per (venue, symbol, runtime timeframe): every truth bar from the series' first cached bar to
the cut-off is cached once, closed, with the truth's OHLCV (zero missing, duplicate, unfinished,
differing or extra bars).
Alerts, keyed (exchange, symbol, timeframe, label, bar open time): each one the reference requires
was published exactly once (live subscriber and alert_history together), nothing else was
published (ambiguous ones, within 1e-6 of a threshold, and those of the first bars after the
first start are allowed, once), and a bar that closed inside a blind window (the worker could not
see it live) is flagged `delayed`, one far from every fault window is not.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from redis.asyncio import Redis

from livermore_cache import keys
from livermore_exchange_sim.market import Bar as TruthBar
from livermore_exchange_sim.market import Venue
from livermore_exchange_sim.testing import RunningSim
from livermore_schema.enums import RUNTIME_TIMEFRAMES, Timeframe
from livermore_schema.timeframes import duration_ms

from .reference import Bar, expected_alerts, fill_gaps, macd_v

EXCHANGE_IDS = {Venue.COINBASE: 1, Venue.BINANCE: 2}
REPAIR_TAIL_MS = 300_000
"""Simulated time after a fault window during which a bar's `delayed` flag may go either way."""
AlertKey = tuple[int, str, str, str, int]
"""(exchange_id, symbol, timeframe, label, bar open time)."""


@dataclass(frozen=True, slots=True)
class Window:
    """A stretch of simulated time a fault covered; `blind`: the worker could not see bars live."""

    venue: Venue | None
    start_ms: int
    end_ms: int
    blind: bool
    tainted: Timeframe | None = None
    """A series timeframe whose bars in the window were wrong at close (late trades lost across a
    reconnect) until the reconciliation sweep corrected them: alerts judged meanwhile stood on
    that history, so the truth's alerts of its bars there are neither required nor forbidden."""


@dataclass(frozen=True, slots=True)
class Published:
    """One published alert as seen on the channel or in alert_history."""

    alert_id: str
    key: AlertKey
    delayed: bool
    macd_v: float


@dataclass
class SeriesCheck:
    """The cache verdict of one series."""

    venue: Venue
    symbol: str
    timeframe: Timeframe
    compared: int = 0
    missing: list[int] = field(default_factory=list)
    duplicate: list[int] = field(default_factory=list)
    unfinished: list[int] = field(default_factory=list)
    differing: list[int] = field(default_factory=list)
    extra: list[int] = field(default_factory=list)
    first_open: int | None = None

    def problems(self) -> list[str]:
        """One line per kind of problem (empty: the series is exact)."""
        name = f"{self.venue.value} {self.symbol} {self.timeframe.value}"
        out = []
        for what, opens in (
            ("missing", self.missing),
            ("duplicate", self.duplicate),
            ("unfinished", self.unfinished),
            ("differing", self.differing),
            ("extra", self.extra),
        ):
            if opens:
                shown = ", ".join(_hhmm(t) for t in opens[:6]) + (" ..." if len(opens) > 6 else "")
                out.append(f"cache {name}: {len(opens)} {what} bar(s) [{shown}]")
        return out


def _hhmm(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%m-%d %H:%M")


def symbol_of(venue: Venue, base: str) -> str:
    """The venue-native symbol of `base`."""
    return f"{base}-USD" if venue is Venue.COINBASE else f"{base}USDT"


async def check_series(
    redis: Redis, sim: RunningSim, venue: Venue, symbol: str, tf: Timeframe, cut_ms: int
) -> SeriesCheck:
    """Compare one cached series with the truth for bars that closed by `cut_ms`."""
    result = SeriesCheck(venue, symbol, tf)
    step = duration_ms(tf)
    raw = await redis.zrange(
        keys.candles_key(EXCHANGE_IDS[venue], symbol, tf), 0, -1, withscores=True
    )
    cached: dict[int, list[dict[str, object]]] = defaultdict(list)
    for member, score in raw:
        cached[int(score)].append(json.loads(member))
    if not cached:
        result.missing.append(0)
        return result
    first = min(cached)
    result.first_open = first
    end = cut_ms - step + 1  # bars opening before this had closed by cut_ms
    truth = {b.open_time: b for b in sim.truth(venue, symbol, step, first, end)}
    for open_time in sorted(cached):
        if open_time >= end:
            continue
        members = cached[open_time]
        if len(members) > 1:
            result.duplicate.append(open_time)
        bar = truth.get(open_time)
        if bar is None:
            result.extra.append(open_time)
            continue
        result.compared += 1
        got = members[-1]
        if not got.get("closed"):
            result.unfinished.append(open_time)
        elif _differs(got, bar):
            result.differing.append(open_time)
    result.missing.extend(t for t in sorted(truth) if t not in cached)
    return result


def _differs(got: dict[str, object], bar: TruthBar) -> bool:
    wanted = {"open": bar.open, "high": bar.high, "low": bar.low, "close": bar.close}
    if any(float(str(got[name])) != price for name, price in wanted.items()):
        return True
    volume = float(str(got["volume"]))
    return abs(volume - bar.volume) > 1e-6 * max(1.0, abs(bar.volume))


async def check_cache(
    redis: Redis, sim: RunningSim, bases: Sequence[str], cut_ms: int
) -> list[SeriesCheck]:
    """Every series of every venue and runtime timeframe."""
    return [
        await check_series(redis, sim, venue, symbol_of(venue, base), tf, cut_ms)
        for venue in EXCHANGE_IDS
        for base in bases
        for tf in RUNTIME_TIMEFRAMES
    ]


@dataclass
class AlertVerdict:
    """Expected / published / delayed figures and every discrepancy."""

    expected: int = 0
    optional: int = 0
    published: int = 0
    delayed: int = 0
    tolerated: int = 0
    flag_checked: Counter[bool] = field(default_factory=Counter)
    """How many alerts' `delayed` flag was held to True / to False."""
    problems: list[str] = field(default_factory=list)


def reference_alerts(
    sim: RunningSim,
    series: Iterable[SeriesCheck],
    cut_ms: int,
    started_ms: dict[Venue, int],
    connected_ms: dict[Venue, int],
) -> dict[AlertKey, tuple[bool, float]]:
    """Alerts the truth implies: key -> (optional, MACD-V).

    The first worker judges every bar that closes after its start (`started_ms`), the first of
    them only initialising the series; which bar that is depends on when its backfill read the
    venue, so alerts of bars that closed before it connected (`connected_ms`) are optional.
    """
    out: dict[AlertKey, tuple[bool, float]] = {}
    for check in series:
        if check.first_open is None:
            continue
        step = duration_ms(check.timeframe)
        truth = sim.truth(check.venue, check.symbol, step, check.first_open, cut_ms - step + 1)
        bars = fill_gaps([Bar(b.open_time, b.high, b.low, b.close) for b in truth], step)
        started = started_ms[check.venue]
        first_open = started - started % step
        for item in expected_alerts(macd_v(bars), first_open=first_open):
            key = (EXCHANGE_IDS[check.venue], check.symbol, check.timeframe.value, item.label)
            optional = item.ambiguous or item.open_time <= connected_ms[check.venue]
            out[(*key, item.open_time)] = (optional, item.macd_v)
    return out


def judge_alerts(
    reference: dict[AlertKey, tuple[bool, float]],
    published: Sequence[Published],
    windows: Sequence[Window],
    edge_ms: int,
) -> AlertVerdict:
    """Compare what was published with what the reference implies."""
    verdict = AlertVerdict()
    by_key: dict[AlertKey, dict[str, Published]] = defaultdict(dict)
    for item in published:
        by_key[item.key][item.alert_id] = item
    verdict.published = sum(len(ids) for ids in by_key.values())
    verdict.delayed = sum(p.delayed for ids in by_key.values() for p in ids.values())
    verdict.expected = sum(not optional for optional, _ in reference.values())
    verdict.optional = len(reference) - verdict.expected
    for key, (optional, value) in sorted(reference.items(), key=lambda kv: kv[0][4]):
        got = by_key.get(key, {})
        if not got and not optional:
            if _tainted(key, windows):
                verdict.tolerated += 1
                continue
            verdict.problems.append(f"alert missing: {_key(key)} macd_v {value:.2f}")
    for key, ids in sorted(by_key.items(), key=lambda kv: kv[0][4]):
        _judge_published(verdict, key, list(ids.values()), reference, windows, edge_ms)
    return verdict


def _judge_published(
    verdict: AlertVerdict,
    key: AlertKey,
    copies: list[Published],
    reference: dict[AlertKey, tuple[bool, float]],
    windows: Sequence[Window],
    edge_ms: int,
) -> None:
    """Once, implied by the truth (or tolerated), and flagged `delayed` as its window says."""
    if len(copies) > 1:
        verdict.problems.append(f"alert published {len(copies)} times: {_key(key)}")
    first = copies[0]
    if key not in reference:
        if _tainted(key, windows):
            verdict.tolerated += 1
        else:
            verdict.problems.append(
                f"alert not implied by the truth: {_key(key)} "
                f"macd_v {first.macd_v:.2f} delayed={first.delayed}"
            )
        return
    want = _want_delayed(key, windows, edge_ms)
    if want is None:
        return
    verdict.flag_checked[want] += 1
    if first.delayed != want:
        verdict.problems.append(f"alert delayed={first.delayed}, expected {want}: {_key(key)}")


def _tainted(key: AlertKey, windows: Sequence[Window]) -> bool:
    venue = next(v for v, eid in EXCHANGE_IDS.items() if eid == key[0])
    return any(
        w.tainted is not None
        and w.venue is venue
        and w.tainted.value == key[2]
        and w.start_ms <= key[4] <= w.end_ms
        for w in windows
    )


def _want_delayed(key: AlertKey, windows: Sequence[Window], edge_ms: int) -> bool | None:
    """True: the bar closed well inside a blind window; False: far from any window; else None.

    After a window (connected again) the gap's repair still runs and the bars closing meanwhile
    wait behind its gate: whether those count as delayed is timing, so a tail of `REPAIR_TAIL_MS`
    after each window is fuzzy too.
    """
    venue = next(v for v, eid in EXCHANGE_IDS.items() if eid == key[0])
    close = key[4] + duration_ms(Timeframe(key[2]))
    for window in windows:
        if window.venue not in (None, venue) or window.tainted is not None:
            continue
        if window.start_ms - edge_ms <= close <= window.end_ms + max(edge_ms, REPAIR_TAIL_MS):
            inside = window.start_ms + edge_ms < close < window.end_ms - edge_ms
            return True if window.blind and inside else None
    return False


def _key(key: AlertKey) -> str:
    exchange = "coinbase" if key[0] == 1 else "binance"
    return f"{exchange} {key[1]} {key[2]} {key[3]} bar {_hhmm(key[4])}"


def counts(items: Iterable[str]) -> str:
    """`a 2, b 1` for a list of names."""
    return ", ".join(f"{k} {v}" for k, v in sorted(Counter(items).items()))
