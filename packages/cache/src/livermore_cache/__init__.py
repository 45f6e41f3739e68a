"""livermore-cache: every Redis key and channel, the caches, pub/sub and the command transport.

Key and channel builders live in `livermore_cache.keys` and `livermore_cache.channels`
(import the modules; they are the only places a name is formatted).
"""

from livermore_cache import channels, keys
from livermore_cache.batch import WriteBatch
from livermore_cache.candles import CandleCache
from livermore_cache.client import RedisClient, connect_redis
from livermore_cache.commands import CommandBus, CommandInbox, PublishedCommandBridge
from livermore_cache.fanout import (
    AlertListener,
    ChannelFanout,
    FanoutFullError,
    ListenerClosedError,
)
from livermore_cache.holders import Tier2Holders
from livermore_cache.indicators import IndicatorCache
from livermore_cache.pubsub import (
    Publisher,
    Subscription,
    alert_stream,
    lifecycle_stream,
    subscribe,
)
from livermore_cache.scan import delete_matching, iter_matching
from livermore_cache.status import StatusStore
from livermore_cache.tickers import OrderBookCache, TickerCache

__all__ = (  # noqa: RUF022 - grouped by purpose, sorted within each group
    # names
    "channels",
    "keys",
    # connection
    "RedisClient",
    "connect_redis",
    # caches
    "CandleCache",
    "IndicatorCache",
    "OrderBookCache",
    "StatusStore",
    "TickerCache",
    "Tier2Holders",
    "WriteBatch",
    # pub/sub
    "Publisher",
    "Subscription",
    "alert_stream",
    "lifecycle_stream",
    "subscribe",
    # in-process fan-out of the one shared subscription
    "AlertListener",
    "ChannelFanout",
    "FanoutFullError",
    "ListenerClosedError",
    # control protocol transport
    "CommandBus",
    "CommandInbox",
    "PublishedCommandBridge",
    # maintenance
    "delete_matching",
    "iter_matching",
)
