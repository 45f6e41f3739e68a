"""Composition of exchange-core services into one streaming session of a worker.

A `StreamingSession` lives from `start`/`resume` to `stop`/`pause`: REST client, candle pipeline,
adapter, indicator calculator, alert evaluator and, on Coinbase, the boundary service. The data
path is the library's: adapter -> `CandlePipeline` (order, gaps) -> `ClosedBarStage` (cache ->
publish -> indicator -> cache -> publish -> alerts, a burst at a time); the boundary service
feeds the same pipeline and follows the stage. The pipeline takes a predecessor's pending repairs
and the cached bars no alert judged yet (delayed) first. Long-lived pieces come as `Services`.

In `scalper-orderbook` mode the adapter also streams order books (tops in `orderbook:` keys, TTL
30 s); leaving the mode or removing a symbol unsubscribes them and deletes their keys at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import structlog

from livermore_cache import keys
from livermore_cache.candles import CandleCache
from livermore_cache.client import RedisClient
from livermore_cache.holders import Tier2Holders
from livermore_cache.indicators import IndicatorCache
from livermore_cache.pubsub import Publisher
from livermore_cache.repairs import RepairStore
from livermore_cache.scan import delete_matching
from livermore_cache.tickers import OrderBookCache, TickerCache
from livermore_exchange_core.alerts.evaluator import AlertEvaluator, AlertSink
from livermore_exchange_core.backfill import BackfillProgress, BackfillReport, StartupBackfill
from livermore_exchange_core.base import RestClient
from livermore_exchange_core.boundary import HIGHER_TIMEFRAMES, BoundaryRestService
from livermore_exchange_core.clock import ExchangeClock
from livermore_exchange_core.config import ExchangeConfig
from livermore_exchange_core.errors import ExchangeUnavailableError
from livermore_exchange_core.events import AdapterLifecycle
from livermore_exchange_core.factory import create_adapter
from livermore_exchange_core.indicators.calculator import IndicatorCalculator
from livermore_exchange_core.pipeline import CandlePipeline
from livermore_exchange_core.reconciliation import GapRepairer
from livermore_exchange_core.stage import ClosedBarStage
from livermore_exchange_core.symbols.assets import AssetMap
from livermore_schema.enums import RUNTIME_TIMEFRAMES, ExchangeName, Timeframe, WorkerMode
from livermore_schema.market import Candle
from livermore_schema.settings import CacheSettings, WorkerSettings
from livermore_worker.reconcile import SessionSweep

log = structlog.get_logger(__name__)

SCALPER_TIMEFRAMES: tuple[Timeframe, ...] = (Timeframe.M1, Timeframe.M5, Timeframe.M15)
SCALPER_COOLDOWN_S = 60.0
"""Scalper modes re-alert sooner than the 5-minute position-monitor cooldown."""


@dataclass(frozen=True, slots=True)
class ModeProfile:
    """What a worker mode streams and how often it may re-alert."""

    mode: WorkerMode
    timeframes: tuple[Timeframe, ...]
    cooldown_s: float
    orderbook: bool = False


def mode_profile(mode: WorkerMode, base_cooldown_s: float) -> ModeProfile:
    """Return the profile of `mode` (SPEC section 9)."""
    scalper_cooldown = min(base_cooldown_s, SCALPER_COOLDOWN_S)
    profiles = {
        WorkerMode.POSITION_MONITOR: ModeProfile(mode, RUNTIME_TIMEFRAMES, base_cooldown_s),
        WorkerMode.SCALPER_MACDV: ModeProfile(mode, SCALPER_TIMEFRAMES, scalper_cooldown),
        WorkerMode.SCALPER_ORDERBOOK: ModeProfile(
            mode, SCALPER_TIMEFRAMES, scalper_cooldown, orderbook=True
        ),
    }
    return profiles[mode]


@dataclass(frozen=True, slots=True)
class Services:
    """The worker's long-lived pieces every session shares."""

    redis: RedisClient
    exchange: ExchangeConfig
    cache_settings: CacheSettings
    worker_settings: WorkerSettings
    candles: CandleCache
    indicators: IndicatorCache
    tickers: TickerCache
    publisher: Publisher
    alert_sink: AlertSink | None
    user_id: int | None
    """The legacy twin channel's identity (`--user`), nothing else."""
    tier2: Tier2Holders
    """Tier 2 symbol -> holders; the caches fan a holder's write out to every holder."""
    assets: AssetMap | None = None


class StreamingSession:
    """One start-to-stop run of the data path for a symbol set and a mode."""

    def __init__(
        self,
        services: Services,
        rest: RestClient,
        profile: ModeProfile,
        on_lifecycle: Callable[[AdapterLifecycle], object],
    ) -> None:
        self._s = services
        self._rest = rest
        self.profile = profile
        self._tier2: Tier2Holders = services.tier2
        self._alerts_on = False
        self._exchange = services.exchange
        self._lifecycle_cb = on_lifecycle
        self.calculator = IndicatorCalculator(
            services.candles,
            services.indicators,
            services.publisher,
            exchange_id=self._exchange.exchange_id,
        )
        self.evaluator = self._evaluator(profile)
        self.clock = ExchangeClock()
        self.stage = ClosedBarStage(
            candles=services.candles,
            publisher=services.publisher,
            calculator=self.calculator,
            timeframes=profile.timeframes,
            user_id=services.user_id,
            tier2_users=dict(self._tier2),
        )
        self.pipeline = CandlePipeline(
            exchange_id=self._exchange.exchange_id,
            exchange_name=self._exchange.name.value,
            candles=services.candles,
            tickers=services.tickers,
            publisher=services.publisher,
            repairer=GapRepairer(
                rest,
                services.candles,
                exchange_id=self._exchange.exchange_id,
                exchange_name=self._exchange.name.value,
                user_ids=self._tier2,
            ),
            clock=self.clock,
            stage=self.stage,
            on_lifecycle=self._on_lifecycle,
            order_books=OrderBookCache(services.redis, services.cache_settings),
            repair_backoff=services.worker_settings.repair_retry_cap_s,
            repair_store=RepairStore(services.redis, self._exchange.exchange_id),
        )
        self.adapter = create_adapter(self._exchange, self.pipeline, clock=self.clock)
        self.boundary: BoundaryRestService | None = None
        self._late: list[Candle] = []
        self.sweep = SessionSweep(rest, services, self)  # also: REST time follows the stream
        self._pipeline_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ start sequence

    async def backfill(
        self, symbols: Sequence[str], progress: Callable[[BackfillProgress], None]
    ) -> BackfillReport:
        """Fill the cache for `symbols` x the mode's timeframes (only what is missing)."""
        backfill = StartupBackfill(
            self._rest,
            self._s.candles,
            exchange_id=self._exchange.exchange_id,
            exchange_name=self._exchange.name.value,
            candles_per_series=self._s.worker_settings.backfill_candles,
            progress=progress,
        )
        return await backfill.run(symbols, self.profile.timeframes, user_ids=self._tier2)

    async def warmup(
        self, symbols: Sequence[str], progress: Callable[[int, int, str], None]
    ) -> None:
        """Seed every series' MACD-V from the cache up to its last judged bar (`_catch_up`)."""
        series = [(s, tf) for s in symbols for tf in self.profile.timeframes]
        judged = await self.evaluator.judged(series)
        judged = await self.pipeline.repairs.adopt(symbols, self.profile, judged)
        self._late += await self.calculator.warmup_all(series, judged, self._tier2.get, progress)
        await self._catch_up()

    async def _catch_up(self) -> None:
        if self._pipeline_task is not None:  # alerts on; adopted repairs, then unjudged bars
            late, self._late = self._late, []
            self.enable_alerts()
            await self.pipeline.resume()
            await self.pipeline.catch_up(late)

    async def connect(self, group: asyncio.TaskGroup, symbols: Sequence[str]) -> None:
        """Run the pipeline in `group` (inherited repairs and unjudged bars first), subscribe."""
        self._pipeline_task = group.create_task(self.pipeline.run(), name="pipeline")
        await self._catch_up()
        self.sweep.start(group)
        await self.adapter.subscribe(symbols, self.profile.timeframes)
        if self.profile.orderbook:
            await self.adapter.subscribe_order_books(symbols)
        await self.adapter.connect()

    async def wait_ready(self, timeout_s: float) -> None:
        """Wait until the exchange has accepted the connection and every subscription.

        Raises:
            ExchangeUnavailableError: not within `timeout_s` (the start then fails cleanly).
        """
        try:
            await asyncio.wait_for(self.adapter.wait_ready(), timeout_s)
        except TimeoutError as err:
            raise ExchangeUnavailableError(
                f"{self._exchange.name.value}: no open connection with acknowledged "
                f"subscriptions within {timeout_s:g} s",
                exchange=self._exchange.name.value,
            ) from err

    def start_boundary(self, symbols: Sequence[str]) -> bool:
        """Start the Coinbase boundary REST service; return whether this exchange needs one."""
        if self._exchange.name is not ExchangeName.COINBASE:
            return False
        self.boundary = self._boundary(symbols)
        return True

    def enable_alerts(self) -> None:
        """Evaluate alerts on every new indicator value from now on."""
        self._alerts_on = True
        self.stage.evaluator = self.evaluator

    # ------------------------------------------------------------------ live changes

    def holders_changed(self) -> None:
        """Take up a new `Services.tier2` map (the caller replaced it) in every consumer."""
        self.stage.tier2_users = dict(self._tier2)
        self._refresh_boundary()

    async def backfill_holders(self, joined: Mapping[str, int]) -> BackfillReport:
        """Fill new holders' keys of symbols already streamed (symbol -> the joining user)."""
        backfill = StartupBackfill(
            self._rest,
            self._s.candles,
            exchange_id=self._exchange.exchange_id,
            exchange_name=self._exchange.name.value,
            candles_per_series=self._s.worker_settings.backfill_candles,
        )
        return await backfill.run(list(joined), self.profile.timeframes, user_ids=joined)

    async def add_symbols(self, names: Sequence[str]) -> BackfillReport:
        """Backfill, warm up and subscribe new symbols (their holders are already in `tier2`)."""
        self.pipeline.forget(names, forgotten=False)
        self.holders_changed()
        report = await self.backfill(names, lambda _: None)
        await self.warmup(names, lambda *_: None)
        await self.adapter.subscribe(names, self.profile.timeframes)
        if self.profile.orderbook:
            await self.adapter.subscribe_order_books(names)
        self._refresh_boundary()
        return report

    async def remove_symbols(self, symbols: Iterable[str]) -> None:
        """Unsubscribe symbols and forget their indicator state."""
        names = list(symbols)
        await self.adapter.unsubscribe(names, RUNTIME_TIMEFRAMES)
        self.pipeline.forget(names)  # nothing queued or repairing for them is written any more
        await self._stop_order_books(names)
        for symbol in names:
            for timeframe in RUNTIME_TIMEFRAMES:
                self.calculator.reset(symbol, timeframe)
        self.holders_changed()

    async def switch(self, profile: ModeProfile, symbols: Sequence[str]) -> dict[str, list[str]]:
        """Apply a new mode: (un)subscribe only the timeframes and order books that differ."""
        old, new = set(self.profile.timeframes), set(profile.timeframes)
        added = [tf for tf in profile.timeframes if tf not in old]
        dropped = [tf for tf in self.profile.timeframes if tf not in new]
        books_on = sorted(symbols) if profile.orderbook and not self.profile.orderbook else []
        books_off = sorted(symbols) if self.profile.orderbook and not profile.orderbook else []
        self.profile = profile
        self.evaluator = self._evaluator(profile)
        self.stage.timeframes = frozenset(profile.timeframes)
        if self._alerts_on:
            self.stage.evaluator = self.evaluator
        if books_off:
            await self._stop_order_books(books_off)
        if dropped:
            await self.adapter.unsubscribe(symbols, dropped)
        if added:
            await self.backfill(symbols, lambda _: None)
            await self.warmup(symbols, lambda *_: None)
            await self.adapter.subscribe(symbols, added)
        if books_on:
            await self.adapter.subscribe_order_books(books_on)
        if self.boundary is not None and (added or dropped):  # a new service, old waves finish
            previous, self.boundary = self.boundary, self._boundary(symbols)
            self.stage.followers.remove(previous)
            await previous.drain()
        return {
            "added": [tf.value for tf in added],
            "removed": [tf.value for tf in dropped],
            "order_books_added": books_on,
            "order_books_removed": books_off,
        }

    async def force_backfill(self, symbol: str, timeframes: Sequence[Timeframe]) -> int:
        """Refetch the newest bars of a symbol over REST and re-warm its indicators."""
        user_id = self._tier2.get(symbol)
        written = 0
        for timeframe in timeframes:
            bars = await self._rest.get_candles(
                symbol, timeframe, limit=self._s.worker_settings.backfill_candles
            )
            written += await self._s.candles.write_many(
                [b for b in bars if b.closed], user_id=user_id
            )
            self.calculator.reset(symbol, timeframe)
            await self.calculator.warmup(symbol, timeframe, user_id=user_id)
        return written

    # ------------------------------------------------------------------ shutdown

    async def close(self) -> None:
        """Close the stream, finish queued candles, stop boundary waves."""
        self._alerts_on = False
        self.stage.evaluator = None
        await self.adapter.close()
        await self.sweep.stop()
        if self.boundary is not None:
            await self.boundary.aclose()
        if self._pipeline_task is not None:
            await self.pipeline.stop()
            await self._pipeline_task
            self._pipeline_task = None

    # ------------------------------------------------------------------ internals

    async def _stop_order_books(self, symbols: list[str]) -> None:
        """Unsubscribe the books, then delete their keys (no stale book outlives the mode)."""
        streamed = [s for s in symbols if s in self.adapter.order_book_symbols]
        if streamed:
            await self.adapter.unsubscribe_order_books(streamed)
            await self.pipeline.drop_order_books(streamed)

    def _evaluator(self, profile: ModeProfile) -> AlertEvaluator:
        return AlertEvaluator(
            self._s.redis,
            self._s.indicators,
            self._s.tickers,
            self._s.candles,
            self._s.publisher,
            exchange_id=self._exchange.exchange_id,
            exchange_name=self._exchange.name.value,
            cooldown_s=profile.cooldown_s,
            timeframes=RUNTIME_TIMEFRAMES,  # the context lists every timeframe in every mode
            sink=self._s.alert_sink,
            assets=self._s.assets,
        )

    def _boundary(self, symbols: Sequence[str]) -> BoundaryRestService:
        wanted = [tf for tf in HIGHER_TIMEFRAMES if tf in self.profile.timeframes]
        service = BoundaryRestService(
            self._rest,
            self._s.candles,
            exchange_id=self._exchange.exchange_id,
            exchange_name=self._exchange.name.value,
            timeframes=wanted,
            sink=self.pipeline,
            symbols=symbols,
            user_ids=self._tier2,
        )
        service.start(self.clock.now_ms())  # bars that closed while starting: fetched now
        self.stage.followers.append(service)
        return service

    def _refresh_boundary(self) -> None:
        if self.boundary is not None:
            symbols = sorted({s for s, _ in self.adapter.subscriptions})
            self.boundary.set_symbols(symbols, self._tier2)

    async def _on_lifecycle(self, event: AdapterLifecycle) -> None:
        self._lifecycle_cb(event)


async def clear_series(
    redis: RedisClient, exchange_id: int, symbol: str = "*", timeframe: str = "*"
) -> int:
    """Delete candle, indicator (both tiers), ticker and order-book keys matching (SCAN)."""
    patterns = [
        keys.candles_pattern(exchange_id, symbol, timeframe),
        keys.user_candles_pattern(exchange_id, symbol, timeframe),
        keys.indicators_pattern(exchange_id, symbol, timeframe),
        keys.user_indicators_pattern(exchange_id, symbol, timeframe),
    ]
    if timeframe == "*":
        patterns += [
            keys.tickers_pattern(exchange_id, symbol),
            keys.orderbooks_pattern(exchange_id, symbol),
        ]
    deleted = 0
    for pattern in patterns:
        deleted += await delete_matching(redis, pattern)
    return deleted
