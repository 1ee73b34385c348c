"""Failed second-factor attempts per account: :class:`AttemptLimit`.

Why not :mod:`fastapi_secure.ratelimit` or ``limits`` directly: the limit is
per account across factors (a TOTP failure and a recovery-code failure count
together), it must reset on success, its window must follow an injected
clock in tests, and it must live in core code that never imports FastAPI.
An :class:`~fastapi_secure.mfa.stores.AttemptCounter` (memory or Redis, one
atomic increment) gives all four. ``on_failure`` lets the accounts lockout
count second-factor failures as well.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi_secure.errors import ConfigurationError
from fastapi_secure.mfa.errors import TooManyAttemptsError
from fastapi_secure.mfa.stores.base import AttemptCounter, store_key

__all__ = ["AttemptLimit", "FailureHook"]

logger = logging.getLogger("fastapi_secure.mfa")

FailureHook = Callable[[str, str], Awaitable[None]]
"""``async def hook(user_id, factor)``: called after each refused second-factor attempt."""


class AttemptLimit:
    """At most ``max_failures`` failed attempts per account within ``window`` seconds.

    The window starts at the first failure (fixed window); a success clears it.
    While the limit is reached every attempt is refused with
    :class:`~fastapi_secure.mfa.errors.TooManyAttemptsError` (429, Retry-After)
    *before* the code is even checked, so guessing stops, the right code included.
    """

    def __init__(
        self,
        counter: AttemptCounter,
        *,
        max_failures: int = 5,
        window: float = 300.0,
        on_failure: FailureHook | None = None,
    ) -> None:
        if not (isinstance(max_failures, int) and max_failures >= 1):
            raise ConfigurationError("max_failures must be an integer >= 1")
        if not (isinstance(window, (int, float)) and window > 0):
            raise ConfigurationError("window must be a positive number of seconds")
        self._counter = counter
        self.max_failures = max_failures
        self.window = float(window)
        self._on_failure = on_failure

    def __repr__(self) -> str:
        return f"AttemptLimit(max_failures={self.max_failures}, window={self.window})"

    @staticmethod
    def _key(user_id: str) -> str:
        return store_key("mfa-attempts", user_id)

    async def check(self, user_id: str) -> None:
        """Raise TooManyAttemptsError when ``user_id`` is over the limit."""
        count, left = await self._counter.failures(self._key(user_id))
        if count >= self.max_failures:
            raise TooManyAttemptsError(left, reason=f"{count} failures in the window")

    async def failed(self, user_id: str, factor: str) -> None:
        """Count one failure of ``factor`` and call the ``on_failure`` hook."""
        await self._counter.increment(self._key(user_id), self.window)
        if self._on_failure is not None:
            try:
                await self._on_failure(user_id, factor)
            except Exception as exc:
                # A failing hook must not turn a refused code into a 500 (or an accept).
                logger.error("MFA on_failure hook raised %s", type(exc).__name__)

    async def succeeded(self, user_id: str) -> None:
        """Clear the account's failures."""
        await self._counter.reset(self._key(user_id))
