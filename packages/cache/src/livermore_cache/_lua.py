"""Server-side scripts, each touching exactly the one key passed as KEYS[1] (cluster-safe).

A guarded variant (`LuaScript.guarded`) touches one more key, the fence record in the same slot.
"""

from __future__ import annotations

import hashlib
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError, ResponseError

from livermore_cache.client import RedisClient
from livermore_cache.fence import fence_record_key, guard_of, stale_error

_GUARD = """
local seen = redis.call('HGET', KEYS[2], ARGV[1])
if seen and tonumber(seen) > tonumber(ARGV[2]) then
  return redis.error_reply('STALEEPOCH lease epoch ' .. ARGV[2] .. ' of ' .. ARGV[1]
    .. ' is older than ' .. seen .. ' (' .. KEYS[1] .. ')')
end
if seen ~= ARGV[2] then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
end
local args = {}
for i = 3, #ARGV do
  args[i - 2] = ARGV[i]
end
return body({KEYS[1]}, args)
"""
"""KEYS: the data key, its fence record; ARGV: scope, epoch, then the script's own (see fence)."""


class LuaScript:
    """A Lua script with its SHA computed once, run by EVALSHA with a one-time SCRIPT LOAD.

    A `fenced` script (the default) writes data a stale lease holder must not touch: on a client
    with a lease fence it runs as its `guarded` variant, which carries the writer's epoch and a
    second key, the fence record of the data key's slot (`livermore_cache.fence`).
    """

    __slots__ = ("_guarded", "fenced", "numkeys", "sha", "source")

    def __init__(self, source: str, *, fenced: bool = True, numkeys: int = 1) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()
        self.fenced = fenced
        self.numkeys = numkeys
        self._guarded: LuaScript | None = None

    @property
    def guarded(self) -> LuaScript:
        """The variant that checks and records the writer's lease epoch first."""
        if self._guarded is None:
            body = f"local function body(KEYS, ARGV)\n{self.source}\nend\n"
            self._guarded = LuaScript(body + _GUARD, fenced=False, numkeys=2)
        return self._guarded

    def invocation(
        self, redis: RedisClient, key: str, *args: Any
    ) -> tuple[LuaScript, tuple[Any, ...]]:
        """Return the script to run on `key` for `redis` and its keys-then-arguments."""
        guard = guard_of(redis) if self.fenced else None
        if guard is None:
            return self, (key, *args)
        fence, epoch = guard
        record = fence_record_key(key, cluster=isinstance(redis, RedisCluster))
        return self.guarded, (key, record, fence.scope, epoch, *args)

    async def load(self, redis: RedisClient) -> None:
        """Load the script (on a cluster redis-py sends SCRIPT LOAD to every primary)."""
        await redis.script_load(self.source)

    async def run(self, redis: RedisClient, key: str, *args: Any) -> Any:
        """Run the script on `key`, loading it first if the server does not know it.

        Raises:
            livermore_cache.fence.StaleEpoch: a newer lease holder wrote into the key's slot.
        """
        script, full = self.invocation(redis, key, *args)
        try:
            try:
                return await redis.evalsha(script.sha, script.numkeys, *full)
            except NoScriptError:
                await script.load(redis)
                return await redis.evalsha(script.sha, script.numkeys, *full)
        except ResponseError as err:
            raise stale_error(redis, err) from None


# ARGV: retention, ttl_s (0 = none), then 5 per candle: open_time, json, closed (1/0),
# sequence (-1 = none), source. Returns how many candles were written.
CANDLE_WRITE = LuaScript(
    """
local key = KEYS[1]
local retention = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local written = 0
local card = redis.call('ZCARD', key)
for i = 3, #ARGV, 5 do
  local score = ARGV[i]
  local member = ARGV[i + 1]
  local closed = ARGV[i + 2] == '1'
  local seq = tonumber(ARGV[i + 3])
  local rest = ARGV[i + 4] == 'rest'
  local ok = true
  local old = redis.call('ZRANGEBYSCORE', key, score, score)
  if #old > 0 then
    local e = cjson.decode(old[1])
    if e.closed == true and not closed then
      ok = false
    elseif seq >= 0 and type(e.sequence) == 'number' and seq < e.sequence then
      ok = false
    elseif rest and not closed and e.closed ~= true and e.source ~= 'rest' then
      ok = false
    end
    if ok and (#old > 1 or old[1] ~= member) then
      redis.call('ZREMRANGEBYSCORE', key, score, score)
      redis.call('ZADD', key, score, member)
    end
  else
    if card >= retention then
      local lowest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
      if tonumber(score) < tonumber(lowest[2]) then
        ok = false
      end
    end
    if ok then
      redis.call('ZADD', key, score, member)
      card = card + 1
      if card > retention then
        redis.call('ZREMRANGEBYRANK', key, 0, card - retention - 1)
        card = retention
      end
    end
  end
  if ok then
    written = written + 1
  end
end
if written > 0 and ttl > 0 then
  redis.call('EXPIRE', key, ttl)
end
return written
"""
)
"""Apply the SPEC 3.2 replacement rules for a batch of candles of one series."""

CANDLE_CLOSE = LuaScript(
    "local function write(KEYS, ARGV)\n"
    + CANDLE_WRITE.source
    + """
end
local written = write(KEYS, {ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]})
for i = 8, #ARGV do
  redis.call('PUBLISH', ARGV[i], ARGV[4])
end
return written
"""
)
"""`CANDLE_WRITE` of one candle (same ARGV), then PUBLISH of its stored JSON to ARGV[8...]."""

# ARGV: value, ttl_s, then channels. Stores the value with its TTL, then publishes it.
SET_PUBLISH = LuaScript(
    """
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
for i = 3, #ARGV do
  redis.call('PUBLISH', ARGV[i], ARGV[1])
end
return 1
"""
)
"""SET with a TTL, then PUBLISH of the same value (written before announced, one command)."""

# ARGV: the new last_heartbeat as a JSON string literal, missed beats. Rewrites only that field so a
# status written concurrently by the worker's state machine is never overwritten with an old state.
# Returns the updated JSON, or nil when there is no status.
STATUS_HEARTBEAT = LuaScript(
    """
local raw = redis.call('GET', KEYS[1])
if not raw then
  return nil
end
local beat = string.gsub(ARGV[1], '%%', '%%%%')
local updated = string.gsub(raw, '"last_heartbeat":"[^"]*"', '"last_heartbeat":' .. beat, 1)
local interval = tonumber(string.match(updated, '"heartbeat_interval_s":([-%d%.eE+]+)')) or 5
local ttl = math.max(1, math.ceil(tonumber(ARGV[2]) * interval * 1000))
redis.call('SET', KEYS[1], updated, 'PX', ttl)
return updated
""",
    fenced=False,
)
"""Refresh `last_heartbeat` and the expiry of one status key atomically."""
