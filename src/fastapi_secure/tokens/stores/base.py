"""The :class:`TokenStore` protocol shared by the memory and Redis backends.

A store keeps, per token family (one login session), the id of the refresh
token that may be rotated next, whether the family is revoked, and the
subject's revocation generation at the time the family started; per subject,
a revocation generation; per revoked access token, its ``jti`` until it
expires. It stores ids and digests only, never a token.

Keys derived from token contents (``sub``, ``sid``, ``jti``) are digests:
those strings come from a client even when the token's signature is valid.
Every entry has a time to live, so nothing grows forever.

A family id starts with a 16-hex-digit tag derived from its subject. The
Redis backend uses it as the Redis Cluster hash tag, so every key of one
subject (its families, its revoked access tokens, its revocation generation)
lives in one hash slot and each operation is a single atomic script, on a
cluster too.
"""

from __future__ import annotations

import enum
import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = [
    "MAX_USER_AGENT_LENGTH",
    "SessionInfo",
    "SessionStore",
    "TokenState",
    "TokenStore",
    "access_state_key",
    "belongs_to",
    "clean_user_agent",
    "digest",
    "family_tag",
    "new_family_id",
    "subject_tag",
]


def access_state_key(store: object, subject: str, family_id: str, jti: str) -> tuple[object, ...]:
    """Where ``store``'s answer to ``check_access(subject, family_id, jti=jti)``
    is kept when it was read ahead, in the same Redis call as the request's
    rate limits (see ``RedisTokenStore.check_access_read``)."""
    return ("access", id(store), subject, family_id, jti)


class TokenState(str, enum.Enum):
    """What a store answers about a token or a rotation attempt."""

    ACTIVE = "active"
    """The token may be used: family active, subject not revoked since, jti not denied."""
    ROTATED = "rotated"
    """``rotate``: the refresh token was the current one and is now consumed."""
    GRACE = "grace"
    """``rotate``: the refresh token was consumed within the grace window; its
    successor has not been used yet, so the same successor id may be issued again."""
    REUSED = "reused"
    """``rotate``: the refresh token had already been consumed; the family is now revoked."""
    CONSUMED = "consumed"
    """``check_refresh``: the refresh token was already rotated (nothing was changed)."""
    TOKEN_REVOKED = "token_revoked"
    """``check_access``: this access token's ``jti`` was revoked."""
    FAMILY_REVOKED = "family_revoked"
    """The token's family was revoked (logout, reuse, or a refused grant)."""
    SUBJECT_REVOKED = "subject_revoked"
    """``revoke_subject`` was called after the family started."""
    UNKNOWN = "unknown"
    """No such family for this subject: never issued here, expired, or lost by the store."""


@runtime_checkable
class TokenStore(Protocol):
    """Server-side state of the token families; every method is atomic.

    ``ttl`` arguments are seconds from now after which the entry may be
    forgotten. Implementations raise
    :class:`~fastapi_secure.errors.StoreUnavailableError` when their backend
    cannot answer, and never report ``ACTIVE`` for a token they could not check.
    """

    async def create_family(
        self, subject: str, family_id: str, *, refresh_jti: str, ttl: float
    ) -> None:
        """Start a family whose current refresh token is ``refresh_jti``."""
        ...

    async def check_access(self, subject: str, family_id: str, *, jti: str) -> TokenState:
        """State of an access token: ``ACTIVE`` or why it is not."""
        ...

    async def check_refresh(self, subject: str, family_id: str, *, jti: str) -> TokenState:
        """State of a refresh token, without consuming it: ``ACTIVE`` only when
        ``jti`` is the family's current refresh token."""
        ...

    async def rotate(
        self,
        subject: str,
        family_id: str,
        *,
        jti: str,
        successor_jti: str,
        ttl: float,
        now: float,
        grace: float = 0.0,
    ) -> TokenState:
        """Consume refresh token ``jti`` and make ``successor_jti`` current.

        Returns ``ROTATED`` when ``jti`` was current. Returns ``GRACE`` when
        ``grace > 0``, ``jti`` is the previous token, it was consumed at most
        ``grace`` seconds before ``now`` and ``successor_jti`` is still current
        (nothing changes). Any other consumed ``jti`` revokes the family and
        returns ``REUSED``. A revoked or unknown family returns its state.
        """
        ...

    async def deny_token(self, subject: str, family_id: str, *, jti: str, ttl: float) -> None:
        """Revoke one access token until ``ttl`` seconds from now."""
        ...

    async def revoke_family(self, family_id: str) -> None:
        """Revoke every token of a family; unknown families are ignored."""
        ...

    async def revoke_subject(self, subject: str, *, ttl: float) -> None:
        """Revoke every family of ``subject`` started before this call.

        Families started after the call returns are not affected, whatever
        the clock says: the store orders them by a per-subject generation
        counter, not by timestamps.
        """
        ...

    async def aclose(self) -> None:
        """Release connections owned by the store."""
        ...


_TAG_LENGTH = 16
_FAMILY_ID = re.compile(r"([0-9a-f]{16})\.[A-Za-z0-9_-]{16,64}")


def digest(kind: str, value: str) -> str:
    """A fixed-length key component for a client-supplied string.

    ``surrogatepass`` because JSON can carry lone surrogates that strict
    UTF-8 refuses to encode.
    """
    data = f"{kind}\0{value}".encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()[:32]


def subject_tag(subject: str) -> str:
    """The hash tag shared by every key of ``subject``."""
    return digest("tag", subject)[:_TAG_LENGTH]


def new_family_id(subject: str) -> str:
    """A random family id carrying the subject's tag."""
    return f"{subject_tag(subject)}.{secrets.token_urlsafe(16)}"


def family_tag(family_id: str) -> str | None:
    """The tag of a well-formed family id, else ``None``."""
    match = _FAMILY_ID.fullmatch(family_id)
    return match.group(1) if match else None


def belongs_to(subject: str, family_id: str) -> bool:
    """Whether ``family_id`` is well formed and was made for ``subject``."""
    tag = family_tag(family_id)
    return tag is not None and secrets.compare_digest(tag, subject_tag(subject))


# -- sessions per device ---------------------------------------------------------
# A session is a token family seen from its owner's side: when and where it
# started, when it was last used. Stores that keep this implement SessionStore
# next to TokenStore; both built-in stores do.

MAX_USER_AGENT_LENGTH = 256
"""Longest user agent kept with a session (longer ones are cut)."""


@dataclass(frozen=True)
class SessionInfo:
    """What a user sees of one of their sessions.

    ``session_id`` is the family id (the ``sid`` claim); ``client_address``
    the coarsened network it started from (``203.0.113.0/24``).
    """

    session_id: str
    created_at: float
    last_used_at: float
    user_agent: str | None = None
    client_address: str | None = None


@runtime_checkable
class SessionStore(Protocol):
    """Per-session metadata of token families, listed per subject; every method is atomic.

    Only live sessions are listed: a family that was revoked (one session,
    logout everywhere, refresh-token reuse) or expired disappears.
    """

    async def record_session(
        self,
        subject: str,
        family_id: str,
        *,
        now: float,
        ttl: float,
        max_sessions: int,
        user_agent: str | None = None,
        client_address: str | None = None,
    ) -> list[str]:
        """Keep metadata of family ``family_id`` for ``ttl`` seconds.

        When ``subject`` then has more than ``max_sessions`` live sessions, the
        oldest are revoked (their families too) and their ids returned.
        """
        ...

    async def touch_session(self, subject: str, family_id: str, *, now: float, ttl: float) -> None:
        """Record a use of the session (a refresh) and extend its metadata's life."""
        ...

    async def list_sessions(self, subject: str) -> list[SessionInfo]:
        """The live sessions of ``subject``, newest first."""
        ...

    async def revoke_session(self, subject: str, family_id: str) -> bool:
        """Revoke one session of ``subject``: its family (so its access tokens
        fail at once) and its metadata. ``False`` when it was no live session."""
        ...


def clean_user_agent(user_agent: str | None) -> str | None:
    """A user agent fit to keep and show: printable, at most 256 characters."""
    if not user_agent:
        return None
    kept = "".join(ch for ch in user_agent[: MAX_USER_AGENT_LENGTH * 2] if ch.isprintable())
    return kept[:MAX_USER_AGENT_LENGTH] or None
