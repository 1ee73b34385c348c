"""In-process API key store: the embedded default for a single process."""

from __future__ import annotations

import dataclasses
import threading

from fastapi_secure.apikeys.stores.base import StoredAPIKey

__all__ = ["MemoryAPIKeyStore"]


class MemoryAPIKeyStore:
    """An :class:`~fastapi_secure.apikeys.stores.base.APIKeyStore` kept in a dict.

    One process only: several workers need the Redis or SQLAlchemy store.
    Every operation runs under one lock without awaiting, so it is atomic for
    coroutines and threads alike.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, StoredAPIKey] = {}

    def size(self) -> int:
        """Number of keys held, revoked and expired ones included."""
        with self._lock:
            return len(self._keys)

    async def add(self, key: StoredAPIKey) -> bool:
        with self._lock:
            if key.id in self._keys:
                return False
            self._keys[key.id] = key
            return True

    async def get(self, key_id: str) -> StoredAPIKey | None:
        with self._lock:
            return self._keys.get(key_id)

    async def list_for(self, subject: str) -> list[StoredAPIKey]:
        with self._lock:
            found = [key for key in self._keys.values() if key.record.subject == subject]
        return sorted(found, key=lambda key: (key.record.created_at, key.id))

    def _replace(self, key: StoredAPIKey, **changes: object) -> None:
        record = dataclasses.replace(key.record, **changes)  # type: ignore[arg-type]
        self._keys[key.id] = dataclasses.replace(key, record=record)

    async def revoke(self, key_id: str, subject: str) -> bool:
        with self._lock:
            key = self._keys.get(key_id)
            if key is None or key.record.subject != subject:
                return False
            self._replace(key, revoked=True)
            return True

    async def rotate(
        self, key_id: str, subject: str, successor: StoredAPIKey, *, retire_at: float, now: float
    ) -> bool:
        with self._lock:
            key = self._keys.get(key_id)
            if (
                key is None
                or key.record.subject != subject
                or not key.record.is_active(now)
                or key.record.rotated_to is not None
                or successor.id in self._keys
            ):
                return False
            expires_at = key.record.expires_at
            if expires_at is None or retire_at < expires_at:
                expires_at = retire_at
            self._replace(key, expires_at=expires_at, rotated_to=successor.id)
            self._keys[successor.id] = successor
            return True

    async def touch(self, key_id: str, *, now: float, min_interval: float) -> bool:
        with self._lock:
            key = self._keys.get(key_id)
            if key is None:
                return False
            last = key.record.last_used_at
            if last is not None and now - last < min_interval:
                return False
            self._replace(key, last_used_at=now)
            return True

    async def aclose(self) -> None:
        """Nothing to release."""
