"""The api's Prometheus metrics: requests by route and status, latency, streams, workers.

One registry per application (so tests and several apps in a process never share counters),
counted by `metrics_middleware` at one place for every request; stream and worker gauges are
read when `/metrics` is scraped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The Prometheus text exposition format."""
_UNMATCHED = "unmatched"


def _registry() -> CollectorRegistry:
    return CollectorRegistry(auto_describe=True)


@dataclass
class ApiMetrics:
    """The api's metrics in their own registry."""

    registry: CollectorRegistry = field(default_factory=_registry)

    def __post_init__(self) -> None:
        self.requests = Counter(
            "livermore_api_requests",
            "Requests answered, by route name, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "livermore_api_request_seconds",
            "Time to answer (streams: until they end)",
            ["route"],
            registry=self.registry,
        )
        self.open_streams = Gauge(
            "livermore_api_open_streams",
            "Live alert and series streams being served",
            registry=self.registry,
        )
        self.worker_alive = Gauge(
            "livermore_worker_alive", "1 while the exchange's worker heartbeats", ["exchange"],
            registry=self.registry,
        )  # fmt: skip

    def render(self) -> bytes:
        """Return the registry in the text exposition format."""
        return generate_latest(self.registry)


METRICS: web.AppKey[ApiMetrics] = web.AppKey("livermore_metrics", ApiMetrics)
"""The app's metrics."""


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count every request by its route name (never by raw path) and time it."""
    started = time.perf_counter()
    response = await handler(request)
    route = request.match_info.route.name or _UNMATCHED
    metrics = request.app[METRICS]
    metrics.requests.labels(route, request.method, str(response.status)).inc()
    metrics.latency.labels(route).observe(time.perf_counter() - started)
    return response
