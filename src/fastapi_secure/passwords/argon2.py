"""argon2id through argon2-cffi, with the OWASP Password Storage Cheat Sheet floor."""

from __future__ import annotations

# Imports are absolute, so this is the argon2-cffi package, not this module.
import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from fastapi_secure.errors import ConfigurationError

__all__ = ["Argon2Scheme"]

# OWASP Password Storage Cheat Sheet: argon2id configurations of equal strength,
# as (memory KiB, iterations), each with parallelism 1. Meeting any one of them
# is at or above the floor.
_OWASP_ARGON2ID_FLOOR: tuple[tuple[int, int], ...] = (
    (47104, 1),
    (19456, 2),
    (12288, 3),
    (9216, 4),
    (7168, 5),
)
_MIN_HASH_LEN = 16
_MIN_SALT_LEN = 16


class Argon2Scheme:
    """argon2id through argon2-cffi.

    The defaults are argon2-cffi's RFC 9106 low-memory profile (t=3,
    m=65536 KiB, p=4). Parameters below the OWASP floor (one of m=46 MiB t=1,
    m=19 MiB t=2, m=12 MiB t=3, m=9 MiB t=4, m=7 MiB t=5), or a salt or hash
    shorter than 16 bytes, raise :class:`~fastapi_secure.errors.ConfigurationError`
    unless ``allow_weak_parameters=True``, which exists for test suites only.

    argon2i and argon2d hashes still verify, and are reported as needing a
    rehash.

    Args:
        time_cost: Iterations (t).
        memory_cost: Memory in KiB (m).
        parallelism: Lanes (p).
        hash_len: Length of the raw hash in bytes.
        salt_len: Length of the random salt in bytes.
        allow_weak_parameters: Skip the OWASP floor check. Never in production.
    """

    name = "argon2id"
    max_password_bytes: int | None = None

    def __init__(
        self,
        *,
        time_cost: int = argon2.profiles.RFC_9106_LOW_MEMORY.time_cost,
        memory_cost: int = argon2.profiles.RFC_9106_LOW_MEMORY.memory_cost,
        parallelism: int = argon2.profiles.RFC_9106_LOW_MEMORY.parallelism,
        hash_len: int = argon2.profiles.RFC_9106_LOW_MEMORY.hash_len,
        salt_len: int = argon2.profiles.RFC_9106_LOW_MEMORY.salt_len,
        allow_weak_parameters: bool = False,
    ) -> None:
        for label, value in (
            ("time_cost", time_cost),
            ("memory_cost", memory_cost),
            ("parallelism", parallelism),
        ):
            if not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"argon2 {label} must be a positive integer")
        if memory_cost < 8 * parallelism:
            raise ConfigurationError("argon2 memory_cost must be at least 8 KiB per lane")
        if hash_len < 4 or salt_len < 8:
            raise ConfigurationError("argon2 needs hash_len >= 4 and salt_len >= 8")
        if not allow_weak_parameters:
            if not any(memory_cost >= m and time_cost >= t for m, t in _OWASP_ARGON2ID_FLOOR):
                raise ConfigurationError(
                    f"argon2id t={time_cost}, m={memory_cost} KiB is below the OWASP minimum "
                    "(e.g. m=19456 KiB with t=2); use PasswordHasher.owasp_minimum() or stronger"
                )
            if hash_len < _MIN_HASH_LEN or salt_len < _MIN_SALT_LEN:
                raise ConfigurationError(
                    f"argon2 hash_len and salt_len must be at least {_MIN_HASH_LEN} bytes"
                )
        self.parameters = argon2.Parameters(
            type=argon2.Type.ID,
            version=argon2.low_level.ARGON2_VERSION,
            salt_len=salt_len,
            hash_len=hash_len,
            time_cost=time_cost,
            memory_cost=memory_cost,
            parallelism=parallelism,
        )
        self._hasher = argon2.PasswordHasher.from_parameters(self.parameters)

    @classmethod
    def rfc9106_low_memory(cls) -> Argon2Scheme:
        """RFC 9106's second recommended option: t=3, m=64 MiB, p=4 (the default)."""
        return cls()

    @classmethod
    def owasp_minimum(cls) -> Argon2Scheme:
        """The OWASP Password Storage Cheat Sheet minimum: t=2, m=19 MiB, p=1."""
        return cls(time_cost=2, memory_cost=19456, parallelism=1)

    def identify(self, hash: str) -> bool:
        """argon2id, argon2i and argon2d hashes all start with ``$argon2``."""
        return hash.startswith("$argon2")

    def hash(self, secret: bytes) -> str:
        """Hash ``secret`` with argon2id and a fresh random salt."""
        return self._hasher.hash(secret)

    def verify(self, secret: bytes, hash: str) -> bool:
        """Check ``secret`` against an argon2 hash; ValueError when it is malformed."""
        try:
            return self._hasher.verify(hash, secret)
        except VerifyMismatchError:
            return False
        except InvalidHashError as exc:
            raise ValueError("malformed argon2 hash") from exc
        except VerificationError as exc:
            # argon2's "Decoding failed" and friends: the hash is damaged.
            raise ValueError("argon2 could not decode the hash") from exc

    def needs_rehash(self, hash: str) -> bool:
        """True when ``hash`` is not argon2id or any cost is below the current one.

        Parallelism is not compared: it changes how the work is split into
        lanes, not how much work an attacker must do. A stronger stored hash
        is kept. Raises ValueError when ``hash`` is malformed.
        """
        try:
            stored = argon2.extract_parameters(hash)
        except InvalidHashError as exc:
            raise ValueError("malformed argon2 hash") from exc
        current = self.parameters
        return (
            stored.type is not argon2.Type.ID
            or stored.version < current.version
            or stored.time_cost < current.time_cost
            or stored.memory_cost < current.memory_cost
            or stored.hash_len < current.hash_len
            or stored.salt_len < current.salt_len
        )

    def __repr__(self) -> str:
        p = self.parameters
        return (
            f"Argon2Scheme(time_cost={p.time_cost}, memory_cost={p.memory_cost}, "
            f"parallelism={p.parallelism})"
        )
