"""The deployment namespace prefixed to every key, channel, stream and pattern (SPEC 3.1).

`keys` and `channels` call `namespace_builders` once at import: every public builder
(`*_key`, `*_channel`, `*_pattern`) then returns its name under the namespace and every
`parse_*` strips it, so a builder added later is namespaced without touching it.
A process serves one deployment: `connect_redis` sets the namespace from `RedisSettings`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, MutableMapping
from typing import Any

_VALID = re.compile(r"^[A-Za-z0-9_.\-]*$")
_prefix = ""

BUILDER_SUFFIXES = ("_key", "_channel", "_pattern")
"""Public functions named so return a Redis name and get the prefix."""


def set_namespace(namespace: str) -> None:
    """Prefix every name built from now on with `namespace:` ('' = the bare SPEC names).

    Raises:
        ValueError: the namespace holds a character that is not a letter, digit, `_`, `.` or `-`
            (a `:` or a glob character would make names ambiguous or patterns match too much).
    """
    global _prefix
    if not _VALID.match(namespace):
        raise ValueError(f"invalid Redis namespace {namespace!r}: use letters, digits, _ . -")
    _prefix = f"{namespace}:" if namespace else ""


def current_namespace() -> str:
    """Return the namespace names are built under ('' when none)."""
    return _prefix.removesuffix(":")


def prefixed(name: str) -> str:
    """Return `name` under the current namespace."""
    return _prefix + name


def unprefixed(name: str) -> str:
    """Return `name` without the current namespace.

    Raises:
        ValueError: `name` is not under the current namespace.
    """
    if not name.startswith(_prefix):
        raise ValueError(f"{name!r} is not in namespace {current_namespace()!r}")
    return name[len(_prefix) :]


def _builder(fn: Callable[..., str]) -> Callable[..., str]:
    @functools.wraps(fn)
    def build(*args: Any, **kwargs: Any) -> str:
        return _prefix + fn(*args, **kwargs)

    return build


def _parser(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def parse(name: str, *args: Any, **kwargs: Any) -> Any:
        return fn(unprefixed(name), *args, **kwargs)

    return parse


def namespace_builders(module_globals: MutableMapping[str, Any]) -> None:
    """Wrap every public builder and parser defined in the calling module (see module doc)."""
    module = module_globals["__name__"]
    for name, value in list(module_globals.items()):
        if name.startswith("_") or not callable(value) or isinstance(value, type):
            continue
        if getattr(value, "__module__", None) != module:
            continue
        if name.startswith("parse_"):
            module_globals[name] = _parser(value)
        elif name.endswith(BUILDER_SUFFIXES):
            module_globals[name] = _builder(value)
