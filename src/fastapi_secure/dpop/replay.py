"""Replay caches for DPoP proof ids: remember a key once, atomically.

:class:`DPoPReplayCache` has one operation, ``remember(key, ttl)``: True the
first time a key is seen within its ``ttl``, False after. Of N concurrent
calls with one key exactly one gets True, in each backend: the memory cache
(one process) under a lock, the Redis cache (every process and host) with
one ``SET key 1 NX PX ttl``. A cache that cannot answer raises
:class:`~fastapi_secure.errors.StoreUnavailableError`: a 503, never a proof
accepted twice.
"""

from __future__ import annotations

import heapq
import logging
import math
import threading
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from fastapi_secure._redis import RedisStore
from fastapi_secure.clock import Clock, system_clock
from fastapi_secure.errors import ConfigurationError, StoreUnavailableError

if TYPE_CHECKING:
    import redis.asyncio
    import redis.asyncio.cluster

    RedisClient = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster

__all__ = ["DPoPReplayCache", "MemoryDPoPReplayCache", "RedisDPoPReplayCache"]

logger = logging.getLogger("fastapi_secure.dpop")

DEFAULT_PREFIX = "fastapi-secure:dpop:"
DEFAULT_MAX_ENTRIES = 100_000
_MAX_KEY_LENGTH = 256


@runtime_checkable
class DPoPReplayCache(Protocol):
    """Where accepted proof ids are remembered for as long as a proof stays valid."""

    async def remember(self, key: str, ttl: float) -> bool:
        """True if ``key`` was not seen within its ttl (and is now remembered for
        ``ttl`` seconds), False if it was: a replay."""
        ...


def _check(key: str, ttl: float) -> None:
    if not isinstance(key, str) or not 0 < len(key) <= _MAX_KEY_LENGTH:
        raise ValueError(f"a replay cache key is a string of 1 to {_MAX_KEY_LENGTH} characters")
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not 0 < ttl < math.inf:
        raise ValueError("ttl must be a positive number of seconds")


class MemoryDPoPReplayCache:
    """A replay cache in this process's memory, on an injectable clock.

    Holds at most ``max_entries`` live keys: every call first drops the
    expired ones; past that (a flood of valid proofs) it refuses with
    :class:`StoreUnavailableError` rather than grow without bound or forget a
    key early. See docs/dpop.md for the rate that fills it and the mitigations.
    """

    def __init__(
        self, *, clock: Clock = system_clock, max_entries: int = DEFAULT_MAX_ENTRIES
    ) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ConfigurationError("max_entries must be a positive int")
        self._clock = clock
        self._max_entries = max_entries
        self._expiry: dict[str, float] = {}
        self._queue: list[tuple[float, str]] = []
        # A thread lock, not an asyncio one: nothing awaits inside, and it also
        # holds when a verifier runs in worker threads.
        self._lock = threading.Lock()
        # Logged once per spell of being full: a flood must not become a log flood.
        self._full_reported = False

    def __len__(self) -> int:
        with self._lock:
            self._purge(self._clock())
            return len(self._expiry)

    def _purge(self, now: float) -> None:
        while self._queue and self._queue[0][0] <= now:
            expiry, key = heapq.heappop(self._queue)
            if self._expiry.get(key) == expiry:
                del self._expiry[key]

    async def remember(self, key: str, ttl: float) -> bool:
        _check(key, ttl)
        with self._lock:
            now = self._clock()
            self._purge(now)
            if key in self._expiry:
                return False
            if len(self._expiry) >= self._max_entries:
                if not self._full_reported:
                    self._full_reported = True
                    logger.warning(
                        "DPoP replay cache full (%d entries): refusing new proofs until "
                        "entries expire",
                        self._max_entries,
                    )
                raise StoreUnavailableError(reason="DPoP replay cache full")
            self._full_reported = False
            expiry = now + ttl
            self._expiry[key] = expiry
            heapq.heappush(self._queue, (expiry, key))
            return True


class RedisDPoPReplayCache(RedisStore):
    """A replay cache in Redis, shared by every worker: ``SET key 1 NX PX ttl``.

    Give it a client you own (``redis.asyncio.Redis`` or ``RedisCluster``) or
    use :meth:`from_url`. One key per proof id, so it runs unchanged on a
    Redis Cluster. ``operation_timeout`` bounds every call.
    """

    _feature = "RedisDPoPReplayCache"
    _label = "DPoP replay cache"
    _logger = logger

    def __init__(
        self,
        client: RedisClient,
        *,
        prefix: str = DEFAULT_PREFIX,
        operation_timeout: float = 2.0,
        owns_client: bool = False,
    ) -> None:
        if isinstance(operation_timeout, bool):
            raise ConfigurationError("operation_timeout must be a positive number of seconds")
        super().__init__(
            client, prefix=prefix, operation_timeout=operation_timeout, owns_client=owns_client
        )
        if not isinstance(prefix, str):
            raise ConfigurationError("prefix must be a string")

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
    ) -> RedisDPoPReplayCache:
        """Connect to ``redis://``, ``rediss://``, ``unix://`` or, for a cluster,
        ``redis+cluster://`` / ``rediss+cluster://``. The cache owns this client
        and closes it in :meth:`aclose`."""
        for name, value in (
            ("socket_timeout", socket_timeout),
            ("socket_connect_timeout", socket_connect_timeout),
        ):
            if isinstance(value, bool):
                raise ConfigurationError(f"{name} must be a positive number of seconds")
        return cls._connect(
            url,
            prefix=prefix,
            operation_timeout=operation_timeout,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_connect_timeout,
            **client_options,
        )

    async def aclose(self) -> None:
        """Close the client if this cache created it (:meth:`from_url`)."""
        await super().aclose()

    async def remember(self, key: str, ttl: float) -> bool:
        _check(key, ttl)
        stored = await self._redis.call(
            self._redis.client.set(
                f"{self._prefix}{key}", b"1", nx=True, px=max(1, math.ceil(ttl * 1000))
            )
        )
        return bool(stored)
