"""Redis second-factor store: shared by every worker and host, standalone or cluster.

Every operation touches one key, so each is atomic on a Redis Cluster too:
``SET NX PX`` for the replay guard, ``SREM`` for recovery codes and small Lua
scripts where two commands must act as one (take a challenge, count a
failure, replace a code set). Any Redis failure becomes
:class:`~fastapi_secure.errors.StoreUnavailableError` (503): a code is never
accepted because the store could not be asked.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fastapi_secure._optional import require
from fastapi_secure._redis import RedisStore
from fastapi_secure.errors import ConfigurationError

if TYPE_CHECKING:
    import redis.asyncio
    import redis.asyncio.cluster

    RedisClient = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster

__all__ = ["RedisMFAStore"]

logger = logging.getLogger("fastapi_secure.mfa")

DEFAULT_PREFIX = "fastapi-secure:mfa:"

# KEYS: counter. ARGV: window ms. Returns {count, ms left}.
_INCREMENT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local left = redis.call('PTTL', KEYS[1])
if left < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); left = tonumber(ARGV[1]) end
return {count, left}
"""

# KEYS: challenge.
_TAKE = """
local value = redis.call('GET', KEYS[1])
if value then redis.call('DEL', KEYS[1]) end
return value
"""

# KEYS: code set. ARGV: digests.
_REPLACE = """
redis.call('DEL', KEYS[1])
if #ARGV > 0 then redis.call('SADD', KEYS[1], unpack(ARGV)) end
return #ARGV
"""


def _ms(seconds: float) -> int:
    if not (isinstance(seconds, (int, float)) and seconds > 0):
        raise ConfigurationError("ttl must be a positive number of seconds")
    return max(1, math.ceil(seconds * 1000))


class RedisMFAStore(RedisStore):
    """Every MFA store protocol in Redis (``redis.asyncio``, standalone or cluster).

    Give it a client you own or use :meth:`from_url`. ``operation_timeout``
    bounds each call. Keys live under ``prefix``; recovery-code sets have no
    TTL (they last until replaced), everything else expires.
    """

    _feature = "RedisMFAStore"
    _label = "MFA store"
    _logger = logger

    def __init__(
        self,
        client: RedisClient,
        *,
        prefix: str = DEFAULT_PREFIX,
        operation_timeout: float = 2.0,
        owns_client: bool = False,
    ) -> None:
        super().__init__(
            client, prefix=prefix, operation_timeout=operation_timeout, owns_client=owns_client
        )
        self._increment = self._redis.register(_INCREMENT)
        self._take = self._redis.register(_TAKE)
        self._replace = self._redis.register(_REPLACE)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        socket_timeout: float = 1.0,
        socket_connect_timeout: float = 1.0,
        operation_timeout: float = 2.0,
        **client_options: Any,
    ) -> RedisMFAStore:
        """Connect to ``redis://``, ``rediss://``, ``unix://`` or ``redis+cluster://``.

        The store owns this client and closes it in :meth:`aclose`.
        """
        require("redis.asyncio", extra="redis", feature="RedisMFAStore")
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        return cls._connect(
            url,
            prefix=prefix,
            operation_timeout=operation_timeout,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_connect_timeout,
            **{"retry": Retry(NoBackoff(), 1), **client_options},
        )

    def _key(self, kind: str, key: str) -> str:
        return f"{self._prefix}{kind}:{key}"

    async def claim(self, key: str, ttl: float) -> bool:
        ms = _ms(ttl)
        result = await self._redis.call(
            self._redis.client.set(self._key("u", key), b"1", nx=True, px=ms)
        )
        return bool(result)

    async def increment(self, key: str, window: float) -> tuple[int, float]:
        ms = _ms(window)
        result = await self._redis.run(self._increment, [self._key("a", key)], [ms])
        count, left = result
        return int(count), int(left) / 1000

    async def failures(self, key: str) -> tuple[int, float]:
        name = self._key("a", key)
        count = await self._redis.call(self._redis.client.get(name))
        if count is None:
            return 0, 0.0
        left = await self._redis.call(self._redis.client.pttl(name))
        return int(count), max(0, int(left)) / 1000

    async def reset(self, key: str) -> None:
        await self._redis.call(self._redis.client.delete(self._key("a", key)))

    async def put(self, key: str, value: str, ttl: float) -> None:
        ms = _ms(ttl)
        await self._redis.call(self._redis.client.set(self._key("c", key), value.encode(), px=ms))

    async def take(self, key: str) -> str | None:
        value = await self._redis.run(self._take, [self._key("c", key)], [])
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    async def replace(self, user_key: str, digests: Sequence[str]) -> None:
        await self._redis.run(self._replace, [self._key("r", user_key)], list(digests))

    async def consume(self, user_key: str, digest: str) -> bool:
        removed = await self._redis.call(self._redis.client.srem(self._key("r", user_key), digest))
        return int(removed) == 1

    async def remaining(self, user_key: str) -> int:
        return int(await self._redis.call(self._redis.client.scard(self._key("r", user_key))))
