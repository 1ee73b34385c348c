"""Users: the :class:`UserStore` protocol, the record it returns, a memory backend.

The library needs a handful of fields from the application's user model; a
store returns them as a :class:`UserRecord` (an immutable snapshot) and
changes them through named operations. The application keeps its own model:
:class:`~fastapi_secure.accounts.sqlalchemy.SQLAlchemyUserStore` works over
any declarative class that mixes in
:class:`~fastapi_secure.accounts.sqlalchemy.SQLAlchemyUserMixin`.

Login names and emails are compared through :func:`normalize_login_name`, the
same function the login lockout and rate-limit keys use, so ``Alice@X.io``,
``alice@x.io`` and its fullwidth spelling name one account and one
counter. Uniqueness of the normalized email is enforced by the store itself
(the database's unique index in SQL), never by a read-then-write alone.
"""

from __future__ import annotations

import secrets
import threading
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Protocol, runtime_checkable

from fastapi_secure.accounts.errors import UserExistsError, UserNotFoundError
from fastapi_secure.clock import Clock, system_clock
from fastapi_secure.events import pseudonymize_login_name

__all__ = [
    "MAX_EMAIL_LENGTH",
    "MAX_LOGIN_NAME_LENGTH",
    "MemoryUserStore",
    "UserRecord",
    "UserStore",
    "is_email",
    "login_name_digest",
    "new_security_stamp",
    "normalize_login_name",
    "plausible_login_name",
]

MAX_LOGIN_NAME_LENGTH = 254
"""Longest login name or email looked up at all (RFC 5321's path limit)."""

MAX_EMAIL_LENGTH = 254
"""Longest email (normalized) a store accepts."""


def normalize_login_name(name: str) -> str:
    """The comparison form of a login name or email: NFKC, trimmed, case-folded.

    Used for lookups, uniqueness and every per-account key (lockout, rate
    limits), so all spellings of one account share them. ``casefold`` rather
    than ``lower`` so ``STRASSE`` and ``straße`` meet; NFKC on both sides of
    the fold so fullwidth or compatibility forms cannot open a second account.
    """
    folded = unicodedata.normalize("NFKC", name).strip().casefold()
    return unicodedata.normalize("NFKC", folded)


def login_name_digest(name: str) -> str:
    """What a security event says about a login name tried: a digest of its
    normalized form (:func:`~fastapi_secure.events.pseudonymize_login_name`),
    never the name, which may be a password typed into the wrong field."""
    return pseudonymize_login_name(
        normalize_login_name(name[: 4 * MAX_LOGIN_NAME_LENGTH])[:MAX_LOGIN_NAME_LENGTH]
    )


def plausible_login_name(name: str) -> bool:
    """Whether ``name`` could be a login name at all (worth a lookup).

    No account name holds a control character, and PostgreSQL refuses a NUL
    in a text parameter with an error instead of "no match".
    """
    return 0 < len(name) <= MAX_LOGIN_NAME_LENGTH and name.isprintable()


def is_email(name: str) -> bool:
    """Login names with an ``@`` are emails; usernames never hold one."""
    return "@" in name


def new_security_stamp() -> str:
    """A fresh random security stamp (128 bits, hex)."""
    return secrets.token_hex(16)


@dataclass(frozen=True)
class UserRecord:
    """What the account blocks know of a user: a snapshot, never a live object.

    ``id`` is the application's primary key as a string (the token subject).
    ``security_stamp`` changes whenever earlier proofs of the account must stop
    working (a password change): action tokens are bound to it. Neither the
    hash nor the stamp appears in ``repr``.
    """

    id: str
    email: str
    username: str | None = None
    password_hash: str | None = field(default=None, repr=False)
    is_active: bool = True
    email_verified: bool = False
    roles: tuple[str, ...] = ()
    security_stamp: str = field(default="", repr=False)
    password_changed_at: float | None = None
    created_at: float = 0.0

    @property
    def email_key(self) -> str:
        """The normalized email, unique across the store."""
        return normalize_login_name(self.email)


@runtime_checkable
class UserStore(Protocol):
    """The operations the account blocks need on the application's users.

    Every ``find_*`` returns ``None`` for a name that is implausible, unknown,
    or malformed, and never raises for bad input. Changes return the updated
    record or raise :class:`~fastapi_secure.accounts.errors.UserNotFoundError`.
    """

    async def get(self, user_id: str) -> UserRecord | None:
        """The user with this id (``UserRecord.id``), if any."""
        ...

    async def find_by_email(self, email: str) -> UserRecord | None:
        """The user whose normalized email equals ``normalize_login_name(email)``."""
        ...

    async def find_by_login(self, name: str) -> UserRecord | None:
        """The user named by ``name``: an email when it holds ``@``, else a username."""
        ...

    async def create(
        self,
        *,
        email: str,
        password_hash: str | None,
        username: str | None = None,
        roles: Iterable[str] = (),
        is_active: bool = True,
        email_verified: bool = False,
    ) -> UserRecord:
        """Add a user; :class:`UserExistsError` when the email or username is taken."""
        ...

    async def set_password_hash(
        self, user_id: str, password_hash: str, *, rotate_stamp: bool = True
    ) -> UserRecord:
        """Store a new hash; with ``rotate_stamp`` (a real password change) also
        renew the security stamp and ``password_changed_at``. A rehash of the
        same password (``verify_and_update``) passes ``rotate_stamp=False``."""
        ...

    async def rotate_security_stamp(self, user_id: str) -> UserRecord:
        """Renew the security stamp: every outstanding action token dies."""
        ...

    async def mark_email_verified(self, user_id: str) -> UserRecord:
        """Record that the user proved control of their email."""
        ...

    async def set_active(self, user_id: str, active: bool) -> UserRecord:
        """Activate or deactivate the account."""
        ...

    async def set_roles(self, user_id: str, roles: Iterable[str]) -> UserRecord:
        """Replace the user's roles."""
        ...


def check_new_user(email: str, username: str | None) -> tuple[str, str | None]:
    """Validate a new user's email and username; return their normalized forms.

    Shared by the store backends so each refuses the same input the same way.
    """
    if not isinstance(email, str) or not is_email(email) or not plausible_login_name(email):
        raise ValueError("email must be a printable address with '@' of at most 254 characters")
    email_key = normalize_login_name(email)
    if len(email_key) > MAX_EMAIL_LENGTH:
        raise ValueError("email is too long once normalized")
    username_key: str | None = None
    if username is not None:
        if is_email(username) or not plausible_login_name(username):
            raise ValueError("username must be printable, without '@', at most 254 characters")
        username_key = normalize_login_name(username)
        if not username_key:
            raise ValueError("username is empty once normalized")
    return email_key, username_key


def clean_roles(roles: Iterable[str]) -> tuple[str, ...]:
    """Roles sorted and deduplicated, each a non-empty string."""
    cleaned = sorted(set(roles))
    if any(not isinstance(role, str) or not role for role in cleaned):
        raise ValueError("roles must be non-empty strings")
    return tuple(cleaned)


class MemoryUserStore:
    """A :class:`UserStore` in a dict: for tests, demos and single-process tools.

    Ids are decimal strings counting from 1. Every operation runs under one
    lock without awaiting, so uniqueness holds for concurrent coroutines and
    threads alike.
    """

    def __init__(self, *, clock: Clock = system_clock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._users: dict[str, UserRecord] = {}
        self._by_email: dict[str, str] = {}
        self._by_username: dict[str, str] = {}
        self._next_id = 1

    def __repr__(self) -> str:
        return f"MemoryUserStore(users={len(self._users)})"

    async def get(self, user_id: str) -> UserRecord | None:
        with self._lock:
            return self._users.get(user_id) if isinstance(user_id, str) else None

    async def find_by_email(self, email: str) -> UserRecord | None:
        if not isinstance(email, str) or not plausible_login_name(email):
            return None
        with self._lock:
            user_id = self._by_email.get(normalize_login_name(email))
            return None if user_id is None else self._users[user_id]

    async def find_by_login(self, name: str) -> UserRecord | None:
        if not isinstance(name, str) or not plausible_login_name(name):
            return None
        if is_email(name):
            return await self.find_by_email(name)
        with self._lock:
            user_id = self._by_username.get(normalize_login_name(name))
            return None if user_id is None else self._users[user_id]

    async def create(
        self,
        *,
        email: str,
        password_hash: str | None,
        username: str | None = None,
        roles: Iterable[str] = (),
        is_active: bool = True,
        email_verified: bool = False,
    ) -> UserRecord:
        email_key, username_key = check_new_user(email, username)
        cleaned_roles = clean_roles(roles)
        with self._lock:
            if email_key in self._by_email or (
                username_key is not None and username_key in self._by_username
            ):
                raise UserExistsError(reason="email or username taken")
            now = self._clock()
            user = UserRecord(
                id=str(self._next_id),
                email=email.strip(),
                username=username.strip() if username is not None else None,
                password_hash=password_hash,
                is_active=bool(is_active),
                email_verified=bool(email_verified),
                roles=cleaned_roles,
                security_stamp=new_security_stamp(),
                password_changed_at=now if password_hash is not None else None,
                created_at=now,
            )
            self._next_id += 1
            self._users[user.id] = user
            self._by_email[email_key] = user.id
            if username_key is not None:
                self._by_username[username_key] = user.id
            return user

    def _update(self, user_id: str, **changes: object) -> UserRecord:
        with self._lock:
            user = self._users.get(user_id) if isinstance(user_id, str) else None
            if user is None:
                raise UserNotFoundError()
            updated = replace(user, **changes)  # type: ignore[arg-type]
            self._users[user_id] = updated
            return updated

    async def set_password_hash(
        self, user_id: str, password_hash: str, *, rotate_stamp: bool = True
    ) -> UserRecord:
        if not rotate_stamp:
            return self._update(user_id, password_hash=password_hash)
        return self._update(
            user_id,
            password_hash=password_hash,
            security_stamp=new_security_stamp(),
            password_changed_at=self._clock(),
        )

    async def rotate_security_stamp(self, user_id: str) -> UserRecord:
        return self._update(user_id, security_stamp=new_security_stamp())

    async def mark_email_verified(self, user_id: str) -> UserRecord:
        return self._update(user_id, email_verified=True)

    async def set_active(self, user_id: str, active: bool) -> UserRecord:
        return self._update(user_id, is_active=bool(active))

    async def set_roles(self, user_id: str, roles: Iterable[str]) -> UserRecord:
        return self._update(user_id, roles=clean_roles(roles))
