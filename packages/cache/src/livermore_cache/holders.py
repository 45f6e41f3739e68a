"""`Tier2Holders`: which users' keys each Tier 2 symbol of one exchange is written to.

A Tier 2 symbol (SPEC 3.2) is streamed once however many users hold it, and every holder gets
the series in their own `usercandles` / `userindicator` keys. The map is plain data the write
path consults: as a `Mapping[str, int]` it answers a symbol's *read owner* (its first holder,
whose keys the readers, backfill and warmup look at), and `targets()` gives every key owner a
write to that owner's key must reach. A writer never needs to know about the other holders;
replacing the map (`replace`) is how the set changes, and a dropped holder simply stops being
written (its keys expire on their TTL).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping


class Tier2Holders(Mapping[str, int]):
    """Tier 2 symbol -> holders (user ids, read owner first) of one exchange."""

    __slots__ = ("_holders", "exchange_id")

    def __init__(
        self, exchange_id: int, holders: Mapping[str, Iterable[int]] | None = None
    ) -> None:
        self.exchange_id = exchange_id
        self._holders: dict[str, tuple[int, ...]] = {}
        self.replace(holders or {})

    def __getitem__(self, symbol: str) -> int:
        return self._holders[symbol][0]

    def __iter__(self) -> Iterator[str]:
        return iter(self._holders)

    def __len__(self) -> int:
        return len(self._holders)

    def holders(self, symbol: str) -> tuple[int, ...]:
        """Return every holder of `symbol` (empty when it is not Tier 2)."""
        return self._holders.get(symbol, ())

    def users(self) -> frozenset[int]:
        """Return every user holding at least one Tier 2 symbol."""
        return frozenset(u for held in self._holders.values() for u in held)

    def replace(self, holders: Mapping[str, Iterable[int]]) -> None:
        """Swap the whole map (holders de-duplicated, order kept; symbols without one dropped)."""
        fresh = {symbol: tuple(dict.fromkeys(users)) for symbol, users in holders.items()}
        self._holders = {symbol: users for symbol, users in fresh.items() if users}

    def as_dict(self) -> dict[str, tuple[int, ...]]:
        """Return a copy of the map."""
        return dict(self._holders)

    def targets(self, exchange_id: int, symbol: str, user_id: int | None) -> tuple[int | None, ...]:
        """Return the key owners a write meant for `user_id`'s key of `symbol` must reach.

        A write to a holder's key reaches every holder of the symbol; anything else (a Tier 1
        write, another exchange, a user who is not a holder) is left as it was asked.
        """
        if user_id is None or exchange_id != self.exchange_id:
            return (user_id,)
        held = self._holders.get(symbol, ())
        return held if user_id in held else (user_id,)


def write_targets(
    holders: Tier2Holders | None, exchange_id: int, symbol: str, user_id: int | None
) -> tuple[int | None, ...]:
    """Return the key owners of one write (`(user_id,)` without a holder map)."""
    if holders is None or user_id is None:
        return (user_id,)
    return holders.targets(exchange_id, symbol, user_id)
