"""In-process token store: the embedded default for a single process."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from fastapi_secure.clock import Clock, system_clock
from fastapi_secure.errors import ConfigurationError
from fastapi_secure.tokens.stores.base import (
    SessionInfo,
    TokenState,
    belongs_to,
    clean_user_agent,
    digest,
)

__all__ = ["MemoryTokenStore"]


@dataclass
class _Family:
    subject: str
    current: str
    previous: str
    rotated_at: float
    generation: int
    revoked: bool
    expires_at: float


@dataclass
class _Session:
    family_id: str
    created_at: float
    last_used_at: float
    user_agent: str | None
    client_address: str | None
    expires_at: float


@dataclass
class _Subject:
    generation: int
    expires_at: float


class MemoryTokenStore:
    """A :class:`~fastapi_secure.tokens.stores.TokenStore` kept in a dict.

    State lives in this process only: several workers or hosts need
    :class:`~fastapi_secure.tokens.stores.redis.RedisTokenStore`. Every
    operation runs under one lock without awaiting, so it is atomic for
    coroutines and threads alike. Expired entries are ignored when read and
    swept at most every ``prune_interval`` seconds of ``clock`` time.
    """

    def __init__(self, *, clock: Clock = system_clock, prune_interval: float = 60.0) -> None:
        if not prune_interval > 0:
            raise ConfigurationError("prune_interval must be a positive number of seconds")
        self._clock = clock
        self._prune_interval = float(prune_interval)
        self._next_prune = clock() + self._prune_interval
        self._lock = threading.Lock()
        self._families: dict[str, _Family] = {}
        self._subjects: dict[str, _Subject] = {}
        self._denied: dict[str, float] = {}
        self._sessions: dict[str, dict[str, _Session]] = {}

    def size(self) -> int:
        """Number of entries, live or expired but not yet swept (for tests and metrics).

        Deliberately not ``__len__``: an empty store must not be falsy.
        """
        with self._lock:
            return len(self._families) + len(self._subjects) + len(self._denied)

    def prune(self) -> int:
        """Drop every expired entry now; returns how many were dropped."""
        with self._lock:
            return self._prune(self._clock())

    def _prune(self, now: float) -> int:
        self._next_prune = now + self._prune_interval
        dropped = 0
        for table in (self._families, self._subjects):
            expired = [key for key, entry in table.items() if entry.expires_at <= now]
            for key in expired:
                del table[key]
            dropped += len(expired)
        expired = [key for key, expires_at in self._denied.items() if expires_at <= now]
        for key in expired:
            del self._denied[key]
        return dropped + len(expired) + self._prune_sessions(now)

    def _now(self) -> float:
        now = self._clock()
        if now >= self._next_prune:
            self._prune(now)
        return now

    def _generation(self, subject_key: str, now: float) -> int:
        entry = self._subjects.get(subject_key)
        if entry is None or entry.expires_at <= now:
            return 0
        return entry.generation

    def _family(
        self, subject: str, family_id: str, now: float
    ) -> tuple[_Family | None, TokenState]:
        if not belongs_to(subject, family_id):
            return None, TokenState.UNKNOWN
        family = self._families.get(digest("sid", family_id))
        subject_key = digest("sub", subject)
        if family is None or family.expires_at <= now or family.subject != subject_key:
            return None, TokenState.UNKNOWN
        if family.revoked:
            return family, TokenState.FAMILY_REVOKED
        if family.generation < self._generation(subject_key, now):
            return family, TokenState.SUBJECT_REVOKED
        return family, TokenState.ACTIVE

    def _outlive(self, subject_key: str, expires_at: float) -> None:
        # A revocation generation must outlive every family that recorded it,
        # or a later revoke_subject would restart at 1 and miss them.
        entry = self._subjects.get(subject_key)
        if entry is not None and entry.expires_at < expires_at:
            entry.expires_at = expires_at

    async def create_family(
        self, subject: str, family_id: str, *, refresh_jti: str, ttl: float
    ) -> None:
        if not belongs_to(subject, family_id):
            raise ValueError("family_id was not made for this subject (use new_family_id)")
        with self._lock:
            now = self._now()
            subject_key = digest("sub", subject)
            self._families[digest("sid", family_id)] = _Family(
                subject=subject_key,
                current=digest("jti", refresh_jti),
                previous="",
                rotated_at=0.0,
                generation=self._generation(subject_key, now),
                revoked=False,
                expires_at=now + ttl,
            )
            self._outlive(subject_key, now + ttl)

    async def check_access(self, subject: str, family_id: str, *, jti: str) -> TokenState:
        with self._lock:
            now = self._now()
            _, state = self._family(subject, family_id, now)
            if state is not TokenState.ACTIVE:
                return state
            denied_until = self._denied.get(digest("jti", family_id + "\0" + jti))
            if denied_until is not None and denied_until > now:
                return TokenState.TOKEN_REVOKED
            return TokenState.ACTIVE

    async def check_refresh(self, subject: str, family_id: str, *, jti: str) -> TokenState:
        with self._lock:
            family, state = self._family(subject, family_id, self._now())
            if family is None or state is not TokenState.ACTIVE:
                return state
            if family.current != digest("jti", jti):
                return TokenState.CONSUMED
            return TokenState.ACTIVE

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
        with self._lock:
            store_now = self._now()
            family, state = self._family(subject, family_id, store_now)
            if family is None or state is not TokenState.ACTIVE:
                return state
            presented = digest("jti", jti)
            successor = digest("jti", successor_jti)
            if family.current == presented:
                family.previous = presented
                family.current = successor
                family.rotated_at = now
                family.expires_at = store_now + ttl
                self._outlive(family.subject, family.expires_at)
                return TokenState.ROTATED
            if (
                grace > 0
                and family.previous == presented
                and family.current == successor
                and now - family.rotated_at <= grace
            ):
                return TokenState.GRACE
            family.revoked = True
            return TokenState.REUSED

    async def deny_token(self, subject: str, family_id: str, *, jti: str, ttl: float) -> None:
        with self._lock:
            key = digest("jti", family_id + "\0" + jti)
            expires_at = self._now() + ttl
            self._denied[key] = max(expires_at, self._denied.get(key, expires_at))

    async def revoke_family(self, family_id: str) -> None:
        with self._lock:
            now = self._now()
            family = self._families.get(digest("sid", family_id))
            if family is not None and family.expires_at > now:
                family.revoked = True

    async def revoke_subject(self, subject: str, *, ttl: float) -> None:
        with self._lock:
            now = self._now()
            subject_key = digest("sub", subject)
            entry = self._subjects.get(subject_key)
            if entry is None or entry.expires_at <= now:
                self._subjects[subject_key] = _Subject(generation=1, expires_at=now + ttl)
            else:
                entry.generation += 1
                entry.expires_at = max(entry.expires_at, now + ttl)

    async def aclose(self) -> None:
        """Nothing to release; present for the protocol."""

    # -- sessions per device (SessionStore) ------------------------------------

    def _prune_sessions(self, now: float) -> int:
        dropped = 0
        for subject_key in list(self._sessions):
            sessions = self._sessions[subject_key]
            for family_id in [f for f, s in sessions.items() if s.expires_at <= now]:
                del sessions[family_id]
                dropped += 1
            if not sessions:
                del self._sessions[subject_key]
        return dropped

    def _live_sessions(self, subject: str, now: float) -> dict[str, _Session]:
        sessions = self._sessions.get(digest("sub", subject), {})
        for family_id in list(sessions):
            _, state = self._family(subject, family_id, now)
            if state is not TokenState.ACTIVE or sessions[family_id].expires_at <= now:
                del sessions[family_id]
        return sessions

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
        if not belongs_to(subject, family_id):
            raise ValueError("family_id was not made for this subject (use new_family_id)")
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        with self._lock:
            store_now = self._now()
            sessions = self._sessions.setdefault(digest("sub", subject), {})
            sessions[family_id] = _Session(
                family_id=family_id,
                created_at=now,
                last_used_at=now,
                user_agent=clean_user_agent(user_agent),
                client_address=client_address,
                expires_at=store_now + ttl,
            )
            live = self._live_sessions(subject, store_now)
            excess = len(live) - max_sessions
            if excess <= 0:
                return []
            oldest = sorted(live.values(), key=lambda s: s.created_at)[:excess]
            for session in oldest:
                family = self._families.get(digest("sid", session.family_id))
                if family is not None:
                    family.revoked = True
                del live[session.family_id]
            return [session.family_id for session in oldest]

    async def touch_session(self, subject: str, family_id: str, *, now: float, ttl: float) -> None:
        with self._lock:
            store_now = self._now()
            session = self._sessions.get(digest("sub", subject), {}).get(family_id)
            if session is not None and session.expires_at > store_now:
                session.last_used_at = max(session.last_used_at, now)
                session.expires_at = max(session.expires_at, store_now + ttl)

    async def list_sessions(self, subject: str) -> list[SessionInfo]:
        with self._lock:
            live = self._live_sessions(subject, self._now())
            return [
                SessionInfo(
                    session_id=s.family_id,
                    created_at=s.created_at,
                    last_used_at=s.last_used_at,
                    user_agent=s.user_agent,
                    client_address=s.client_address,
                )
                for s in sorted(live.values(), key=lambda s: s.created_at, reverse=True)
            ]

    async def revoke_session(self, subject: str, family_id: str) -> bool:
        if not belongs_to(subject, family_id):
            return False
        with self._lock:
            now = self._now()
            live = self._live_sessions(subject, now)
            family, _ = self._family(subject, family_id, now)
            if family is not None:
                family.revoked = True
            return live.pop(family_id, None) is not None
