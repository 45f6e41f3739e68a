"""Binance REST request weight (rolling wall-clock window per IP, 429 then 418) and HMAC checks."""

from __future__ import annotations

import hashlib
import hmac
import math
from collections import deque
from dataclasses import dataclass, field
from enum import IntEnum

DEFAULT_WINDOW_S = 60.0
"""Binance's REQUEST_WEIGHT window (1 MINUTE); a venue may configure a shorter one for tests."""


class Admission(IntEnum):
    """What the weight ledger decided for one request (the HTTP status to answer with)."""

    OK = 200
    THROTTLED = 429
    BANNED = 418


@dataclass(frozen=True, slots=True)
class WeightVerdict:
    """The ledger's answer: admission, the weight now used and, when refused, the wait."""

    admission: Admission
    used: int
    retry_after_s: int = 0
    banned_for_s: float = 0.0


@dataclass(slots=True)
class _IpWeight:
    spent: deque[tuple[float, int]] = field(default_factory=deque)
    used: int = 0
    throttled_until: float = 0.0
    strikes: int = 0
    banned_until: float = 0.0


@dataclass(frozen=True, slots=True)
class WeightPolicy:
    """The limit and ban rules the ledger applies."""

    limit: int
    ban_seconds: int
    requests_after_429_before_ban: int
    window_s: float = DEFAULT_WINDOW_S


class WeightLedger:
    """Per-IP request weight over a rolling wall-clock window, like Binance's REQUEST_WEIGHT.

    A rolling window is stricter than Binance's fixed minute, so a client that never sees a 429
    here will not see one there either.
    """

    def __init__(self) -> None:
        self._ips: dict[str, _IpWeight] = {}

    def used(self, ip: str, now: float, window_s: float = DEFAULT_WINDOW_S) -> int:
        """Return the weight `ip` has used in the last `window_s` seconds."""
        state = self._ips.get(ip)
        if state is None:
            return 0
        _expire(state, now, window_s)
        return state.used

    def charge(self, ip: str, weight: int, policy: WeightPolicy, now: float) -> WeightVerdict:
        """Admit and count a request of `weight`, or refuse it with 429 / 418."""
        state = self._ips.setdefault(ip, _IpWeight())
        _expire(state, now, policy.window_s)
        if now < state.banned_until:
            return _banned(state, now)
        if now < state.throttled_until:
            state.strikes += 1
            if state.strikes >= policy.requests_after_429_before_ban:
                state.banned_until = now + policy.ban_seconds
                return _banned(state, now)
            return WeightVerdict(
                Admission.THROTTLED, state.used, _ceil(state.throttled_until - now)
            )
        if state.used + weight > policy.limit:
            wait = _seconds_until_room(state, weight, policy, now)
            state.throttled_until = now + wait
            state.strikes = 0
            return WeightVerdict(Admission.THROTTLED, state.used, _ceil(wait))
        state.spent.append((now, weight))
        state.used += weight
        return WeightVerdict(Admission.OK, state.used)

    def reset(self) -> None:
        """Forget every IP's weight, throttle and ban."""
        self._ips.clear()


def _banned(state: _IpWeight, now: float) -> WeightVerdict:
    remaining = state.banned_until - now
    return WeightVerdict(Admission.BANNED, state.used, _ceil(remaining), remaining)


def _ceil(seconds: float) -> int:
    return max(1, math.ceil(seconds))


def _expire(state: _IpWeight, now: float, window_s: float) -> None:
    while state.spent and state.spent[0][0] <= now - window_s:
        _, weight = state.spent.popleft()
        state.used -= weight


def _seconds_until_room(state: _IpWeight, weight: int, policy: WeightPolicy, now: float) -> float:
    used = state.used
    for spent_at, spent in state.spent:
        used -= spent
        if used + weight <= policy.limit:
            return spent_at + policy.window_s - now
    return policy.window_s


def sign(secret: str, payload: str) -> str:
    """Return the hex HMAC-SHA256 of `payload` under `secret` (Binance SIGNED endpoints)."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def split_signature(raw_query: str) -> tuple[str, str | None]:
    """Split a raw query string into (signed payload, signature) as Binance checks it."""
    kept: list[str] = []
    signature: str | None = None
    for part in raw_query.split("&"):
        if part.startswith("signature="):
            signature = part.removeprefix("signature=")
        elif part:
            kept.append(part)
    return "&".join(kept), signature


def is_valid_signature(secret: str, raw_query: str, body: str = "") -> bool:
    """Return whether the request's `signature` matches HMAC(query + body) under `secret`."""
    payload, signature = split_signature(raw_query)
    if signature is None:
        return False
    return hmac.compare_digest(sign(secret, payload + body), signature.lower())
