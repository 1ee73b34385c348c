"""PasswordHasher: hash with the current scheme, verify with any, upgrade at login."""

from __future__ import annotations

import logging
import os
import secrets
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import anyio
import anyio.to_thread

from fastapi_secure.errors import ConfigurationError, PasswordTooLongError
from fastapi_secure.passwords.argon2 import Argon2Scheme
from fastapi_secure.passwords.base import NIST_MIN_MAX_LENGTH, PasswordScheme
from fastapi_secure.passwords.bcrypt import BcryptScheme

if TYPE_CHECKING:
    from fastapi_secure.settings import SecuritySettings

__all__ = ["DEFAULT_MAX_LENGTH", "Normalization", "PasswordHasher"]

logger = logging.getLogger(__name__)

Normalization = Literal["NFC", "NFD", "NFKC", "NFKD"]
_NORMALIZATIONS: frozenset[str] = frozenset({"NFC", "NFD", "NFKC", "NFKD"})

DEFAULT_MAX_LENGTH = 1024
"""Longest password, in characters, that :class:`PasswordHasher` accepts by default."""


def _encode(password: str) -> bytes:
    # "surrogatepass" so a lone surrogate (valid in JSON, invalid in UTF-8)
    # hashes deterministically instead of raising UnicodeEncodeError.
    return password.encode("utf-8", "surrogatepass")


@dataclass(frozen=True)
class _Outcome:
    valid: bool
    needs_update: bool = False


def _default_max_concurrency() -> int:
    # One core stays free for the event loop: on 2 cores, two concurrent 64 MiB
    # hashes stalled the loop by ~17 ms against ~9 ms with one (benchmarks/passwords.py).
    return max(1, min(4, (os.cpu_count() or 1) - 1))


class PasswordHasher:
    """Hash and verify passwords; upgrade old hashes at login.

    The first scheme hashes; every scheme verifies. The default is argon2id
    with the RFC 9106 low-memory profile, plus bcrypt for legacy hashes.

    Before hashing, a password is checked against ``max_length`` (characters)
    and, when the current scheme is bcrypt, against 72 UTF-8 bytes:
    :class:`~fastapi_secure.errors.PasswordTooLongError` instead of silent
    truncation. It is then Unicode-normalized (NFKC by default, as NIST SP
    800-63B-4 recommends) so the same password typed on different keyboards
    gives the same hash.

    ``verify`` never raises for bad input: a wrong password, a password over
    the bounds, a malformed, truncated or unknown hash all give False.

    Args:
        schemes: Hashing schemes, current first. Default:
            ``[Argon2Scheme(), BcryptScheme()]``.
        normalize: Unicode normalization form applied before hashing, or None.
        max_length: Longest accepted password in characters (at least 64).
        max_concurrency: How many hashes the async twins run at once; default
            ``min(4, os.cpu_count() - 1)``, at least 1. Each argon2 hash holds its memory
            cost (64 MiB by default) while it runs.
        verify_unnormalized: When the normalized password does not match and
            normalization changed it, also try the password as typed, for
            hashes made before normalization was applied (passlib, pwdlib,
            hand-rolled bcrypt). A match that way is reported as needing an
            update. Set False once old hashes are migrated.

    Raises:
        ConfigurationError: No schemes, an unknown normalization form, or
            bounds that cannot work.
    """

    def __init__(
        self,
        schemes: Sequence[PasswordScheme] | None = None,
        *,
        normalize: Normalization | None = "NFKC",
        max_length: int = DEFAULT_MAX_LENGTH,
        max_concurrency: int | None = None,
        verify_unnormalized: bool = True,
    ) -> None:
        chosen: list[PasswordScheme] = (
            list(schemes) if schemes is not None else [Argon2Scheme(), BcryptScheme()]
        )
        if not chosen:
            raise ConfigurationError("PasswordHasher needs at least one scheme")
        for scheme in chosen:
            if not isinstance(scheme, PasswordScheme):
                raise ConfigurationError(f"{scheme!r} does not implement PasswordScheme")
        if normalize is not None and normalize not in _NORMALIZATIONS:
            raise ConfigurationError(f"normalize must be one of {sorted(_NORMALIZATIONS)} or None")
        if not isinstance(max_length, int) or max_length < NIST_MIN_MAX_LENGTH:
            raise ConfigurationError(
                f"max_length must be at least {NIST_MIN_MAX_LENGTH} characters (NIST SP 800-63B)"
            )
        if max_concurrency is None:
            max_concurrency = _default_max_concurrency()
        if not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ConfigurationError("max_concurrency must be a positive integer")
        self.schemes: tuple[PasswordScheme, ...] = tuple(chosen)
        self.normalize = normalize
        self.max_length = max_length
        self.max_concurrency = max_concurrency
        self.verify_unnormalized = verify_unnormalized
        self._limiter = anyio.CapacityLimiter(max_concurrency)
        self._dummy_lock = threading.Lock()
        self._dummy_hash: str | None = None

    # -- constructors -------------------------------------------------------

    @classmethod
    def recommended(cls, **options: Any) -> PasswordHasher:
        """argon2id, RFC 9106 low-memory profile (t=3, m=64 MiB, p=4); bcrypt verifies legacy.

        Keyword arguments go to the constructor (``max_concurrency=...``).
        """
        return cls([Argon2Scheme.rfc9106_low_memory(), BcryptScheme()], **options)

    @classmethod
    def owasp_minimum(cls, **options: Any) -> PasswordHasher:
        """argon2id, OWASP minimum (t=2, m=19 MiB, p=1); bcrypt verifies legacy.

        For hosts short on memory. Keyword arguments go to the constructor.
        """
        return cls([Argon2Scheme.owasp_minimum(), BcryptScheme()], **options)

    @classmethod
    def insecure_fast_for_tests(cls, **options: Any) -> PasswordHasher:
        """Deliberately weak argon2id (t=1, m=8 KiB) and bcrypt (cost 4), for test suites.

        Hashes verify in microseconds, so tests that create users stay fast.
        Everything else (bounds, normalization, legacy migration, the async
        capacity limit) behaves as in production. Never use it in production:
        these hashes are cheap to crack.
        """
        return cls(
            [
                Argon2Scheme(time_cost=1, memory_cost=8, parallelism=1, allow_weak_parameters=True),
                BcryptScheme(rounds=4, allow_weak_parameters=True),
            ],
            **options,
        )

    @classmethod
    def from_settings(cls, settings: SecuritySettings, **options: Any) -> PasswordHasher:
        """Pick the profile named by ``settings.password_profile``."""
        if settings.password_profile == "owasp_minimum":
            return cls.owasp_minimum(**options)
        return cls.recommended(**options)

    @property
    def current(self) -> PasswordScheme:
        """The scheme that makes new hashes (the first one)."""
        return self.schemes[0]

    @property
    def limiter(self) -> anyio.CapacityLimiter:
        """The capacity limiter of the async twins.

        ``limiter.statistics()`` tells how many hashes run and how many wait,
        for metrics; raising ``limiter.total_tokens`` admits more at once.
        """
        return self._limiter

    # -- sync API -------------------------------------------------------------

    def hash(self, password: str) -> str:
        """Hash ``password`` with the current scheme.

        Raises:
            PasswordTooLongError: Over ``max_length`` characters, or over the
                current scheme's byte limit (72 for bcrypt). Nothing is hashed.
            TypeError: ``password`` is not a str.
        """
        return self.current.hash(self._prepare_for_hash(password))

    def verify(self, password: str, hash: str | bytes) -> bool:
        """Whether ``password`` matches ``hash``. Never raises for bad input; returns False.

        A malformed or unknown hash logs a warning (without the hash or the
        password) and still spends a dummy verification, so the response time
        does not single out broken accounts.
        """
        return self._verify(password, hash).valid

    def verify_and_update(self, password: str, hash: str | bytes) -> tuple[bool, str | None]:
        """Verify, and when the hash is outdated return a new one to store.

        Returns ``(valid, new_hash)``. ``new_hash`` is None unless the
        password matched and the stored hash is of another scheme, has weaker
        parameters, or was made without normalization.
        """
        outcome = self._verify(password, hash)
        if not (outcome.valid and outcome.needs_update):
            return outcome.valid, None
        try:
            return True, self.hash(password)
        except PasswordTooLongError:
            # A legacy hash whose password the current scheme cannot take
            # (over 72 bytes with bcrypt current): keep the old hash.
            logger.info("password matched but is too long to rehash with %s", self.current.name)
            return True, None

    def needs_rehash(self, hash: str | bytes) -> bool:
        """Whether ``hash`` should be replaced at the next successful login.

        True for another scheme, weaker parameters, or a hash that cannot be
        parsed.
        """
        text = _hash_text(hash)
        if text is None or not self.current.identify(text):
            return True
        try:
            return self.current.needs_rehash(text)
        except ValueError:
            return True

    def dummy_verify(self, password: str | None = None) -> None:
        """Spend the work of a failed verification, for logins of unknown users.

        Runs the same path as :meth:`verify` against a dummy hash made once
        (on first use) with the current parameters. Pass the submitted
        password so bounds and normalization take the same path as for a
        real user.
        """
        self._verify(password if password is not None else "", self._get_dummy_hash())

    # -- async twins -----------------------------------------------------------

    async def ahash(self, password: str) -> str:
        """:meth:`hash` in a worker thread, under the capacity limit.

        Bounds are checked on the event loop first, so an over-long password
        fails at once without taking a worker slot.
        """
        secret = self._prepare_for_hash(password)
        return await anyio.to_thread.run_sync(self.current.hash, secret, limiter=self._limiter)

    async def averify(self, password: str, hash: str | bytes) -> bool:
        """:meth:`verify` in a worker thread, under the capacity limit."""
        return await anyio.to_thread.run_sync(self.verify, password, hash, limiter=self._limiter)

    async def averify_and_update(self, password: str, hash: str | bytes) -> tuple[bool, str | None]:
        """:meth:`verify_and_update` in a worker thread, under the capacity limit."""
        return await anyio.to_thread.run_sync(
            self.verify_and_update, password, hash, limiter=self._limiter
        )

    async def adummy_verify(self, password: str | None = None) -> None:
        """:meth:`dummy_verify` in a worker thread, under the capacity limit."""
        await anyio.to_thread.run_sync(self.dummy_verify, password, limiter=self._limiter)

    # -- internals -------------------------------------------------------------

    def _normalized(self, password: str) -> str:
        if self.normalize is None:
            return password
        return unicodedata.normalize(self.normalize, password)

    def _prepare_for_hash(self, password: str) -> bytes:
        if not isinstance(password, str):
            raise TypeError("password must be a str")
        if len(password) > self.max_length:
            raise PasswordTooLongError(self.max_length, "characters")
        secret = _encode(self._normalized(password))
        limit = self.current.max_password_bytes
        if limit is not None and len(secret) > limit:
            raise PasswordTooLongError(limit, "bytes")
        return secret

    def _candidates(self, password: str) -> list[bytes]:
        normalized = self._normalized(password)
        candidates = [_encode(normalized)]
        if self.verify_unnormalized and normalized != password:
            candidates.append(_encode(password))
        return candidates

    def _get_dummy_hash(self) -> str:
        with self._dummy_lock:
            if self._dummy_hash is None:
                self._dummy_hash = self.current.hash(_encode(secrets.token_urlsafe(24)))
            return self._dummy_hash

    def _burn(self, secret: bytes) -> None:
        """Spend one verification of the current scheme on a value that cannot match."""
        limit = self.current.max_password_bytes
        self.current.verify(secret if limit is None else secret[:limit], self._get_dummy_hash())

    def _verify(self, password: object, hash: object) -> _Outcome:
        if not isinstance(password, str) or len(password) > self.max_length:
            # Refused before any hashing; dummy_verify takes the same early exit.
            return _Outcome(valid=False)
        text = _hash_text(hash)
        scheme = None if text is None else self._identify(text)
        candidates = self._candidates(password)
        if text is None or scheme is None:
            logger.warning("stored password hash is malformed or of an unknown scheme")
            for secret in candidates:
                self._burn(secret)
            return _Outcome(valid=False)
        for index, secret in enumerate(candidates):
            limit = scheme.max_password_bytes
            if limit is not None and len(secret) > limit:
                logger.debug(
                    "password longer than %d bytes cannot match a %s hash", limit, scheme.name
                )
                self._burn(secret)
                continue
            try:
                matched = scheme.verify(secret, text)
            except ValueError:
                logger.warning("stored %s password hash is malformed", scheme.name)
                self._burn(secret)
                return _Outcome(valid=False)
            except Exception as exc:
                # A custom scheme failed in an unexpected way: fail closed.
                logger.error(
                    "password scheme %s raised %s during verify", scheme.name, type(exc).__name__
                )
                return _Outcome(valid=False)
            if matched:
                return _Outcome(valid=True, needs_update=index > 0 or self._outdated(scheme, text))
        return _Outcome(valid=False)

    def _identify(self, hash: str) -> PasswordScheme | None:
        for scheme in self.schemes:
            if scheme.identify(hash):
                return scheme
        return None

    def _outdated(self, scheme: PasswordScheme, hash: str) -> bool:
        return scheme is not self.current or self.needs_rehash(hash)

    def __repr__(self) -> str:
        return (
            f"PasswordHasher(schemes={list(self.schemes)!r}, normalize={self.normalize!r}, "
            f"max_length={self.max_length}, max_concurrency={self.max_concurrency})"
        )


def _hash_text(hash: object) -> str | None:
    if isinstance(hash, bytes):
        try:
            hash = hash.decode("ascii")
        except UnicodeDecodeError:
            return None
    if not isinstance(hash, str) or "\x00" in hash:
        # argon2's C library stops at a NUL: "<hash>\x00anything" would verify
        # as <hash>. A stored hash never holds one, so it is malformed.
        return None
    return hash
