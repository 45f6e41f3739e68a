"""Loading recorded-format HTTP fixtures (`fixtures/<venue>/http_*.json`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"


def http_fixture(venue: str, name: str) -> dict[str, Any]:
    """Return the whole fixture record (source, status, headers, body)."""
    record: dict[str, Any] = json.loads((FIXTURES / venue / f"{name}.json").read_text())
    assert record["source"], "every fixture names its source"
    return record


def http_body(venue: str, name: str) -> Any:
    """Return only the response body of a fixture."""
    return http_fixture(venue, name)["body"]
