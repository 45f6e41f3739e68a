"""Test helpers: run the simulator in-process on a free loopback port, and point SDKs at it.

```python
async with running_sim(seed=7, speed=60.0) as sim:
    sim.env                       # the LIVERMORE_* overrides
    sim.ws_url(Venue.COINBASE)    # ws://127.0.0.1:PORT/coinbase/ws
    sim.truth(Venue.BINANCE, "BTCUSDT", 60_000, start_ms, end_ms)

async with running_sim(extra_assets=200) as sim:   # 217 products per venue (AA1..AA200 added)
    ...
```
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from livermore_exchange_sim.app import FAULTS, MARKET, WEBHOOKS, create_app, env_overrides
from livermore_exchange_sim.app import rest_url as _rest_url
from livermore_exchange_sim.app import ws_url as _ws_url
from livermore_exchange_sim.config import CoinbaseAuthConfig, SimConfig
from livermore_exchange_sim.faults import FaultController
from livermore_exchange_sim.market import Bar, Market, SimClock, Venue
from livermore_exchange_sim.scenarios import Scenario
from livermore_exchange_sim.webhook import WebhookSink

if TYPE_CHECKING:
    import requests

COINBASE_KEY_NAME = "organizations/sim-org/apiKeys/sim-key"


@dataclass(frozen=True, slots=True)
class CoinbaseKey:
    """A CDP-style API key: the name and the PEM private key the SDK signs with."""

    name: str
    private_pem: str
    public_pem: str


def generate_coinbase_key(name: str = COINBASE_KEY_NAME) -> CoinbaseKey:
    """Return a fresh EC P-256 key pair in the form coinbase-advanced-py accepts."""
    private = ec.generate_private_key(ec.SECP256R1())
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return CoinbaseKey(name, private_pem, public_pem)


@dataclass(frozen=True)
class RunningSim:
    """A simulator serving on loopback; every URL and the in-process state it runs on."""

    config: SimConfig
    host: str
    port: int
    app: web.Application
    coinbase_key: CoinbaseKey | None

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT`."""
        return f"http://{self.host}:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """The LIVERMORE_* overrides pointing Livermore at this sim."""
        return env_overrides(self.base_url, speed=self.clock.speed)

    def ws_url(self, venue: Venue) -> str:
        """The WebSocket base URL of `venue`."""
        return _ws_url(self.base_url, venue)

    def rest_url(self, venue: Venue) -> str:
        """The REST base URL of `venue` (the client appends /api/v3/...)."""
        return _rest_url(self.base_url, venue)

    @property
    def coinbase_sdk_base_url(self) -> str:
        """`base_url` for coinbase-advanced-py's RESTClient: host:port/prefix, no scheme."""
        return self.rest_url(Venue.COINBASE).removeprefix("http://")

    @property
    def coingecko_url(self) -> str:
        """CoinGecko base URL (ends with /api/v3)."""
        return self.env["LIVERMORE_COINGECKO_URL"]

    @property
    def webhook_url(self) -> str:
        """The default Discord-style webhook URL."""
        return self.env["LIVERMORE_DISCORD_WEBHOOK_URL"]

    @property
    def market(self) -> Market:
        """The market the sim serves."""
        return self.app[MARKET]

    @property
    def clock(self) -> SimClock:
        """The sim's clock."""
        return self.app[MARKET].clock

    @property
    def faults(self) -> FaultController:
        """The fault controller."""
        return self.app[FAULTS]

    @property
    def webhooks(self) -> WebhookSink:
        """The webhook sink (recorded posts, throttle switch)."""
        return self.app[WEBHOOKS]

    def truth(
        self, venue: Venue, symbol: str, interval_ms: int, start_ms: int, end_ms: int
    ) -> list[Bar]:
        """Closed bars with open_time in [start_ms, end_ms), oldest first (Coinbase omits empty)."""
        return self.market.closed_bars(venue, symbol, interval_ms, start_ms, end_ms)


@asynccontextmanager
async def running_sim(
    *,
    seed: int = 7,
    speed: float = 60.0,
    symbols: Sequence[str] | None = None,
    scenarios: Sequence[Scenario] = (),
    start_ms: int | None = None,
    extra_assets: int = 0,
    host: str = "127.0.0.1",
    **config_fields: Any,
) -> AsyncIterator[RunningSim]:
    """Serve a simulator on a free port of `host` for the duration of the block.

    A Coinbase API key is generated (`sim.coinbase_key`) unless `coinbase_auth` is given.
    `extra_assets` lists that many synthetic long-tail assets (`AA1`...) after the default ones.
    Other `SimConfig` fields may be passed as keyword arguments.
    """
    key = None
    if "coinbase_auth" not in config_fields:
        key = generate_coinbase_key()
        config_fields["coinbase_auth"] = CoinbaseAuthConfig(key.name, key.public_pem)
    config = SimConfig(
        seed=seed,
        speed=speed,
        start_ms=start_ms,
        symbols=None if symbols is None else tuple(symbols),
        extra_assets=extra_assets,
        scenarios=tuple(scenarios),
        **config_fields,
    )
    app = create_app(config)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = _bound_port(runner)
    try:
        yield RunningSim(config, host, port, app, key)
    finally:
        handlers = [] if runner.server is None else runner.server.connections
        transports = [h.transport for h in handlers if h.transport is not None]
        await runner.cleanup()
        # A peer cut off mid-write (a test that takes a host's link down) never acknowledges
        # what is buffered, so a graceful close would leave its transport closing forever.
        for transport in transports:
            transport.abort()
        await asyncio.sleep(0)  # let the aborted transports report connection_lost


def _bound_port(runner: web.AppRunner) -> int:
    address = runner.addresses[0]
    return int(address[1])


def mount_https_to_http(session: requests.Session, base_url: str) -> None:
    """Make a requests session send `https://HOST:PORT...` as plain http (coinbase-advanced-py).

    The SDK hard-codes `https://{base_url}`; this mounts an adapter that rewrites the scheme
    for URLs starting with `https://` + the host:port of `base_url`.
    """
    from requests.adapters import HTTPAdapter

    class _HttpsToHttp(HTTPAdapter):
        def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
            request.url = request.url.replace("https://", "http://", 1)
            return super().send(request, *args, **kwargs)

    host = base_url.split("://", 1)[-1].split("/", 1)[0]
    session.trust_env = False
    session.mount(f"https://{host}", _HttpsToHttp())
