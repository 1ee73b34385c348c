"""From a provider's identity to one of the app's accounts: the seam to the account blocks.

The policy lives here, once (:func:`link_identity`); the storage is the
app's, behind the :class:`IdentityLinker` protocol
(:class:`~fastapi_secure.accounts.identities.AccountIdentityLinker` over the
accounts ``UserStore`` and an identity store):

1. an identity already linked (same issuer, same ``sub``) signs in to its
   account, whatever its email says now;
2. else, only when the app allows it (``link_by_email=True``) and only when
   the provider vouches for the email (``email_verified`` exactly ``True``),
   the identity is linked to the account holding that email, if that account
   verified it too. An unverified email never links: anyone can type someone
   else's address at a provider, and an account registered with an
   unverified address may be an attacker's trap (account pre-hijacking);
3. else a new account is created and linked. When the email already belongs
   to an account, the linker refuses (409) instead of linking silently.

The identity is keyed by ``(issuer, sub)``, never by email: emails change
and are reassigned, ``sub`` is stable per issuer (OpenID Connect Core 1.0,
section 5.7). The provider's *name* is the app's label and may change.

:class:`MemoryIdentityLinker` keeps everything in dicts, for tests and
single-process demos.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from fastapi_secure.clock import Clock, system_clock
from fastapi_secure.errors import ConflictError

__all__ = [
    "IdentityConflictError",
    "IdentityLinker",
    "LinkResult",
    "LinkedIdentity",
    "MemoryIdentityLinker",
    "OIDCIdentity",
    "link_identity",
]


class IdentityConflictError(ConflictError):
    """409: the identity's email belongs to an account it may not be linked to.

    Linking by email is off, the provider does not vouch for the email, or
    the account never verified it: the user signs in with their password.
    """

    default_message = (
        "an account with this email address already exists: sign in with your password"
    )


@dataclass(frozen=True)
class OIDCIdentity:
    """Who signed in at a provider, from a validated ID token (and userinfo).

    ``issuer`` is the ID token's ``iss`` (the provider's issuer exactly);
    ``provider`` the app's name for it. ``email_verified`` is True only when
    the provider said exactly ``true``; ``claims`` holds every ID token and
    userinfo claim.
    """

    provider: str
    issuer: str
    subject: str
    email: str | None = None
    email_verified: bool = False
    claims: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class LinkedIdentity:
    """An identity linked to an account of the app."""

    id: str
    user_id: str
    issuer: str
    subject: str
    provider: str
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
    """The storage behind :func:`link_identity`."""

    async def find(self, issuer: str, subject: str) -> LinkedIdentity | None:
        """The link of ``(issuer, subject)``, or None."""
        ...

    async def user_by_email(self, email: str) -> str | None:
        """The id of the active account that owns *and verified* ``email``, or None."""
        ...

    async def create_user(self, identity: OIDCIdentity) -> str:
        """Create an account for a first-time identity; return its id.

        Raises :class:`~fastapi_secure.errors.ConflictError` when the email
        belongs to an account already.
        """
        ...

    async def link(self, user_id: str, identity: OIDCIdentity) -> LinkedIdentity:
        """Link ``identity`` to ``user_id``; return the link of ``(issuer, subject)``.

        When the pair is linked already (a concurrent first sign-in won the
        race), the existing link is returned, whichever account it names: the
        storage, not a read before the write, keeps the pair unique.
        """
        ...


async def link_identity(
    linker: IdentityLinker, identity: OIDCIdentity, *, link_by_email: bool = False
) -> LinkResult:
    """The account ``identity`` signs in to: linked, linked by verified email, or new.

    Raises :class:`IdentityConflictError` (409) when a new account cannot be
    created because the email belongs to another account.
    """
    known = await linker.find(identity.issuer, identity.subject)
    if known is not None:
        return LinkResult(known.user_id, known, "linked")
    if link_by_email and identity.email_verified and identity.email:
        owner = await linker.user_by_email(identity.email)
        if owner is not None:
            linked = await linker.link(owner, identity)
            return LinkResult(
                linked.user_id, linked, "email" if linked.user_id == owner else "linked"
            )
    try:
        user_id = await linker.create_user(identity)
    except ConflictError:
        # The email is taken: by an account of its own, or by the account a
        # concurrent first sign-in of this same identity has just created.
        known = await linker.find(identity.issuer, identity.subject)
        if known is not None:
            return LinkResult(known.user_id, known, "linked")
        raise IdentityConflictError(reason="email belongs to an account; no link made") from None
    linked = await linker.link(user_id, identity)
    return LinkResult(linked.user_id, linked, "created" if linked.user_id == user_id else "linked")


class MemoryIdentityLinker:
    """:class:`IdentityLinker` in memory: accounts are ``{id: (email, verified)}``."""

    def __init__(self, *, clock: Clock = system_clock) -> None:
        self.clock = clock
        self.users: dict[str, tuple[str | None, bool]] = {}
        self._links: dict[tuple[str, str], LinkedIdentity] = {}

    def add_user(self, email: str | None, *, verified: bool = True) -> str:
        """An account that exists before any sign-in (registered with a password)."""
        user_id = secrets.token_hex(8)
        self.users[user_id] = (email, verified)
        return user_id

    def _owner(self, email: str) -> tuple[str, bool] | None:
        wanted = email.casefold()
        for uid, (mail, verified) in self.users.items():
            if mail is not None and mail.casefold() == wanted:
                return uid, verified
        return None

    async def find(self, issuer: str, subject: str) -> LinkedIdentity | None:
        return self._links.get((issuer, subject))

    async def user_by_email(self, email: str) -> str | None:
        owner = self._owner(email)
        return owner[0] if owner is not None and owner[1] else None

    async def create_user(self, identity: OIDCIdentity) -> str:
        if identity.email and self._owner(identity.email) is not None:
            raise ConflictError(reason="email taken")
        return self.add_user(identity.email, verified=identity.email_verified)

    async def link(self, user_id: str, identity: OIDCIdentity) -> LinkedIdentity:
        key = (identity.issuer, identity.subject)
        existing = self._links.get(key)
        if existing is not None:
            return existing
        linked = LinkedIdentity(
            id=secrets.token_hex(8),
            user_id=user_id,
            issuer=identity.issuer,
            subject=identity.subject,
            provider=identity.provider,
            email=identity.email,
            linked_at=self.clock(),
        )
        self._links[key] = linked
        return linked

    async def identities(self, user_id: str) -> list[LinkedIdentity]:
        """The identities linked to ``user_id``."""
        return [linked for linked in self._links.values() if linked.user_id == user_id]
