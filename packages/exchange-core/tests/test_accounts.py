"""Account balances through the SDKs (python-binance, coinbase-advanced-py) against the simulator.

The simulator checks the real signatures (Binance HMAC, Coinbase CDP JWT), so these prove the
SDK clients are pointed at the configured REST URL and sign as the venues expect.
"""

from __future__ import annotations

import aiohttp
import pytest
from pydantic import SecretStr

from livermore_exchange_core.accounts import fetch_balances
from livermore_exchange_core.config import Credentials, ExchangeConfig, default_exchange_config
from livermore_exchange_core.errors import AuthenticationError, RateLimitedError
from livermore_exchange_sim.faults import RestMode
from livermore_exchange_sim.market import Venue
from livermore_exchange_sim.testing import RunningSim, generate_coinbase_key, running_sim
from livermore_schema.enums import ExchangeName

BINANCE_KEY = Credentials(
    api_key="livermore-sim-binance-key", api_secret=SecretStr("livermore-sim-binance-secret")
)


def _binance(sim: RunningSim) -> ExchangeConfig:
    return default_exchange_config(
        ExchangeName.BINANCE,
        2,
        rest_url=sim.rest_url(Venue.BINANCE),
        ws_url=sim.ws_url(Venue.BINANCE),
    )


def _coinbase(sim: RunningSim) -> ExchangeConfig:
    return default_exchange_config(
        ExchangeName.COINBASE,
        1,
        rest_url=sim.rest_url(Venue.COINBASE),
        ws_url=sim.ws_url(Venue.COINBASE),
    )


async def test_binance_signed_account_through_python_binance() -> None:
    async with running_sim(seed=5, speed=60.0) as sim:
        balances = {b.asset: b for b in await fetch_balances(_binance(sim), BINANCE_KEY)}
        assert balances["USDT"].total == 10_000.0
        assert all(b.total > 0 for b in balances.values())  # zero balances are left out
        async with aiohttp.ClientSession() as http:
            url = f"{sim.base_url}/_sim/accounts/binance"
            async with http.put(url, json={"balances": {"SOL": 3, "ETH": 0}}) as reply:
                assert reply.status == 200
        changed = await fetch_balances(_binance(sim), BINANCE_KEY)
    assert [(b.asset, b.total) for b in changed] == [("SOL", 3.0)]


async def test_binance_bad_key_is_a_401_authentication_error() -> None:
    wrong = Credentials(api_key="nobody", api_secret=SecretStr("livermore-sim-binance-secret"))
    async with running_sim(seed=5, speed=60.0) as sim:
        with pytest.raises(AuthenticationError, match="401") as error:
            await fetch_balances(_binance(sim), wrong)
    assert "livermore-sim-binance-secret" not in str(error.value)


async def test_binance_ban_is_a_rate_limited_error() -> None:
    async with running_sim(seed=5, speed=60.0) as sim:
        sim.faults.set_rest(Venue.BINANCE, RestMode.BANNED, count=5)
        with pytest.raises(RateLimitedError) as error:
            await fetch_balances(_binance(sim), BINANCE_KEY)
    assert error.value.banned and error.value.status == 418


async def test_coinbase_accounts_through_the_rest_client_off_the_loop() -> None:
    async with running_sim(seed=5, speed=60.0) as sim:
        assert sim.coinbase_key is not None
        key = Credentials(
            api_key=sim.coinbase_key.name, api_secret=SecretStr(sim.coinbase_key.private_pem)
        )
        balances = {b.asset: b.total for b in await fetch_balances(_coinbase(sim), key)}
        stranger = generate_coinbase_key(sim.coinbase_key.name)
        impostor = Credentials(api_key=stranger.name, api_secret=SecretStr(stranger.private_pem))
        with pytest.raises(AuthenticationError, match="401"):
            await fetch_balances(_coinbase(sim), impostor)
        garbage = Credentials(api_key=stranger.name, api_secret=SecretStr("not a pem"))
        with pytest.raises(AuthenticationError, match="cannot sign"):
            await fetch_balances(_coinbase(sim), garbage)
    assert balances["BTC"] == pytest.approx(0.5123) and balances["USD"] == 12_500.0
