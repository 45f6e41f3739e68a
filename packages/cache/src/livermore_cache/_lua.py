"""Server-side scripts, each touching exactly the one key passed as KEYS[1] (cluster-safe)."""

from __future__ import annotations

import hashlib
from typing import Any

from redis.exceptions import NoScriptError

from livermore_cache.client import RedisClient


class LuaScript:
    """A Lua script with its SHA computed once, run by EVALSHA with a one-time SCRIPT LOAD."""

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    async def load(self, redis: RedisClient) -> None:
        """Load the script (on a cluster redis-py sends SCRIPT LOAD to every primary)."""
        await redis.script_load(self.source)

    async def run(self, redis: RedisClient, key: str, *args: Any) -> Any:
        """Run the script on `key`, loading it first if the server does not know it."""
        try:
            return await redis.evalsha(self.sha, 1, key, *args)
        except NoScriptError:
            await self.load(redis)
            return await redis.evalsha(self.sha, 1, key, *args)


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
"""
)
"""Refresh `last_heartbeat` and the expiry of one status key atomically."""
