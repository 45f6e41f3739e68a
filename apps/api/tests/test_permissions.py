"""The api README's permission matrix is the one the route table and command policy give."""

from __future__ import annotations

from pathlib import Path

from livermore_api import ROUTES
from livermore_api.permissions import BEGIN, END, permission_matrix

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_matrix_is_generated_from_the_route_table() -> None:
    text = README.read_text()
    section = text[text.index(BEGIN) : text.index(END) + len(END)]
    assert section == permission_matrix(ROUTES), (
        "regenerate it: uv run python -m livermore_api.permissions"
    )
    assert section.count("\n| ") >= len(ROUTES)
    assert "| `stop` | admins" in section and "| `add-symbol` | admins, and users" in section
