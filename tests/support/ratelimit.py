"""Memory-storage limits on a frozen clock, for tests that count exactly."""

from __future__ import annotations

import types

import limits.aio.storage.memory
import limits.aio.strategies
import pytest

import fastapi_secure.ratelimit
from fastapi_secure.testing import FakeClock

# Mid-window for every rate the tests use (seconds, minutes, hours): 1_800_000_000 is
# a multiple of 3600, so this is 30.5 s into a minute and 1830.5 s into an hour.
MID_WINDOW = 1_800_000_000.0 + 1830.5


def freeze_memory_windows(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """Freeze limits' memory windows (and our reset arithmetic) mid-window.

    On the real clock, a burst that straddles a window boundary meets limits'
    sliding-window counter weighing the previous window by less than 1 and
    flooring the sum: ``2/minute`` then admits a third request (see
    ``test_the_sliding_window_counter_admits_one_more_across_a_boundary``).
    Tests expecting the exact count were flaky for that reason (about once per
    ten thousand runs, more on a loaded host). Memory storage only: a real
    Redis keeps its own time.
    """
    clock = FakeClock(start=MID_WINDOW)
    frozen = types.SimpleNamespace(time=clock)
    for module in (limits.aio.storage.memory, limits.aio.strategies, fastapi_secure.ratelimit):
        monkeypatch.setattr(module, "time", frozen)
    return clock
