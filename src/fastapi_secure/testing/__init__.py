"""Helpers for the host application's own tests.

```python
from fastapi_secure.testing import FakeClock

clock = FakeClock(start=1_700_000_000)
clock.advance(60)
assert clock() == 1_700_000_060
```

* :class:`FakeClock`: a clock the test moves (``clock=`` of every component).
* :class:`TokenFactory`: real tokens for any claims through the app's own
  :class:`~fastapi_secure.TokenIssuer`, as ``Authorization`` headers or as
  cookie-mode request headers (sync and async).
* :func:`reset_limiter`: every rate-limit window of a
  :class:`~fastapi_secure.RateLimiter` over at once (see its docs for why it is
  not a clock).
* :func:`totp_code`: the current (or any moment's) code of a TOTP secret.
* ``fastapi_secure.testing.pytest_plugin``: fixtures for these, opt-in with
  ``pytest_plugins = ["fastapi_secure.testing.pytest_plugin"]``.

This module imports no optional backend; ``pyotp`` is imported when
:func:`totp_code` runs.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from fastapi_secure._optional import require
from fastapi_secure.accounts.mail import MailMessage, MemoryOutbox
from fastapi_secure.clock import Clock

if TYPE_CHECKING:
    from anyio.from_thread import BlockingPortal

    from fastapi_secure.auth import CookieAuth
    from fastapi_secure.ratelimit import RateLimiter
    from fastapi_secure.tokens.claims import TokenPair
    from fastapi_secure.tokens.issuer import TokenIssuer

__all__ = [
    "CookieCredentials",
    "FakeClock",
    "MemoryOutbox",
    "TokenFactory",
    "action_token",
    "reset_limiter",
    "reset_limiter_sync",
    "totp_code",
]

_T = TypeVar("_T")


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


def _run_sync(call: Callable[[], Awaitable[_T]], portal: BlockingPortal | None) -> _T:
    """Run an async call from synchronous test code.

    Through ``portal`` (``TestClient.portal`` inside ``with TestClient(app)``)
    when given: the app's own event loop, which a Redis client bound to that
    loop needs. Otherwise on a private event loop, which suits memory stores.
    """
    if portal is not None:
        return portal.call(call)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return anyio.run(call)
    raise RuntimeError("an event loop is running here: await the async method instead")


@dataclass(frozen=True)
class CookieCredentials:
    """What a browser would send in cookie mode: pass ``headers`` to a request."""

    access_token: str
    csrf_token: str
    headers: Mapping[str, str]


class TokenFactory:
    """Issues real tokens through ``issuer`` (the app's own): no forged shortcuts.

    ``subject`` is the default subject. ``portal`` runs the sync twins on a
    given event loop (see :func:`_run_sync`); pass ``client.portal`` of a
    ``with TestClient(app) as client:`` block when the token store is Redis.

    Each call starts a new login session (a token family) in the issuer's store,
    so revocation, rotation and logout behave in tests as in production.
    """

    def __init__(
        self,
        issuer: TokenIssuer,
        *,
        subject: str = "user-1",
        portal: BlockingPortal | None = None,
    ) -> None:
        if not callable(getattr(issuer, "issue", None)):
            raise TypeError("issuer must be a TokenIssuer (an object with async issue())")
        self.issuer = issuer
        self.subject = subject
        self.portal = portal

    async def pair(
        self,
        subject: str | None = None,
        *,
        roles: Sequence[str] = (),
        scopes: Collection[str] = (),
        claims: Mapping[str, Any] | None = None,
        fresh: bool = True,
        auth_time: int | None = None,
    ) -> TokenPair:
        """A new access and refresh token pair (a fresh login unless ``fresh=False``)."""
        return await self.issuer.issue(
            subject or self.subject,
            roles=roles,
            scopes=scopes,
            claims=claims,
            fresh=fresh,
            auth_time=auth_time,
        )

    async def access_token(self, subject: str | None = None, **options: Any) -> str:
        """Only the access token (same options as :meth:`pair`)."""
        return (await self.pair(subject, **options)).access_token

    async def headers(self, subject: str | None = None, **options: Any) -> dict[str, str]:
        """``{"Authorization": "Bearer ..."}`` for :class:`~fastapi_secure.BearerAuth` routes."""
        return {"Authorization": f"Bearer {await self.access_token(subject, **options)}"}

    async def cookie_credentials(
        self, auth: CookieAuth, subject: str | None = None, **options: Any
    ) -> CookieCredentials:
        """Headers of a browser in cookie mode: the access and CSRF cookies, the
        matching ``X-CSRF-Token`` and an allowed ``Origin``, so unsafe methods pass."""
        access = await self.access_token(subject, **options)
        sid = (await self.issuer.verify_access(access)).sid
        csrf = auth.csrf_token_for(sid)
        cookie = f"{auth.access_cookie}={access}; {auth.csrf_cookie}={csrf}"
        headers = {"Cookie": cookie, auth.csrf_header: csrf}
        origin = min(auth.allowed_origins)
        headers["Origin"] = origin
        return CookieCredentials(access, csrf, headers)

    def pair_sync(self, subject: str | None = None, **options: Any) -> TokenPair:
        """:meth:`pair` for synchronous tests (``TestClient``)."""
        return _run_sync(functools.partial(self.pair, subject, **options), self.portal)

    def access_token_sync(self, subject: str | None = None, **options: Any) -> str:
        """:meth:`access_token` for synchronous tests."""
        return _run_sync(functools.partial(self.access_token, subject, **options), self.portal)

    def headers_sync(self, subject: str | None = None, **options: Any) -> dict[str, str]:
        """:meth:`headers` for synchronous tests."""
        return _run_sync(functools.partial(self.headers, subject, **options), self.portal)

    def cookie_credentials_sync(
        self, auth: CookieAuth, subject: str | None = None, **options: Any
    ) -> CookieCredentials:
        """:meth:`cookie_credentials` for synchronous tests."""
        call = functools.partial(self.cookie_credentials, auth, subject, **options)
        return _run_sync(call, self.portal)

    def __repr__(self) -> str:
        return f"TokenFactory(subject={self.subject!r})"


async def reset_limiter(limiter: RateLimiter) -> None:
    """End every window of ``limiter`` at once, as if its longest window had passed.

    The ``limits`` library takes no clock: its memory storage and strategies
    call ``time.time()`` themselves and Redis counts with the server's clock,
    so no fake clock can reach them without patching ``limits``' modules (which
    ties a test to its internals). What a host app's test needs of time is
    "the client may come back now"; emptying the storage gives exactly that,
    on every backend (on Redis it deletes the limiter's ``key_prefix`` keys
    only). It also forgets a storage outage (the fail-over backoff) and the
    in-memory fallback's counts.
    """
    await limiter.storage.reset()
    fallback = getattr(limiter, "_fallback", None)
    fallback_storage = getattr(fallback, "storage", None)
    if fallback_storage is not None:
        await fallback_storage.reset()
    if hasattr(limiter, "_storage_down_until"):
        limiter._storage_down_until = 0.0


def reset_limiter_sync(limiter: RateLimiter, portal: BlockingPortal | None = None) -> None:
    """:func:`reset_limiter` for synchronous tests (``portal`` as in :class:`TokenFactory`)."""
    _run_sync(functools.partial(reset_limiter, limiter), portal)


def totp_code(
    secret: str,
    *,
    at: float | None = None,
    clock: Clock | None = None,
    digits: int = 6,
    interval: int = 30,
) -> str:
    """The TOTP code (RFC 6238) of a base32 ``secret`` at Unix time ``at``
    (default: ``clock()``, else now). Needs ``pyotp`` (the ``mfa`` extra)."""
    pyotp = require("pyotp", extra="mfa", feature="fastapi_secure.testing.totp_code")
    moment = at if at is not None else (clock() if clock is not None else None)
    totp = pyotp.TOTP(secret, digits=digits, interval=interval)
    if moment is None:
        return str(totp.now())
    return str(totp.at(int(moment)))


def action_token(message: MailMessage) -> str:
    """The single-use token in the link of a verification or reset mail."""
    link = message.link or ""
    _, found, token = link.partition("token=")
    if not found or not token:
        raise ValueError("the mail carries no action link")
    return token.split("&", 1)[0]
