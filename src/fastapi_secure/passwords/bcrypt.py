"""bcrypt through the ``bcrypt`` package: legacy hashes, never truncated passwords."""

from __future__ import annotations

import re
from typing import ClassVar

# Imports are absolute, so this is the bcrypt package, not this module.
import bcrypt

from fastapi_secure.errors import ConfigurationError, PasswordTooLongError

__all__ = ["BcryptScheme"]

_BCRYPT_MIN_ROUNDS = 12
_BCRYPT_MAX_BYTES = 72


class BcryptScheme:
    """bcrypt through the ``bcrypt`` package, ``$2b$`` prefix, cost 12 by default.

    Used to verify legacy hashes (``$2a$``, ``$2b$``, ``$2y$``, as made by
    passlib and most frameworks) and, when listed first, as the current
    scheme. bcrypt reads at most 72 bytes of password: :class:`PasswordHasher`
    never truncates, it refuses longer passwords instead.

    Args:
        rounds: The cost (log2 of the iterations); at least 12 unless
            ``allow_weak_parameters=True``.
        allow_weak_parameters: Accept rounds from 4 to 11. Never in production.
    """

    name = "bcrypt"
    max_password_bytes: int | None = _BCRYPT_MAX_BYTES
    _IDENTS: ClassVar[tuple[str, ...]] = ("$2a$", "$2b$", "$2y$")
    _SHAPE: ClassVar[re.Pattern[str]] = re.compile(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")

    def __init__(self, *, rounds: int = _BCRYPT_MIN_ROUNDS, allow_weak_parameters: bool = False):
        if not isinstance(rounds, int) or not 4 <= rounds <= 31:
            raise ConfigurationError("bcrypt rounds must be an integer from 4 to 31")
        if rounds < _BCRYPT_MIN_ROUNDS and not allow_weak_parameters:
            raise ConfigurationError(f"bcrypt rounds must be at least {_BCRYPT_MIN_ROUNDS}")
        self.rounds = rounds

    def identify(self, hash: str) -> bool:
        """Modular-crypt bcrypt identifiers ``$2a$``, ``$2b$`` and ``$2y$``."""
        return hash.startswith(self._IDENTS)

    def hash(self, secret: bytes) -> str:
        """Hash ``secret`` (at most 72 bytes) with a fresh ``$2b$`` salt."""
        if len(secret) > _BCRYPT_MAX_BYTES:
            raise PasswordTooLongError(_BCRYPT_MAX_BYTES, "bytes")
        return bcrypt.hashpw(secret, bcrypt.gensalt(self.rounds, prefix=b"2b")).decode("ascii")

    def verify(self, secret: bytes, hash: str) -> bool:
        """Check ``secret`` against a bcrypt hash; ValueError when it is malformed."""
        if self._SHAPE.fullmatch(hash) is None:
            raise ValueError("malformed bcrypt hash")
        # bcrypt 5 raises ValueError for over-72-byte passwords and bad salts;
        # PasswordHasher filters the former, so a ValueError here is the hash.
        return bcrypt.checkpw(secret, hash.encode("ascii"))

    def needs_rehash(self, hash: str) -> bool:
        """True for a ``$2a$``/``$2y$`` hash or a cost below the current one."""
        match = self._SHAPE.fullmatch(hash)
        if match is None:
            raise ValueError("malformed bcrypt hash")
        return not hash.startswith("$2b$") or int(match.group(1)) < self.rounds

    def __repr__(self) -> str:
        return f"BcryptScheme(rounds={self.rounds})"
