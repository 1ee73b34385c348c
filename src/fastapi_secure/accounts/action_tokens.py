"""Single-use action tokens: email verification and password reset links.

A token is ``<tag>.<secret>``: ``secret`` is 256 random bits (URL-safe
base64), ``tag`` the 16-hex-digit hash tag of the account (the same tag the
token store uses, so every key of one account shares a Redis Cluster slot).
The store keeps only the SHA-256 digest of the purpose and the token, never
the token.

A token is refused, with the same :class:`InvalidActionTokenError` whatever
the cause, when it is

* malformed, unknown, or already used: confirming consumes it atomically, so
  of N concurrent confirms exactly one wins (memory and Redis alike);
* expired (``ttl``: 24 hours for email verification, 30 minutes for a reset);
* superseded: a newer token of the same purpose for the same account was
  issued (only the latest one works);
* stale: the account's security stamp or email changed since it was issued
  (a password change, :meth:`UserStore.rotate_security_stamp`);
* of another purpose: a verification token is no reset token;
* of another account (``subject=``), or for an inactive or deleted account.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from fastapi_secure.accounts.errors import InvalidActionTokenError
from fastapi_secure.accounts.users import UserRecord, UserStore
from fastapi_secure.clock import Clock, system_clock
from fastapi_secure.errors import ConfigurationError
from fastapi_secure.tokens.stores.base import subject_tag

__all__ = [
    "DEFAULT_TTLS",
    "ActionPurpose",
    "ActionTokenStore",
    "ActionTokens",
    "MemoryActionTokenStore",
]


class ActionPurpose(str, enum.Enum):
    """What a token may do; each purpose has its own keys and TTL."""

    VERIFY_EMAIL = "verify_email"
    RESET_PASSWORD = "reset_password"

    def __str__(self) -> str:
        return self.value


DEFAULT_TTLS: Mapping[str, float] = {
    ActionPurpose.VERIFY_EMAIL.value: 24 * 3600.0,
    ActionPurpose.RESET_PASSWORD.value: 30 * 60.0,
}
"""Default lifetimes in seconds: verification 24 hours, reset 30 minutes."""

_PURPOSE = re.compile(r"[a-z][a-z0-9_]{0,31}")
_TOKEN = re.compile(r"([0-9a-f]{16})\.([A-Za-z0-9_-]{43})")
_SECRET_BYTES = 32


@runtime_checkable
class ActionTokenStore(Protocol):
    """Where action token digests wait to be used; both methods are atomic.

    ``tag`` is the account's hash tag, ``key`` the token's digest. A store
    keeps, per ``(tag, purpose)``, which key is the latest.
    """

    async def put(self, tag: str, purpose: str, key: str, value: str, *, ttl: float) -> None:
        """Keep ``value`` under ``key`` for ``ttl`` seconds and make it the latest
        of ``(tag, purpose)``; the previous latest entry is dropped."""
        ...

    async def take(self, tag: str, purpose: str, key: str) -> str | None:
        """Remove the entry under ``key`` and return its value, but only if it is
        the latest of ``(tag, purpose)`` and not expired; else ``None``."""
        ...

    async def aclose(self) -> None:
        """Release connections owned by the store."""
        ...


class MemoryActionTokenStore:
    """An :class:`ActionTokenStore` in a dict, for one process.

    Operations run under one lock without awaiting: atomic for coroutines
    and threads. Expired entries are swept on writes, at most every
    ``prune_interval`` seconds.
    """

    def __init__(self, *, clock: Clock = system_clock, prune_interval: float = 60.0) -> None:
        self._clock = clock
        self._prune_interval = prune_interval
        self._next_prune = clock() + prune_interval
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[str, float]] = {}
        self._latest: dict[tuple[str, str], tuple[str, float]] = {}

    def size(self) -> int:
        """Number of entries kept, expired or not (for tests and metrics)."""
        with self._lock:
            return len(self._entries) + len(self._latest)

    def _prune(self, now: float) -> None:
        self._next_prune = now + self._prune_interval
        for key in [k for k, (_, exp) in self._entries.items() if exp <= now]:
            del self._entries[key]
        for slot in [k for k, (_, exp) in self._latest.items() if exp <= now]:
            del self._latest[slot]

    async def put(self, tag: str, purpose: str, key: str, value: str, *, ttl: float) -> None:
        with self._lock:
            now = self._clock()
            if now >= self._next_prune:
                self._prune(now)
            previous = self._latest.get((tag, purpose))
            if previous is not None:
                self._entries.pop(previous[0], None)
            self._entries[key] = (value, now + ttl)
            self._latest[(tag, purpose)] = (key, now + ttl)

    async def take(self, tag: str, purpose: str, key: str) -> str | None:
        with self._lock:
            now = self._clock()
            entry = self._entries.pop(key, None)
            if entry is None or entry[1] <= now:
                return None
            latest = self._latest.get((tag, purpose))
            if latest is None or latest[0] != key:
                return None
            del self._latest[(tag, purpose)]
            return entry[0]

    async def aclose(self) -> None:
        """Nothing to release; present for the protocol."""


@dataclass(frozen=True)
class _Entry:
    subject: str
    purpose: str
    binding: str
    expires_at: float


def _digest(purpose: str, token: str) -> str:
    return hashlib.sha256(f"action\0{purpose}\0{token}".encode()).hexdigest()


def _binding(user: UserRecord) -> str:
    # The stamp changes on a password change; the email is part of it so a
    # verification token cannot verify an address set after it was sent.
    return hashlib.sha256(f"{user.security_stamp}\0{user.email_key}".encode()).hexdigest()


def _refuse(reason: str) -> InvalidActionTokenError:
    return InvalidActionTokenError(reason=reason)


class ActionTokens:
    """Issue and confirm single-use action tokens for the users of ``users``.

    Args:
        users: the user store; confirm reads the account's current state from it.
        store: where digests wait (:class:`MemoryActionTokenStore` by default;
            :class:`~fastapi_secure.accounts.redis.RedisActionTokenStore` for
            several processes).
        ttls: lifetime in seconds per purpose, merged over :data:`DEFAULT_TTLS`;
            other purposes may be added (lowercase names).
        clock: time source (expiry is checked against it on every backend).
    """

    def __init__(
        self,
        users: UserStore,
        store: ActionTokenStore | None = None,
        *,
        ttls: Mapping[str, float] | None = None,
        clock: Clock = system_clock,
    ) -> None:
        merged = {**DEFAULT_TTLS, **{str(k): v for k, v in (ttls or {}).items()}}
        for purpose, ttl in merged.items():
            if not _PURPOSE.fullmatch(purpose):
                raise ConfigurationError(
                    f"action token purpose {purpose!r} is not a lowercase name"
                )
            if not (isinstance(ttl, (int, float)) and 0 < ttl <= 30 * 24 * 3600):
                raise ConfigurationError(f"ttl of {purpose!r} must be between 0 and 30 days")
        self._users = users
        self._store = store if store is not None else MemoryActionTokenStore(clock=clock)
        self._ttls = {purpose: float(ttl) for purpose, ttl in merged.items()}
        self._clock = clock

    def __repr__(self) -> str:
        return f"ActionTokens(purposes={sorted(self._ttls)!r})"

    @property
    def store(self) -> ActionTokenStore:
        return self._store

    def ttl(self, purpose: str | ActionPurpose) -> float:
        """Lifetime in seconds of tokens for ``purpose``."""
        return self._ttls[self._purpose(purpose)]

    def _purpose(self, purpose: str | ActionPurpose) -> str:
        name = str(purpose)
        if name not in self._ttls:
            raise ConfigurationError(f"unknown action token purpose {name!r}")
        return name

    async def issue(self, purpose: str | ActionPurpose, user: UserRecord) -> str:
        """A new token for ``user``; earlier tokens of this purpose stop working."""
        name = self._purpose(purpose)
        tag = subject_tag(user.id)
        token = f"{tag}.{secrets.token_urlsafe(_SECRET_BYTES)}"
        ttl = self._ttls[name]
        value = json.dumps(
            {
                "sub": user.id,
                "pur": name,
                "bind": _binding(user),
                "exp": self._clock() + ttl,
            }
        )
        await self._store.put(tag, name, _digest(name, token), value, ttl=ttl)
        return token

    async def confirm(
        self, purpose: str | ActionPurpose, token: str, *, subject: str | None = None
    ) -> UserRecord:
        """Consume ``token`` and return the account it acts on, as it is now.

        ``subject``: the account the caller expects (a signed-in user confirming
        their own email); a token of another account is then refused without
        being consumed. Raises :class:`InvalidActionTokenError` otherwise.
        """
        name = self._purpose(purpose)
        match = _TOKEN.fullmatch(token) if isinstance(token, str) else None
        if match is None:
            raise _refuse("malformed")
        tag = match.group(1)
        if subject is not None and not secrets.compare_digest(tag, subject_tag(subject)):
            raise _refuse("token of another account")
        value = await self._store.take(tag, name, _digest(name, token))
        if value is None:
            raise _refuse("unknown, used, expired or superseded")
        entry = self._parse(value)
        if entry.purpose != name:
            raise _refuse("token of another purpose")
        if entry.expires_at <= self._clock():
            raise _refuse("expired")
        if subject is not None and entry.subject != subject:
            raise _refuse("token of another account")
        user = await self._users.get(entry.subject)
        if user is None or not user.is_active:
            raise _refuse("account gone or inactive")
        if not secrets.compare_digest(entry.binding, _binding(user)):
            raise _refuse("account changed since the token was issued")
        return user

    @staticmethod
    def _parse(value: str) -> _Entry:
        try:
            data = json.loads(value)
            return _Entry(
                subject=str(data["sub"]),
                purpose=str(data["pur"]),
                binding=str(data["bind"]),
                expires_at=float(data["exp"]),
            )
        except (ValueError, KeyError, TypeError):
            raise _refuse("unreadable store entry") from None
