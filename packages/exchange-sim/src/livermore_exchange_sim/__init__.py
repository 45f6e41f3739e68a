"""livermore-exchange-sim: Coinbase, Binance and Binance US protocols on loopback, deterministic.

Test helpers live in `livermore_exchange_sim.testing` (`running_sim`).
"""

from livermore_exchange_sim.app import create_app, env_overrides
from livermore_exchange_sim.config import CoinbaseAuthConfig, SimConfig
from livermore_exchange_sim.faults import FaultController, RestMode, WsAction, WsActionKind
from livermore_exchange_sim.market import (
    Bar,
    Market,
    Product,
    SimClock,
    TickerSnapshot,
    Trade,
    Venue,
)
from livermore_exchange_sim.scenarios import Scenario, ScenarioLeg, demo_scenarios, macdv_excursion

__all__ = [
    # market
    "Bar",
    "Market",
    "Product",
    "SimClock",
    "TickerSnapshot",
    "Trade",
    "Venue",
    # scenarios
    "Scenario",
    "ScenarioLeg",
    "demo_scenarios",
    "macdv_excursion",
    # faults
    "FaultController",
    "RestMode",
    "WsAction",
    "WsActionKind",
    # app
    "CoinbaseAuthConfig",
    "SimConfig",
    "create_app",
    "env_overrides",
]
