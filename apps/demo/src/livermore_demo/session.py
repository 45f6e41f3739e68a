"""The setup sequence: database, simulator, symbols, admin user, api, workers, excursions."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import aiohttp

from livermore_demo.children import Supervisor
from livermore_demo.config import DEMO_EXCHANGES, DemoConfig, child_env
from livermore_demo.console import Console, banner_lines
from livermore_demo.errors import SetupError
from livermore_demo.watch import WorkerWatch

SIM_OVERRIDES = frozenset(
    {
        "LIVERMORE_COINBASE_WS_URL",
        "LIVERMORE_COINBASE_REST_URL",
        "LIVERMORE_BINANCE_WS_URL",
        "LIVERMORE_BINANCE_REST_URL",
        "LIVERMORE_COINGECKO_URL",
        "LIVERMORE_DISCORD_WEBHOOK_URL",
    }
)
"""Overrides the simulator must print before anything else starts (the webhook line is last)."""

STEP_TIMEOUT_S = 120.0
READY_TIMEOUT_S = 30.0
READY_POLL_S = 0.2
EXCURSION_LEAD_WALL_S = 2.0


class DemoSession:
    """Runs the setup steps in order, then schedules scripted excursions until cancelled."""

    def __init__(
        self,
        config: DemoConfig,
        console: Console,
        supervisor: Supervisor,
        watch: WorkerWatch,
        log_dir: Path,
    ) -> None:
        self._config = config
        self._console = console
        self._supervisor = supervisor
        self._watch = watch
        self._log_dir = log_dir

    async def run(self) -> None:
        """Prepare and start everything, print the banner, then trigger excursions forever."""
        config = self._config
        await self._migrate()
        overrides = await self._start_simulator()
        self._supervisor.env = child_env(os.environ, config, overrides)
        # Independent steps run side by side: each is a separate Python start-up.
        try:
            async with asyncio.TaskGroup() as group:
                for exchange in DEMO_EXCHANGES:
                    group.create_task(self._refresh_symbols(exchange))
                admin = group.create_task(self._create_admin())
        except BaseExceptionGroup as errors:
            raise first_error(errors) from None
        token = admin.result()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            await self._start_api()
            await self._start_workers()
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._wait_api(http))
                    group.create_task(self._wait_connected())
            except BaseExceptionGroup as errors:
                raise first_error(errors) from None
            await self._start_excursions(http)
            for line in banner_lines(config.admin_url, token, str(self._log_dir), DEMO_EXCHANGES):
                self._console.say(line)
            while True:
                await asyncio.sleep(config.excursion_every_s)  # the demo's pacing, by design
                await self._start_excursions(http)

    async def _migrate(self) -> None:
        name = self._config.database.name
        self._console.say(f"preparing database {name} (livermore-db upgrade) ...")
        code, lines = await self._supervisor.run(
            "db-upgrade", ["livermore-db", "upgrade"], timeout_s=STEP_TIMEOUT_S
        )
        if code != 0:
            raise SetupError(f"livermore-db upgrade failed: {_last(lines)}")
        self._console.say(f"  {_last(lines)}")

    async def _start_simulator(self) -> dict[str, str]:
        config = self._config
        self._console.say(
            f"starting the exchange simulator on {config.sim_url} "
            f"(speed {config.speed:g}x, {' '.join(config.symbols)}) ..."
        )
        overrides: dict[str, str] = {}
        printed = asyncio.Event()

        def collect(line: str) -> None:
            name, sep, value = line.partition("=")
            if sep and name.startswith("LIVERMORE_"):
                overrides[name] = value
                if overrides.keys() >= SIM_OVERRIDES:
                    printed.set()

        argv = ["livermore-sim", "--host", "127.0.0.1", "--port", str(config.sim_port)]
        argv += ["--seed", str(config.seed), "--speed", f"{config.speed:g}", "--no-scenarios"]
        argv += ["--symbols", *config.symbols]
        await self._supervisor.start("simulator", argv, on_line=collect)
        try:
            async with asyncio.timeout(READY_TIMEOUT_S):
                await printed.wait()
        except TimeoutError:
            raise SetupError("the simulator did not print its LIVERMORE_* overrides") from None
        return dict(overrides)

    async def _refresh_symbols(self, exchange: str) -> None:
        self._console.say(f"refreshing {exchange} symbols (livermore-symbols refresh) ...")
        code, lines = await self._supervisor.run(
            f"symbols-{exchange}",
            ["livermore-symbols", "refresh", "--exchange", exchange],
            timeout_s=STEP_TIMEOUT_S,
        )
        if code != 0:
            raise SetupError(f"livermore-symbols refresh --exchange {exchange}: {_last(lines)}")
        self._console.say(f"  {_last(lines)}")

    async def _create_admin(self) -> str:
        username = f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
        code, lines = await self._supervisor.run(
            "create-user",
            ["livermore-api", "create-user", username, "--admin"],
            timeout_s=STEP_TIMEOUT_S,
            log=False,  # the output holds the token
        )
        token = _last(lines)
        if code != 0 or not token or " " in token:
            raise SetupError(f"livermore-api create-user failed: {token or 'no output'}")
        self._console.say(f"created admin user {username}; token: {token}")
        return token

    async def _start_api(self) -> None:
        self._console.say(f"starting the api on {self._config.api_url} ...")
        argv = ["livermore-api", "--host", "127.0.0.1", "--port", str(self._config.api_port)]
        await self._supervisor.start("api", argv)

    async def _wait_api(self, http: aiohttp.ClientSession) -> None:
        config = self._config
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                async with http.get(f"{config.api_url}/health"):
                    return  # any answer means it is serving; workers are not up yet
            except (aiohttp.ClientError, TimeoutError):
                await asyncio.sleep(READY_POLL_S)  # polling a process we started
        raise SetupError(f"the api did not answer on {config.api_url}/health")

    async def _start_workers(self) -> None:
        self._console.say(f"starting workers: {', '.join(DEMO_EXCHANGES)} (--autostart) ...")
        for exchange in DEMO_EXCHANGES:
            argv = ["livermore-worker", "--exchange", exchange, "--autostart"]
            await self._supervisor.start(f"worker-{exchange}", argv)

    async def _wait_connected(self) -> None:
        timeout = self._config.startup_timeout_s
        try:
            async with asyncio.timeout(timeout):
                await self._watch.all_connected.wait()
        except TimeoutError:
            raise SetupError(
                f"workers not connected after {timeout:.0f} s: {self._watch.describe()}"
            ) from None

    async def _start_excursions(self, http: aiohttp.ClientSession) -> None:
        lead_ms = int(EXCURSION_LEAD_WALL_S * self._config.speed * 1000)
        url = f"{self._config.sim_url}/_sim/scenarios/demo"
        async with http.post(url, params={"lead_ms": str(lead_ms)}) as response:
            if response.status != 200:
                raise SetupError(f"the simulator refused the demo excursions: {response.status}")
            body = await response.json()
        labels = ", ".join(scenario["label"] for scenario in body["scenarios"])
        self._console.say(f"scripted MACD-V excursions starting: {labels or 'none listed'}")


def first_error(errors: BaseExceptionGroup[BaseException]) -> BaseException:
    """Return the first leaf exception of a (possibly nested) exception group."""
    first = errors.exceptions[0]
    return first_error(first) if isinstance(first, BaseExceptionGroup) else first


def _last(lines: list[str]) -> str:
    """Return the last non-blank output line ('' when there is none)."""
    return next((line.strip() for line in reversed(lines) if line.strip()), "")
