"""uv.lock has an installable wheel of every locked package for each supported Python.

A dependency locked while `requires-python` was narrower keeps only that Python's wheels, and
`make test` on Debian 13 (Python 3.13) would then have to compile it; this catches such a lock.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

LOCK = Path(__file__).resolve().parent.parent / "uv.lock"
PYTHONS = ("cp311", "cp312", "cp313")


def _installs_on(wheel: str, python: str) -> bool:
    name = wheel.removesuffix(".whl")
    if "-none-any" in name or "-abi3-" in name or "-py3-none-" in name:
        return True
    return f"-{python}-{python}-" in name and "linux" in name and "x86_64" in name


def test_every_binary_package_has_a_wheel_for_each_supported_python() -> None:
    lock = tomllib.loads(LOCK.read_text())
    assert lock["requires-python"] == ">=3.11, <3.14"
    missing = []
    for package in lock["package"]:
        wheels = [wheel["url"].rsplit("/", 1)[-1] for wheel in package.get("wheels", [])]
        if not wheels:
            continue  # a workspace member or an sdist-only package
        missing += [
            f"{package['name']} {package['version']} ({python})"
            for python in PYTHONS
            if not any(_installs_on(wheel, python) for wheel in wheels)
        ]
    assert missing == [], "re-run `uv lock` from main's uv.lock: " + ", ".join(missing)
