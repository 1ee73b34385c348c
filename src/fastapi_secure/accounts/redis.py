"""Redis backends of the account stores: action tokens and lockout counters.

Each operation is one Lua script over keys sharing one hash tag, so it is
atomic and runs unchanged on a Redis Cluster. Any Redis failure becomes
:class:`~fastapi_secure.errors.StoreUnavailableError` (503): a token is never
accepted, and a lock never skipped silently, because the store could not
answer. Needs the ``redis`` extra.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

from fastapi_secure._optional import require
from fastapi_secure._redis import RedisStore, client_from_url, stale_connection_retry
from fastapi_secure.errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Sequence

    import redis.asyncio
    import redis.asyncio.cluster
    from redis.commands.core import AsyncScript

    from fastapi_secure.accounts.lockout import LockoutPolicy

    RedisClient = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster

__all__ = ["RedisActionTokenStore", "RedisLockoutStore", "redis_client_from_url"]

logger = logging.getLogger("fastapi_secure.accounts")


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


def redis_client_from_url(
    url: str,
    *,
    socket_timeout: float = 1.0,
    socket_connect_timeout: float = 1.0,
    **client_options: Any,
) -> RedisClient:
    """A ``redis.asyncio`` client for ``redis://``, ``rediss://``, ``unix://`` or
    ``redis+cluster://`` / ``rediss+cluster://`` (any one node), with timeouts set."""
    return client_from_url(
        url,
        feature="Redis account stores",
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_connect_timeout,
        # A stale pooled connection (Redis restarted) is retried once; a timeout is not.
        **{"retry": stale_connection_retry(), **client_options},
    )


class _RedisAccountStore(RedisStore):
    """Prefix rules and ``from_url`` shared by the backends."""

    default_prefix = "fastapi-secure:accounts:"
    feature = _feature = _label = "Redis account store"
    _logger = logger

    def __init__(
        self,
        client: RedisClient,
        *,
        prefix: str | None = None,
        operation_timeout: float = 2.0,
        owns_client: bool = False,
    ) -> None:
        require("redis.asyncio", extra="redis", feature=self.feature)
        prefix = self.default_prefix if prefix is None else prefix
        if "{" in prefix or "}" in prefix:
            raise ConfigurationError(
                "prefix may not contain '{' or '}': they would change the Redis Cluster hash tag"
            )
        super().__init__(
            client, prefix=prefix, operation_timeout=operation_timeout, owns_client=owns_client
        )
        self._register_scripts()

    def _register_scripts(self) -> None:
        """Register the backend's Lua scripts (each backend has its own)."""

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str | None = None,
        operation_timeout: float = 2.0,
        **client_options: Any,
    ) -> Any:
        """Connect to ``url`` (see :func:`redis_client_from_url`); the store owns the client."""
        client = redis_client_from_url(url, **client_options)
        return cls(client, prefix=prefix, operation_timeout=operation_timeout, owns_client=True)

    async def _run(self, script: AsyncScript, keys: Sequence[str], args: Sequence[Any]) -> Any:
        return await self._redis.run(script, keys, args)


# KEYS: entry, latest. ARGV: value, ttl ms, entry key prefix, entry digest.
_PUT = """
local previous = redis.call('GET', KEYS[2])
if previous then redis.call('DEL', ARGV[3] .. previous) end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[2])
return 1
"""

# KEYS: entry, latest. ARGV: entry digest.
_TAKE = """
local value = redis.call('GET', KEYS[1])
if not value then return false end
redis.call('DEL', KEYS[1])
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return false end
redis.call('DEL', KEYS[2])
return value
"""


class RedisActionTokenStore(_RedisAccountStore):
    """An :class:`~fastapi_secure.accounts.action_tokens.ActionTokenStore` in Redis.

    Every key of one account carries its hash tag, so ``put`` (drop the
    previous token, keep the new one) and ``take`` (consume only the latest)
    are single scripts, atomic across processes and on a cluster.
    """

    default_prefix = "fastapi-secure:action:"
    feature = _feature = _label = "RedisActionTokenStore"

    def _register_scripts(self) -> None:
        self._put = self._redis.register(_PUT)
        self._take = self._redis.register(_TAKE)

    def _entry_prefix(self, tag: str) -> str:
        return f"{self._prefix}{{{tag}}}:t:"

    def _latest_key(self, tag: str, purpose: str) -> str:
        return f"{self._prefix}{{{tag}}}:l:{purpose}"

    async def put(self, tag: str, purpose: str, key: str, value: str, *, ttl: float) -> None:
        entry_prefix = self._entry_prefix(tag)
        await self._run(
            self._put,
            [entry_prefix + key, self._latest_key(tag, purpose)],
            [value, _ms(ttl), entry_prefix, key],
        )

    async def take(self, tag: str, purpose: str, key: str) -> str | None:
        result = await self._run(
            self._take, [self._entry_prefix(tag) + key, self._latest_key(tag, purpose)], [key]
        )
        if result is None:
            return None
        return result.decode() if isinstance(result, bytes) else str(result)


# KEYS: counter. ARGV: now ms.
_LOCKED_FOR = """
local locked = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
local left = locked - tonumber(ARGV[1])
if left > 0 then return left end
return 0
"""

# The Redis twin of lockout._count_failure (keep them alike); times in ms.
# KEYS: counter. ARGV: now, threshold, window, base, factor, max, forget.
_FAILURE = """
local f = redis.call('HMGET', KEYS[1], 'n', 'start', 'level', 'until', 'last')
local now = tonumber(ARGV[1])
local threshold = tonumber(ARGV[2])
local window, base, factor = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local cap, forget = tonumber(ARGV[6]), tonumber(ARGV[7])
local n, start = tonumber(f[1] or '0'), tonumber(f[2] or '0')
local level, locked = tonumber(f[3] or '0'), tonumber(f[4] or '0')
local last = tonumber(f[5] or '0')
if last > 0 and now - last > forget then level = 0 end
if locked > now then
  redis.call('HSET', KEYS[1], 'level', level, 'last', now)
  local pttl = redis.call('PTTL', KEYS[1])
  if pttl < forget then redis.call('PEXPIRE', KEYS[1], forget) end
  return 0
end
if n == 0 or now - start > window then n = 0; start = now end
n = n + 1
local delay = 0
if n >= threshold then
  if level >= 64 then delay = cap else delay = math.min(base * factor ^ level, cap) end
  delay = math.floor(delay)
  level = level + 1
  n = 0
  locked = now + delay
end
redis.call('HSET', KEYS[1], 'n', n, 'start', start, 'level', level, 'until', locked, 'last', now)
redis.call('PEXPIRE', KEYS[1], forget + delay)
return delay
"""

# KEYS: counter.
_CLEAR = """
redis.call('DEL', KEYS[1])
return 1
"""


class RedisLockoutStore(_RedisAccountStore):
    """A :class:`~fastapi_secure.accounts.lockout.LockoutStore` in Redis.

    One hash per key; counting a failure and starting a lock is one script,
    so workers sharing the Redis count every failure exactly once.
    """

    default_prefix = "fastapi-secure:lockout:"
    feature = _feature = _label = "RedisLockoutStore"

    def _register_scripts(self) -> None:
        self._locked_for = self._redis.register(_LOCKED_FOR)
        self._failure = self._redis.register(_FAILURE)
        self._clear = self._redis.register(_CLEAR)

    def _key(self, key: str) -> str:
        return f"{self._prefix}{key}"

    async def locked_for(self, key: str, *, now: float) -> float:
        left = await self._run(self._locked_for, [self._key(key)], [math.floor(now * 1000)])
        return int(left) / 1000

    async def record_failure(self, key: str, *, now: float, policy: LockoutPolicy) -> float:
        delay = await self._run(
            self._failure,
            [self._key(key)],
            [
                math.floor(now * 1000),
                policy.threshold,
                _ms(policy.window),
                _ms(policy.base_delay),
                repr(float(policy.factor)),
                _ms(policy.max_delay),
                _ms(policy.forget_after),
            ],
        )
        return int(delay) / 1000

    async def clear(self, key: str) -> None:
        await self._run(self._clear, [self._key(key)], [])
