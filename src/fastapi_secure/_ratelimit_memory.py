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

The pass itself is sliced: ``limits`` walks its counters without awaiting, so
with a million keys it held the event loop for about a second; here each
counter goes through ``limits``' own ``get`` (which forgets it when expired),
a few thousand per turn of the loop. Moving-window entries are left to
``limits``' own pass, which awaits per key already.

It also calls ``limits``' memory methods without their error-translation
wrappers: ``limits`` wraps them once per class in the hierarchy (so twice for
a subclass, ten wrapper coroutines per sliding-window hit), and with
``wrap_exceptions=False`` (ours) a wrapper only re-raises what it caught.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import limits.aio.storage.base as _limits_base
from limits.aio.storage import MemoryStorage

__all__ = ["PacedMemoryStorage"]


class PacedMemoryStorage(MemoryStorage):
    """A ``memory://`` storage whose expiry pass runs at most every ``interval`` seconds."""

    # Keys one pass may visit per second of interval: a 1M-key pass then runs every 10 s.
    KEYS_PER_SECOND = 100_000
    # Counters checked per turn of the event loop during a pass (a few milliseconds).
    SLICE = 5_000

    def __init__(self, interval: float = 1.0) -> None:
        super().__init__(wrap_exceptions=False)
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
        if self.timer is None or self.timer.done():
            self.timer = asyncio.create_task(self._expire_in_slices())

    async def _expire_in_slices(self) -> None:
        counters = list(self.expirations)
        for start in range(0, len(counters), self.SLICE):
            for key in counters[start : start + self.SLICE]:
                await self.get(key)  # limits' own check: an expired counter goes
            await asyncio.sleep(0)
        if self.events:
            await self._MemoryStorage__expire_events()  # type: ignore[attr-defined]


def _unwrapped(function: Any) -> Any:
    """``function`` without ``limits``' ``_wrap_errors`` layers (and nothing else)."""
    # functools.wraps copied the wrapped method's names onto the wrapper: its code tells.
    while _is_error_wrapper(function):
        function = function.__wrapped__
    return function


def _is_error_wrapper(function: Any) -> bool:
    code = getattr(function, "__code__", None)
    return (
        code is not None
        and code.co_name == "inner"
        and code.co_filename == _WRAPPER_FILE
        and hasattr(function, "__wrapped__")
    )


_WRAPPER_FILE = _limits_base.__file__


# limits' __init_subclass__ wrapped these again when PacedMemoryStorage was defined.
for _name in (
    "incr",
    "get",
    "get_expiry",
    "check",
    "reset",
    "clear",
    "acquire_entry",
    "get_moving_window",
    "acquire_sliding_window_entry",
    "get_sliding_window",
    "clear_sliding_window",
):
    setattr(PacedMemoryStorage, _name, _unwrapped(getattr(PacedMemoryStorage, _name)))
