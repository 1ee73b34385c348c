"""Every rate of one request, and its window statistics, in one Redis round trip.

(With the token store's revocation read riding along when both share a Redis:
see ``PiggybackRead`` in ``fastapi_secure._redis``.)

``limits`` sends one command per call: a hit, then a second round trip for the
statistics the ``RateLimit`` headers need, per rate. Here one script does it
all: it is built from ``limits``' own Lua scripts (the hit and the window read
of the strategy, their text taken from ``limits`` at run time), each wrapped
as a Lua function, and a short driver that runs them for each rate in order
and stops at the first refusal, as the call-by-call path does. The algorithms
stay those of ``limits``: its scripts decide admission atomically in Redis,
and its strategy computes the statistics from the window read, through
:class:`_WindowReply`, a storage that answers the strategy's one read with
the reply already fetched.

Only for a ``limits`` Redis storage (single server or Sentinel) on redis-py:
on a cluster the keys of one request's rates live on several nodes, so it
keeps the call-by-call path.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from limits import RateLimitItem
from limits.aio.storage import (
    MovingWindowSupport,
    RedisSentinelStorage,
    RedisStorage,
    SlidingWindowCounterSupport,
    Storage,
)
from limits.aio.storage.redis.redispy import RedispyBridge
from limits.aio.strategies import STRATEGIES
from limits.util import WindowStats

if TYPE_CHECKING:
    from fastapi_secure._redis import PiggybackRead

__all__ = ["RedisBatch"]


class _WindowReply(Storage, MovingWindowSupport, SlidingWindowCounterSupport):
    """A ``limits`` storage whose window reads answer with one reply fetched before.

    Lets a ``limits`` strategy compute ``get_window_stats`` from a pipeline's
    reply. Anything else was never asked of it and fails loudly.
    """

    STORAGE_SCHEME = None

    def __init__(self, reply: Any) -> None:
        super().__init__(wrap_exceptions=False)
        self._reply = reply

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return ()

    async def get_sliding_window(self, key: str, expiry: int) -> tuple[int, float, int, float]:
        result: tuple[int, float, int, float] = self._reply
        return result

    async def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        result: tuple[float, int] = self._reply
        return result

    async def get(self, key: str) -> int:
        count: int = self._reply[0]
        return count

    async def get_expiry(self, key: str) -> float:
        expiry: float = self._reply[1]
        return expiry

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        raise NotImplementedError

    async def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        raise NotImplementedError

    async def acquire_sliding_window_entry(
        self, key: str, limit: int, expiry: int, amount: int = 1
    ) -> bool:
        raise NotImplementedError

    async def clear_sliding_window(self, key: str, expiry: int) -> None:
        raise NotImplementedError

    async def check(self) -> bool:
        raise NotImplementedError

    async def reset(self) -> int | None:
        raise NotImplementedError

    async def clear(self, key: str) -> None:
        raise NotImplementedError


# Per strategy: the hit and read scripts of limits (by bridge attribute, or inline
# Lua), the keys per rate, and how the driver calls them with one rate's
# arguments ``a``; ``admitted`` turns the hit's reply into a boolean.
_PLANS: dict[str, dict[str, str | int]] = {
    "sliding-window-counter": {
        "hit": "SCRIPT_ACQUIRE_SLIDING_WINDOW",
        "read": "SCRIPT_SLIDING_WINDOW",
        "keys": 2,
        "args": 3,  # limit, expiry (s), cost
        "call_hit": "hit(k, {a[1], a[2], a[3]})",
        "call_read": "read(k, {a[2]})",
        "admitted": "r == true",
    },
    "moving-window": {
        "hit": "SCRIPT_ACQUIRE_MOVING_WINDOW",
        "read": "SCRIPT_MOVING_WINDOW",
        "keys": 1,
        "args": 4,  # timestamp, limit, expiry (s), cost
        "call_hit": "hit(k, {a[1], a[2], a[3], a[4]})",
        "call_read": "read(k, {tonumber(a[1]) - tonumber(a[3]), a[2]})",
        "admitted": "r == true",
    },
    "fixed-window": {
        "hit": "SCRIPT_INCR_EXPIRE",
        "read": "",  # the window's expiry: PTTL of the counter
        "keys": 1,
        "args": 3,  # expiry (s), cost, limit
        "call_hit": "hit(k, {a[1], a[2]})",
        "call_read": "redis.call('pttl', k[1])",
        "admitted": "tonumber(r) <= tonumber(a[3])",
    },
}

_DRIVER = """
local function hit(KEYS, ARGV)
{hit}
end
local function read(KEYS, ARGV)
{read}
end
local riders = {{}}
{riders}
-- ARGV[1]: '1' to read the window of admitted rates too; ARGV[2]: the number of
-- rates; ARGV[3]: the number of riders, then per rider its key and argument
-- counts; then each rate's arguments, then each rider's.
local stats = ARGV[1] == '1'
local rates = tonumber(ARGV[2])
local count = tonumber(ARGV[3])
local out = {{}}
local kpos, apos = rates * {keys}, 3 + 2 * count + rates * {args}
for r = 1, count do
  local k, a = {{}}, {{}}
  for j = 1, tonumber(ARGV[2 + 2 * r]) do kpos = kpos + 1; k[j] = KEYS[kpos] end
  for j = 1, tonumber(ARGV[3 + 2 * r]) do apos = apos + 1; a[j] = ARGV[apos] end
  -- A rider's failure is its own: the rates are counted all the same.
  local ok, reply = pcall(riders[r], k, a)
  if ok and (type(reply) == 'string' or type(reply) == 'number') then
    out[r] = reply
  else
    out[r] = 0
  end
end
local base = 3 + 2 * count
for i = 1, rates do
  local k, a = {{}}, {{}}
  for j = 1, {keys} do k[j] = KEYS[(i - 1) * {keys} + j] end
  for j = 1, {args} do a[j] = ARGV[base + (i - 1) * {args} + j] end
  local r = {call_hit}
  local admitted = {admitted}
  if r == true then r = 1 elseif not r then r = 0 end
  out[#out + 1] = r
  if stats or not admitted then
    out[#out + 1] = {call_read} or 0
  end
  if not admitted then break end
end
-- One flat string, one line per reply: redis-py parses a nested array reply
-- element by element, which costs more than the whole script. Numbers as Redis
-- would send them (integers), false as nothing, a table as [a,b,...].
local function scalar(v)
  local t = type(v)
  if t == 'number' then return string.format('%d', v) end
  if t == 'boolean' then if v then return '1' end return '' end
  if t == 'string' and not string.find(v, '[,\\n%[%]]') then return v end
  return '?'
end
local lines = {{}}
for i = 1, #out do
  local v = out[i]
  if type(v) == 'table' then
    local parts = {{}}
    for j = 1, #v do parts[j] = scalar(v[j]) end
    lines[i] = '[' .. table.concat(parts, ',') .. ']'
  else
    lines[i] = scalar(v)
  end
end
return table.concat(lines, '\\n')
"""


def _scalar(text: str) -> Any:
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        return text


def _decode(reply: Any) -> list[Any]:
    """The driver's flat reply as the nested one Redis would have sent (integers as
    int, strings as str, nil as None), one item per line."""
    text = reply.decode() if isinstance(reply, bytes) else str(reply)
    items: list[Any] = []
    for line in text.split("\n"):
        if line.startswith("["):
            inner = line[1:-1]
            items.append([_scalar(part) for part in inner.split(",")] if inner else [])
        else:
            items.append(_scalar(line))
    return items


def driver_script(strategy: str, riders: tuple[str, ...] = ()) -> str:
    """The Lua source hitting every rate of one request with ``limits``' scripts,
    after running the read-only ``riders`` scripts (each on its own keys)."""
    plan = _PLANS[strategy]

    def source(name: str | int) -> str:
        text: str | bytes = getattr(RedispyBridge, str(name)) if name else ""
        return text.decode() if isinstance(text, bytes) else text

    return _DRIVER.format(
        hit=source(plan["hit"]),
        read=source(plan["read"]),
        keys=plan["keys"],
        args=plan["args"],
        call_hit=plan["call_hit"],
        call_read=plan["call_read"],
        admitted=plan["admitted"],
        riders="\n".join(
            f"riders[{index}] = function(KEYS, ARGV)\n{source}\nend"
            for index, source in enumerate(riders, start=1)
        ),
    )


class RedisBatch:
    """Hits every rate of one request, with statistics, in one script call."""

    def __init__(self, storage: RedisStorage, strategy: str) -> None:
        self._bridge: RedispyBridge = storage.bridge  # type: ignore[assignment]
        self._strategy = strategy
        self._stats_class: Any = STRATEGIES[strategy]
        client: Any = self._bridge.get_connection()
        self.client = client
        # redis-py sends EVALSHA, and loads the script once when Redis lacks it.
        # One script per set of riders (a handful: one per kind of store read).
        self._scripts: dict[tuple[str, ...], Any] = {
            (): client.register_script(driver_script(strategy))
        }

    @staticmethod
    def supports(storage: Storage) -> bool:
        """Whether ``storage`` is a single-server or Sentinel Redis on redis-py."""
        return type(storage) in (RedisStorage, RedisSentinelStorage) and isinstance(
            getattr(storage, "bridge", None), RedispyBridge
        )

    def _keys(self, key: str) -> list[str]:
        """The Redis keys of one rate, as ``limits``' storage names them."""
        prefixed = self._bridge.prefixed_key
        if self._strategy == "sliding-window-counter":
            return [prefixed(f"{{{key}}}/-1"), prefixed(f"{{{key}}}")]
        return [prefixed(key)]

    def _args(self, item: RateLimitItem, cost: int, now: float) -> list[Any]:
        expiry = item.get_expiry()
        if self._strategy == "sliding-window-counter":
            return [item.amount, expiry, cost]
        if self._strategy == "moving-window":
            return [now, item.amount, expiry, cost]
        return [expiry, cost, item.amount]

    def _script(self, sources: tuple[str, ...]) -> Any:
        script = self._scripts.get(sources)
        if script is None:
            script = self._scripts[sources] = self.client.register_script(
                driver_script(self._strategy, sources)
            )
        return script

    async def hit(
        self,
        rates: list[RateLimitItem],
        prefix: str,
        identifier: str,
        cost: int,
        stats: bool,
        riders: Sequence[PiggybackRead] = (),
    ) -> tuple[list[tuple[bool, WindowStats | None]], list[Any]]:
        """Per rate hit, in order until one refuses: admitted, and its window
        statistics (always for the refusing rate, for the others when ``stats``);
        and each rider's raw reply (0 when it failed)."""
        now = time.time()
        keys: list[str] = []
        args: list[Any] = ["1" if stats else "0", len(rates), len(riders)]
        for rider in riders:
            args += [len(rider.keys), len(rider.args)]
        for item in rates:
            keys += self._keys(item.key_for(prefix, identifier))
            args += self._args(item, cost, now)
        for rider in riders:
            keys += rider.keys
            args += rider.args
        script = self._script(tuple(rider.source for rider in riders))
        replies = _decode(await script(keys=keys, args=args))
        rider_replies = replies[: len(riders)]
        replies = replies[len(riders) :]
        outcome: list[tuple[bool, WindowStats | None]] = []
        position = 0
        for item in rates:
            if position >= len(replies):
                break
            hit_reply = replies[position]
            position += 1
            if self._strategy == "fixed-window":
                admitted = int(hit_reply) <= item.amount
            else:
                admitted = bool(hit_reply)
            window: WindowStats | None = None
            if stats or not admitted:
                storage = _WindowReply(self._window(replies[position], hit_reply, now))
                position += 1
                window = await self._stats_class(storage).get_window_stats(item, prefix, identifier)
            outcome.append((admitted, window))
        return outcome, rider_replies

    def _window(self, reply: Any, hit_reply: Any, now: float) -> Any:
        """The window read as the ``limits`` bridge returns it from the same reply."""
        if self._strategy == "sliding-window-counter":
            if not reply:
                return 0, 0.0, 0, 0.0
            return (
                int(reply[0] or 0),
                max(0, float(reply[1] or 0)) / 1000,
                int(reply[2] or 0),
                max(0, float(reply[3] or 0)) / 1000,
            )
        if self._strategy == "moving-window":
            if reply:
                return float(reply[0]), int(reply[1])
            return now, 0
        # fixed window: the count the hit left, and the expiry (PTTL in ms).
        return int(hit_reply), max(int(reply), 0) / 1000 + now
