"""Chaos soak, short form: ~1.5 simulated hours (~100 s at 60x) on Coinbase and Binance, every fault
kind once (WebSocket drop/close, stall, a REST outage beyond the retry budget, late Coinbase trades
across a reconnect, kill -9 of the active Binance worker mid-repair with the standby taking over,
a Redis restart) and the Coinbase workers on a wrong clock rate. Afterwards the cache equals the
simulator's truth on every runtime timeframe, every alert the truth implies (an independent
reference, tests/chaos/reference.py) was published exactly once with `delayed` where the bar
closed out of sight, and the simulator answered no 429. The long form is bench/soak_chaos.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from livermore_schema.settings import DatabaseSettings

from .chaos.run import SoakConfig, run_soak


@pytest.mark.slow
@pytest.mark.timeout(420)
async def test_short_chaos_soak_loses_nothing_and_misses_no_alert(
    pg_settings: DatabaseSettings, tmp_path: Path
) -> None:
    report = await run_soak(SoakConfig(workdir=tmp_path, seed=13, speed=60.0), pg_settings)
    print(report.text())
    assert not report.failures, report.text()
