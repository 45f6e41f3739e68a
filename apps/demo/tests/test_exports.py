from __future__ import annotations

import livermore_demo


def test_public_names_are_pinned() -> None:
    assert sorted(livermore_demo.__all__) == [
        "BadOptionError",
        "ChildExitedError",
        "DemoConfig",
        "DemoError",
        "ServiceUnavailableError",
        "SetupError",
        "child_env",
        "format_alert",
        "format_progress",
        "parse_config",
        "run_demo",
    ]
    for name in livermore_demo.__all__:
        assert getattr(livermore_demo, name) is not None
