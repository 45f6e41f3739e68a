"""Load recorded-format frames from tests/fixtures/<venue>/ws_*.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"


def frame(venue: str, name: str) -> Any:
    """Return the `frame` of a fixture file (each file notes its source)."""
    document = json.loads((FIXTURES / venue / f"{name}.json").read_text())
    assert document["source"], "every fixture names where its shape comes from"
    return document["frame"]
