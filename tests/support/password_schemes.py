"""Cheap password schemes and legacy hashes for the password tests.

Everything here is deliberately weak (argon2id t=1 m=8 KiB, bcrypt cost 4) so
the suite stays fast; the real profiles are tested on their own.
"""

from __future__ import annotations

import threading
from typing import Any

import bcrypt

from fastapi_secure.passwords import Argon2Scheme, BcryptScheme, PasswordHasher

FAST = PasswordHasher.insecure_fast_for_tests()
CHEAP_ARGON2 = {"time_cost": 1, "memory_cost": 8, "parallelism": 1, "allow_weak_parameters": True}


def cheap_argon2(**overrides: int) -> Argon2Scheme:
    options: dict[str, Any] = {**CHEAP_ARGON2, **overrides}
    return Argon2Scheme(**options)


def cheap_bcrypt(rounds: int = 4) -> BcryptScheme:
    return BcryptScheme(rounds=rounds, allow_weak_parameters=True)


def legacy_bcrypt_hash(password: bytes, rounds: int = 4, prefix: bytes = b"2b") -> str:
    """A hash as passlib, PHP or a hand-rolled bcrypt integration would have stored it."""
    if prefix == b"2y":  # PHP's name for the same algorithm as 2b
        return "$2y$" + legacy_bcrypt_hash(password, rounds)[4:]
    return bcrypt.hashpw(password, bcrypt.gensalt(rounds, prefix=prefix)).decode()


class RecordingScheme:
    """A real cheap argon2id scheme that records what it is asked to do."""

    name = "argon2id"
    max_password_bytes: int | None = None

    def __init__(self, inner: Argon2Scheme | None = None) -> None:
        self.inner = inner or cheap_argon2()
        self.hashed: list[bytes] = []
        self.verified: list[tuple[bytes, str]] = []
        self._lock = threading.Lock()

    def identify(self, hash: str) -> bool:
        return self.inner.identify(hash)

    def hash(self, secret: bytes) -> str:
        with self._lock:
            self.hashed.append(secret)
        return self.inner.hash(secret)

    def verify(self, secret: bytes, hash: str) -> bool:
        with self._lock:
            self.verified.append((secret, hash))
        return self.inner.verify(secret, hash)

    def needs_rehash(self, hash: str) -> bool:
        return self.inner.needs_rehash(hash)
