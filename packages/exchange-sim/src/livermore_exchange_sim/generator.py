"""Deterministic hierarchical price paths: days split into hours, 5-minute bars, minutes, trades.

A day's close is a smooth multi-octave noise function of the day index (shared by every venue
listing the asset), so any day is computable without walking from the epoch. Each node is then
split top-down into children (a clamped Brownian bridge between its open and close, one child
given its high and one its low, volume and trade counts split exactly in integers), which keeps
every level the exact aggregation of the level below. All randomness is seeded by a hash of
(seed, venue, asset, level, index), so everything is a pure function of those.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, NamedTuple, TypeVar

from livermore_exchange_sim.assets import VENUE_VOLUME_SHARE, Asset, Venue

MINUTE_MS = 60_000
M5_MS = 5 * MINUTE_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
LEVELS: tuple[int, ...] = (DAY_MS, HOUR_MS, M5_MS, MINUTE_MS)
"""Node sizes, largest first; each divides the one before it."""
CHILD_LEVEL: dict[int, int] = {DAY_MS: HOUR_MS, HOUR_MS: M5_MS, M5_MS: MINUTE_MS}
UNITS_PER_BASE = 100_000_000
"""Volumes are integers of 1e-8 base units so that sums are exact."""
MIN_TRADES_PER_MINUTE = 4
_EMPTY_PROB_THIN: dict[int, float] = {HOUR_MS: 0.05, M5_MS: 0.3, MINUTE_MS: 0.45}
_OCTAVES: tuple[tuple[int, float], ...] = ((1, 1.0), (4, 1.6), (16, 2.5), (64, 4.0), (256, 6.0))

K = TypeVar("K")
V = TypeVar("V")


class Node(NamedTuple):
    """One bar of the hierarchy (unrounded prices, integer volume units)."""

    open: float
    high: float
    low: float
    close: float
    units: int
    trades: int
    quote_volume: float


class RawTrade(NamedTuple):
    """One generated trade (unrounded price, integer size units)."""

    time_ms: int
    price: float
    units: int
    side: str
    seq: int


class Lru(Generic[K, V]):
    """A small least-recently-used cache with a hard size bound."""

    def __init__(self, maxsize: int) -> None:
        self._data: OrderedDict[K, V] = OrderedDict()
        self._maxsize = maxsize

    def get(self, key: K) -> V | None:
        """Return the cached value or None, marking it recently used."""
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> V:
        """Store `value`, evicting the oldest entry beyond the bound; return `value`."""
        self._data[key] = value
        self._data.move_to_end(key)
        if len(self._data) > self._maxsize:
            self._data.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._data)


def flat_node(price: float) -> Node:
    """Return a bar without trades at `price`."""
    return Node(price, price, price, price, 0, 0, 0.0)


def approx_quote_volume(units: int, o: float, h: float, low: float, c: float) -> float:
    """Quote volume of a generated bar: volume x typical price (exact only for minute trades)."""
    return units / UNITS_PER_BASE * (o + h + low + c) / 4.0


class PathGenerator:
    """The base (scenario-free) price path of every (venue, asset)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._day_close: Lru[tuple[str, int], float] = Lru(16_384)
        self._days: Lru[tuple[Venue, str, int], Node] = Lru(16_384)
        self._children: Lru[tuple[Venue, str, int, int], tuple[Node, ...]] = Lru(4_096)
        self._trades: Lru[tuple[Venue, str, int], tuple[RawTrade, ...]] = Lru(1_024)

    def rng(self, *parts: object) -> random.Random:
        """Return a generator seeded by a hash of the seed and `parts`."""
        key = "|".join(str(part) for part in (self.seed, *parts)).encode()
        return random.Random(int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big"))

    def _knot(self, base: str, span: int, index: int) -> float:
        key = f"{self.seed}|knot|{base}|{span}|{index}".encode()
        raw = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big")
        return raw / 2**63 - 1.0

    def day_close(self, asset: Asset, day: int) -> float:
        """Return the close of `day` (days since the epoch); the same on every venue."""
        cached = self._day_close.get((asset.base, day))
        if cached is not None:
            return cached
        return self._day_close.put((asset.base, day), self._close(asset, day, self._knot))

    def _close(self, asset: Asset, day: int, knot: Callable[[str, int, int], float]) -> float:
        level = 0.0
        for span, weight in _OCTAVES:
            cell, rest = divmod(day, span)
            frac = rest / span
            a, b = knot(asset.base, span, cell), knot(asset.base, span, cell + 1)
            level += weight * (a + (b - a) * frac)
        return asset.price * math.exp(level * asset.daily_vol)

    def day_nodes(self, venue: Venue, asset: Asset, first: int, stop: int) -> list[Node]:
        """Return the base day nodes `first`..`stop - 1` in one pass, bypassing the caches.

        For long scans (the 52-week range): each knot and close is computed once, and the LRUs
        keep their hot recent entries instead of filling with a year of one asset's days.
        """
        knots: dict[tuple[str, int, int], float] = {}

        def knot(base: str, span: int, index: int) -> float:
            key = (base, span, index)
            value = knots.get(key)
            if value is None:
                value = knots[key] = self._knot(base, span, index)
            return value

        closes = [self._close(asset, day, knot) for day in range(first - 1, stop)]
        return [
            self._day_from(venue, asset, day, closes[i], closes[i + 1])
            for i, day in enumerate(range(first, stop))
        ]

    def node(self, venue: Venue, asset: Asset, level_ms: int, index: int) -> Node:
        """Return the base node of size `level_ms` whose open time is `index * level_ms`."""
        if level_ms == DAY_MS:
            return self._day(venue, asset, index)
        parent_ms = next(size for size, child in CHILD_LEVEL.items() if child == level_ms)
        start = index * level_ms
        parent_index = start // parent_ms
        children = self.children(venue, asset, parent_ms, parent_index)
        return children[(start - parent_index * parent_ms) // level_ms]

    def _day(self, venue: Venue, asset: Asset, day: int) -> Node:
        cached = self._days.get((venue, asset.base, day))
        if cached is not None:
            return cached
        o, c = self.day_close(asset, day - 1), self.day_close(asset, day)
        node = self._day_from(venue, asset, day, o, c)
        return self._days.put((venue, asset.base, day), node)

    def _day_from(self, venue: Venue, asset: Asset, day: int, o: float, c: float) -> Node:
        rng = self.rng("day", venue.value, asset.base, day)
        h = max(o, c) * math.exp(abs(rng.gauss(0.0, 1.0)) * asset.daily_vol * 0.6)
        low = min(o, c) * math.exp(-abs(rng.gauss(0.0, 1.0)) * asset.daily_vol * 0.6)
        usd = asset.usd_volume_24h * VENUE_VOLUME_SHARE[venue] * (0.7 + 0.6 * rng.random())
        units = max(1, int(usd / c * UNITS_PER_BASE))
        extra = 1.0 if asset.thin else 8.0
        trades = 1440 * MIN_TRADES_PER_MINUTE + int(1440 * extra * (0.5 + rng.random()))
        return Node(o, h, low, c, units, trades, approx_quote_volume(units, o, h, low, c))

    def children(self, venue: Venue, asset: Asset, level_ms: int, index: int) -> tuple[Node, ...]:
        """Return the children of a node, oldest first."""
        key = (venue, asset.base, level_ms, index)
        cached = self._children.get(key)
        if cached is not None:
            return cached
        parent = self.node(venue, asset, level_ms, index)
        rng = self.rng("split", venue.value, asset.base, level_ms, index)
        return self._children.put(key, _split(parent, level_ms, asset, rng))

    def minute_trades(self, venue: Venue, asset: Asset, minute: int) -> tuple[RawTrade, ...]:
        """Return the trades of minute `minute` (minutes since the epoch), oldest first."""
        key = (venue, asset.base, minute)
        cached = self._trades.get(key)
        if cached is not None:
            return cached
        bar = self.node(venue, asset, MINUTE_MS, minute)
        rng = self.rng("trades", venue.value, asset.base, minute)
        return self._trades.put(key, _trades_of(bar, minute * MINUTE_MS, rng))


def _split(parent: Node, level_ms: int, asset: Asset, rng: random.Random) -> tuple[Node, ...]:
    child_ms = CHILD_LEVEL[level_ms]
    count = level_ms // child_ms
    if parent.trades == 0:
        return (flat_node(parent.open),) * count
    p_empty = _EMPTY_PROB_THIN[child_ms] if asset.thin else 0.0
    active = [rng.random() >= p_empty for _ in range(count)]
    if not any(active):
        active[rng.randrange(count)] = True
    points = _bridge(parent, sum(active), asset.daily_vol * math.sqrt(child_ms / DAY_MS), rng)
    sigma = asset.daily_vol * math.sqrt(child_ms / DAY_MS)
    shapes: list[tuple[float, float, float, float]] = []
    step = 0
    for is_active in active:
        o = points[step]
        if not is_active:
            shapes.append((o, o, o, o))
            continue
        step += 1
        c = points[step]
        h = min(parent.high, max(o, c) * math.exp(abs(rng.gauss(0.0, 0.5)) * sigma))
        low = max(parent.low, min(o, c) * math.exp(-abs(rng.gauss(0.0, 0.5)) * sigma))
        shapes.append((o, h, low, c))
    live = [i for i, is_active in enumerate(active) if is_active]
    top = max(live, key=lambda i: max(shapes[i][0], shapes[i][3]))
    bottom = min(live, key=lambda i: min(shapes[i][0], shapes[i][3]))
    shapes[top] = (shapes[top][0], parent.high, shapes[top][2], shapes[top][3])
    shapes[bottom] = (shapes[bottom][0], shapes[bottom][1], parent.low, shapes[bottom][3])
    weights = {i: 0.3 + 1.4 * rng.random() for i in live}
    units = _share(parent.units, weights, {i: 0 for i in live})
    floor = MIN_TRADES_PER_MINUTE * (child_ms // MINUTE_MS)
    trades = _share(parent.trades, weights, {i: floor for i in live})
    nodes: list[Node] = []
    for i, (o, h, low, c) in enumerate(shapes):
        u, t = units.get(i, 0), trades.get(i, 0)
        nodes.append(Node(o, h, low, c, u, t, approx_quote_volume(u, o, h, low, c)))
    return tuple(nodes)


def _bridge(parent: Node, steps: int, sigma: float, rng: random.Random) -> list[float]:
    """Points of a Brownian bridge from the parent's open to its close, kept inside its range.

    The bridge's deviations from the straight line are shrunk uniformly (not clamped) when
    they would leave [low, high], so interior points never sit on the parent's extremes.
    """
    walk = [0.0]
    for _ in range(steps):
        walk.append(walk[-1] + rng.gauss(0.0, sigma))
    x0, x1 = math.log(parent.open), math.log(parent.close)
    lo, hi = math.log(parent.low), math.log(parent.high)
    lines = [x0 + k / steps * (x1 - x0) for k in range(steps + 1)]
    devs = [walk[k] - k / steps * walk[steps] for k in range(steps + 1)]
    scale = 1.0
    for line, dev in zip(lines, devs, strict=True):
        if dev > 0 and dev * scale > hi - line:
            scale = 0.9 * (hi - line) / dev
        elif dev < 0 and dev * scale < lo - line:
            scale = 0.9 * (lo - line) / dev
    points = [parent.open]
    for k in range(1, steps):
        x = lines[k] + scale * devs[k]
        points.append(min(parent.high, max(parent.low, math.exp(x))))
    points.append(parent.close)
    return points


def _share(total: int, weights: dict[int, float], floors: dict[int, int]) -> dict[int, int]:
    """Split integer `total` over the keys: each gets its floor plus a weighted share, exactly."""
    surplus = max(0, total - sum(floors.values()))
    weight_sum = sum(weights.values())
    shares = {i: floors[i] + int(surplus * w / weight_sum) for i, w in weights.items()}
    last = max(shares)
    shares[last] += total - sum(shares.values())
    return shares


def _trades_of(bar: Node, start_ms: int, rng: random.Random) -> tuple[RawTrade, ...]:
    count = bar.trades
    if count == 0:
        return ()
    prices = [rng.uniform(bar.low, bar.high) for _ in range(count)]
    prices[0], prices[-1] = bar.open, bar.close
    high_at, low_at = rng.sample(range(1, count - 1), 2)
    prices[high_at], prices[low_at] = bar.high, bar.low
    weights = {i: 0.1 + rng.random() for i in range(count)}
    sizes = _share(bar.units, weights, {i: 0 for i in range(count)})
    times = sorted(rng.randrange(MINUTE_MS) for _ in range(count))
    return tuple(
        RawTrade(
            start_ms + times[i], prices[i], sizes[i], "BUY" if rng.random() < 0.5 else "SELL", i
        )
        for i in range(count)
    )
