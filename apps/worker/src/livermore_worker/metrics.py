"""The worker's Prometheus metrics and the small HTTP server that exposes them at `/metrics`.

Counted where they happen, in exchange-core's `telemetry` (stream messages and reconnects, REST
requests and 429/418 replies, closed bars, alerts and the close->alert lag of the closed-bar
stage) and read when scraped. Pending repairs, the command queue depth, the lease holder and the
fenced writes are state, read from the session and Redis at each scrape. The server is off unless
`LIVERMORE_WORKER_METRICS_PORT` is set; it binds `LIVERMORE_WORKER_METRICS_HOST` (loopback).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from itertools import accumulate

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from livermore_exchange_core.telemetry import LAG_BUCKETS_S, snapshot

log = structlog.get_logger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The Prometheus text exposition format."""
_COUNTERS = {
    "messages": ("livermore_exchange_messages", "Frames received on exchange streams"),
    "reconnects": ("livermore_reconnects", "Exchange stream reconnects"),
    "rest_requests": ("livermore_rest_requests", "REST requests answered by the exchange"),
    "rest_throttled": ("livermore_rest_throttled", "REST replies with 429 or 418 (rate limited)"),
    "closed_bars": ("livermore_closed_bars", "Closed bars through the closed-bar stage"),
    "alerts": ("livermore_alerts", "Alerts published"),
    "reconciled_bars": (
        "livermore_reconciled_bars",
        "Closed bars re-read by the reconciliation sweep",
    ),
    "reconcile_corrections": (
        "livermore_reconcile_corrections",
        "Cached bars the reconciliation sweep found wrong, missing or unfinished and corrected",
    ),
}


class _TelemetryCollector(Collector):
    """Exchange-core's per-exchange counters and lag histogram, read at scrape time."""

    def collect(self) -> Iterator[Metric]:
        """Yield every counter and the lag histogram, one sample set per exchange."""
        counts = sorted(snapshot().items())
        for field, (name, text) in _COUNTERS.items():
            family = CounterMetricFamily(name, text, labels=["exchange"])
            for exchange, traffic in counts:
                family.add_metric([exchange], getattr(traffic, field))
            yield family
        lag = HistogramMetricFamily(
            "livermore_close_to_alert_seconds",
            "From closed bars entering the closed-bar stage to their alerts being published",
            labels=["exchange"],
        )
        bounds = [*(f"{b:g}" for b in LAG_BUCKETS_S), "+Inf"]
        for exchange, traffic in counts:
            cumulative = list(accumulate(traffic.close_to_alert.counts))
            lag.add_metric(
                [exchange], list(zip(bounds, cumulative, strict=True)),
                traffic.close_to_alert.total_s,
            )  # fmt: skip
        yield lag


class WorkerMetrics:
    """Every metric of one worker process, in a registry of its own."""

    def __init__(self, exchange: str, worker_id: str) -> None:
        self.exchange = exchange
        self.worker_id = worker_id
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_TelemetryCollector())
        labels = ["exchange"]
        self.pending_repairs = Gauge(
            "livermore_pending_repairs",
            "Series waiting for a gap repair over REST",
            labels,
            registry=self.registry,
        ).labels(exchange)
        self.oldest_repair_age = Gauge(
            "livermore_oldest_repair_age_seconds",
            "How long the oldest pending gap repair has waited (0: none)",
            labels,
            registry=self.registry,
        ).labels(exchange)
        self.command_queue_depth = Gauge(
            "livermore_command_queue_depth",
            "Commands queued and not yet handled",
            labels,
            registry=self.registry,
        ).labels(exchange)
        self.lease_held = Gauge(
            "livermore_lease_held",
            "1 while this worker holds its exchange's lease",
            ["exchange", "worker_id"],
            registry=self.registry,
        ).labels(exchange, worker_id)
        self._holder = Gauge(
            "livermore_lease_holder", "1 for the worker that holds the exchange's lease",
            ["exchange", "holder"], registry=self.registry,
        )  # fmt: skip
        self._fenced = Gauge(
            "livermore_fenced_writes",
            "Writes of this worker fenced since it started: refused on the client (its lease"
            " deadline passed) or rejected by Redis (a newer lease epoch had written there)",
            ["exchange", "where"], registry=self.registry,
        )  # fmt: skip

    def set_fenced(self, refused: int, rejected: int) -> None:
        """Record the writes fenced so far: refused on the client, rejected by Redis."""
        self._fenced.labels(self.exchange, "client").set(refused)
        self._fenced.labels(self.exchange, "store").set(rejected)

    def set_lease_holder(self, holder: str | None) -> None:
        """Record who holds the lease now (one labelled sample, the old one removed)."""
        self._holder.clear()
        if holder is not None:
            self._holder.labels(self.exchange, holder).set(1)
        self.lease_held.set(1 if holder == self.worker_id else 0)

    def render(self) -> bytes:
        """Return the registry in the text exposition format."""
        return generate_latest(self.registry)


Refresh = Callable[[WorkerMetrics], Awaitable[None]]


@contextlib.asynccontextmanager
async def metrics_server(
    metrics: WorkerMetrics, refresh: Refresh, host: str, port: int
) -> AsyncIterator[int]:
    """Serve `GET /metrics` on `host:port` (0: any free port) and yield the bound port."""

    async def handle(request: web.Request) -> web.Response:
        del request
        try:
            await refresh(metrics)
        except Exception as err:  # stale gauges are better than no metrics
            log.warning("metrics.refresh_failed", error=repr(err))
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    app = web.Application()
    app.router.add_get("/metrics", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound: int = runner.addresses[0][1]
    log.info("metrics.serving", host=host, port=bound)
    try:
        yield bound
    finally:
        await runner.cleanup()
