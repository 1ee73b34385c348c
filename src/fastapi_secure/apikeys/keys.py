"""API keys: format, digests, and :class:`APIKeyManager` (no HTTP here).

A key reads ``<prefix><id>_<secret>``, for example
``fsk_3hT9qLm2Xw8a_Z6k...`` (60 characters with the default prefix):

* ``prefix`` (default ``fsk_``) makes a leaked key recognisable to secret
  scanners (GitHub secret scanning, gitleaks, trufflehog) by a fixed pattern;
* ``id``: 12 base62 characters (71 bits), public, used to look the key up;
* ``secret``: 43 base62 characters drawn with :mod:`secrets` (256 bits).

Only a digest of the secret is stored: HMAC-SHA256 keyed with the
application's ``pepper`` (or plain SHA-256 without one) over a
domain-separated message that binds the prefix and the key id. A slow password hash
(argon2) would add nothing: it exists to slow down guessing of low-entropy
passwords, and 256 random bits cannot be guessed at any speed, while a slow
hash on every request would hand attackers a cheap way to burn CPU. The
pepper, kept outside the store, means that someone able to *write* the store
cannot mint a working key by inserting a digest of their own.

Verification does the same work whatever is wrong with a well-formed key: one
store lookup, one digest, one :func:`hmac.compare_digest` (against a dummy
digest when the id is unknown), and only then the verdict, so an unknown,
revoked or expired key takes as long as a wrong secret. A malformed key is
refused before any lookup; its shape is no secret.

Security events (``events=``): ``api_key_created``, ``api_key_revoked``,
``api_key_rotated`` and ``api_key_refused`` for every well-formed key that is
refused (wrong secret, revoked, expired, owner gone, and an unknown id too, so
that path stays as long as the others). They carry the key id, never the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from fastapi_secure.apikeys.stores.base import APIKey, APIKeyStore, StoredAPIKey
from fastapi_secure.clock import Clock, system_clock
from fastapi_secure.errors import (
    ConfigurationError,
    ErrorCode,
    InvalidTokenError,
    SecurityError,
    StoreUnavailableError,
)
from fastapi_secure.events import EventSink, EventType, emit_event
from fastapi_secure.tokens.claims import AccessClaims
from fastapi_secure.tokens.issuer import Grant

__all__ = [
    "API_KEY_AMR",
    "APIKeyGrantLoader",
    "APIKeyManager",
    "APIKeyNotFoundError",
    "APIKeyParameterError",
    "CreatedAPIKey",
    "InvalidAPIKeyError",
    "is_api_key_claims",
]

logger = logging.getLogger("fastapi_secure.apikeys")

API_KEY_AMR = "apikey"
"""The ``amr`` value carried by claims made from an API key."""

DEFAULT_PREFIX = "fsk_"
DEFAULT_ISSUER = "urn:fastapi-secure:api-key"
ID_LENGTH = 12
SECRET_LENGTH = 43
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9]{1,14}_")
_ID = re.compile(rf"[0-9A-Za-z]{{{ID_LENGTH}}}")
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
_ROLE = re.compile(r"\S+")
_DIGEST_CONTEXT = b"fastapi-secure/api-key/v1\x00"
_MIN_PEPPER_BYTES = 32
_MAX_NAME_LENGTH = 100
_MAX_SUBJECT_LENGTH = 255
_MAX_SCOPES = 64
_MAX_ROLES = 64
_MAX_NAME_TOKEN_LENGTH = 128
# A key without an expiry still needs an ``exp`` in its claims: the claims of one
# request are good for this long (every request is verified against the store).
_CLAIMS_TTL = 300


class InvalidAPIKeyError(InvalidTokenError):
    """401: the API key is malformed, unknown, wrong, revoked or expired.

    The message is the same whatever the cause; ``reason`` says which.
    """

    default_message = "invalid API key"

    def __init__(
        self,
        message: str | None = None,
        *,
        code: ErrorCode | None = None,
        reason: str | None = None,
        scheme: str = "APIKey",
        challenge_error: str | None = None,
    ) -> None:
        super().__init__(
            message, code=code, reason=reason, scheme=scheme, challenge_error=challenge_error
        )


class APIKeyNotFoundError(SecurityError, LookupError):
    """The subject has no such key, or none that can be rotated (revoked, expired,
    already rotated)."""


class APIKeyParameterError(SecurityError, ValueError):
    """A name, scope, role, subject or lifetime given to :meth:`APIKeyManager.create`
    cannot be stored."""


@dataclass(frozen=True)
class CreatedAPIKey:
    """A new key: ``key`` is the only copy of the secret; show it once, never log it."""

    key: str = field(repr=False)
    record: APIKey


@dataclass(frozen=True)
class _ParsedKey:
    key_id: str
    secret: str = field(repr=False)


APIKeyGrantLoader = Callable[[APIKey], Awaitable[Grant | None]]
"""Looks up the owner of a verified key now: a :class:`~fastapi_secure.tokens.issuer.Grant`
with the owner's current roles, or None when the owner is gone or disabled."""


def is_api_key_claims(claims: AccessClaims) -> bool:
    """Whether ``claims`` were made from an API key (``"apikey"`` in ``amr``)."""
    return API_KEY_AMR in claims.amr


def _random_text(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


class APIKeyManager:
    """Create, verify, list, revoke and rotate API keys over an :class:`APIKeyStore`.

    Args:
        store: where keys live (memory, Redis or SQLAlchemy backend).
        pepper: secret of at least 32 bytes keying the HMAC of stored digests;
            keep it out of the store (environment, secret manager). Without it
            digests are plain SHA-256. Changing it invalidates every key.
        prefix: the identifiable start of every key, letters and digits ending
            in ``_`` (``fsk_``; ``acme_live_`` style names need letters/digits only).
        issuer: ``iss`` of the claims made from keys.
        audience: ``aud`` of those claims (default: ``issuer``).
        last_used_interval: seconds between two writes of ``last_used_at``.
        grant_loader: optional ``async (APIKey) -> Grant | None`` called by
            :meth:`authenticate` for every verified key: None refuses the key
            (owner deleted or disabled), and the claims keep only the key's
            roles that the owner still holds, so a key never outlives its
            owner's demotion.
        events: the security log (:class:`~fastapi_secure.events.SecurityEvents`):
            keys created, revoked, rotated and refused, by key id (never a secret).
        clock: time source (tests pass a FakeClock).
    """

    def __init__(
        self,
        store: APIKeyStore,
        *,
        pepper: str | bytes | None = None,
        prefix: str = DEFAULT_PREFIX,
        issuer: str = DEFAULT_ISSUER,
        audience: str | list[str] | None = None,
        last_used_interval: float = 60.0,
        grant_loader: APIKeyGrantLoader | None = None,
        events: EventSink | None = None,
        clock: Clock = system_clock,
    ) -> None:
        if not isinstance(store, APIKeyStore):
            raise ConfigurationError("store must implement APIKeyStore")
        if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
            raise ConfigurationError(
                "prefix must be 2 to 15 letters or digits, starting with a letter, "
                "followed by '_' (for example 'fsk_')"
            )
        key: bytes | None = None
        if pepper is not None:
            key = pepper.encode() if isinstance(pepper, str) else bytes(pepper)
            if len(key) < _MIN_PEPPER_BYTES:
                raise ConfigurationError(
                    f"pepper must be at least {_MIN_PEPPER_BYTES} bytes; generate one with: "
                    "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
                )
        if not issuer:
            raise ConfigurationError("issuer must not be empty")
        if not last_used_interval >= 0:
            raise ConfigurationError("last_used_interval must be zero or more seconds")
        if grant_loader is not None and not callable(grant_loader):
            raise ConfigurationError("grant_loader must be an async callable")
        self.store = store
        self.prefix = prefix
        self.issuer = issuer
        self.audience: str | list[str] = audience if audience else issuer
        self.last_used_interval = float(last_used_interval)
        self.clock = clock
        self.grant_loader = grant_loader
        self.events = events
        self._pepper = key
        self._pattern = re.compile(
            rf"{re.escape(prefix)}([0-9A-Za-z]{{{ID_LENGTH}}})_([0-9A-Za-z]{{{SECRET_LENGTH}}})"
        )
        self.key_length = len(prefix) + ID_LENGTH + 1 + SECRET_LENGTH
        # Compared against when the id is unknown, so that path costs one digest and
        # one comparison too.
        self._dummy_digest = self._digest("0" * ID_LENGTH, _random_text(SECRET_LENGTH))

    def __repr__(self) -> str:
        peppered = "yes" if self._pepper is not None else "no"
        return f"APIKeyManager(prefix={self.prefix!r}, pepper={peppered})"

    async def _emit(
        self,
        kind: EventType,
        subject: str | None,
        key_id: str,
        *,
        client: str | IPv4Address | IPv6Address | None = None,
        user_agent: str | None = None,
        reason: str | None = None,
        **extra: Any,
    ) -> None:
        await emit_event(
            self.events,
            kind,
            clock=self.clock,
            subject=subject,
            client=None if client is None else str(client),
            user_agent=user_agent,
            reason=reason,
            extra={"key_id": key_id, "key_prefix": self.prefix, **extra},
        )

    # --- format and digest ----------------------------------------------------

    def _digest(self, key_id: str, secret: str) -> str:
        # The prefix is bound too: two managers over one store (``acmelive_`` and
        # ``acmetest_`` keys) must not take each other's keys with the prefix swapped.
        message = (
            _DIGEST_CONTEXT
            + self.prefix.encode()
            + b"\x00"
            + key_id.encode()
            + b"\x00"
            + secret.encode()
        )
        if self._pepper is None:
            return hashlib.sha256(message).hexdigest()
        return hmac.new(self._pepper, message, hashlib.sha256).hexdigest()

    def _parse(self, key: object) -> _ParsedKey:
        # The length check comes first, so the regex never sees a huge input.
        if not isinstance(key, str) or len(key) != self.key_length:
            raise InvalidAPIKeyError(reason="malformed API key (length)")
        if not key.startswith(self.prefix):
            raise InvalidAPIKeyError(reason="malformed API key (prefix)")
        match = self._pattern.fullmatch(key)
        if match is None:
            raise InvalidAPIKeyError(reason="malformed API key (characters)")
        return _ParsedKey(match.group(1), match.group(2))

    def key_id_of(self, key: str) -> str | None:
        """The public id part of a well-formed key, else None (no store access)."""
        try:
            return self._parse(key).key_id
        except InvalidAPIKeyError:
            return None

    def looks_like_key(self, key: str) -> bool:
        """Whether ``key`` has this manager's format (prefix, length, alphabet)."""
        return self.key_id_of(key) is not None

    # --- lifecycle ------------------------------------------------------------

    def _validated(
        self,
        subject: str,
        name: str,
        scopes: Any,
        roles: Any,
    ) -> tuple[frozenset[str], tuple[str, ...]]:
        if not isinstance(subject, str) or not 0 < len(subject) <= _MAX_SUBJECT_LENGTH:
            raise APIKeyParameterError(f"subject must be 1 to {_MAX_SUBJECT_LENGTH} characters")
        if (
            not isinstance(name, str)
            or not 0 < len(name) <= _MAX_NAME_LENGTH
            or not name.isprintable()
            or name.strip() != name
        ):
            raise APIKeyParameterError(
                f"name must be 1 to {_MAX_NAME_LENGTH} printable characters, "
                "without leading or trailing spaces"
            )
        if isinstance(scopes, str) or isinstance(roles, str):
            raise APIKeyParameterError("scopes and roles are lists of names, not a string")
        scope_set = frozenset(scopes)
        if len(scope_set) > _MAX_SCOPES:
            raise APIKeyParameterError(f"at most {_MAX_SCOPES} scopes")
        for scope in scope_set:
            if (
                not isinstance(scope, str)
                or len(scope) > _MAX_NAME_TOKEN_LENGTH
                or not _SCOPE_TOKEN.fullmatch(scope)
            ):
                raise APIKeyParameterError(
                    f"a scope must be an OAuth2 scope token of at most {_MAX_NAME_TOKEN_LENGTH} "
                    "characters"
                )
        role_tuple = tuple(dict.fromkeys(roles))
        if len(role_tuple) > _MAX_ROLES:
            raise APIKeyParameterError(f"at most {_MAX_ROLES} roles")
        for role in role_tuple:
            if (
                not isinstance(role, str)
                or len(role) > _MAX_NAME_TOKEN_LENGTH
                or not _ROLE.fullmatch(role)
            ):
                raise APIKeyParameterError(
                    f"a role must be 1 to {_MAX_NAME_TOKEN_LENGTH} characters without spaces"
                )
        return scope_set, role_tuple

    def _new(
        self,
        subject: str,
        name: str,
        scopes: frozenset[str],
        roles: tuple[str, ...],
        now: float,
        expires_at: float | None,
    ) -> tuple[str, StoredAPIKey]:
        key_id = _random_text(ID_LENGTH)
        secret = _random_text(SECRET_LENGTH)
        record = APIKey(
            id=key_id,
            subject=subject,
            name=name,
            scopes=scopes,
            roles=roles,
            created_at=now,
            expires_at=expires_at,
        )
        plain = f"{self.prefix}{key_id}_{secret}"
        return plain, StoredAPIKey(record=record, secret_digest=self._digest(key_id, secret))

    @staticmethod
    def _lifetime(expires_in: float | None) -> float | None:
        if expires_in is None:
            return None
        if (
            isinstance(expires_in, bool)
            or not isinstance(expires_in, (int, float))
            or not math.isfinite(expires_in)
            or expires_in <= 0
        ):
            raise APIKeyParameterError("expires_in must be a positive number of seconds or None")
        return float(expires_in)

    async def create(
        self,
        subject: str,
        *,
        name: str,
        scopes: Any = (),
        roles: Any = (),
        expires_in: float | None = None,
    ) -> CreatedAPIKey:
        """Make a key for ``subject``; the plain key is in the result and nowhere else.

        ``scopes`` and ``roles`` are copied into the claims of every request made
        with the key: give a key the least it needs. ``expires_in`` (seconds)
        bounds its life; None means until revoked.
        """
        scope_set, role_tuple = self._validated(subject, name, scopes, roles)
        lifetime = self._lifetime(expires_in)
        for _ in range(3):
            now = self.clock()
            plain, stored = self._new(
                subject,
                name,
                scope_set,
                role_tuple,
                now,
                None if lifetime is None else now + lifetime,
            )
            if await self.store.add(stored):
                record = stored.record
                await self._emit(
                    EventType.API_KEY_CREATED,
                    subject,
                    record.id,
                    key_name=record.name,
                    scopes=sorted(record.scopes),
                    roles=list(record.roles),
                    expires_at=record.expires_at,
                )
                return CreatedAPIKey(key=plain, record=record)
        # 71 random bits colliding three times in a row means the random source is broken.
        raise StoreUnavailableError(reason="could not allocate an unused API key id")

    async def verify(
        self,
        key: str,
        *,
        client: str | IPv4Address | IPv6Address | None = None,
        user_agent: str | None = None,
    ) -> APIKey:
        """The record of a usable key, else :class:`InvalidAPIKeyError`.

        Records the use (``last_used_at``) at most once per ``last_used_interval``.
        A refused well-formed key is an ``api_key_refused`` event (with
        ``client`` and ``user_agent``).
        """
        parsed = self._parse(key)
        stored = await self.store.get(parsed.key_id)
        expected = stored.secret_digest if stored is not None else self._dummy_digest
        presented = self._digest(parsed.key_id, parsed.secret)
        matches = hmac.compare_digest(presented.encode(), expected.encode())
        now = self.clock()
        problem = None
        if stored is None:
            problem = "unknown API key id"
        elif not matches:
            problem = "wrong API key secret"
        elif stored.record.revoked:
            problem = "revoked API key"
        elif stored.record.is_expired(now):
            problem = "expired API key"
        if problem is not None:
            await self._emit(
                EventType.API_KEY_REFUSED,
                None if stored is None else stored.record.subject,
                parsed.key_id,
                client=client,
                user_agent=user_agent,
                reason=problem,
            )
            raise InvalidAPIKeyError(reason=problem)
        assert stored is not None
        record = stored.record
        last = record.last_used_at
        if last is None or now - last >= self.last_used_interval:
            try:
                await self.store.touch(record.id, now=now, min_interval=self.last_used_interval)
            except SecurityError as exc:
                # Bookkeeping only: a failed write must not refuse a valid key.
                logger.warning("could not record API key use: %s", type(exc).__name__)
        return record

    def claims_for(self, record: APIKey, *, roles: tuple[str, ...] | None = None) -> AccessClaims:
        """The access-token-shaped claims of a verified key.

        ``iss``/``aud`` are this manager's; ``sub``, ``roles`` and ``scope`` the
        key's; ``jti`` and ``sid`` the key id; ``iat`` now; ``exp`` the key's
        expiry, or ``iat`` + 300 s for a key without one; ``auth_time`` the key's
        creation; ``fresh`` False (a key never passes ``require_fresh``); extra
        claim ``amr=["apikey"]``. ``roles`` overrides the key's roles.
        """
        now = math.floor(self.clock())
        exp = math.floor(record.expires_at) if record.expires_at is not None else now + _CLAIMS_TTL
        return AccessClaims(
            iss=self.issuer,
            aud=self.audience,
            sub=record.subject,
            exp=exp,
            iat=now,
            jti=record.id,
            sid=record.id,
            auth_time=math.floor(record.created_at),
            roles=record.roles if roles is None else roles,
            scopes=record.scopes,
            fresh=False,
            amr=[API_KEY_AMR],
        )

    async def authenticate(
        self,
        key: str,
        *,
        client: str | IPv4Address | IPv6Address | None = None,
        user_agent: str | None = None,
    ) -> AccessClaims:
        """:meth:`verify`, the ``grant_loader`` check, then :meth:`claims_for`."""
        record = await self.verify(key, client=client, user_agent=user_agent)
        if self.grant_loader is None:
            return self.claims_for(record)
        grant = await self.grant_loader(record)
        if grant is None:
            reason = "the key's owner is gone or disabled"
            await self._emit(
                EventType.API_KEY_REFUSED,
                record.subject,
                record.id,
                client=client,
                user_agent=user_agent,
                reason=reason,
            )
            raise InvalidAPIKeyError(reason=reason)
        if not isinstance(grant, Grant):
            raise ConfigurationError("grant_loader must return a Grant or None")
        held = frozenset(grant.roles)
        return self.claims_for(record, roles=tuple(role for role in record.roles if role in held))

    async def list_for(self, subject: str) -> list[APIKey]:
        """The records of ``subject``'s keys (revoked and expired included), oldest first."""
        return [stored.record for stored in await self.store.list_for(subject)]

    async def get(self, key_id: str, *, subject: str) -> APIKey:
        """One of ``subject``'s keys by id, else :class:`APIKeyNotFoundError`."""
        stored = await self.store.get(key_id) if _ID.fullmatch(key_id) else None
        if stored is None or stored.record.subject != subject:
            raise APIKeyNotFoundError("no such API key")
        return stored.record

    async def revoke(self, key_id: str, *, subject: str) -> None:
        """Revoke one of ``subject``'s keys; refused from the next lookup on.

        Revoking a revoked key is a no-op; another subject's key or an unknown
        id raises :class:`APIKeyNotFoundError`.
        """
        if not _ID.fullmatch(key_id) or not await self.store.revoke(key_id, subject):
            raise APIKeyNotFoundError("no such API key")
        await self._emit(EventType.API_KEY_REVOKED, subject, key_id)

    async def rotate(
        self,
        key_id: str,
        *,
        subject: str,
        overlap: float = 24 * 3600.0,
        expires_in: float | None = None,
    ) -> CreatedAPIKey:
        """Give ``subject``'s key a successor with the same name, scopes and roles.

        The old key keeps working for ``overlap`` seconds (0: stops at once,
        never beyond its own expiry) so clients can be redeployed; then it is
        refused. The successor lives ``expires_in`` seconds, or as long as the
        old key's lifetime when that had one, or forever. Only an active key
        that was not rotated yet can be rotated: of concurrent rotations
        exactly one wins, the others get :class:`APIKeyNotFoundError`.
        """
        if isinstance(overlap, bool) or not (
            isinstance(overlap, (int, float)) and math.isfinite(overlap) and overlap >= 0
        ):
            raise APIKeyParameterError("overlap must be zero or more seconds")
        old = await self.get(key_id, subject=subject)
        lifetime = self._lifetime(expires_in)
        if lifetime is None and old.expires_at is not None:
            lifetime = max(old.expires_at - old.created_at, 1.0)
        now = self.clock()
        plain, successor = self._new(
            subject,
            old.name,
            old.scopes,
            old.roles,
            now,
            None if lifetime is None else now + lifetime,
        )
        if not await self.store.rotate(
            key_id, subject, successor, retire_at=now + overlap, now=now
        ):
            raise APIKeyNotFoundError("no such API key, or it cannot be rotated")
        await self._emit(
            EventType.API_KEY_ROTATED,
            subject,
            key_id,
            successor_key_id=successor.record.id,
            old_key_until=min(
                now + overlap, old.expires_at if old.expires_at is not None else math.inf
            ),
            expires_at=successor.record.expires_at,
        )
        return CreatedAPIKey(key=plain, record=successor.record)
