"""Day boundary end to end: a real `livermore-worker` fed by the simulator, 6,000 closes at once.

Run: `uv run python bench/bench_boundary_e2e.py [--symbols 1000] [--lead 150]`.

A `livermore-sim` process lists `--symbols` synthetic assets (`AA1`..., no scenarios) on Binance
and runs its clock at real speed from `--lead` seconds before a UTC midnight, with the venue's
REST weight limit lifted (the bench measures the boundary, not the startup backfill) and partial
klines and tickers every `--partial-every` s instead of 2 s and 1 s (7,000 streams of partials
at Binance's cadence keep a Python simulator busy enough on 2 shared cores that it needs seconds
to send the burst itself). A
throwaway database holds the symbols as Tier 1 rows, and `python -m livermore_worker --exchange
binance --autostart` backfills, warms up and streams all of them: 6 kline streams + a mini
ticker per symbol. At midnight every series closes a bar: 1m, 5m, 15m, 1h, 4h and 1d, so
`--symbols` x 6 closing frames leave the simulator at once.

A subscriber *process* (its own Redis connection; PSUBSCRIBE on the alert channels, the Binance
candle-close channels and a baseline channel) stamps every message on receipt with the wall
clock. Latency is measured from **the moment a bar's closing frame left the simulator** (the sim
keeps the wall clock of every closing frame it sends, `GET /_sim/finals`; on loopback that is a
fraction of a millisecond before it reaches the worker's socket), per series, and for the budget
from the moment the burst's last closing frame left. The simulator's own time to build and send
the burst after midnight is printed too. Every AlertEvent of a bar closing at midnight counts,
whatever its label. Baseline in the same run: a bare PUBLISH -> the same subscriber, 200 samples
while the worker streams. The load average is printed at the start and at the boundary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

import aiohttp
from _common import latency_line, private_redis, throwaway_database
from soak_worker import running_worker, seed_symbols, start_sim, store_env, wait_connected

from livermore_cache import channels
from livermore_cache.client import connect_redis
from livermore_exchange_sim.assets import Venue
from livermore_schema.alerts import AlertEvent
from livermore_schema.enums import Timeframe
from livermore_schema.settings import DatabaseSettings, RedisSettings
from livermore_schema.timeframes import duration_ms

DAY_MS = 86_400_000
BINANCE_ID = 2
BASELINE_CHANNEL = channels.alerts_channel(999_101)
STOP_CHANNEL = channels.alerts_channel(999_102)
Record = tuple[int, str, bytes]  # receipt wall clock (ns), channel, payload


def subscribe(host: str, port: int, conn: Connection) -> None:
    """Subscriber process: stamp every alert, close and baseline message; send them at the end."""
    import redis

    client = redis.Redis(host=host, port=port)
    pubsub = client.pubsub()  # type: ignore[no-untyped-call]
    pubsub.psubscribe(channels.ALL_ALERTS_PATTERN, channels.candle_close_pattern(BINANCE_ID))
    subscribed = 0
    while subscribed < 2:
        message = pubsub.get_message(timeout=5.0)
        subscribed += message is not None and message["type"] == "psubscribe"
    conn.send("ready")
    records: list[Record] = []
    stop = STOP_CHANNEL.encode()
    while True:
        message = pubsub.get_message(timeout=1.0)
        at_ns = time.time_ns()
        if message is None or message["type"] != "pmessage":
            continue
        if message["channel"] == stop:
            break
        records.append((at_ns, message["channel"].decode(), message["data"]))
    conn.send(records)
    pubsub.close()
    client.close()


async def sim_get(http: aiohttp.ClientSession, url: str) -> dict[str, int]:
    """GET a simulator control endpoint."""
    async with http.get(url) as response:
        return dict(await response.json())


async def baseline(redis: RedisSettings, count: int) -> dict[int, int]:
    """Publish `count` alert-sized payloads 5 ms apart; return the send wall clock by sequence."""
    client = connect_redis(redis)
    sent: dict[int, int] = {}
    pad = "x" * 1_000
    try:
        for seq in range(count):
            sent[seq] = time.time_ns()
            await client.publish(BASELINE_CHANNEL, f'{{"seq":{seq},"pad":"{pad}"}}')
            await asyncio.sleep(0.005)  # spacing the samples
    finally:
        await client.aclose()
    return sent


Series = tuple[str, str]  # venue symbol, timeframe value


def burst_frames(finals: list[list[object]], boundary: int) -> dict[Series, int]:
    """Return the send wall clock (ns) of each closing frame of the bars closing at `boundary`."""
    sent: dict[Series, int] = {}
    for stream, open_time, sent_us in finals:
        symbol, _, kind = str(stream).partition("@kline_")
        if kind and int(str(open_time)) + duration_ms(Timeframe(kind)) == boundary:
            sent[(symbol.upper(), kind)] = int(str(sent_us)) * 1000
    return sent


def received(
    records: list[Record], boundary: int
) -> tuple[dict[Series, int], list[tuple[Series, int]]]:
    """Return the close receipt per series and the alerts (series, receipt) of the burst."""
    closes: dict[Series, int] = {}
    alerts: list[tuple[Series, int]] = []
    for at_ns, channel, data in records:
        if channel.startswith("channel:alerts:") and channel != BASELINE_CHANNEL:
            event = AlertEvent.model_validate_json(data)
            if int(event.triggered_at.timestamp() * 1000) == boundary:
                alerts.append(((event.symbol, event.timeframe.value), at_ns))
        elif not channel.startswith("channel:alerts:"):
            candle = json.loads(data)
            timeframe = Timeframe(candle["timeframe"])
            if candle["open_time"] + duration_ms(timeframe) == boundary:
                closes[(candle["symbol"], timeframe.value)] = at_ns
    return closes, alerts


def report(
    records: list[Record],
    sent: dict[int, int],
    frames: dict[Series, int],
    crossed_ns: int,
    boundary: int,
) -> None:
    """Print the burst's close and alert latencies and the baseline."""
    base = [
        (at_ns - sent[int(json.loads(data)["seq"])]) / 1e6
        for at_ns, channel, data in records
        if channel == BASELINE_CHANNEL
    ]
    closes, alerts = received(records, boundary)
    first, last = min(frames.values()), max(frames.values())
    print(
        f"sim: {len(frames)} closing frames of the burst sent from {(first - crossed_ns) / 1e6:.1f}"
        f" to {(last - crossed_ns) / 1e6:.1f} ms after midnight (its own time to build and send)"
    )
    print(latency_line("baseline PUBLISH -> subscriber", base))
    print(f"closes of the burst received: {len(closes)}; alerts of the burst: {len(alerts)}")
    print(latency_line("frame sent -> its close received", [
        (at - frames[s]) / 1e6 for s, at in closes.items() if s in frames
    ]))  # fmt: skip
    print(latency_line("frame sent -> its AlertEvent", [
        (at - frames[s]) / 1e6 for s, at in alerts if s in frames
    ]))  # fmt: skip
    print(latency_line("last frame sent -> AlertEvent", [(at - last) / 1e6 for _, at in alerts]))
    if closes:
        print(
            f"last close received {(max(closes.values()) - last) / 1e6:.1f} ms after the last frame"
        )
    if alerts:
        late = (max(at for _, at in alerts) - last) / 1e6
        verdict = "within" if late <= 250 else "OVER"
        print(f"last AlertEvent {late:.1f} ms after the burst's last frame: {verdict} 250 ms")


async def run(
    args: argparse.Namespace, redis: RedisSettings, database: DatabaseSettings, conn: Connection
) -> list[Record]:
    """Start the simulator and the worker, wait through midnight, return what was received."""
    bases = [f"AA{n}" for n in range(1, args.symbols + 1)]
    boundary = (time.time_ns() // 1_000_000 // DAY_MS) * DAY_MS
    options = ["--extra-assets", str(args.symbols), "--no-scenarios"]
    options += ["--start-ms", str(boundary - int(args.lead * 1000))]
    sim, sim_env = await start_sim(bases, 1.0, *options)
    rest = sim_env["LIVERMORE_BINANCE_REST_URL"]
    root = rest.removesuffix("/binance")
    env = store_env(redis, database) | {
        k: v for k, v in sim_env.items() if k != "LIVERMORE_DISCORD_WEBHOOK_URL"
    }
    env |= {
        "LIVERMORE_BACKFILL_CANDLES": str(args.backfill),
        "LIVERMORE_TIER1_LIMIT": str(args.symbols),
        "LIVERMORE_LOG_JSON": "true",
        "LIVERMORE_LOG_LEVEL": "INFO",
    }
    log = Path(tempfile.mkdtemp(prefix="livermore-e2e-")) / "worker-binance.log"
    try:
        async with aiohttp.ClientSession() as http:
            quiet = {
                "weight_limit": 10_000_000,
                "kline_update_ms": int(args.partial_every * 1000),
                "ticker_update_ms": int(args.partial_every * 1000),
            }
            async with http.post(f"{rest}/_sim/config", json=quiet) as r:
                r.raise_for_status()
            clock = await sim_get(http, f"{root}/_sim/clock")
            crossed_ns = time.time_ns() + (boundary - clock["now_ms"]) * 1_000_000
            await seed_symbols(database, Venue.BINANCE, bases)
            async with running_worker(Venue.BINANCE, env, log) as worker:
                took = await wait_connected(redis, BINANCE_ID, worker, args.lead)
                left_s = (crossed_ns - time.time_ns()) / 1e9
                print(f"worker connected after {took:.1f} s, {left_s:.1f} s before midnight")
                if left_s < 5:
                    raise SystemExit("not streaming well before midnight: raise --lead")
                await asyncio.sleep(max(0.0, left_s - 4))  # streaming until shortly before
                sent = await baseline(redis, 200)
                load = os.getloadavg()[0]
                await asyncio.sleep(max(0.0, (crossed_ns - time.time_ns()) / 1e9 + args.after))
                async with http.get(f"{rest}/_sim/finals") as response:
                    finals = await response.json()
            print(f"load average (1 min) around midnight: {load:.2f}")
    finally:
        sim.terminate()
        await sim.wait()
    client = connect_redis(redis)
    await client.publish(STOP_CHANNEL, "stop")
    await client.aclose()
    records: list[Record] = await asyncio.to_thread(conn.recv)
    report(records, sent, burst_frames(finals, boundary), crossed_ns, boundary)
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--symbols", type=int, default=1000)
    parser.add_argument("--lead", type=float, default=150.0, help="sim seconds before midnight")
    parser.add_argument("--after", type=float, default=10.0, help="seconds waited after it")
    parser.add_argument(
        "--partial-every", type=float, default=30.0, help="sim: seconds between partial frames"
    )
    parser.add_argument("--backfill", type=int, default=60, help="worker: bars per series")
    args = parser.parse_args()
    print(f"load average (1 min) at start: {os.getloadavg()[0]:.2f}")
    with private_redis() as server, throwaway_database(DatabaseSettings()) as database:
        env = store_env(server.settings, database)
        upgrade = [sys.executable, "-m", "livermore_schema.cli", "upgrade"]
        subprocess.run(upgrade, env=env, check=True, stdout=subprocess.DEVNULL)
        ctx = mp.get_context("spawn")
        ours, theirs = ctx.Pipe()
        host, port = server.settings.host, server.settings.port
        sub = ctx.Process(target=subscribe, args=(host, port, theirs), daemon=True)
        sub.start()
        if not ours.poll(30) or ours.recv() != "ready":
            raise SystemExit("subscriber did not start")
        try:
            asyncio.run(run(args, server.settings, database, ours))
        finally:
            sub.join(timeout=10)
            if sub.is_alive():
                sub.terminate()


if __name__ == "__main__":
    main()
