"""Chaos soak, long form (issue 13): hours of simulated time with seeded random faults.

Run: `uv run python bench/soak_chaos.py [--rounds 4] [--speed 60] [--seed 13] [--skew 0.8]`.
Each round injects every fault kind once in a seeded order (WebSocket drop and close, stall, a
REST outage beyond the retry budget with a drop inside it, late Coinbase trades lost across a
reconnect, kill -9 of the active Binance worker mid-repair with the standby taking over, a Redis
kill -9 and restart from its AOF), 2-5 simulated minutes apart; the Coinbase workers run the whole
time on a wrong `LIVERMORE_EXCHANGE_CLOCK_RATE` (speed x --skew). The harness is the short test's
(tests/chaos/, see tests/test_chaos_soak.py): a private redis-server, a throwaway PostgreSQL
database, the simulator in this process, real `livermore-worker` processes.

Prints: simulated hours, faults injected by kind, bars compared (missing / duplicate / unfinished /
differing / extra), alerts expected / published / delayed, 429s, takeover times, the fault
timeline, then every failed check. Exits 1 when a check failed (the logs are kept then).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

from _common import throwaway_database

from livermore_schema.db import upgrade
from livermore_schema.settings import DatabaseSettings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from chaos.run import SoakConfig, run_soak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4, help="every fault kind this many times")
    parser.add_argument("--speed", type=float, default=60.0, help="simulated s per real s")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--skew", type=float, default=0.8, help="Coinbase clock rate factor")
    parser.add_argument("--settle", type=float, default=120.0, help="wall s to wait at the end")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="livermore-chaos-"))
    with throwaway_database(DatabaseSettings()) as database:
        upgrade(database)
        config = SoakConfig(
            workdir=workdir,
            seed=args.seed,
            speed=args.speed,
            rounds=args.rounds,
            clock_skew=args.skew,
            settle_wall_s=args.settle,
        )
        report = asyncio.run(run_soak(config, database))
    print(report.text(), flush=True)
    if report.failures:
        print(f"worker and redis logs kept in {workdir}", flush=True)
        return 1
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
