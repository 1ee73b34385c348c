"""Helpers for the host application's own tests.

```python
from fastapi_secure.testing import FakeClock

clock = FakeClock(start=1_700_000_000)
clock.advance(60)
assert clock() == 1_700_000_060
```
"""

from __future__ import annotations

import threading

__all__ = ["FakeClock"]


class FakeClock:
    """A manually driven clock: pass it as ``clock=`` instead of sleeping.

    Thread-safe, so it also drives code that runs in worker threads.
    """

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """Move time forward by ``seconds`` (never backwards) and return the new time."""
        if seconds < 0:
            raise ValueError("a FakeClock only moves forward; use set() to go back")
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, now: float) -> None:
        """Jump to an absolute Unix time."""
        with self._lock:
            self._now = float(now)

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now!r})"
