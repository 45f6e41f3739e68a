from __future__ import annotations

import livermore_exchange_sim


def test_public_surface_is_pinned() -> None:
    assert sorted(livermore_exchange_sim.__all__) == [
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
    for name in livermore_exchange_sim.__all__:
        assert getattr(livermore_exchange_sim, name) is not None
