"""Identities at outside providers, linked to accounts: the store and the linker.

:class:`AccountIdentityLinker` is the
:class:`~fastapi_secure.oidc.linking.IdentityLinker` of the account blocks: it
finds and creates accounts in the application's
:class:`~fastapi_secure.accounts.users.UserStore` and keeps the links in an
:class:`IdentityStore`. The policy (linked identity first, then a verified
email when the app allows it, else a new account) is
:func:`~fastapi_secure.oidc.linking.link_identity`'s.

An account created by a sign-in has no password; its email counts as verified
only when the provider vouched for it (``email_verified`` true). Such an
account's last identity cannot be unlinked: :meth:`AccountIdentityLinker.unlink`
raises :class:`LastWayInError` (409) until it has a password (set through a
password reset) or another identity.

Each ``(issuer, subject)`` is linked at most once, enforced by the store itself
(a unique constraint in SQL), so concurrent first sign-ins of one identity
leave one account and one link.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from fastapi_secure.accounts.users import MAX_EMAIL_LENGTH, UserRecord, UserStore
from fastapi_secure.clock import Clock, system_clock
from fastapi_secure.errors import ConflictError, PermissionDeniedError
from fastapi_secure.oidc.errors import OIDCLoginError
from fastapi_secure.oidc.linking import LinkedIdentity, LinkResult, OIDCIdentity, link_identity

__all__ = [
    "MAX_ISSUER_LENGTH",
    "MAX_SUBJECT_LENGTH",
    "AccountIdentityLinker",
    "IdentityStore",
    "LastWayInError",
    "MemoryIdentityStore",
]

MAX_ISSUER_LENGTH = 512
"""Longest issuer URL a store keeps."""

MAX_SUBJECT_LENGTH = 255
"""Longest ``sub``: OpenID Connect Core 1.0, section 2, says at most 255 ASCII characters."""

MAX_PROVIDER_LENGTH = 32


class LastWayInError(ConflictError):
    """409: unlinking this identity would leave the account no way to sign in."""

    default_message = (
        "this is the only way to sign in to your account: set a password "
        "(through a password reset) or link another provider first"
    )


def check_identity(identity: OIDCIdentity) -> None:
    """Refuse what no store can hold (shared by the backends): a ValueError."""
    if not 0 < len(identity.issuer) <= MAX_ISSUER_LENGTH:
        raise ValueError(f"issuer must be 1-{MAX_ISSUER_LENGTH} characters")
    if not 0 < len(identity.subject) <= MAX_SUBJECT_LENGTH:
        raise ValueError(f"subject must be 1-{MAX_SUBJECT_LENGTH} characters")
    if not 0 < len(identity.provider) <= MAX_PROVIDER_LENGTH:
        raise ValueError(f"provider name must be 1-{MAX_PROVIDER_LENGTH} characters")


def stored_email(identity: OIDCIdentity) -> str | None:
    """The email kept with a link (for display): None when absent or too long."""
    email = identity.email
    return email if email and len(email) <= MAX_EMAIL_LENGTH else None


@runtime_checkable
class IdentityStore(Protocol):
    """Links of outside identities to accounts; ``(issuer, subject)`` unique."""

    async def find(self, issuer: str, subject: str) -> LinkedIdentity | None:
        """The link of ``(issuer, subject)``, or None."""
        ...

    async def add(self, user_id: str, identity: OIDCIdentity) -> LinkedIdentity:
        """Link ``identity`` to ``user_id``. When ``(issuer, subject)`` is linked
        already (to any account), return that link unchanged."""
        ...

    async def list_for(self, user_id: str) -> list[LinkedIdentity]:
        """The identities linked to ``user_id``, oldest first."""
        ...

    async def remove(self, user_id: str, identity_id: str, *, keep_last: bool) -> bool:
        """Remove the link ``identity_id`` of ``user_id``; False when there is none.

        With ``keep_last``, refuse (:class:`LastWayInError`) to remove the
        user's last link, atomically: two concurrent removals of a user's two
        links leave one.
        """
        ...


class MemoryIdentityStore:
    """An :class:`IdentityStore` in dicts, under one lock (tests and demos)."""

    def __init__(self, *, clock: Clock = system_clock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._by_key: dict[tuple[str, str], LinkedIdentity] = {}

    def __repr__(self) -> str:
        return f"MemoryIdentityStore(links={len(self._by_key)})"

    async def find(self, issuer: str, subject: str) -> LinkedIdentity | None:
        with self._lock:
            return self._by_key.get((issuer, subject))

    async def add(self, user_id: str, identity: OIDCIdentity) -> LinkedIdentity:
        check_identity(identity)
        key = (identity.issuer, identity.subject)
        with self._lock:
            existing = self._by_key.get(key)
            if existing is not None:
                return existing
            linked = LinkedIdentity(
                id=secrets.token_hex(8),
                user_id=user_id,
                issuer=identity.issuer,
                subject=identity.subject,
                provider=identity.provider,
                email=stored_email(identity),
                linked_at=self._clock(),
            )
            self._by_key[key] = linked
            return linked

    async def list_for(self, user_id: str) -> list[LinkedIdentity]:
        with self._lock:
            found = [link for link in self._by_key.values() if link.user_id == user_id]
        return sorted(found, key=lambda link: link.linked_at)

    async def remove(self, user_id: str, identity_id: str, *, keep_last: bool) -> bool:
        with self._lock:
            mine = [link for link in self._by_key.values() if link.user_id == user_id]
            target = next((link for link in mine if link.id == identity_id), None)
            if target is None:
                return False
            if keep_last and len(mine) == 1:
                raise LastWayInError(reason="last identity of an account without a password")
            del self._by_key[(target.issuer, target.subject)]
            return True


@dataclass
class AccountIdentityLinker:
    """The :class:`~fastapi_secure.oidc.linking.IdentityLinker` over the account blocks.

    Args:
        users: the application's user store.
        identities: where the links live.
        default_roles: roles of an account created by a sign-in.
        create_unverified: the loosening, named: also create an account for an
            identity whose email the provider does not vouch for (its email then
            stays unverified, yet the address is taken here). By default such a
            first sign-in is refused (400): nobody can hold someone else's
            address here by typing it at a provider, at the price of turning
            away users of providers that do not verify addresses.

    ``sign_in`` is what an ``on_identity`` callback calls; ``identities`` and
    ``unlink`` serve the identities router.
    """

    users: UserStore
    identities: IdentityStore
    default_roles: tuple[str, ...] = ()
    create_unverified: bool = False

    async def find(self, issuer: str, subject: str) -> LinkedIdentity | None:
        return await self.identities.find(issuer, subject)

    async def user_by_email(self, email: str) -> str | None:
        user = await self.users.find_by_email(email)
        # Only an address the account itself proved: an account registered with
        # someone else's unverified address must not collect their sign-ins.
        if user is None or not user.email_verified or not user.is_active:
            return None
        return user.id

    async def create_user(self, identity: OIDCIdentity) -> str:
        if not identity.email:
            raise OIDCLoginError(
                "the identity provider did not share an email address",
                reason="no email claim for a new account",
            )
        if not identity.email_verified and not self.create_unverified:
            raise OIDCLoginError(
                "the identity provider has not verified your email address",
                reason="unverified email for a new account",
            )
        try:
            user = await self.users.create(
                email=identity.email,
                password_hash=None,
                roles=self.default_roles,
                email_verified=identity.email_verified,
            )
        except ValueError:
            raise OIDCLoginError(
                "the identity provider shared an unusable email address",
                reason="email refused by the user store",
            ) from None
        return user.id

    async def link(self, user_id: str, identity: OIDCIdentity) -> LinkedIdentity:
        try:
            return await self.identities.add(user_id, identity)
        except ValueError as exc:
            raise OIDCLoginError(reason=f"identity refused by the store: {exc}") from None

    async def sign_in(
        self, identity: OIDCIdentity, *, link_by_email: bool = False
    ) -> tuple[UserRecord, LinkResult]:
        """The active account ``identity`` signs in to (linked, linked by email or new).

        Raises :class:`~fastapi_secure.oidc.linking.IdentityConflictError` (409)
        when the email belongs to an account that may not be linked, and
        :class:`~fastapi_secure.errors.PermissionDeniedError` (403) for a
        deactivated account.
        """
        result = await link_identity(self, identity, link_by_email=link_by_email)
        user = await self.users.get(result.user_id)
        if user is None or not user.is_active:
            raise PermissionDeniedError("this account is disabled", reason="inactive account")
        return user, result

    async def list_identities(self, user_id: str) -> list[LinkedIdentity]:
        """The identities linked to ``user_id``, oldest first."""
        return await self.identities.list_for(user_id)

    async def unlink(self, user_id: str, identity_id: str) -> bool:
        """Remove one of ``user_id``'s identities; False when there is no such link.

        :class:`LastWayInError` when the account has no password and this is
        its last identity.
        """
        user = await self.users.get(user_id)
        if user is None:
            return False
        return await self.identities.remove(
            user_id, identity_id, keep_last=user.password_hash is None
        )
