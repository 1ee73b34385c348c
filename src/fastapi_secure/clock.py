"""Time source injected into every time-dependent component.

A clock is any zero-argument callable returning the current Unix time in
seconds as a float. Components take ``clock=`` and default to
:data:`system_clock`; tests pass :class:`fastapi_secure.testing.FakeClock`
instead of sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Clock", "system_clock"]

Clock = Callable[[], float]
"""A zero-argument callable returning Unix time in seconds."""

system_clock: Clock = time.time
"""The real wall clock (``time.time``)."""
