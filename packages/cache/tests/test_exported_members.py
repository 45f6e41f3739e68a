from __future__ import annotations

import livermore_cache


def test_public_surface_is_pinned() -> None:
    assert set(livermore_cache.__all__) == {
        "channels",
        "keys",
        "RedisClient",
        "connect_redis",
        "CandleCache",
        "IndicatorCache",
        "OrderBookCache",
        "StatusStore",
        "TickerCache",
        "Tier2Holders",
        "WriteBatch",
        "Publisher",
        "Subscription",
        "alert_stream",
        "lifecycle_stream",
        "subscribe",
        "AlertListener",
        "ChannelFanout",
        "FanoutFullError",
        "ListenerClosedError",
        "CommandBus",
        "CommandInbox",
        "PublishedCommandBridge",
        "delete_matching",
        "iter_matching",
    }
    assert len(livermore_cache.__all__) == len(set(livermore_cache.__all__))


def test_every_export_resolves_and_is_documented() -> None:
    for name in livermore_cache.__all__:
        member = getattr(livermore_cache, name)
        if name != "RedisClient":  # a type alias carries no docstring
            assert member.__doc__, name
