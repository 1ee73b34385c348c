"""Stores of the second-factor blocks: protocols, a memory and a Redis backend.

The Redis backend is imported from :mod:`fastapi_secure.mfa.stores.redis`
(it needs the ``redis`` extra).
"""

from fastapi_secure.mfa.stores.base import (
    AttemptCounter,
    ChallengeStore,
    RecoveryCodeStore,
    UsedCodeStore,
)
from fastapi_secure.mfa.stores.memory import MemoryMFAStore

__all__ = [
    "AttemptCounter",
    "ChallengeStore",
    "MemoryMFAStore",
    "RecoveryCodeStore",
    "UsedCodeStore",
]
