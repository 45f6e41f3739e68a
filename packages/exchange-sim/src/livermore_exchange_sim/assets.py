"""The simulated asset universe and how each venue names its products."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from enum import StrEnum


class Venue(StrEnum):
    """A simulated exchange."""

    COINBASE = "coinbase"
    BINANCE = "binance"
    BINANCE_US = "binance_us"


@dataclass(frozen=True, slots=True)
class Asset:
    """A base asset and the parameters of its simulated price path."""

    base: str
    name: str
    coingecko_id: str
    price: float
    daily_vol: float
    usd_volume_24h: float
    market_cap_rank: int
    circulating_supply: float
    thin: bool = False

    @property
    def price_decimals(self) -> int:
        """Decimals of the quote tick, fixed per asset so rounding stays monotonic."""
        return max(2, 4 - math.floor(math.log10(self.price)))


ASSETS: tuple[Asset, ...] = (
    Asset("BTC", "Bitcoin", "bitcoin", 65_000.0, 0.025, 2.5e9, 1, 19.7e6),
    Asset("ETH", "Ethereum", "ethereum", 3_400.0, 0.03, 1.2e9, 2, 120.2e6),
    Asset("SOL", "Solana", "solana", 150.0, 0.045, 6.0e8, 5, 450e6),
    Asset("XRP", "XRP", "ripple", 0.55, 0.04, 3.0e8, 6, 55e9),
    Asset("DOGE", "Dogecoin", "dogecoin", 0.15, 0.05, 2.5e8, 8, 145e9),
    Asset("ADA", "Cardano", "cardano", 0.45, 0.045, 1.2e8, 10, 35e9),
    Asset("AVAX", "Avalanche", "avalanche-2", 35.0, 0.05, 1.0e8, 12, 390e6),
    Asset("LINK", "Chainlink", "chainlink", 15.0, 0.045, 9.0e7, 14, 590e6),
    Asset("DOT", "Polkadot", "polkadot", 7.0, 0.045, 6.0e7, 16, 1.4e9),
    Asset("LTC", "Litecoin", "litecoin", 80.0, 0.035, 8.0e7, 20, 75e6),
    Asset("UNI", "Uniswap", "uniswap", 9.0, 0.05, 4.0e7, 22, 600e6),
    Asset("NEAR", "NEAR Protocol", "near", 6.0, 0.055, 5.0e7, 25, 1.1e9),
    Asset("ATOM", "Cosmos Hub", "cosmos", 8.0, 0.045, 3.0e7, 30, 390e6),
    Asset("AAVE", "Aave", "aave", 95.0, 0.05, 2.5e7, 45, 14.8e6),
    Asset("RARE", "SuperRare", "superrare", 0.1, 0.06, 2.0e5, 600, 700e6, thin=True),
    Asset("ALCX", "Alchemix", "alchemix", 15.0, 0.06, 3.0e5, 700, 2.2e6, thin=True),
    Asset("FORT", "Forta", "forta", 0.12, 0.07, 1.5e5, 800, 500e6, thin=True),
)
"""The default universe; the last three are thin (many minutes without trades)."""

ASSETS_BY_BASE: dict[str, Asset] = {asset.base: asset for asset in ASSETS}

EXTRA_PREFIX = "AA"
"""Synthetic bases are `AA1`, `AA2`...: valid on every venue, never a default ticker (a digit)."""
_LAST_DEFAULT_RANK = max(asset.market_cap_rank for asset in ASSETS)
_EXTRA_TOP_VOLUME_USD = 2.0e7
_EXTRA_TOP_MARKET_CAP_USD = 5.0e7
_EXTRA_TAIL_EXPONENT = 1.1


def _unit(base: str, what: str) -> float:
    """A uniform [0, 1) number fixed by (base, what): an extra asset never depends on N."""
    digest = hashlib.blake2b(f"extra|{base}|{what}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def extra_asset(index: int) -> Asset:
    """Return synthetic asset number `index` (1-based) of the long tail after the default ones.

    Price is log-uniform over $0.001-$1000; reference 24h volume falls as `index ** -1.1` from
    $20M (below every default non-thin asset) and market-cap rank follows the default ranks.
    """
    if index < 1:
        raise ValueError("extra asset indices start at 1")
    base = f"{EXTRA_PREFIX}{index}"
    price = 10.0 ** (-3.0 + 6.0 * _unit(base, "price"))
    decay = index**-_EXTRA_TAIL_EXPONENT
    return Asset(
        base=base,
        name=f"Synthetic {base}",
        coingecko_id=f"synthetic-{base.lower()}",
        price=price,
        daily_vol=0.035 + 0.035 * _unit(base, "vol"),
        usd_volume_24h=_EXTRA_TOP_VOLUME_USD * decay,
        market_cap_rank=_LAST_DEFAULT_RANK + index,
        circulating_supply=_EXTRA_TOP_MARKET_CAP_USD * decay / price,
    )


def extra_assets(count: int) -> tuple[Asset, ...]:
    """Return the first `count` synthetic assets (`AA1`...), deterministic and seed-independent."""
    if count < 0:
        raise ValueError("extra_assets must not be negative")
    return tuple(extra_asset(index) for index in range(1, count + 1))


VENUE_VOLUME_SHARE: dict[Venue, float] = {
    Venue.COINBASE: 1.0,
    Venue.BINANCE: 3.0,
    Venue.BINANCE_US: 0.03,
}
"""Each venue's 24h volume as a multiple of the asset's reference volume."""

_QUOTES: dict[Venue, str] = {Venue.COINBASE: "USD", Venue.BINANCE: "USDT", Venue.BINANCE_US: "USDT"}


def quote_of(venue: Venue) -> str:
    """Return the quote currency every product of `venue` uses."""
    return _QUOTES[venue]


def venue_symbol(venue: Venue, base: str) -> str:
    """Return the venue-native symbol of `base` (BTC-USD on Coinbase, BTCUSDT on Binance)."""
    if venue is Venue.COINBASE:
        return f"{base}-{_QUOTES[venue]}"
    return f"{base}{_QUOTES[venue]}"


def base_of(venue: Venue, symbol: str) -> str | None:
    """Return the base asset of a venue-native symbol, or None if it is not this venue's form."""
    quote = _QUOTES[venue]
    upper = symbol.upper()
    suffix = f"-{quote}" if venue is Venue.COINBASE else quote
    if not upper.endswith(suffix) or len(upper) == len(suffix):
        return None
    return upper[: -len(suffix)]
