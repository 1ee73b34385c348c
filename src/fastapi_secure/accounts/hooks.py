"""Lifecycle hooks: async callables the application attaches to account events.

```python
from fastapi_secure.accounts.hooks import AccountEvent, AccountHooks, HookContext

hooks = AccountHooks()
seen = []

@hooks.on(AccountEvent.REGISTERED)
async def welcome(context: HookContext) -> None:
    seen.append(context.subject)
```

A hook runs after the decision it reports and can never change it: a hook
that raises (or exceeds ``timeout``) is logged by name and exception class,
never with its message (which might carry a secret), and the next hook runs.
Hooks receive ids and coarse facts, never a password, token or hash.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio

from fastapi_secure.clock import Clock, system_clock
from fastapi_secure.errors import ConfigurationError

__all__ = ["AccountEvent", "AccountHooks", "Hook", "HookContext"]

logger = logging.getLogger("fastapi_secure.accounts")


class AccountEvent(str, enum.Enum):
    """Events of an account's life that hooks can follow."""

    REGISTERED = "registered"
    VERIFIED = "verified"
    LOGIN_SUCCEEDED = "login_succeeded"
    LOGIN_FAILED = "login_failed"
    LOCKED = "locked"
    PASSWORD_CHANGED = "password_changed"
    PASSWORD_RESET = "password_reset"
    SESSION_REVOKED = "session_revoked"
    REFRESH_REUSE_DETECTED = "refresh_reuse_detected"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class HookContext:
    """What a hook learns about an event.

    ``subject`` is the user id when the account is known; ``login_name`` the
    normalized name tried (login failures and locks, known account or not);
    ``client_address`` the coarsened network; ``retry_after`` the lock length
    in seconds (``LOCKED``); ``data`` any further plain facts.
    """

    event: AccountEvent
    occurred_at: float
    subject: str | None = None
    login_name: str | None = None
    client_address: str | None = None
    session_id: str | None = None
    retry_after: float | None = None
    data: Mapping[str, str] = field(default_factory=dict)


Hook = Callable[[HookContext], Awaitable[None]]
"""An async callable receiving a :class:`HookContext`; its return value is ignored."""


class AccountHooks:
    """A registry of hooks per :class:`AccountEvent`, run in registration order.

    Args:
        timeout: seconds each hook may take before it is abandoned (and logged);
            ``None`` for no bound.
        clock: time source of ``HookContext.occurred_at``.
    """

    def __init__(self, *, timeout: float | None = 10.0, clock: Clock = system_clock) -> None:
        if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
            raise ConfigurationError("timeout must be a positive number of seconds or None")
        self._timeout = timeout
        self._clock = clock
        self._hooks: dict[AccountEvent, list[Hook]] = {event: [] for event in AccountEvent}

    def __repr__(self) -> str:
        counts = {str(event): len(hooks) for event, hooks in self._hooks.items() if hooks}
        return f"AccountHooks({counts!r})"

    def add(self, event: AccountEvent | str, hook: Hook) -> Hook:
        """Run ``hook`` on ``event``; returns it."""
        if not callable(hook):
            raise ConfigurationError("a hook must be an async callable")
        self._hooks[AccountEvent(event)].append(hook)
        return hook

    def on(self, event: AccountEvent | str) -> Callable[[Hook], Hook]:
        """Decorator form of :meth:`add`."""
        AccountEvent(event)  # fail at decoration time for an unknown event

        def register(hook: Hook) -> Hook:
            return self.add(event, hook)

        return register

    def has(self, event: AccountEvent | str) -> bool:
        """Whether any hook follows ``event``."""
        return bool(self._hooks[AccountEvent(event)])

    async def emit(self, event: AccountEvent | str, **facts: Any) -> None:
        """Run every hook of ``event`` with a :class:`HookContext` of ``facts``.

        Never raises for a failing hook; cancellation of the caller still
        propagates.
        """
        kind = AccountEvent(event)
        hooks = self._hooks[kind]
        if not hooks:
            return
        context = HookContext(event=kind, occurred_at=self._clock(), **facts)
        for hook in list(hooks):
            await self._run(hook, context)

    async def _run(self, hook: Hook, context: HookContext) -> None:
        name = getattr(hook, "__qualname__", type(hook).__qualname__)
        try:
            if self._timeout is None:
                await hook(context)
                return
            with anyio.fail_after(self._timeout):
                await hook(context)
        except TimeoutError:
            logger.error("account hook %s for %s timed out", name, context.event.value)
        except Exception as exc:
            # The class only: an exception message may carry whatever the hook held.
            logger.error(
                "account hook %s for %s failed: %s", name, context.event.value, type(exc).__name__
            )
