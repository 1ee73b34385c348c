"""The :class:`APIKeyStore` protocol and the record it keeps.

A store keeps one :class:`StoredAPIKey` per key: the public record
(:class:`APIKey`) and the digest of the key's secret, never the secret. Every
method is atomic in every backend: a revocation is seen by the next lookup
of any process sharing the store, two concurrent rotations of one key give
exactly one successor, and concurrent ``touch`` calls write the last-used
time at most once per interval.

Backends raise :class:`~fastapi_secure.errors.StoreUnavailableError` (or
:class:`~fastapi_secure.errors.DatabaseUnavailableError`) when they cannot
answer; they never report a key they could not read.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["APIKey", "APIKeyStore", "StoredAPIKey"]


@dataclass(frozen=True)
class APIKey:
    """The public record of an API key: everything but the secret and its digest.

    Times are Unix seconds. A key is usable while it is not ``revoked`` and
    ``expires_at`` (None: never) is in the future. ``rotated_to`` names the key
    that replaced this one; a rotated key keeps working until its (shortened)
    ``expires_at``.
    """

    id: str
    subject: str
    name: str
    scopes: frozenset[str] = frozenset()
    roles: tuple[str, ...] = ()
    created_at: float = 0.0
    expires_at: float | None = None
    last_used_at: float | None = None
    revoked: bool = False
    rotated_to: str | None = None

    def is_expired(self, now: float) -> bool:
        """Whether ``expires_at`` has passed at ``now``."""
        return self.expires_at is not None and now >= self.expires_at

    def is_active(self, now: float) -> bool:
        """Whether the key may be used at ``now``."""
        return not self.revoked and not self.is_expired(now)


@dataclass(frozen=True)
class StoredAPIKey:
    """What a store holds per key: the record and the digest of its secret."""

    record: APIKey
    secret_digest: str = dataclasses.field(repr=False)

    @property
    def id(self) -> str:
        return self.record.id


@runtime_checkable
class APIKeyStore(Protocol):
    """Persistent state of API keys; every method is atomic.

    Key ids come from the manager (well-formed); subjects and names are
    stored as given.
    """

    async def add(self, key: StoredAPIKey) -> bool:
        """Insert ``key``; False (and nothing changed) when its id is taken."""
        ...

    async def get(self, key_id: str) -> StoredAPIKey | None:
        """The key with this id, revoked and expired ones included; None if unknown."""
        ...

    async def list_for(self, subject: str) -> list[StoredAPIKey]:
        """Every key of ``subject``, oldest first."""
        ...

    async def revoke(self, key_id: str, subject: str) -> bool:
        """Mark the key of ``subject`` revoked; False when ``subject`` has no such key."""
        ...

    async def rotate(
        self, key_id: str, subject: str, successor: StoredAPIKey, *, retire_at: float, now: float
    ) -> bool:
        """Replace key ``key_id`` of ``subject`` by ``successor``, in one step.

        Only a key that is active at ``now`` and not yet rotated can be
        rotated: its ``expires_at`` becomes ``retire_at`` (or stays, if
        earlier), its ``rotated_to`` the successor's id, and the successor is
        inserted. Returns False and changes nothing otherwise (also when the
        successor's id is taken).
        """
        ...

    async def touch(self, key_id: str, *, now: float, min_interval: float) -> bool:
        """Set ``last_used_at`` to ``now`` unless it is less than ``min_interval`` old.

        Returns whether it was written.
        """
        ...

    async def aclose(self) -> None:
        """Release connections owned by the store."""
        ...
