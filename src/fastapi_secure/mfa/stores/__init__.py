"""Stores of the second-factor blocks: protocols, a memory and a Redis backend, chosen by URI.

The Redis backend is imported from :mod:`fastapi_secure.mfa.stores.redis`
(or made by :func:`mfa_store_from_url`), so importing this package never
imports ``redis``.
"""

from __future__ import annotations

from typing import Any

from fastapi_secure.errors import ConfigurationError
from fastapi_secure.mfa.stores.base import (
    AttemptCounter,
    ChallengeStore,
    MFAStore,
    RecoveryCodeStore,
    UsedCodeStore,
)
from fastapi_secure.mfa.stores.memory import MemoryMFAStore

__all__ = [
    "MFA_STORE_SCHEMES",
    "AttemptCounter",
    "ChallengeStore",
    "MFAStore",
    "MemoryMFAStore",
    "RecoveryCodeStore",
    "UsedCodeStore",
    "mfa_store_from_url",
]

MFA_STORE_SCHEMES = ("memory", "redis", "rediss", "unix", "redis+cluster", "rediss+cluster")
"""The URI schemes :func:`mfa_store_from_url` knows.

For Redis Sentinel, give :class:`~fastapi_secure.mfa.stores.redis.RedisMFAStore`
the client of ``Sentinel.master_for(...)``.
"""


def mfa_store_from_url(url: str, **options: Any) -> MFAStore:
    """A store implementing every MFA store protocol, for ``url``:

    - ``memory://``: :class:`MemoryMFAStore` (one process);
    - ``redis://``, ``rediss://``, ``unix://``, ``redis+cluster://``:
      :meth:`RedisMFAStore.from_url <fastapi_secure.mfa.stores.redis.RedisMFAStore.from_url>`.

    ``options`` go to the backend (``prefix=``, timeouts; ``clock=`` for memory).
    """
    scheme, sep, _ = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in MFA_STORE_SCHEMES:
        known = ", ".join(f"{name}://" for name in MFA_STORE_SCHEMES)
        raise ConfigurationError(f"MFA store URL must start with one of {known}")
    if scheme == "memory":
        return MemoryMFAStore(**options)
    from fastapi_secure.mfa.stores.redis import RedisMFAStore

    return RedisMFAStore.from_url(url, **options)
