"""Sessions per device: what a user sees of their logins, and how they end them.

A session is one token family (one login, the ``sid`` claim). After
:meth:`TokenIssuer.issue <fastapi_secure.tokens.issuer.TokenIssuer.issue>`,
:meth:`SessionManager.start` records when and where it began (the user agent,
and the client address coarsened to ``/24`` or ``/64``); each refresh may
:meth:`~SessionManager.touch` it. The user lists their sessions and revokes
one (its access tokens fail at once: the family is revoked in the store) or
all others. The number of sessions per user is bounded; beyond it the oldest
ends first.

The metadata lives in the issuer's token store, which must implement
:class:`~fastapi_secure.tokens.stores.base.SessionStore` (memory and Redis do,
Cluster included).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi_secure.accounts.addresses import IPAddress, coarsen_address
from fastapi_secure.accounts.hooks import AccountEvent, AccountHooks
from fastapi_secure.errors import ConfigurationError
from fastapi_secure.tokens.stores.base import SessionInfo, SessionStore, belongs_to

if TYPE_CHECKING:
    from fastapi_secure.tokens.issuer import TokenIssuer

__all__ = ["SessionInfo", "SessionManager"]

MAX_SESSIONS_LIMIT = 1000


class SessionManager:
    """Record, list and revoke the sessions of the users of ``issuer``.

    Args:
        issuer: its store keeps the sessions (it must be a ``SessionStore``).
        max_sessions: live sessions per user; a new login beyond it ends the oldest.
        hooks: ``AccountEvent.SESSION_REVOKED`` for each session ended here.
    """

    def __init__(
        self,
        issuer: TokenIssuer,
        *,
        max_sessions: int = 10,
        hooks: AccountHooks | None = None,
    ) -> None:
        store = issuer.store
        if not isinstance(store, SessionStore):
            raise ConfigurationError("the issuer's token store does not keep sessions")
        if isinstance(max_sessions, bool) or not (
            isinstance(max_sessions, int) and 1 <= max_sessions <= MAX_SESSIONS_LIMIT
        ):
            raise ConfigurationError(f"max_sessions must be between 1 and {MAX_SESSIONS_LIMIT}")
        self._issuer = issuer
        self._store: SessionStore = store
        self._max = max_sessions
        self._hooks = hooks

    def __repr__(self) -> str:
        return f"SessionManager(max_sessions={self._max})"

    @property
    def max_sessions(self) -> int:
        return self._max

    def _ttl(self) -> float:
        return self._issuer.refresh_ttl + self._issuer.leeway

    async def start(
        self,
        subject: str,
        session_id: str,
        *,
        user_agent: str | None = None,
        client_address: str | IPAddress | None = None,
    ) -> list[str]:
        """Record a new session (right after ``issue``); returns the ids of
        sessions it pushed out, already revoked."""
        evicted = await self._store.record_session(
            subject,
            session_id,
            now=self._issuer.clock(),
            ttl=self._ttl(),
            max_sessions=self._max,
            user_agent=user_agent,
            client_address=coarsen_address(client_address),
        )
        for ended in evicted:
            await self._revoked(subject, ended, "session limit")
        return evicted

    async def touch(self, subject: str, session_id: str) -> None:
        """Record a use of the session (call it on refresh)."""
        await self._store.touch_session(
            subject, session_id, now=self._issuer.clock(), ttl=self._ttl()
        )

    async def list_sessions(self, subject: str) -> list[SessionInfo]:
        """The user's live sessions, newest first."""
        return await self._store.list_sessions(subject)

    async def revoke(
        self, subject: str, session_id: str, *, reason: str = "revoked by user"
    ) -> bool:
        """End one session of ``subject``; ``False`` when it was none of theirs.
        ``reason`` goes to the ``session_revoked`` hook."""
        if not isinstance(session_id, str) or not belongs_to(subject, session_id):
            return False
        ended = await self._store.revoke_session(subject, session_id)
        if ended:
            await self._revoked(subject, session_id, reason)
        return ended

    async def revoke_others(self, subject: str, current_session_id: str) -> list[str]:
        """End every session of ``subject`` but ``current_session_id``; returns their ids."""
        ended = []
        for session in await self.list_sessions(subject):
            if session.session_id != current_session_id and await self.revoke(
                subject, session.session_id
            ):
                ended.append(session.session_id)
        return ended

    async def _revoked(self, subject: str, session_id: str, why: str) -> None:
        if self._hooks is not None:
            await self._hooks.emit(
                AccountEvent.SESSION_REVOKED,
                subject=subject,
                session_id=session_id,
                data={"reason": why},
            )
