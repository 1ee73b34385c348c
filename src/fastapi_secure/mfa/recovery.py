"""Recovery codes: a set of single-use codes, shown once, stored only as digests.

```python
from fastapi_secure.mfa import RecoveryCodes
from fastapi_secure.mfa.stores import MemoryMFAStore

codes = RecoveryCodes(MemoryMFAStore())
# shown = await codes.generate("user-42")   # 10 codes like "7KQX-M2PD-9RTA", once
# await codes.verify("user-42", shown[0])   # accepted once, refused ever after
```

Each code is 12 symbols of Crockford's base32 (60 bits from ``secrets``),
printed in three groups of four. Input is forgiving the way Crockford
intends: case, spaces and dashes are ignored, ``O`` reads as ``0`` and
``I``/``L`` as ``1``.

**Digest.** The store keeps HMAC-SHA256 of (account id, code), keyed by an
optional server-side ``pepper``. The codes are uniformly random with 60 bits
each, so a slow password hash (argon2) buys nothing: guessing one code
offline from a leaked digest costs about 2^59 HMAC computations *per
account* (the account id is in the message, so one digest table cannot
serve two accounts). With a ``pepper`` kept out of the database, a database
leak alone reveals nothing testable at all.

Consuming a code is one atomic store operation (``SREM`` in Redis), so a
code is accepted once even when it is presented many times at once;
generating a new set replaces the old one atomically.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence

from pydantic import SecretStr

from fastapi_secure.errors import ConfigurationError
from fastapi_secure.mfa.attempts import AttemptLimit
from fastapi_secure.mfa.errors import InvalidOTPError
from fastapi_secure.mfa.stores.base import RecoveryCodeStore, store_key

__all__ = ["RecoveryCodes"]

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base32: no I, L, O, U
_READ_AS = str.maketrans({"O": "0", "I": "1", "L": "1"})
_BITS_PER_SYMBOL = 5
_MIN_BITS = 50
_MAX_INPUT = 128
_DEFAULT_PEPPER = b"fastapi-secure recovery codes v1"


class RecoveryCodes:
    """Generate, check and count an account's recovery codes.

    ``count`` codes per set (10), each ``groups`` x ``group_size`` symbols
    (3 x 4 = 60 bits; at least 50 bits are required). ``pepper``: an optional
    secret key for the digests (from settings). ``attempts``: share the TOTP
    factor's :class:`~fastapi_secure.mfa.AttemptLimit` so guesses count together.
    """

    def __init__(
        self,
        store: RecoveryCodeStore,
        *,
        count: int = 10,
        groups: int = 3,
        group_size: int = 4,
        pepper: SecretStr | bytes | None = None,
        attempts: AttemptLimit | None = None,
    ) -> None:
        if not (isinstance(count, int) and 1 <= count <= 100):
            raise ConfigurationError("recovery code count must be an integer from 1 to 100")
        if not (isinstance(groups, int) and isinstance(group_size, int)):
            raise ConfigurationError("groups and group_size must be integers")
        if groups < 1 or group_size < 1 or groups * group_size * _BITS_PER_SYMBOL < _MIN_BITS:
            raise ConfigurationError(
                f"recovery codes need at least {_MIN_BITS} bits "
                f"(groups * group_size * {_BITS_PER_SYMBOL})"
            )
        if isinstance(pepper, SecretStr):
            pepper = pepper.get_secret_value().encode("utf-8")
        if pepper is not None and len(pepper) < 16:
            raise ConfigurationError("a recovery-code pepper must be at least 16 bytes")
        self._store = store
        self.count = count
        self.groups = groups
        self.group_size = group_size
        self._length = groups * group_size
        self._pepper = pepper or _DEFAULT_PEPPER
        self._attempts = attempts
        # A store keyed by account id (an AuthenticatorStore: rows per user) gets the
        # id itself; a key-value store (MFAStore) gets an opaque digest of it.
        self._keyed_by_user_id = bool(getattr(store, "keyed_by_user_id", False))

    def __repr__(self) -> str:
        return (
            f"RecoveryCodes(count={self.count}, bits={self._length * _BITS_PER_SYMBOL}, "
            f"peppered={self._pepper is not _DEFAULT_PEPPER})"
        )

    @property
    def bits(self) -> int:
        """Entropy of one code."""
        return self._length * _BITS_PER_SYMBOL

    def _new_code(self) -> str:
        symbols = "".join(secrets.choice(ALPHABET) for _ in range(self._length))
        size = self.group_size
        return "-".join(symbols[i : i + size] for i in range(0, self._length, size))

    def _normalize(self, code: object) -> str | None:
        if not isinstance(code, str) or len(code) > _MAX_INPUT:
            return None
        cleaned = "".join(code.split()).replace("-", "").upper().translate(_READ_AS)
        if len(cleaned) != self._length or any(c not in ALPHABET for c in cleaned):
            return None
        return cleaned

    def digest(self, user_id: str, code: str) -> str | None:
        """The stored form of ``code`` for ``user_id``; None when ``code`` is malformed."""
        cleaned = self._normalize(code)
        if cleaned is None:
            return None
        message = f"{user_id}\x00{cleaned}".encode("utf-8", "surrogatepass")
        return hmac.new(self._pepper, message, hashlib.sha256).hexdigest()

    def _user_key(self, user_id: str) -> str:
        return user_id if self._keyed_by_user_id else store_key("recovery", user_id)

    async def generate(self, user_id: str) -> list[str]:
        """A new set for ``user_id``; the old set stops working at once.

        Returns the codes in clear: show them once, never store them.
        """
        codes: list[str] = []
        while len(codes) < self.count:
            code = self._new_code()
            if code not in codes:
                codes.append(code)
        digests: Sequence[str] = [self.digest(user_id, code) or "" for code in codes]
        await self._store.replace(self._user_key(user_id), digests)
        return codes

    async def verify(self, user_id: str, code: str) -> int:
        """Consume ``code``; returns how many codes remain.

        Raises :class:`~fastapi_secure.mfa.errors.InvalidOTPError` for a
        wrong, used, malformed or voided code (one generic message), and
        :class:`~fastapi_secure.mfa.errors.TooManyAttemptsError` over the limit.
        """
        if self._attempts is not None:
            await self._attempts.check(user_id)
        digest = self.digest(user_id, code)
        if digest is None or not await self._store.consume(self._user_key(user_id), digest):
            if self._attempts is not None:
                await self._attempts.failed(user_id, "recovery_code")
            raise InvalidOTPError(
                reason="malformed recovery code" if digest is None else "unknown or used code"
            )
        if self._attempts is not None:
            await self._attempts.succeeded(user_id)
        return await self.remaining(user_id)

    async def remaining(self, user_id: str) -> int:
        """How many unused codes ``user_id`` has (0 when none were generated)."""
        return await self._store.remaining(self._user_key(user_id))
