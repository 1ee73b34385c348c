"""From a provider's identity to one of the app's accounts: the seam to the account blocks.

The policy lives here, once (:func:`link_identity`); the storage is the
app's, behind the :class:`IdentityLinker` protocol:

1. an identity already linked (same provider, same ``sub``) signs in to its
   account, whatever its email says now;
2. else, only when the app allows it (``link_by_email=True``) and only when
   the provider vouches for the email (``email_verified`` exactly ``True``),
   the identity is linked to the account holding that email. An unverified
   email never links: anyone can type someone else's address at a provider;
3. else a new account is created and linked.

The identity is keyed by ``(provider, sub)``, never by email: emails change
and are reassigned, ``sub`` is stable per provider (OpenID Connect Core 1.0,
section 5.7).

:class:`MemoryIdentityLinker` keeps everything in a dict, for tests and
single-process demos.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from fastapi_secure.clock import Clock, system_clock

__all__ = [
    "IdentityLinker",
    "LinkResult",
    "LinkedIdentity",
    "MemoryIdentityLinker",
    "OIDCIdentity",
    "link_identity",
]


@dataclass(frozen=True)
class OIDCIdentity:
    """Who signed in at a provider, from a validated ID token (and userinfo).

    ``email_verified`` is True only when the provider said exactly ``true``;
    ``claims`` holds every ID token and userinfo claim.
    """

    provider: str
    subject: str
    email: str | None = None
    email_verified: bool = False
    claims: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class LinkedIdentity:
    """An identity linked to an account of the app."""

    id: str
    user_id: str
    provider: str
    subject: str
    email: str | None
    linked_at: float


@dataclass(frozen=True)
class LinkResult:
    """The account an identity signs in to, and how it was found."""

    user_id: str
    linked: LinkedIdentity
    how: str
    """``"linked"`` (known identity), ``"email"`` (linked now by verified email)
    or ``"created"``."""


@runtime_checkable
class IdentityLinker(Protocol):
    """The storage behind :func:`link_identity`; the accounts block implements it."""

    async def find(self, provider: str, subject: str) -> LinkedIdentity | None:
        """The link of ``(provider, subject)``, or None."""
        ...

    async def user_by_email(self, email: str) -> str | None:
        """The id of the account whose (verified) email is ``email``, or None."""
        ...

    async def create_user(self, identity: OIDCIdentity) -> str:
        """Create an account for a first-time identity; return its id."""
        ...

    async def link(self, user_id: str, identity: OIDCIdentity) -> LinkedIdentity:
        """Link ``identity`` to ``user_id`` (idempotent for the same pair)."""
        ...

    async def identities(self, user_id: str) -> list[LinkedIdentity]:
        """The identities linked to ``user_id``."""
        ...

    async def unlink(self, user_id: str, identity_id: str) -> bool:
        """Remove one link of ``user_id``; False when there was none.

        Refusing to remove the last way in (no password, no other identity)
        is the caller's decision: only it knows about passwords.
        """
        ...


async def link_identity(
    linker: IdentityLinker, identity: OIDCIdentity, *, link_by_email: bool = False
) -> LinkResult:
    """The account ``identity`` signs in to: linked, linked by verified email, or new."""
    known = await linker.find(identity.provider, identity.subject)
    if known is not None:
        return LinkResult(known.user_id, known, "linked")
    if link_by_email and identity.email_verified and identity.email:
        owner = await linker.user_by_email(identity.email)
        if owner is not None:
            return LinkResult(owner, await linker.link(owner, identity), "email")
    user_id = await linker.create_user(identity)
    return LinkResult(user_id, await linker.link(user_id, identity), "created")


class MemoryIdentityLinker:
    """:class:`IdentityLinker` in memory: accounts are ``{id: email}``, links a dict."""

    def __init__(self, *, clock: Clock = system_clock) -> None:
        self.clock = clock
        self.users: dict[str, str | None] = {}
        self._links: dict[tuple[str, str], LinkedIdentity] = {}

    def add_user(self, email: str | None) -> str:
        """An account that exists before any sign-in (registered with a password)."""
        user_id = secrets.token_hex(8)
        self.users[user_id] = email
        return user_id

    async def find(self, provider: str, subject: str) -> LinkedIdentity | None:
        return self._links.get((provider, subject))

    async def user_by_email(self, email: str) -> str | None:
        wanted = email.casefold()
        return next(
            (uid for uid, mail in self.users.items() if mail and mail.casefold() == wanted), None
        )

    async def create_user(self, identity: OIDCIdentity) -> str:
        return self.add_user(identity.email if identity.email_verified else None)

    async def link(self, user_id: str, identity: OIDCIdentity) -> LinkedIdentity:
        key = (identity.provider, identity.subject)
        existing = self._links.get(key)
        if existing is not None and existing.user_id == user_id:
            return existing
        linked = LinkedIdentity(
            id=secrets.token_hex(8),
            user_id=user_id,
            provider=identity.provider,
            subject=identity.subject,
            email=identity.email,
            linked_at=self.clock(),
        )
        self._links[key] = linked
        return linked

    async def identities(self, user_id: str) -> list[LinkedIdentity]:
        return [linked for linked in self._links.values() if linked.user_id == user_id]

    async def unlink(self, user_id: str, identity_id: str) -> bool:
        for key, linked in list(self._links.items()):
            if linked.id == identity_id and linked.user_id == user_id:
                del self._links[key]
                return True
        return False
