"""What every password scheme implements, and the bounds shared by the hasher and the policy."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["NIST_MIN_MAX_LENGTH", "PasswordScheme"]

NIST_MIN_MAX_LENGTH = 64
"""NIST SP 800-63B-4: verifiers should accept passwords of at least 64 characters."""


@runtime_checkable
class PasswordScheme(Protocol):
    """What :class:`PasswordHasher` needs from a hashing scheme.

    Implementations take the password as bytes (already normalized and
    encoded) and the stored hash as text.
    """

    name: str
    """Short name used in logs and reprs."""

    max_password_bytes: int | None
    """Longest password this scheme can hash without truncating, or None."""

    def identify(self, hash: str) -> bool:
        """Whether ``hash`` looks like this scheme's output (prefix check only)."""
        ...

    def hash(self, secret: bytes) -> str:
        """Hash ``secret`` with a fresh salt."""
        ...

    def verify(self, secret: bytes, hash: str) -> bool:
        """True on a match, False on a mismatch; raise ValueError for a malformed hash."""
        ...

    def needs_rehash(self, hash: str) -> bool:
        """Whether ``hash`` (of this scheme) is weaker than what :meth:`hash` makes now."""
        ...
