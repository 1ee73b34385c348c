"""The MFA step of a login, without HTTP: :class:`MFAChallenges`.

After a correct password, an account with a second factor gets an *MFA
token* instead of a token pair. The token is random (256 bits, prefixed
``mfa_`` so it is never mistaken for a JWT: a bearer verifier refuses it),
stored only as a digest, short-lived (5 minutes), bound to the login attempt
that made it (the account, the methods offered, and any ``context`` you
give, such as the client address) and single use: :meth:`MFAChallenges.complete`
*takes* it from the store atomically before checking the second factor.

A wrong code does not burn the token at once: it goes back with one more
failed attempt (still with its original expiry) until ``max_attempts``,
then it is used up. While one check runs the token is out of the store, so a
concurrent use of the same token finds nothing: exactly one wins.

A used (or used-up) token leaves a marker under its digest, and an expired
one stays, for one more ``ttl``: presenting it again is refused like any
unknown token, but :class:`MFATokenError` says which account and why
(``problem``: ``"reused"`` or ``"expired"``), so the refusal can be
reported (a replayed MFA token is a stolen one).

```python
import anyio

from fastapi_secure.mfa import MFAChallenges
from fastapi_secure.mfa.stores import MemoryMFAStore

challenges = MFAChallenges(MemoryMFAStore())


async def main() -> None:
    started = await challenges.start("user-42", ["totp", "recovery_code"])
    # answer {"mfa_required": true, "mfa_token": started.token, "methods": started.methods}

    async def check(pending):  # e.g. await totp.verify(record_of(pending.user_id), code)
        return pending.user_id

    pending, user_id = await challenges.complete(started.token, check)
    assert user_id == "user-42"  # now issue the token pair, amr=["pwd", "otp"]


anyio.run(main)
```
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from fastapi_secure.clock import Clock, system_clock
from fastapi_secure.errors import ConfigurationError, InvalidTokenError, SecurityError
from fastapi_secure.mfa.stores.base import ChallengeStore, store_key

__all__ = ["MFAChallenge", "MFAChallenges", "MFATokenError", "MFATokenProblem", "PendingMFA"]

T = TypeVar("T")

TOKEN_PREFIX = "mfa_"
_MAX_TOKEN_LENGTH = 128


MFATokenProblem = Literal["malformed", "unknown", "reused", "expired"]


class MFATokenError(InvalidTokenError):
    """401: the MFA token is unknown, expired, used up or malformed.

    ``problem`` says which (never in the answer, which is the same for all);
    ``user_id`` is the account of a ``"reused"`` or ``"expired"`` token (known
    from its marker), else None.
    """

    default_message = "invalid or expired MFA token"

    def __init__(
        self,
        message: str | None = None,
        *,
        problem: MFATokenProblem = "unknown",
        user_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.problem: MFATokenProblem = problem
        self.user_id = user_id


@dataclass(frozen=True)
class MFAChallenge:
    """What the login answer carries: the token (once), its lifetime and the methods."""

    token: str = field(repr=False)
    expires_in: int
    methods: tuple[str, ...]


@dataclass(frozen=True)
class PendingMFA:
    """The login attempt an MFA token stands for."""

    user_id: str
    methods: tuple[str, ...]
    created_at: float
    expires_at: float
    attempts: int = 0
    context: Mapping[str, str] = field(default_factory=dict)


class MFAChallenges:
    """Issue and complete MFA tokens in a :class:`~fastapi_secure.mfa.stores.ChallengeStore`."""

    def __init__(
        self,
        store: ChallengeStore,
        *,
        ttl: float = 300.0,
        max_attempts: int = 5,
        clock: Clock = system_clock,
    ) -> None:
        if not (isinstance(ttl, (int, float)) and 0 < ttl <= 3600):
            raise ConfigurationError("MFA token ttl must be from 0 to 3600 seconds")
        if not (isinstance(max_attempts, int) and max_attempts >= 1):
            raise ConfigurationError("max_attempts must be an integer >= 1")
        self._store = store
        self.ttl = float(ttl)
        self.max_attempts = max_attempts
        self._clock = clock

    def __repr__(self) -> str:
        return f"MFAChallenges(ttl={self.ttl}, max_attempts={self.max_attempts})"

    @staticmethod
    def _key(token: str) -> str:
        return store_key("mfa-token", hashlib.sha256(token.encode()).hexdigest())

    async def start(
        self,
        user_id: str,
        methods: Sequence[str],
        *,
        context: Mapping[str, str] | None = None,
    ) -> MFAChallenge:
        """A new MFA token for ``user_id``'s login attempt, offering ``methods``."""
        if isinstance(methods, str) or not methods:
            raise ConfigurationError("methods must be a non-empty list of method names")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = self._clock()
        pending = PendingMFA(
            user_id=user_id,
            methods=tuple(methods),
            created_at=now,
            expires_at=now + self.ttl,
            context=dict(context or {}),
        )
        await self._store.put(self._key(token), _dump(pending), self.ttl + self.ttl)
        return MFAChallenge(token=token, expires_in=math.ceil(self.ttl), methods=pending.methods)

    def _checked_key(self, token: object) -> str:
        if (
            not isinstance(token, str)
            or not token.startswith(TOKEN_PREFIX)
            or len(token) > _MAX_TOKEN_LENGTH
        ):
            raise MFATokenError(reason="malformed MFA token", problem="malformed")
        return self._key(token)

    def _kept(self, pending: PendingMFA) -> float:
        """Seconds the entry (or its marker) stays: its lifetime, then one more ``ttl``."""
        return pending.expires_at + self.ttl - self._clock()

    async def _take(self, key: str) -> tuple[PendingMFA, str]:
        """The live login attempt under ``key``, taken out of the store, or a refusal."""
        raw = await self._store.take(key)
        if raw is None:
            raise MFATokenError(reason="unknown, used or expired MFA token")
        pending, spent = _load(raw)
        if spent is not None:
            # Keep the marker: every replay is refused and reported the same way.
            left = self._kept(pending)
            if left > 0:
                await self._store.put(key, raw, left)
            raise MFATokenError(
                reason=f"MFA token {spent}", problem="reused", user_id=pending.user_id
            )
        if pending.expires_at <= self._clock():
            raise MFATokenError(
                reason="expired MFA token", problem="expired", user_id=pending.user_id
            )
        return pending, raw

    async def _mark(self, key: str, pending: PendingMFA, spent: str) -> None:
        left = self._kept(pending)
        if left > 0:
            await self._store.put(key, _dump(pending, spent=spent), left)

    async def peek(self, token: str) -> PendingMFA:
        """The login attempt ``token`` stands for, without using the token up.

        For a step that needs the account before the second factor is
        checked (passkey options for that account's credentials). The token
        is taken and put back with its remaining lifetime, so a concurrent
        :meth:`complete` may find it absent for that instant (and refuse).
        Raises :class:`MFATokenError` like :meth:`complete`.
        """
        key = self._checked_key(token)
        pending, raw = await self._take(key)
        await self._store.put(key, raw, self._kept(pending))
        return pending

    async def complete(
        self, token: str, verify: Callable[[PendingMFA], Awaitable[T]]
    ) -> tuple[PendingMFA, T]:
        """Take the token, run ``verify(pending)`` (the second-factor check), return both.

        ``verify`` raises (a :class:`~fastapi_secure.errors.SecurityError`,
        such as ``InvalidOTPError``) to refuse; the token then returns to the
        store with one more attempt unless it used its last one or expired.
        Raises :class:`MFATokenError` for a token that is not (or no longer) valid.
        """
        key = self._checked_key(token)
        pending, _ = await self._take(key)
        try:
            result = await verify(pending)
        except SecurityError:
            again = dataclasses.replace(pending, attempts=pending.attempts + 1)
            if again.attempts < self.max_attempts and again.expires_at > self._clock():
                await self._store.put(key, _dump(again), self._kept(again))
            else:
                await self._mark(key, again, "used up")
            raise
        await self._mark(key, pending, "already used")
        return pending, result


def _dump(pending: PendingMFA, *, spent: str | None = None) -> str:
    return json.dumps(
        {
            "spent": spent,
            "user_id": pending.user_id,
            "methods": list(pending.methods),
            "created_at": pending.created_at,
            "expires_at": pending.expires_at,
            "attempts": pending.attempts,
            "context": dict(pending.context),
        }
    )


def _load(raw: str) -> tuple[PendingMFA, str | None]:
    data = json.loads(raw)
    spent = data.get("spent")
    pending = PendingMFA(
        user_id=str(data["user_id"]),
        methods=tuple(data["methods"]),
        created_at=float(data["created_at"]),
        expires_at=float(data["expires_at"]),
        attempts=int(data["attempts"]),
        context={str(k): str(v) for k, v in data["context"].items()},
    )
    return pending, None if spent is None else str(spent)
