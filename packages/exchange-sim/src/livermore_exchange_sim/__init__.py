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
    "Bar",
    "CoinbaseAuthConfig",
    "FaultController",
    "Market",
    "Product",
    "RestMode",
    "Scenario",
    "ScenarioLeg",
    "SimClock",
    "SimConfig",
    "TickerSnapshot",
    "Trade",
    "Venue",
    "WsAction",
    "WsActionKind",
    "create_app",
    "demo_scenarios",
    "env_overrides",
    "macdv_excursion",
]
