"""``limits``' memory storage with its expiry passes paced.

``limits.aio.storage.MemoryStorage`` forgets expired entries in a background
pass over *every* key, started by a hit whenever the previous pass has ended.
Under steady traffic the passes run back to back, so each request pays for a
share of a scan that grows with the number of clients: with 100k live keys a
hit cost about ten times what it costs with one. Expired entries are already
ignored when read (``limits`` checks expiry on access), so the pass only gives
memory back; this subclass runs it at most once per ``interval`` seconds, or
less often for very many keys, which keeps the per-request cost flat and the
memory bounded by what one interval's traffic can add.
"""

from __future__ import annotations

import time

from limits.aio.storage import MemoryStorage

__all__ = ["PacedMemoryStorage"]


class PacedMemoryStorage(MemoryStorage):
    """A ``memory://`` storage whose expiry pass runs at most every ``interval`` seconds."""

    # Keys one pass may visit per second of interval: a 1M-key pass then runs every 10 s.
    KEYS_PER_SECOND = 100_000

    def __init__(self, interval: float = 1.0) -> None:
        super().__init__()
        self._interval = interval
        self._next_pass = 0.0

    def expiry_due(self) -> bool:
        """Whether a hit now may start an expiry pass."""
        return time.monotonic() >= self._next_pass

    # limits calls its private ``self.__schedule_expiry()`` on every hit; this
    # name is what that call resolves to, so the override paces every pass.
    async def _MemoryStorage__schedule_expiry(self) -> None:  # noqa: N802 - limits names it
        now = time.monotonic()
        if now < self._next_pass:
            return
        keys = len(self.expirations) + len(self.events)
        self._next_pass = now + max(self._interval, keys / self.KEYS_PER_SECOND)
        await super()._MemoryStorage__schedule_expiry()  # type: ignore[misc]
