"""Candle close -> AlertEvent on `channel:alerts:*`, through the worker data path (SPEC 13).

Run: `uv run python bench/bench_close_to_alert.py [--symbols 1000] [--rate 400] [--rounds 5]`
(full size is the default symbol count). `--mode burst` replays exchange minutes instead, every
bar closing at a minute arriving at once (1,000 per minute, 6,000 at the day boundary);
`--gc-freeze` freezes the warmed-up heap; `--profile out.pstats` profiles the live phase.

Starts a private redis-server (never the configured Redis) and composes the path the worker
composes (`livermore_worker.wiring`): `CandlePipeline` -> `ClosedBarStage`, a burst at a time
(candle writes + closes + `IndicatorCalculator.advance` values, one pipelined flush) ->
`AlertEvaluator.evaluate_many` (claims, cooldowns, reads, alert publishes). Every series gets
`--history` closed bars, the calculator is warmed from the cache, then closed candles of every
series (round-robin, one bar per series per round, and one ticker per symbol per round) enter
the pipeline at a steady `--rate`. `--scripted` of the symbols follow a trend that flips every
28 bars, which drives MACD-V through the alert levels: alerts fire on about a third of their bars.

A subscriber *process* (its own connection, PSUBSCRIBE `channel:alerts:*`) timestamps each
message on receipt; latency = receipt - the moment the closed candle entered the pipeline
(CLOCK_MONOTONIC, shared by both processes). Baseline in the same run: a bare PUBLISH of an
alert-sized payload -> receipt by the same subscriber. Then the same path unpaced, for throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import multiprocessing as mp
import random
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from _common import latency_line, percentile, private_redis

from livermore_cache import channels
from livermore_cache.candles import CandleCache
from livermore_cache.client import RedisClient, connect_redis
from livermore_cache.indicators import IndicatorCache
from livermore_cache.pubsub import Publisher
from livermore_cache.tickers import TickerCache
from livermore_exchange_core.alerts.evaluator import AlertEvaluator
from livermore_exchange_core.clock import ExchangeClock
from livermore_exchange_core.indicators.calculator import IndicatorCalculator
from livermore_exchange_core.pipeline import CandlePipeline
from livermore_exchange_core.stage import ClosedBarStage
from livermore_schema.alerts import AlertEvent
from livermore_schema.enums import RUNTIME_TIMEFRAMES, CandleSource, Timeframe
from livermore_schema.logs import configure_logging
from livermore_schema.market import Candle, Ticker
from livermore_schema.settings import CacheSettings, LogSettings, RedisSettings
from livermore_schema.timeframes import duration_ms

BUDGET_P99_MS = 10.0
EXCHANGE_ID, EXCHANGE = 1, "coinbase"
BASELINE_EXCHANGE_ID, STOP_EXCHANGE_ID = 999_001, 999_002
T0 = 1_704_067_200_000  # 2024-01-01T00:00Z, on every timeframe's boundary
HALF_CYCLE, TREND, TIGHT = 28, 0.004, 0.0005
Key = tuple[str, str, int]  # symbol, timeframe, bar close boundary (ms)
Schedule = Iterator[tuple[float, "Candle | Ticker"]]  # (seconds after the start, item)


@dataclass(slots=True)
class SeriesPath:
    """A deterministic price path of one series: a random walk, or a flipping trend if scripted."""

    symbol: str
    timeframe: Timeframe
    scripted: bool
    rng: random.Random
    phase: int
    price: float = 100.0
    index: int = 0

    def next_candle(self) -> Candle:
        """Return the series' next closed bar."""
        step = duration_ms(self.timeframe)
        open_time = T0 + self.index * step
        if self.scripted:
            up = ((self.index + self.phase) // HALF_CYCLE) % 2 == 0
            move, half = (TREND if up else -TREND) + self.rng.gauss(0, TREND / 10), TIGHT
        else:
            move, half = self.rng.gauss(0, 0.003), self.rng.uniform(0.0005, 0.003)
        first, self.price = self.price, self.price * (1 + move)
        self.index += 1
        return Candle(
            exchange_id=EXCHANGE_ID,
            exchange=EXCHANGE,
            symbol=self.symbol,
            timeframe=self.timeframe,
            open_time=open_time,
            close_time=open_time + step - 1,
            open=first,
            high=max(first, self.price) * (1 + half),
            low=min(first, self.price) * (1 - half),
            close=self.price,
            volume=1.0 + self.rng.random(),
            closed=True,
            sequence=self.index,
            source=CandleSource.WS,
        )


def make_paths(symbols: int, scripted: int, seed: int) -> dict[str, list[SeriesPath]]:
    """Return the paths of every symbol (scripted ones spread evenly among them)."""
    every = symbols // scripted if scripted else 0
    paths: dict[str, list[SeriesPath]] = {}
    for number in range(symbols):
        symbol = f"S{number:04d}-USD"
        is_scripted = bool(every) and number % every == 0 and number // every < scripted
        paths[symbol] = [
            SeriesPath(
                symbol,
                tf,
                is_scripted,
                rng := random.Random(seed * 1_000_003 + number * 7 + position),
                rng.randrange(2 * HALF_CYCLE),
            )
            for position, tf in enumerate(RUNTIME_TIMEFRAMES)
        ]
    return paths


def make_round(
    paths: dict[str, list[SeriesPath]], timeframes: tuple[Timeframe, ...]
) -> Iterator[Candle | Ticker]:
    """Yield the next bar of every series of `timeframes`, each symbol's bars then its ticker."""
    for symbol, series in paths.items():
        bars = [path.next_candle() for path in series if path.timeframe in timeframes]
        yield from bars
        yield Ticker(
            exchange_id=EXCHANGE_ID,
            exchange=EXCHANGE,
            symbol=symbol,
            price=bars[0].close,
            timestamp=T0,
        )


def steady(paths: dict[str, list[SeriesPath]], rounds: int, rate: float | None) -> Schedule:
    """Rounds of one bar per series; candles due evenly at `rate`/s (all at once if None)."""
    sent = 0
    for _ in range(rounds):
        for item in make_round(paths, RUNTIME_TIMEFRAMES):
            yield (sent / rate if rate else 0.0), item
            sent += isinstance(item, Candle)


def closing_at(minute: int) -> tuple[Timeframe, ...]:
    """Return the timeframes whose bar closes at the end of exchange minute `minute` of a day."""
    return tuple(tf for tf in RUNTIME_TIMEFRAMES if minute % (duration_ms(tf) // 60_000) == 0)


def bursts(paths: dict[str, list[SeriesPath]], minutes: range, minute_s: float) -> Schedule:
    """Exchange minutes compressed to `minute_s`: every bar closing at a minute arrives at once."""
    for number, minute in enumerate(minutes):
        for item in make_round(paths, closing_at(minute)):
            yield number * minute_s, item


class DataPath:
    """The worker's data path on one Redis client, with per-candle timestamps."""

    def __init__(self, redis: RedisClient, cache_settings: CacheSettings) -> None:
        candles = CandleCache(redis, cache_settings)
        indicators = IndicatorCache(redis, cache_settings)
        tickers = TickerCache(redis, cache_settings)
        publisher = Publisher(redis, cache_settings)
        self.redis = redis
        self.candles = candles
        self.calculator = IndicatorCalculator(
            candles, indicators, publisher, exchange_id=EXCHANGE_ID
        )
        self.evaluator = AlertEvaluator(
            redis,
            indicators,
            tickers,
            candles,
            publisher,
            exchange_id=EXCHANGE_ID,
            exchange_name=EXCHANGE,
        )
        self.stage = ClosedBarStage(
            candles=candles,
            publisher=publisher,
            calculator=self.calculator,
            evaluator=self.evaluator,  # alerts on, as a started worker runs
            followers=[self],
        )
        self.pipeline = CandlePipeline(
            exchange_id=EXCHANGE_ID,
            exchange_name=EXCHANGE,
            candles=candles,
            tickers=tickers,
            publisher=publisher,
            repairer=None,
            clock=ExchangeClock(),
            stage=self.stage,
        )
        self.entered: dict[Key, int] = {}
        self.finished: dict[Key, int] = {}

    @property
    def published(self) -> int:
        """Alerts published so far."""
        return self.stage.stats.alerts

    def on_closed_bars(self, bars: Sequence[Candle]) -> None:
        """Follows the stage: its burst is written, rated and alerted."""
        now = time.monotonic_ns()
        for candle in bars:
            self.finished[key_of(candle)] = now


def key_of(candle: Candle) -> Key:
    """Return the key an alert of this bar can be matched on."""
    return candle.symbol, candle.timeframe.value, candle.open_time + duration_ms(candle.timeframe)


async def warm_up(path: DataPath, paths: dict[str, list[SeriesPath]], history: int) -> None:
    """Write `history` closed bars per series, then seed the calculator from the cache."""
    started = time.perf_counter()
    for series in paths.values():
        await path.candles.write_many([p.next_candle() for p in series for _ in range(history)])
    written = time.perf_counter()
    todo = [(p.symbol, p.timeframe) for series in paths.values() for p in series]
    for start in range(0, len(todo), 64):
        await asyncio.gather(*(path.calculator.warmup(s, tf) for s, tf in todo[start : start + 64]))
    await path.evaluator.judged(todo)  # as the worker's warm-up: every alert state read once
    print(
        f"warm-up: {len(todo)} series x {history} bars written in {written - started:.1f} s, "
        f"calculator seeded in {time.perf_counter() - written:.1f} s"
    )


async def feed(path: DataPath, schedule: Schedule) -> float:
    """Put each item into the pipeline when it is due; return seconds until all were processed."""
    started = time.perf_counter()
    for due, item in schedule:
        delay = started + due - time.perf_counter()
        if delay > 0.0005:
            await asyncio.sleep(delay)  # pacing the stream, not synchronising
        if isinstance(item, Ticker):
            path.pipeline.on_ticker(item)
            continue
        path.entered[key_of(item)] = time.monotonic_ns()
        await path.pipeline.on_candle(item)
    await path.pipeline.drain()
    return time.perf_counter() - started


async def baseline(redis: RedisClient, count: int, size: int) -> dict[int, int]:
    """Publish `count` alert-sized payloads, 1 ms apart; return send time by sequence."""
    sent: dict[int, int] = {}
    channel = channels.alerts_channel(BASELINE_EXCHANGE_ID)
    pad = "x" * size
    for seq in range(count):
        sent[seq] = time.monotonic_ns()
        await redis.publish(channel, f'{{"seq":{seq},"pad":"{pad}"}}')
        await asyncio.sleep(0.001)
    return sent


def subscribe_alerts(host: str, port: int, conn: Connection) -> None:
    """Subscriber process: PSUBSCRIBE alerts, timestamp each message, send them all at the end."""
    import redis

    client = redis.Redis(host=host, port=port)
    pubsub = client.pubsub()  # type: ignore[no-untyped-call]
    pubsub.psubscribe(channels.ALL_ALERTS_PATTERN)
    while (message := pubsub.get_message(timeout=5.0)) is None or message["type"] != "psubscribe":
        pass
    conn.send("ready")
    stop = channels.alerts_channel(STOP_EXCHANGE_ID).encode()
    records: list[tuple[int, str, bytes]] = []
    while True:
        message = pubsub.get_message(timeout=1.0)
        at_ns = time.monotonic_ns()
        if message is None or message["type"] != "pmessage":
            continue
        if message["channel"] == stop:
            break
        records.append((at_ns, message["channel"].decode(), message["data"]))
    conn.send(records)
    pubsub.close()
    client.close()


def alert_latencies(
    entered: dict[Key, int], received: list[tuple[int, str, bytes]]
) -> tuple[list[float], int]:
    """Match received AlertEvents to the candles that closed them; return latencies (ms), misses."""
    out: list[float] = []
    unmatched = 0
    for at_ns, channel, data in received:
        if channels.parse_alerts_channel(channel) != EXCHANGE_ID:
            continue
        event = AlertEvent.model_validate_json(data)
        closed_ms = int(event.triggered_at.timestamp() * 1000)
        start = entered.get((event.symbol, event.timeframe.value, closed_ms))
        if start is None:
            unmatched += 1  # a throughput-phase alert
            continue
        out.append((at_ns - start) / 1e6)
    return out, unmatched


def baseline_latencies(sent: dict[int, int], received: list[tuple[int, str, bytes]]) -> list[float]:
    """Return the bare PUBLISH -> receipt times (ms)."""
    return [
        (at_ns - sent[int(json.loads(data)["seq"])]) / 1e6
        for at_ns, channel, data in received
        if channels.parse_alerts_channel(channel) == BASELINE_EXCHANGE_ID
    ]


async def server_time(redis: RedisClient, cpu_before: dict[str, Any]) -> str:
    """Return the server's command time and CPU since `config_resetstat` / `cpu_before`."""
    stats = await redis.info("commandstats")
    cpu = await redis.info("cpu")
    calls = sum(int(v["calls"]) for v in stats.values())
    usec = sum(int(v["usec"]) for v in stats.values())
    used = sum(float(cpu[k]) - float(cpu_before[k]) for k in ("used_cpu_sys", "used_cpu_user"))
    return f"{calls} commands, {usec / 1e3:,.0f} ms in commands, {used * 1e3:,.0f} ms CPU"


def live_schedule(args: argparse.Namespace, paths: dict[str, list[SeriesPath]]) -> Schedule:
    """Return the measured stream of `--mode` (generated lazily) and print what it is."""
    if args.mode == "steady":
        candles = args.rounds * len(paths) * len(RUNTIME_TIMEFRAMES)
        shape = f"{args.rounds} rounds of {args.symbols} x 6, steady {args.rate:.0f} candles/s"
        schedule = steady(paths, args.rounds, args.rate)
    else:
        minutes = range(args.end_minute - args.minutes + 1, args.end_minute + 1)
        candles = len(paths) * sum(len(closing_at(m)) for m in minutes)
        shape = (
            f"exchange minutes {minutes[0]}..{minutes[-1]} of a day (1440 = day boundary), "
            f"{args.minute_s} s apart, every bar closing at a minute arrives at once"
        )
        schedule = bursts(paths, minutes, args.minute_s)
    print(f"live: {candles} closed candles, {shape}; {args.scripted} symbols scripted", flush=True)
    return schedule


class GcWatch:
    """Counts garbage-collector passes and their pauses while `active`."""

    def __init__(self) -> None:
        self.active = False
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._started = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif self.active:
            self.pauses[info["generation"]].append((time.perf_counter() - self._started) * 1e3)

    def summary(self) -> str:
        """Return `genN: count, total ms, max ms` for each generation."""
        return "; ".join(
            f"gen{gen} {len(p)}x total {sum(p):.0f} ms max {max(p, default=0):.1f} ms"
            for gen, p in self.pauses.items()
        )


async def run(args: argparse.Namespace, settings: RedisSettings, conn: Connection) -> None:
    """Warm up, measure the baseline, the paced live phase and the unpaced throughput."""
    redis = connect_redis(settings)
    path = DataPath(redis, CacheSettings())
    runner = asyncio.get_running_loop().create_task(path.pipeline.run())
    paths = make_paths(args.symbols, args.scripted, args.seed)
    await warm_up(path, paths, args.history)
    if args.gc_freeze:
        gc.collect()
        gc.freeze()  # what a worker could do once warm: the startup heap is never rescanned
    live = live_schedule(args, paths)
    sent = await baseline(redis, args.baseline, 1_000)
    watch = GcWatch()
    watch.active = True
    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        profiler.enable()
    await redis.config_resetstat()
    cpu_before = await redis.info("cpu")
    own_cpu = time.process_time()
    elapsed = await feed(path, live)
    own_cpu = time.process_time() - own_cpu
    server = await server_time(redis, cpu_before)
    watch.active = False
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    alerts_live, entered = path.published, dict(path.entered)
    processed = [(path.finished[k] - t) / 1e6 for k, t in entered.items()]
    path.entered.clear()
    through = await feed(path, steady(paths, args.throughput_rounds, None))
    await redis.publish(channels.alerts_channel(STOP_EXCHANGE_ID), "stop")
    received: list[tuple[int, str, bytes]] = await asyncio.to_thread(conn.recv)
    await path.pipeline.stop()
    await runner
    await redis.aclose()

    latencies, _ = alert_latencies(entered, received)
    print(f"live phase took {elapsed:.1f} s ({len(entered) / elapsed:,.0f} candles/s on average)")
    print(latency_line("baseline PUBLISH -> subscriber", baseline_latencies(sent, received)))
    print(latency_line("candle in -> path done (all)", processed))
    print(latency_line("candle in -> AlertEvent received", latencies))
    print(f"GC during the live phase: {watch.summary()}")
    print(f"CPU during the live phase: this process {own_cpu * 1e3:,.0f} ms; Redis: {server}")
    p99 = percentile(sorted(latencies), 0.99)
    verdict = "within" if latencies and p99 <= BUDGET_P99_MS else "OVER"
    print(f"alerts published {alerts_live}, received {len(latencies)}; ", end="")
    print(f"p99 {p99:.3f} ms is {verdict} the {BUDGET_P99_MS:.0f} ms budget")
    if args.throughput_rounds:
        count = args.throughput_rounds * len(paths) * len(RUNTIME_TIMEFRAMES)
        print(f"throughput, unpaced ({count} candles, whole path incl. alerts): ", end="")
        print(f"{count / through:,.0f} closed candles/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--symbols", type=int, default=1000)
    parser.add_argument("--scripted", type=int, default=100, help="symbols driven through levels")
    parser.add_argument("--history", type=int, default=100, help="closed bars per series")
    parser.add_argument("--rate", type=float, default=400.0, help="closed candles/s, live phase")
    parser.add_argument("--mode", choices=["steady", "burst"], default="steady")
    parser.add_argument("--rounds", type=int, default=5, help="steady: live bars per series")
    parser.add_argument("--minutes", type=int, default=15, help="burst: exchange minutes")
    parser.add_argument("--end-minute", type=int, default=1440, help="burst: last minute of day")
    parser.add_argument("--minute-s", type=float, default=4.0, help="burst: seconds per minute")
    parser.add_argument("--throughput-rounds", type=int, default=1)
    parser.add_argument("--baseline", type=int, default=2000, help="bare PUBLISH samples")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--log-level", default="INFO", help="worker log level (to /dev/null)")
    parser.add_argument("--gc-freeze", action="store_true", help="gc.freeze() after warm-up")
    parser.add_argument("--profile", default=None, help="write a cProfile of the live phase")
    args = parser.parse_args()
    with open("/dev/null", "w") as sink:  # the worker's JSON logging, rendered and discarded
        stderr, sys.stderr = sys.stderr, sink
        configure_logging(LogSettings(level=args.log_level, LIVERMORE_LOG_JSON=True))
        sys.stderr = stderr
        with private_redis() as server:
            ctx = mp.get_context("spawn")
            ours, theirs = ctx.Pipe()
            host, port = server.settings.host, server.settings.port
            sub = ctx.Process(target=subscribe_alerts, args=(host, port, theirs), daemon=True)
            sub.start()
            if not ours.poll(30) or ours.recv() != "ready":
                raise SystemExit("alert subscriber did not start")
            try:
                asyncio.run(run(args, server.settings, ours))
            finally:
                sub.join(timeout=10)
                if sub.is_alive():
                    sub.terminate()


if __name__ == "__main__":
    main()
