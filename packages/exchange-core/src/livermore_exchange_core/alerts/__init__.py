"""MACD-V alerts: rules, evaluator, history, Discord, confluence and per-subscriber selection.

To follow alerts from any set of exchanges, use `alert_stream` (re-exported from
`livermore_cache.pubsub`): `async with alert_stream(redis, [1, 2]) as alerts: async for ...`.
"""

from livermore_cache.pubsub import alert_stream
from livermore_exchange_core.alerts.confluence import (
    Confluence,
    ConfluenceClaim,
    ConfluenceDetector,
    ConfluenceGroup,
    ConfluenceWatcher,
    confluence_event,
    group_of,
)
from livermore_exchange_core.alerts.evaluator import AlertEvaluator
from livermore_exchange_core.alerts.history import AlertHistoryWriter, history_row
from livermore_exchange_core.alerts.local import (
    AlertSelection,
    Holdings,
    load_holdings,
    select_alert,
)
from livermore_exchange_core.alerts.notify import DiscordNotifier, build_embed
from livermore_exchange_core.alerts.rules import (
    BIAS_WEIGHTS,
    LEVELS,
    Direction,
    LevelCrossing,
    Reversal,
    RuleOutcome,
    Trigger,
    Zone,
    compute_bias,
    evaluate_rules,
    level_crossing,
    level_label,
    reversal,
)
from livermore_exchange_core.alerts.sinks import AlertSink, FanOutSink, alert_details

__all__ = [
    "BIAS_WEIGHTS",
    "LEVELS",
    "AlertEvaluator",
    "AlertHistoryWriter",
    "AlertSelection",
    "AlertSink",
    "Confluence",
    "ConfluenceClaim",
    "ConfluenceDetector",
    "ConfluenceGroup",
    "ConfluenceWatcher",
    "Direction",
    "DiscordNotifier",
    "FanOutSink",
    "Holdings",
    "LevelCrossing",
    "Reversal",
    "RuleOutcome",
    "Trigger",
    "Zone",
    "alert_details",
    "alert_stream",
    "build_embed",
    "compute_bias",
    "confluence_event",
    "evaluate_rules",
    "group_of",
    "history_row",
    "level_crossing",
    "level_label",
    "load_holdings",
    "reversal",
    "select_alert",
]
