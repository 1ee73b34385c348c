"""Password hashing and password policy.

:class:`PasswordHasher` hashes with argon2id (argon2-cffi) by default, verifies
legacy bcrypt hashes, and upgrades old or weaker hashes at login through
:meth:`PasswordHasher.verify_and_update`. Its async twins (``ahash``,
``averify``, ``averify_and_update``, ``adummy_verify``) run the work in worker
threads under a dedicated capacity limit, so the event loop never blocks and
memory stays bounded.

:class:`PasswordPolicy` decides which new passwords to accept (NIST SP
800-63B-4: length first, a blocklist of common passwords, no surprise
composition rules) and doubles as pydantic metadata:
``password: Annotated[SecretStr, PasswordPolicy()]``. A rejected password
gives a validation error (422 in FastAPI) whose body never contains the
password.

Profiles (argon2id, memory in KiB):

| Profile | t | m | p |
| --- | --- | --- | --- |
| :meth:`PasswordHasher.recommended` (RFC 9106 low-memory, the default) | 3 | 65536 | 4 |
| :meth:`PasswordHasher.owasp_minimum` | 2 | 19456 | 1 |

Parameters below the OWASP Password Storage Cheat Sheet floor raise
:class:`~fastapi_secure.errors.ConfigurationError` unless a scheme is built
with ``allow_weak_parameters=True``; :meth:`PasswordHasher.insecure_fast_for_tests`
does that for test suites.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import re
import secrets
import threading
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Protocol, runtime_checkable

import anyio
import anyio.to_thread
import argon2
import bcrypt
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler, SecretStr, ValidationInfo
from pydantic_core import PydanticCustomError, core_schema

from fastapi_secure.errors import ConfigurationError, PasswordTooLongError, WeakPasswordError

if TYPE_CHECKING:
    from pydantic.json_schema import JsonSchemaValue

    from fastapi_secure.settings import SecuritySettings

__all__ = [
    "Argon2Scheme",
    "BcryptScheme",
    "PasswordHasher",
    "PasswordPolicy",
    "PasswordScheme",
    "StrongPassword",
]

logger = logging.getLogger(__name__)

Normalization = Literal["NFC", "NFD", "NFKC", "NFKD"]
_NORMALIZATIONS: frozenset[str] = frozenset({"NFC", "NFD", "NFKC", "NFKD"})

DEFAULT_MAX_LENGTH = 1024
"""Longest password, in characters, that :class:`PasswordHasher` accepts by default."""

NIST_MIN_MAX_LENGTH = 64
"""NIST SP 800-63B-4: verifiers should accept passwords of at least 64 characters."""

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
_BCRYPT_MIN_ROUNDS = 12
_BCRYPT_MAX_BYTES = 72


def _encode(password: str) -> bytes:
    # "surrogatepass" so a lone surrogate (valid in JSON, invalid in UTF-8)
    # hashes deterministically instead of raising UnicodeEncodeError.
    return password.encode("utf-8", "surrogatepass")


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
            return hash.decode("ascii")
        except UnicodeDecodeError:
            return None
    return hash if isinstance(hash, str) else None


# -- policy ---------------------------------------------------------------------

_COMMON_PASSWORDS_RESOURCE = "data/common-passwords.txt"
_EDGE_NOISE = re.compile(r"^[\W\d_]+|[\W\d_]+$")
_REPEATED_UNIT = re.compile(r"(.{1,4}?)\1+", re.DOTALL)
_CONTEXT_SPLIT = re.compile(r"[\s._+\-@]+")
_MIN_CONTEXT_TOKEN = 3
# NFKC never shrinks text by more than the longest canonical decomposition (4 code
# points, e.g. U+1F87), so input longer than this many times max_length is too long
# whatever it normalizes to.
_MAX_NFKC_SHRINK = 4


@functools.cache
def _common_passwords() -> frozenset[str]:
    # Read once per process: the file is immutable package data.
    text = resources.files("fastapi_secure").joinpath(_COMMON_PASSWORDS_RESOURCE).read_text("utf-8")
    return frozenset(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def _is_trivial(password: str) -> bool:
    if _REPEATED_UNIT.fullmatch(password):
        return True
    steps = {ord(b) - ord(a) for a, b in itertools.pairwise(password)}
    return len(password) >= 3 and steps in ({1}, {-1})


def _context_tokens(words: Iterable[str]) -> list[str]:
    tokens: set[str] = set()
    for word in words:
        folded = unicodedata.normalize("NFKC", word).casefold().strip()
        if not folded:
            continue
        tokens.add(folded)
        local = folded.rsplit("@", 1)[0] if "@" in folded else folded
        tokens.add(local)
        tokens.update(_CONTEXT_SPLIT.split(local))
    return sorted((t for t in tokens if len(t) >= _MIN_CONTEXT_TOKEN), key=len, reverse=True)


class PasswordPolicy:
    """Rules for choosing a password, with NIST SP 800-63B-4 defaults.

    By default: at least 8 characters, at most 128 (NIST asks to allow at
    least 64), counted as Unicode code points after NFKC normalization; not
    one of the shipped common passwords (case-insensitive, also with digits
    and symbols stripped from both ends); not a repeated character, short
    repeated pattern or simple sequence; not mostly a context word
    (username, email). No composition rules unless asked for: NIST advises
    against them.

    NIST SP 800-63B-4 sets the minimum at 15 characters when the password is
    the only authentication factor, and at 8 when it is part of multi-factor
    authentication; choose ``min_length`` accordingly.

    The policy is also pydantic metadata, for ``str`` or ``SecretStr`` fields:
    ``password: Annotated[SecretStr, policy]``. The validation error (a 422
    in FastAPI) lists the problems and never contains the password: its
    ``input`` is masked. Fields named in ``context_fields`` are read from the
    model's other fields, which must be declared before the password field.

    Args:
        min_length: Fewest characters.
        max_length: Most characters (at least 64). Keep it at or below the
            hasher's ``max_length`` (1024 by default).
        require_lowercase: Demand a lowercase letter.
        require_uppercase: Demand an uppercase letter.
        require_digit: Demand a decimal digit.
        require_symbol: Demand a character that is neither a letter nor a digit.
        blocklist: Extra refused passwords (compared case-insensitively), on
            top of the shipped list.
        use_common_passwords: Refuse the shipped common passwords.
        context_fields: Model fields whose values the password must not be
            based on, when the policy validates a pydantic field.
    """

    def __init__(
        self,
        *,
        min_length: int = 8,
        max_length: int = 128,
        require_lowercase: bool = False,
        require_uppercase: bool = False,
        require_digit: bool = False,
        require_symbol: bool = False,
        blocklist: Iterable[str] = (),
        use_common_passwords: bool = True,
        context_fields: Sequence[str] = (),
    ) -> None:
        if not isinstance(min_length, int) or min_length < 1:
            raise ConfigurationError("min_length must be a positive integer")
        if not isinstance(max_length, int) or max_length < NIST_MIN_MAX_LENGTH:
            raise ConfigurationError(
                f"max_length must be at least {NIST_MIN_MAX_LENGTH} (NIST SP 800-63B)"
            )
        if min_length > max_length:
            raise ConfigurationError("min_length must not exceed max_length")
        if isinstance(context_fields, str):
            raise ConfigurationError("context_fields must be a sequence of field names")
        self.min_length = min_length
        self.max_length = max_length
        self.require_lowercase = require_lowercase
        self.require_uppercase = require_uppercase
        self.require_digit = require_digit
        self.require_symbol = require_symbol
        self.use_common_passwords = use_common_passwords
        self.blocklist = frozenset(
            unicodedata.normalize("NFKC", word).casefold() for word in blocklist
        )
        self.context_fields: tuple[str, ...] = tuple(context_fields)

    def with_context_fields(self, *names: str) -> PasswordPolicy:
        """A copy of this policy that reads ``names`` from the model being validated.

        The named fields must be declared before the password field: pydantic
        validates fields in order. When one of them is missing (declared
        after, absent, or failed its own validation) the password is refused
        rather than accepted unchecked.
        """
        clone = PasswordPolicy.__new__(PasswordPolicy)
        clone.__dict__.update(self.__dict__)
        clone.context_fields = tuple(names)
        return clone

    def check(self, password: str | SecretStr, *, context: Iterable[str | None] = ()) -> list[str]:
        """Return the reasons ``password`` is refused; an empty list means accepted.

        Args:
            password: The candidate password.
            context: Words the password must not be based on: username,
                email address, the service name. None entries are ignored.
        """
        raw: object = password.get_secret_value() if isinstance(password, SecretStr) else password
        if not isinstance(raw, str):
            return ["password must be a string"]
        if len(raw) > self.max_length:
            # The bounds hold for the text as typed (what the published JSON schema
            # says) and after NFKC. Refused before normalizing: NFKC expands some
            # code points 18-fold (U+FDFA), so a request-sized password would stall
            # the event loop.
            return [f"password must be at most {self.max_length} characters long"]
        try:
            raw.encode("utf-8")
        except UnicodeEncodeError:
            return ["password must be valid Unicode text"]
        normalized = unicodedata.normalize("NFKC", raw)
        problems: list[str] = []
        length = len(normalized)
        if min(length, len(raw)) < self.min_length:
            problems.append(f"password must be at least {self.min_length} characters long")
        if length > self.max_length:
            problems.append(f"password must be at most {self.max_length} characters long")
            return problems  # the rest would only scan attacker-sized input
        if self.require_lowercase and not any(c.islower() for c in normalized):
            problems.append("password must contain a lowercase letter")
        if self.require_uppercase and not any(c.isupper() for c in normalized):
            problems.append("password must contain an uppercase letter")
        if self.require_digit and not any(c.isdecimal() for c in normalized):
            problems.append("password must contain a digit")
        if self.require_symbol and all(c.isalnum() for c in normalized):
            problems.append("password must contain a symbol (neither a letter nor a digit)")
        folded = normalized.casefold()
        if self._is_common(folded):
            problems.append("password is too common; choose one that is harder to guess")
        elif _is_trivial(folded):
            problems.append("password is a repeated pattern or a simple sequence")
        # A context word that cannot fit in the password cannot be its basis; skipping
        # it also keeps an unbounded field from being normalized on the event loop.
        words = [
            word
            for word in context
            if isinstance(word, str) and len(word) <= _MAX_NFKC_SHRINK * self.max_length
        ]
        if words and self._is_based_on(folded, _context_tokens(words)):
            problems.append(
                "password must not be based on your username, email address or account details"
            )
        return problems

    def validate(self, password: str | SecretStr, *, context: Iterable[str | None] = ()) -> None:
        """Raise :class:`~fastapi_secure.errors.WeakPasswordError` if :meth:`check` objects."""
        problems = self.check(password, context=context)
        if problems:
            raise WeakPasswordError(problems)

    def _is_common(self, folded: str) -> bool:
        stripped = _EDGE_NOISE.sub("", folded)
        candidates = {folded, stripped} if stripped else {folded}
        if not candidates.isdisjoint(self.blocklist):
            return True
        return self.use_common_passwords and not candidates.isdisjoint(_common_passwords())

    def _is_based_on(self, folded: str, tokens: list[str]) -> bool:
        remaining = folded
        for token in tokens:
            remaining = remaining.replace(token, "")
        return remaining != folded and len(remaining) < self.min_length

    # -- pydantic integration --------------------------------------------------

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        if source not in (str, SecretStr):
            raise ConfigurationError(
                f"PasswordPolicy annotates str or SecretStr fields, not {source!r}"
            )
        as_secret = source is SecretStr

        def validate(masked: SecretStr, info: ValidationInfo) -> str | SecretStr:
            raw: object = masked.get_secret_value()
            if isinstance(raw, SecretStr):
                raw = raw.get_secret_value()
            if not isinstance(raw, str):
                raise PydanticCustomError("password_type", "password must be a string")
            context, problems = self._field_context(info)
            problems += self.check(raw, context=context)
            if problems:
                raise PydanticCustomError(
                    "weak_password",
                    "password refused: " + "; ".join(problems),
                    {"problems": problems},
                )
            return SecretStr(raw) if as_secret else raw

        # The outer validator wraps the input in SecretStr before anything can
        # fail, so every error pydantic reports carries the masked value as
        # its ``input``: FastAPI's 422 body shows "**********", not the password.
        return core_schema.no_info_before_validator_function(
            _mask,
            core_schema.with_info_plain_validator_function(validate),
            serialization=core_schema.plain_serializer_function_ser_schema(
                _serialize_password, when_used="json"
            ),
        )

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "type": "string",
            "format": "password",
            "writeOnly": True,
            "minLength": self.min_length,
            "maxLength": self.max_length,
        }

    def _field_context(self, info: ValidationInfo) -> tuple[list[str | None], list[str]]:
        if not self.context_fields:
            return [], []
        data: Mapping[str, Any] = info.data if isinstance(info.data, Mapping) else {}
        missing = [name for name in self.context_fields if name not in data]
        if missing:
            # The field is declared after the password, failed its own
            # validation, or does not exist: refuse rather than skip the check.
            return [], [f"password cannot be checked against {', '.join(missing)}"]
        words: list[str | None] = []
        for name in self.context_fields:
            value = data[name]
            if value is not None:
                words.append(str(value))
        return words, []

    def __repr__(self) -> str:
        return (
            f"PasswordPolicy(min_length={self.min_length}, max_length={self.max_length}, "
            f"context_fields={self.context_fields!r})"
        )


def _mask(value: object) -> SecretStr:
    return SecretStr(value)  # type: ignore[arg-type]


def _serialize_password(value: str | SecretStr) -> str:
    return str(value) if isinstance(value, SecretStr) else value


StrongPassword = Annotated[SecretStr, PasswordPolicy()]
"""A ``SecretStr`` field checked by the default :class:`PasswordPolicy`."""
