"""MACD-V cost per bar: incremental update vs batch recompute over the same history (SPEC 13).

Run: `uv run python bench/bench_indicators.py [--bars 1000] [--repeat 7]`. Prints, in one run, the
incremental `MacdVState.update` cost per bar next to the cost of recomputing the whole history
with the batch reference (what the original did on every close), and checks both agree.
"""

from __future__ import annotations

import argparse
import math
import random
import time

from livermore_exchange_core.indicators.macdv import MacdVState, macd_v_series
from livermore_schema.enums import CandleSource, Timeframe
from livermore_schema.market import Candle

BUDGET_US = 5.0
STEP_MS = 60_000


def make_history(bars: int, seed: int) -> list[Candle]:
    rng = random.Random(seed)
    price, slot, out = 100.0, 0, []
    while len(out) < bars:
        slot += 1 + (rng.random() < 0.05)  # about 5% missing bars, as on Coinbase
        price *= 1 + rng.gauss(0, 0.004)
        half = price * rng.uniform(0.0005, 0.004)
        out.append(
            Candle(
                exchange_id=1,
                exchange="coinbase",
                symbol="BTC-USD",
                timeframe=Timeframe.M1,
                open_time=slot * STEP_MS,
                close_time=slot * STEP_MS + STEP_MS - 1,
                open=price,
                high=price + half,
                low=price - half,
                close=price,
                volume=1.0,
                closed=True,
                source=CandleSource.WS,
            )
        )
    return out


def time_incremental(history: list[Candle], repeat: int) -> float:
    best = math.inf
    for _ in range(repeat):
        state = MacdVState(Timeframe.M1)
        update = state.update
        started = time.perf_counter()
        for candle in history:
            update(candle)
        best = min(best, time.perf_counter() - started)
    return best / len(history) * 1e6


def time_batch(history: list[Candle], repeat: int) -> float:
    best = math.inf
    for _ in range(repeat):
        started = time.perf_counter()
        macd_v_series(history)
        best = min(best, time.perf_counter() - started)
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    history = make_history(args.bars, args.seed)
    state = MacdVState(Timeframe.M1)
    incremental_last = state.seed(history)
    batch_last = macd_v_series(history)[-1]
    assert incremental_last is not None and incremental_last.macd_v is not None
    assert batch_last.macd_v is not None
    assert math.isclose(incremental_last.macd_v, batch_last.macd_v, rel_tol=1e-9)
    per_bar = time_incremental(history, args.repeat)
    batch_us = time_batch(history, args.repeat)
    filled = len(macd_v_series(history))
    print(f"history: {len(history)} closed bars ({filled - len(history)} synthetic filled)")
    print(f"incremental MacdVState.update : {per_bar:8.2f} us/bar  (budget {BUDGET_US} us)")
    print(f"batch macd_v_series recompute : {batch_us:8.0f} us per close over the history")
    print(f"speed-up per close            : {batch_us / per_bar:8.0f}x")
    print("PASS" if per_bar <= BUDGET_US else "OVER BUDGET")


if __name__ == "__main__":
    main()
