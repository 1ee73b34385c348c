"""Store protocols of the second-factor blocks.

Each protocol is small and names one concern; :class:`~.memory.MemoryMFAStore`
(one process) and :class:`~.redis.RedisMFAStore` (many processes and hosts)
each implement all four, and one contract suite runs over both.

- :class:`UsedCodeStore`: the TOTP replay guard (claim a key once within a TTL).
- :class:`AttemptCounter`: failed attempts per account within a window.
- :class:`ChallengeStore`: WebAuthn challenges, single use, with a TTL.
- :class:`RecoveryCodeStore`: recovery-code digests, each consumed once.

Keys given to a store are opaque strings made by the blocks (digests of the
account and the purpose), never a secret: the stores hold digests and
challenge metadata only. Every operation that must be atomic is atomic in
each backend (one Lua script or one atomic command in Redis).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

__all__ = [
    "AttemptCounter",
    "ChallengeStore",
    "MFAStore",
    "RecoveryCodeStore",
    "UsedCodeStore",
    "store_key",
]


@runtime_checkable
class UsedCodeStore(Protocol):
    """Remembers which one-time codes were used, so each is accepted once."""

    async def claim(self, key: str, ttl: float) -> bool:
        """Atomically mark ``key`` used for ``ttl`` seconds.

        True for exactly one caller while the mark lives, however many race.
        """
        ...


@runtime_checkable
class AttemptCounter(Protocol):
    """Counts failures per key in a fixed window that starts at the first failure."""

    async def increment(self, key: str, window: float) -> tuple[int, float]:
        """Add one failure; return the count in the window and seconds until it ends."""
        ...

    async def failures(self, key: str) -> tuple[int, float]:
        """The current count and seconds until the window ends (``(0, 0.0)`` if none)."""
        ...

    async def reset(self, key: str) -> None:
        """Forget the failures of ``key`` (after a success)."""
        ...


@runtime_checkable
class ChallengeStore(Protocol):
    """Keeps ceremony challenges until they are used once or expire."""

    async def put(self, key: str, value: str, ttl: float) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds (overwrites)."""
        ...

    async def take(self, key: str) -> str | None:
        """Atomically return and delete ``key``'s value; None when absent or expired.

        Of N concurrent takes of one key, exactly one gets the value.
        """
        ...


@runtime_checkable
class RecoveryCodeStore(Protocol):
    """Holds the digests of each account's current recovery codes."""

    async def replace(self, user_key: str, digests: Sequence[str]) -> None:
        """Atomically make ``digests`` the account's only codes (voids the old set)."""
        ...

    async def consume(self, user_key: str, digest: str) -> bool:
        """Atomically remove ``digest``; True only for the one caller that removed it."""
        ...

    async def remaining(self, user_key: str) -> int:
        """How many unused codes the account has."""
        ...


@runtime_checkable
class MFAStore(UsedCodeStore, AttemptCounter, ChallengeStore, RecoveryCodeStore, Protocol):
    """All four protocols in one backend, as both shipped backends are."""

    async def aclose(self) -> None:
        """Release the backend's connections."""
        ...


def store_key(purpose: str, *parts: str) -> str:
    """An opaque store key for ``purpose`` and ``parts`` (account ids, steps, challenges).

    A digest, so a client-chosen value (an account name, a challenge) cannot
    reach into another key's space, and a key leaks nothing it was made from.
    """
    # Length-prefixed, so ("a\x00b",) and ("a", "b") cannot make the same key.
    material = "".join(f"{len(part)}:{part}" for part in (purpose, *parts))
    material_bytes = material.encode("utf-8", "surrogatepass")
    return f"{purpose}:{hashlib.sha256(material_bytes).hexdigest()[:40]}"
