"""Pipelined Redis calls for a burst of alert evaluations (`AlertEvaluator.evaluate_many`).

Every command touches one key, so a cluster pipeline can group them per node; on one node each
helper is one round trip. Scripts go out as EVALSHA: a script the server does not know fails
that command alone, having done nothing, and is re-run through `AsyncScript` (which loads it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from livermore_cache import keys
from livermore_cache.client import RedisClient
from livermore_schema.alerts import TimeframeContext
from livermore_schema.enums import IndicatorType, Stage, Timeframe
from livermore_schema.indicators import IndicatorValue
from livermore_schema.market import Ticker
from livermore_schema.timeframes import duration_ms

ScriptCall = tuple[str, Sequence[Any]]
"""The one key and the arguments of a script call."""


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


async def read_states(
    redis: RedisClient, state_keys: Sequence[str]
) -> list[tuple[str, str, str, str]]:
    """Return each alert state hash as (open_time, prev, armed, before), '' where absent."""
    pipe = redis.pipeline(transaction=False)
    for key in state_keys:
        pipe.hgetall(key)
    found: list[tuple[str, str, str, str]] = []
    for raw in await pipe.execute():
        state = {_text(k): _text(v) for k, v in raw.items()}
        open_time, prev, armed, before = (
            state.get(name, "") for name in ("open_time", "prev", "armed", "before")
        )
        found.append((open_time, prev, armed, before))
    return found


async def run_scripts(
    redis: RedisClient, script: AsyncScript, calls: Sequence[ScriptCall]
) -> list[Any]:
    """Run `script` once per call, pipelined; return the replies in call order."""
    if not calls:
        return []
    pipe = redis.pipeline(transaction=False)
    for key, args in calls:
        pipe.execute_command("EVALSHA", script.sha, 1, key, *args)
    replies: list[Any] = await pipe.execute(raise_on_error=False)
    for position, reply in enumerate(replies):
        if isinstance(reply, NoScriptError):
            key, args = calls[position]
            replies[position] = await script(keys=[key], args=list(args))
        elif isinstance(reply, Exception):
            raise reply
    return replies


async def read_contexts(
    redis: RedisClient, values: Sequence[IndicatorValue], timeframes: Sequence[Timeframe]
) -> list[tuple[Ticker | None, dict[Timeframe, IndicatorValue | None]]]:
    """Return each Tier 1 value's ticker and its symbol's readings on the other `timeframes`."""
    pipe = redis.pipeline(transaction=False)
    wanted: list[list[Timeframe]] = []
    for value in values:
        pipe.get(keys.ticker_key(value.exchange_id, value.symbol))
        others = [tf for tf in timeframes if tf != value.timeframe]
        wanted.append(others)
        for timeframe in others:
            pipe.get(
                keys.indicator_key(value.exchange_id, value.symbol, timeframe, IndicatorType.MACD_V)
            )
    replies: list[Any] = await pipe.execute()
    found: list[tuple[Ticker | None, dict[Timeframe, IndicatorValue | None]]] = []
    cursor = 0
    for others in wanted:
        raw = replies[cursor]
        ticker = None if raw is None else Ticker.model_validate_json(raw)
        readings = {
            tf: None if reply is None else IndicatorValue.model_validate_json(reply)
            for tf, reply in zip(
                others, replies[cursor + 1 : cursor + 1 + len(others)], strict=True
            )
        }
        found.append((ticker, readings))
        cursor += 1 + len(others)
    return found


def context_rows(
    value: IndicatorValue, found: Mapping[Timeframe, IndicatorValue | None]
) -> list[TimeframeContext]:
    """Return the context rows of `value`'s symbol, shortest timeframe first."""
    readings = {**found, value.timeframe: value}  # fresher than the cache, present if unlisted
    return [
        TimeframeContext(
            timeframe=tf,
            macd_v=reading.value.macd_v if reading else None,
            stage=reading.stage if reading else Stage.UNKNOWN,
        )
        for tf in sorted(readings, key=duration_ms)
        for reading in (readings[tf],)
    ]
