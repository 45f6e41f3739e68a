"""End to end: a running worker's `/metrics` counts closed bars and a scripted crossing's alert.

A Binance worker streams from the simulator with `LIVERMORE_WORKER_METRICS_PORT` set; after a
scripted MACD-V excursion has fired an alert, the Prometheus text on that port shows closed bars,
the alert, its close->alert lag, stream messages and REST requests for binance, this worker as
the lease holder and an empty command queue.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from livermore_exchange_sim.market import Venue
from livermore_exchange_sim.scenarios import macdv_excursion
from livermore_exchange_sim.testing import running_sim
from livermore_schema.alerts import AlertEvent
from livermore_schema.enums import ConnectionState

from .conftest import WorkerProcess, _free_port, poll

BINANCE = 2
MINUTE_MS = 60_000

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def _scrape(url: str) -> Samples:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await response.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_worker_metrics_count_closed_bars_and_a_scripted_alert(
    seeded_symbols: dict[int, tuple[str, ...]],
    spawn_worker: Callable[..., WorkerProcess],
    lifecycle: Any,
    alerts: Any,
) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    start_ms = int(time.time() * 1000) // MINUTE_MS * MINUTE_MS
    excursion = macdv_excursion(
        "BTC", start_ms + 8 * MINUTE_MS, timeframe_ms=MINUTE_MS, venues=frozenset({Venue.BINANCE})
    )
    async with running_sim(
        seed=5, speed=60.0, symbols=["BTC", "ETH"], scenarios=[excursion], start_ms=start_ms
    ) as sim:
        worker = spawn_worker(
            "binance", "--autostart", sim=sim, LIVERMORE_WORKER_METRICS_PORT=str(port)
        )
        await lifecycle.wait_for(
            lambda e: e.exchange_id == BINANCE and e.state is ConnectionState.CONNECTED,
            60,
            "binance connected",
        )
        fired: AlertEvent = await alerts.wait_for(
            lambda a: a.source_exchange_id == BINANCE and a.symbol == "BTCUSDT",
            60,
            "a scripted Binance alert",
        )

        async def counted() -> Samples | None:
            samples = await _scrape(url)
            return (
                samples if _value(samples, "livermore_alerts_total", exchange="binance") else None
            )

        samples = await poll(counted, 10, "the alert counted on /metrics")
        assert worker.proc.poll() is None, worker.tail()

    ex = {"exchange": "binance"}
    published = [a for _, a in alerts.items if a.source_exchange_id == BINANCE]
    assert 1 <= _value(samples, "livermore_alerts_total", **ex) <= len(published), fired
    # a level crossing needs the crossing bar and the series' previous published bar
    assert _value(samples, "livermore_closed_bars_total", **ex) >= 2
    assert _value(samples, "livermore_close_to_alert_seconds_count", **ex) == _value(
        samples, "livermore_alerts_total", **ex
    )
    assert 0 < _value(samples, "livermore_close_to_alert_seconds_sum", **ex) < 5
    assert _value(samples, "livermore_exchange_messages_total", **ex) > 0
    assert _value(samples, "livermore_rest_requests_total", **ex) > 0
    assert _value(samples, "livermore_rest_throttled_total", **ex) == 0
    assert _value(samples, "livermore_reconnects_total", **ex) == 0
    assert _value(samples, "livermore_pending_repairs", **ex) == 0
    assert _value(samples, "livermore_oldest_repair_age_seconds", **ex) == 0
    assert ("livermore_command_queue_depth", (("exchange", "binance"),)) in samples
    assert _value(samples, "livermore_command_queue_depth", **ex) == 0
    held = [k for k, v in samples.items() if k[0] == "livermore_lease_held" and v == 1]
    assert len(held) == 1, held
    holder = dict(held[0][1])["worker_id"]
    assert _value(samples, "livermore_lease_holder", exchange="binance", holder=holder) == 1
    for where in ("client", "store"):  # a lone worker never had a write fenced
        assert (
            "livermore_fenced_writes",
            (("exchange", "binance"), ("where", where)),
        ) in samples
        assert _value(samples, "livermore_fenced_writes", exchange="binance", where=where) == 0
