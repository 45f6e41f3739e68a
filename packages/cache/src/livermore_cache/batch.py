"""WriteBatch: commands and scripts run in order, a burst in one round trip.

On one Redis node the queued commands are packed into ONE string and run by a small Lua
dispatcher (`redis.call` for a plain command, the script's own body for a `LuaScript`), at most
`CHUNK` commands per call, the calls pipelined on one connection. Redis runs them in the order
queued, so a PUBLISH queued after a write reaches subscribers only once the write is stored
("published after written"). Packing matters at a boundary: 6,000 closed bars queue about
30,000 commands, and redis-py's per-command packing and reply parsing cost more than everything
else on the path; one packed string per chunk costs one `str.join`. Each chunk is its own
script call, so Redis never blocks long on one.

Separators: fields are joined with the ASCII unit separator (0x1F), which JSON payloads never
contain unescaped (and keys and channel names are built without it); a field holding it is
refused.

With a lease fence on the client the writer's lease epoch is checked in Redis against the fence
record (`livermore_cache.fence`): on one node once per dispatcher call, before any of its
commands runs (the node has one record), on a cluster by each fenced script's guarded variant.
A rejection raises `StaleEpoch` from `flush`.

On a cluster the dispatcher cannot span slots. The commands between two PUBLISHes (which have
no key to route by) go in one cluster pipeline instead, which redis-py splits per node and sends
to the nodes concurrently (each command touches at most one key: the cache's cluster rule; the
commands of one key keep their order on its node); each PUBLISH is sent once everything queued
before it is done, so "published after written" holds there too. About 4x faster than one
command after another for a boundary's closes (see bench/README.md). A command that met a store
error (a failover) is run again on its own, within the retry budget; one that met NOSCRIPT did
nothing, so the script is loaded and the call re-run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError, ResponseError

from livermore_cache._lua import LuaScript as LuaScript
from livermore_cache.client import RedisClient, is_store_error
from livermore_cache.fence import fence_record_key, guard_of, stale_error

SEP = "\x1f"
CHUNK = 2_000
"""Commands per dispatcher call: a few ms of Redis time each."""

_PLAIN = "!"
_BARRIERS = frozenset({"PUBLISH"})
"""Commands a cluster pipeline cannot route (no key): run on their own, after what precedes."""

_DISPATCH = """
if ARGV[2] then
  local seen = redis.call('HGET', ARGV[2], ARGV[3])
  if seen and tonumber(seen) > tonumber(ARGV[4]) then
    return redis.error_reply('STALEEPOCH lease epoch ' .. ARGV[4] .. ' of ' .. ARGV[3]
      .. ' is older than ' .. seen .. ' (' .. ARGV[2] .. ')')
  end
  if seen ~= ARGV[4] then
    redis.call('HSET', ARGV[2], ARGV[3], ARGV[4])
  end
end
local s = ARGV[1]
local pos, size = 1, #s
local function field()
  local stop = string.find(s, '\\31', pos, true)
  local value
  if stop then
    value = string.sub(s, pos, stop - 1)
    pos = stop + 1
  else
    value = string.sub(s, pos)
    pos = size + 2
  end
  return value
end
local out = {}
while pos <= size do
  local name = field()
  local count = tonumber(field())
  local args = {}
  for i = 1, count do args[i] = field() end
  local reply
  if name == '!' then
    reply = redis.pcall(unpack(args))
  else
    local keys = {}
    for k = 1, NKEYS[name] do keys[k] = table.remove(args, 1) end
    local ok, result = pcall(SCRIPTS[name], keys, args)
    if ok then reply = result else reply = {err = tostring(result)} end
  end
  if reply == nil or reply == false then reply = cjson.null end
  out[#out + 1] = reply
end
if #out == 0 then return '[]' end
return cjson.encode(out)
"""


def _dispatcher(scripts: Sequence[LuaScript]) -> LuaScript:
    """Return the dispatcher that knows `scripts` (by position: '1', '2', ...)."""
    bodies = "\n".join(
        f"SCRIPTS['{n}'] = function(KEYS, ARGV)\n{script.source}\nend\n"
        f"NKEYS['{n}'] = {script.numkeys}"
        for n, script in enumerate(scripts, start=1)
    )
    return LuaScript("local SCRIPTS, NKEYS = {}, {}\n" + bodies + "\n" + _DISPATCH, fenced=False)


_DISPATCHERS: dict[tuple[str, ...], LuaScript] = {}
_LOADED: set[tuple[int, str]] = set()
"""(client id, dispatcher sha) pairs loaded once (SCRIPT LOAD) before their first use."""


def _reply(raw: Any) -> Any:
    if isinstance(raw, dict):
        if "err" in raw:
            return ResponseError(str(raw["err"]))
        if "ok" in raw:
            return True
    return raw


class WriteBatch:
    """Queued Redis commands and scripts, run in order by `flush` (see the module docstring)."""

    __slots__ = ("_commands", "_redis")

    def __init__(self, redis: RedisClient) -> None:
        self._redis = redis
        self._commands: list[tuple[LuaScript | None, tuple[Any, ...]]] = []

    def __len__(self) -> int:
        return len(self._commands)

    def add(self, *args: Any) -> int:
        """Queue one command (name first, as `execute_command` takes it); return its position."""
        self._commands.append((None, args))
        return len(self._commands) - 1

    def add_script(self, script: LuaScript, key: str, *args: Any) -> int:
        """Queue one run of `script` on `key` (its one key); return its position."""
        self._commands.append((script, (key, *args)))
        return len(self._commands) - 1

    async def flush(self) -> list[Any]:
        """Send what is queued (nothing when empty) and return the replies in order.

        Raises:
            redis.exceptions.RedisError: a command failed or the connection broke; the queue is
                empty afterwards either way (commands are never sent twice).
        """
        commands, self._commands = self._commands, []
        if not commands:
            return []
        if isinstance(self._redis, RedisCluster):
            return await self._flush_cluster(commands)
        guard = guard_of(self._redis)
        checked: tuple[Any, ...] = ()
        if guard is not None:  # one record on one node: checked once per dispatcher call
            fence, epoch = guard
            checked = (fence_record_key("", cluster=False), fence.scope, epoch)
        replies = await self._dispatch(commands, checked)
        for reply in replies:
            if isinstance(reply, Exception):
                raise stale_error(self._redis, reply)
        return replies

    async def _flush_cluster(
        self, commands: list[tuple[LuaScript | None, tuple[Any, ...]]]
    ) -> list[Any]:
        replies: list[Any] = [None] * len(commands)
        segment: list[int] = []
        for position, (script, args) in enumerate(commands):
            if script is None and str(args[0]).upper() in _BARRIERS:
                await self._grouped(segment, commands, replies)
                segment = []
                replies[position] = await self._redis.execute_command(*args)
            else:
                segment.append(position)
        await self._grouped(segment, commands, replies)
        return replies

    async def _grouped(
        self,
        positions: list[int],
        commands: list[tuple[LuaScript | None, tuple[Any, ...]]],
        replies: list[Any],
    ) -> None:
        """Run the commands at `positions` in one cluster pipeline (one per node, concurrently).

        A command that met NOSCRIPT or a store error (a failover) is run again on its own,
        which loads the script or waits the failover out within the retry budget; any other
        error is raised once the rest are done.
        """
        if len(positions) <= 1:
            for position in positions:
                replies[position] = await self._one(*commands[position])
            return
        results = await self._pipelined([commands[p] for p in positions])
        failure: BaseException | None = None
        if any(isinstance(result, NoScriptError) for result in results):
            # a node lost its scripts (a replica promoted, a restart): load again next time
            _LOADED.difference_update({k for k in _LOADED if k[0] == id(self._redis)})
        for position, result in zip(positions, results, strict=True):
            if isinstance(result, NoScriptError) or (
                isinstance(result, Exception) and is_store_error(result)
            ):
                try:
                    result = await self._one(*commands[position])
                except Exception as err:
                    result = err
            if isinstance(result, Exception):
                failure = failure or stale_error(self._redis, result)
            replies[position] = result
        if failure is not None:
            raise failure

    async def _pipelined(
        self, commands: list[tuple[LuaScript | None, tuple[Any, ...]]]
    ) -> list[Any]:
        """Send `commands` in one cluster pipeline; return each reply or error in place."""
        pipe = self._redis.pipeline(transaction=False)
        for script, args in commands:
            if script is None:
                pipe.execute_command(*args)
            else:
                run, full = script.invocation(self._redis, args[0], *args[1:])
                await self._load_once(run)
                # pipe.evalsha is refused on a cluster pipeline; the plain command is routed
                pipe.execute_command("EVALSHA", run.sha, run.numkeys, *full)
        try:
            return list(await pipe.execute(raise_on_error=False))
        except Exception as err:
            if not is_store_error(err):
                raise
            return [err] * len(commands)  # not known which ran: each runs again

    async def _load_once(self, script: LuaScript) -> None:
        if (id(self._redis), script.sha) not in _LOADED:
            await script.load(self._redis)
            _LOADED.add((id(self._redis), script.sha))

    async def _one(self, script: LuaScript | None, args: tuple[Any, ...]) -> Any:
        if script is None:
            return await self._redis.execute_command(*args)
        return await script.run(self._redis, args[0], *args[1:])

    async def _dispatch(
        self, commands: list[tuple[LuaScript | None, tuple[Any, ...]]], checked: tuple[Any, ...]
    ) -> list[Any]:
        by_sha: dict[str, int] = {}
        for script, _ in commands:
            if script is not None:
                by_sha.setdefault(script.sha, len(by_sha) + 1)
        known = [script for script, _ in commands if script is not None]
        ordered = sorted({s.sha: s for s in known}.values(), key=lambda s: by_sha[s.sha])
        signature = tuple(s.sha for s in ordered)
        dispatcher = _DISPATCHERS.get(signature)
        if dispatcher is None:
            dispatcher = _DISPATCHERS.setdefault(signature, _dispatcher(ordered))
        packed = [
            _pack(commands[start : start + CHUNK], by_sha)
            for start in range(0, len(commands), CHUNK)
        ]
        if (id(self._redis), dispatcher.sha) not in _LOADED:
            await dispatcher.load(self._redis)
            _LOADED.add((id(self._redis), dispatcher.sha))
        raws = await self._run(dispatcher, packed, checked)
        for position, raw in enumerate(raws):
            if isinstance(
                raw, NoScriptError
            ):  # the server lost it (restart): that call did nothing
                await dispatcher.load(self._redis)
                raws[position] = await self._redis.evalsha(
                    dispatcher.sha, 0, packed[position], *checked
                )
            elif isinstance(raw, Exception):
                raise stale_error(self._redis, raw)
        return [_reply(item) for raw in raws for item in json.loads(raw)]

    async def _run(
        self, dispatcher: LuaScript, packed: list[str], checked: tuple[Any, ...]
    ) -> list[Any]:
        if len(packed) == 1:  # a steady bar's burst: no pipeline object, one plain call
            try:
                return [await self._redis.evalsha(dispatcher.sha, 0, packed[0], *checked)]
            except ResponseError as error:  # NOSCRIPT, STALEEPOCH: in place, as below
                return [error]
        pipe = self._redis.pipeline(transaction=False)
        for text in packed:
            pipe.evalsha(dispatcher.sha, 0, text, *checked)
        # Errors come back in place: redis-py would otherwise quote the packed text in the message.
        return list(await pipe.execute(raise_on_error=False))


def _pack(commands: list[tuple[LuaScript | None, tuple[Any, ...]]], by_sha: dict[str, int]) -> str:
    fields: list[str] = []
    for script, args in commands:
        fields.append(_PLAIN if script is None else str(by_sha[script.sha]))
        fields.append(str(len(args)))
        fields.extend(map(str, args))  # str, int and float (repr) arguments only
    text = SEP.join(fields)
    if text.count(SEP) != len(fields) - 1:
        raise ValueError("a batched field contains the 0x1F separator")
    return text
