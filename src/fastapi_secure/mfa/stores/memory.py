"""In-process second-factor store: one dict per concern, one lock, an injected clock."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from fastapi_secure.clock import Clock, system_clock
from fastapi_secure.errors import ConfigurationError

__all__ = ["MemoryMFAStore"]


def _check_ttl(ttl: float) -> float:
    if not (isinstance(ttl, (int, float)) and ttl > 0):
        raise ConfigurationError("ttl must be a positive number of seconds")
    return float(ttl)


class MemoryMFAStore:
    """Every MFA store protocol in memory: for one process, tests and development.

    Expired entries are dropped when touched and by :meth:`prune` (called
    every ``prune_interval`` seconds of ``clock`` time on a write), so memory
    stays bounded by the live entries.
    """

    def __init__(self, *, clock: Clock = system_clock, prune_interval: float = 60.0) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._used: dict[str, float] = {}
        self._attempts: dict[str, tuple[int, float]] = {}
        self._challenges: dict[str, tuple[str, float]] = {}
        self._codes: dict[str, set[str]] = {}
        self._prune_interval = prune_interval
        self._next_prune = clock() + prune_interval

    def __repr__(self) -> str:
        return f"MemoryMFAStore(entries={self.size})"

    @property
    def size(self) -> int:
        """Entries held, live or not yet pruned (recovery-code sets count once)."""
        return len(self._used) + len(self._attempts) + len(self._challenges) + len(self._codes)

    def prune(self) -> int:
        """Drop expired entries now; returns how many were dropped."""
        with self._lock:
            return self._prune(self._clock())

    def _prune(self, now: float) -> int:
        dropped = 0
        for table in (self._used, self._attempts, self._challenges):
            expired = [key for key, value in table.items() if _expiry(value) <= now]
            for key in expired:
                del table[key]
            dropped += len(expired)
        self._next_prune = now + self._prune_interval
        return dropped

    def _now(self) -> float:
        now = self._clock()
        if now >= self._next_prune:
            self._prune(now)
        return now

    async def claim(self, key: str, ttl: float) -> bool:
        ttl = _check_ttl(ttl)
        with self._lock:
            now = self._now()
            expires = self._used.get(key)
            if expires is not None and expires > now:
                return False
            self._used[key] = now + ttl
            return True

    async def increment(self, key: str, window: float) -> tuple[int, float]:
        window = _check_ttl(window)
        with self._lock:
            now = self._now()
            count, ends = self._attempts.get(key, (0, 0.0))
            if ends <= now:
                count, ends = 0, now + window
            count += 1
            self._attempts[key] = (count, ends)
            return count, ends - now

    async def failures(self, key: str) -> tuple[int, float]:
        with self._lock:
            now = self._now()
            count, ends = self._attempts.get(key, (0, 0.0))
            if ends <= now:
                return 0, 0.0
            return count, ends - now

    async def reset(self, key: str) -> None:
        with self._lock:
            self._attempts.pop(key, None)

    async def put(self, key: str, value: str, ttl: float) -> None:
        ttl = _check_ttl(ttl)
        with self._lock:
            self._challenges[key] = (value, self._now() + ttl)

    async def take(self, key: str) -> str | None:
        with self._lock:
            now = self._now()
            entry = self._challenges.pop(key, None)
            if entry is None or entry[1] <= now:
                return None
            return entry[0]

    async def replace(self, user_key: str, digests: Sequence[str]) -> None:
        with self._lock:
            self._codes[user_key] = set(digests)

    async def consume(self, user_key: str, digest: str) -> bool:
        with self._lock:
            codes = self._codes.get(user_key)
            if not codes or digest not in codes:
                return False
            codes.discard(digest)
            return True

    async def remaining(self, user_key: str) -> int:
        with self._lock:
            return len(self._codes.get(user_key, ()))

    async def aclose(self) -> None:
        """Nothing to release; here so both backends close the same way."""


def _expiry(value: float | tuple[object, float]) -> float:
    return value[1] if isinstance(value, tuple) else value
