"""The demo's run: prepare, start every program, wait for the workers, print alerts, stop."""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
import time
from pathlib import Path

from livermore_cache import keys
from livermore_cache.client import RedisClient, connect_redis
from livermore_cache.pubsub import alert_stream, lifecycle_stream
from livermore_cache.status import StatusStore
from livermore_demo.children import Supervisor
from livermore_demo.config import DEMO_EXCHANGES, DemoConfig, child_env
from livermore_demo.console import Console
from livermore_demo.errors import SetupError
from livermore_demo.preflight import check_ports, check_services
from livermore_demo.session import DemoSession
from livermore_demo.watch import WorkerWatch, follow_lifecycle, poll_status, print_alerts
from livermore_schema.commandline import EXIT_OK
from livermore_schema.seed import EXCHANGE_SEEDS

STOP_GRACE_S = 10.0


def demo_exchange_ids() -> dict[int, str]:
    """Return {exchange_id: name} of the demo's exchanges, from the fixed seed ids."""
    ids = {seed.name.value: seed.id for seed in EXCHANGE_SEEDS}
    return {ids[name]: name for name in DEMO_EXCHANGES}


async def run_demo(config: DemoConfig, console: Console) -> int:
    """Run the demo until Ctrl-C, SIGTERM or `--duration`; return the exit status.

    Raises:
        DemoError: a service is missing, an option is unsafe, a setup step failed or a child
            died; every child has been stopped by then.
    """
    await check_services(config)
    check_ports(config)
    log_dir = Path(tempfile.mkdtemp(prefix="livermore-demo-"))
    console.say(f"livermore-demo: logs of every program go to {log_dir}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    supervisor = Supervisor(log_dir, child_env(os.environ, config, {}))
    redis = connect_redis(config.redis)
    try:
        await _clear_namespace(redis)
        return await _supervise(config, console, supervisor, redis, stop, log_dir)
    finally:
        await supervisor.stop_all(STOP_GRACE_S)
        await redis.aclose()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        console.say("livermore-demo: every program stopped")


async def _clear_namespace(redis: RedisClient) -> None:
    """Delete the demo's own keys only: another deployment may share this Redis DB."""
    async for name in redis.scan_iter(match=keys.namespace_pattern(), count=1000):
        await redis.unlink(name)


async def _supervise(
    config: DemoConfig,
    console: Console,
    supervisor: Supervisor,
    redis: RedisClient,
    stop: asyncio.Event,
    log_dir: Path,
) -> int:
    started = time.monotonic()
    watch = WorkerWatch(demo_exchange_ids(), console)
    session = DemoSession(config, console, supervisor, watch, log_dir)
    async with alert_stream(redis) as alerts, lifecycle_stream(redis, watch.exchanges) as events:
        tasks = {
            asyncio.create_task(session.run(), name="session"),
            asyncio.create_task(print_alerts(alerts, console), name="alerts"),
            asyncio.create_task(follow_lifecycle(events, watch), name="lifecycle"),
            asyncio.create_task(poll_status(StatusStore(redis), watch), name="status"),
        }
        stopped = asyncio.create_task(stop.wait(), name="stop")
        died = asyncio.create_task(supervisor.death(), name="death")
        remaining = (
            None if config.duration_s is None else config.duration_s - (time.monotonic() - started)
        )
        try:
            done, _ = await asyncio.wait(
                {*tasks, stopped, died}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for task in (*tasks, stopped, died):
                task.cancel()
            await asyncio.gather(*tasks, stopped, died, return_exceptions=True)
    if died in done:
        raise died.result()
    for task in tasks & done:
        task.result()  # these run until cancelled: one that finished failed, so raise its error
        raise SetupError(f"{task.get_name()} ended unexpectedly")
    reason = "signal received" if stopped in done else "--duration elapsed"
    console.say(f"livermore-demo: stopping ({reason})")
    return EXIT_OK
