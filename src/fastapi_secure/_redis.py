"""Redis client settings shared by the Redis-backed stores (import only with redis present)."""

from __future__ import annotations

from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError


def stale_connection_retry() -> Retry:
    """Retry a command once, at once, on a fresh connection when its connection broke.

    After Redis restarts, every pooled connection is dead; without a retry each
    one would fail one request (a 503) against a healthy server. Timeouts are
    not retried: that would multiply the wait on a hung server, which the
    callers' own deadline then turns into their failure policy.
    """
    return Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))
