"""TokenIssuer: issue, verify, rotate and revoke access and refresh tokens.

Access tokens are short-lived JWTs (``typ: at+jwt``, RFC 9068); refresh
tokens (``typ: rt+jwt``) belong to a *family*, one per login, whose state
lives in a :class:`~fastapi_secure.tokens.stores.TokenStore`. Rotating a
refresh token consumes it atomically; presenting a consumed one again is
reuse and revokes the whole family (RFC 9700, section 4.14).

A pair may be bound to a client's DPoP key (RFC 9449): ``issue(...,
dpop_jkt=)`` puts ``cnf: {"jkt": ...}`` in both tokens, and :meth:`rotate`
then wants a proof from that same key. The binding is a signed claim of the
refresh token rather than store state: it cannot be altered, each rotation
copies it, and the stores need no change.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import math
import re
import secrets
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final, TypeVar

from pydantic import ValidationError

from fastapi_secure.clock import Clock, system_clock
from fastapi_secure.errors import (
    ConfigurationError,
    ExpiredTokenError,
    InvalidTokenError,
    RevokedTokenError,
    TokenReuseError,
)
from fastapi_secure.events import EventSink, EventType, emit_event
from fastapi_secure.tokens.claims import (
    ACCESS_TOKEN_TYP,
    REFRESH_TOKEN_TYP,
    RESERVED_CLAIMS,
    SCOPE_TOKEN,
    AccessClaims,
    RefreshClaims,
    TokenPair,
)
from fastapi_secure.tokens.stores.base import TokenState, TokenStore, digest, new_family_id

if TYPE_CHECKING:
    from fastapi_secure.settings import SecuritySettings
    from fastapi_secure.tokens.keys import KeySet

__all__ = ["Grant", "GrantLoader", "TokenIssuer", "keep_login_grant"]

logger = logging.getLogger("fastapi_secure.tokens")

Seconds = timedelta | float

MAX_LEEWAY = 300.0
"""Upper bound of ``leeway`` in seconds: more would stretch every token's lifetime."""

MAX_REUSE_GRACE = 60.0
"""Upper bound of ``reuse_grace`` in seconds: a stolen token is usable that long."""

# RFC 6749, section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )

# An RFC 8176 method name (pwd, otp, hwk, mfa, ...) or an app's own short token.
_AMR = re.compile(r"[a-z][a-z0-9_-]{0,31}")

DEFAULT_MAX_SESSION_AGE: Final = timedelta(days=30)
"""How long a login lasts, however often it is refreshed, unless told otherwise."""

# RFC 7638 SHA-256 thumbprint, base64url without padding.
_JKT = re.compile(r"[A-Za-z0-9_-]{43}")

_REQUIRED_ACCESS = frozenset({"token_use", "roles", "scopes", "fresh"})
_REQUIRED_REFRESH = frozenset({"token_use"})

_Claims = TypeVar("_Claims", AccessClaims, RefreshClaims)


@dataclass(frozen=True)
class Grant:
    """What a refreshed pair may carry, as decided now by the application."""

    roles: Sequence[str] = ()
    scopes: Collection[str] = ()
    claims: Mapping[str, Any] = field(default_factory=dict)


GrantLoader = Callable[[RefreshClaims], Awaitable[Grant | None]]
"""Reloads the user behind a refresh token: a :class:`Grant`, or ``None`` when
the user is gone or inactive (no new tokens, the family is revoked)."""


def _seconds(name: str, value: Seconds) -> float:
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ConfigurationError(f"{name} must be a timedelta or a number of seconds")
    return float(value)


def _successor_jti(jti: str) -> str:
    # Deterministic, so a grace-window retry names the same successor as the
    # first rotation and the store keeps a single current refresh token.
    data = b"fastapi-secure/refresh-successor\0" + jti.encode("utf-8", "surrogatepass")
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()[:18]).decode("ascii")


def _new_jti() -> str:
    return secrets.token_urlsafe(18)


def _check_jkt(jkt: str | None) -> str | None:
    if jkt is not None and (not isinstance(jkt, str) or not _JKT.fullmatch(jkt)):
        raise ValueError("dpop_jkt must be a base64url SHA-256 JWK thumbprint (43 characters)")
    return jkt


class TokenIssuer:
    """Issues and checks the tokens of one API (one ``issuer`` / ``audience``).

    ``access_ttl`` must be shorter than ``refresh_ttl``; ``leeway`` (clock
    skew tolerated on ``exp``, ``nbf`` and ``iat``) is at most five minutes
    and shorter than ``access_ttl``. ``check_revocation=False`` skips the
    store on :meth:`verify_access`: revoked access tokens then keep working
    until they expire. ``reuse_grace`` (off by default, at most 60 s) lets a
    client whose rotation response was lost present the same refresh token
    once more; see :meth:`rotate`. ``max_session_age`` (30 days by default, as
    in :class:`~fastapi_secure.settings.SecuritySettings`; ``None`` for no cap)
    caps a login session: once ``auth_time`` is that old, :meth:`rotate`
    refuses and revokes the family, however often it was refreshed (each
    rotation otherwise renews ``refresh_ttl``). ``events`` receives
    ``refresh_reuse_detected`` and ``logout_everywhere`` (from
    :meth:`revoke_subject`) security events.
    """

    def __init__(
        self,
        keys: KeySet,
        store: TokenStore,
        *,
        issuer: str,
        audience: str | Sequence[str],
        access_ttl: Seconds = timedelta(minutes=15),
        refresh_ttl: Seconds = timedelta(days=7),
        leeway: Seconds = timedelta(seconds=30),
        clock: Clock = system_clock,
        check_revocation: bool = True,
        grant_loader: GrantLoader,
        reuse_grace: Seconds = 0,
        max_session_age: Seconds | None = DEFAULT_MAX_SESSION_AGE,
        events: EventSink | None = None,
    ) -> None:
        if not hasattr(keys, "sign") or not hasattr(keys, "verify"):
            raise ConfigurationError("keys must be a KeySet")
        if not isinstance(store, TokenStore):
            raise ConfigurationError("store must implement the TokenStore protocol")
        if not isinstance(issuer, str) or not issuer:
            raise ConfigurationError("issuer must be a non-empty string")
        if isinstance(audience, str):
            audiences: tuple[str, ...] = (audience,)
        elif isinstance(audience, Sequence):
            audiences = tuple(audience)
        else:
            raise ConfigurationError("audience must be a string or a sequence of strings")
        if not audiences or not all(isinstance(a, str) and a for a in audiences):
            raise ConfigurationError("audience must be a non-empty string or strings")
        # Whole seconds: exp and iat are integers.
        access = math.floor(_seconds("access_ttl", access_ttl))
        refresh = math.floor(_seconds("refresh_ttl", refresh_ttl))
        skew = _seconds("leeway", leeway)
        grace = _seconds("reuse_grace", reuse_grace)
        if access < 1 or refresh < 1:
            raise ConfigurationError("access_ttl and refresh_ttl must be at least one second")
        if access >= refresh:
            raise ConfigurationError("access_ttl must be shorter than refresh_ttl")
        if not 0 <= skew <= MAX_LEEWAY:
            raise ConfigurationError(f"leeway must be between 0 and {MAX_LEEWAY:g} seconds")
        if skew >= access:
            raise ConfigurationError("leeway must be shorter than access_ttl")
        if not 0 <= grace <= MAX_REUSE_GRACE:
            raise ConfigurationError(
                f"reuse_grace must be between 0 and {MAX_REUSE_GRACE:g} seconds"
            )
        session_cap = (
            None if max_session_age is None else _seconds("max_session_age", max_session_age)
        )
        if session_cap is not None and session_cap <= access:
            raise ConfigurationError("max_session_age must be longer than access_ttl")
        if not callable(grant_loader):
            raise ConfigurationError(
                "grant_loader must be an async callable: it reloads the user's roles and "
                "scopes at each refresh (or pass keep_login_grant to keep the login's)"
            )
        self._keys = keys
        self._store = store
        self._issuer = issuer
        self._audiences = frozenset(audiences)
        self._aud_claim: str | list[str] = (
            audience if isinstance(audience, str) else list(audiences)
        )
        self._access_ttl = access
        self._refresh_ttl = refresh
        self._leeway = skew
        self._clock = clock
        self._check_revocation = bool(check_revocation)
        self._grant_loader = grant_loader
        self._grace = grace
        self._max_session_age = session_cap
        self.events = events

    @classmethod
    def from_settings(
        cls,
        settings: SecuritySettings,
        keys: KeySet,
        store: TokenStore,
        *,
        grant_loader: GrantLoader,
        **options: Any,
    ) -> TokenIssuer:
        """An issuer with ``token_issuer``, ``token_audience``, the TTLs, the
        leeway and ``max_session_age`` from ``settings``; ``options`` add the
        other arguments (``clock=``, ...) and win over the settings."""
        return cls(
            keys,
            store,
            grant_loader=grant_loader,
            issuer=settings.token_issuer,
            audience=settings.token_audience,
            access_ttl=settings.access_ttl_seconds,
            refresh_ttl=settings.refresh_ttl_seconds,
            leeway=settings.leeway_seconds,
            **{"max_session_age": settings.max_session_age_seconds, **options},
        )

    # -- configuration, read-only ---------------------------------------------

    @property
    def keys(self) -> KeySet:
        return self._keys

    @property
    def store(self) -> TokenStore:
        return self._store

    @property
    def issuer(self) -> str:
        return self._issuer

    @property
    def access_ttl(self) -> int:
        """Access token lifetime in whole seconds."""
        return self._access_ttl

    @property
    def refresh_ttl(self) -> int:
        """Refresh token lifetime in whole seconds (renewed by each rotation)."""
        return self._refresh_ttl

    @property
    def leeway(self) -> float:
        return self._leeway

    @property
    def max_session_age(self) -> float | None:
        """Seconds after sign-in when a session can no longer refresh, or None."""
        return self._max_session_age

    @property
    def clock(self) -> Clock:
        return self._clock

    # -- issuing ---------------------------------------------------------------

    async def issue(
        self,
        subject: str,
        *,
        roles: Sequence[str] = (),
        scopes: Collection[str] = (),
        claims: Mapping[str, Any] | None = None,
        fresh: bool = True,
        auth_time: int | None = None,
        dpop_jkt: str | None = None,
        amr: Sequence[str] = (),
    ) -> TokenPair:
        """Start a token family (a login) for ``subject`` and return its first pair.

        ``fresh`` marks the access token as coming straight from a credential
        check (see ``require_fresh``). ``claims`` adds custom claims to the
        access token; a reserved claim name raises :class:`ConfigurationError`.
        ``dpop_jkt``, the thumbprint of the key that signed the login's DPoP
        proof, binds the session to that key (``token_type`` ``"DPoP"``).
        ``amr`` lists how the user authenticated (RFC 8176: ``pwd``, ``otp``,
        ``hwk``, ``swk``, ``mfa``, ...); both tokens carry it, and so does every
        pair a rotation makes, with the login's ``auth_time``.
        """
        if not isinstance(subject, str) or not subject:
            raise ValueError("subject must be a non-empty string")
        _check_jkt(dpop_jkt)
        now = self._clock()
        issued_at = math.floor(now)
        if auth_time is None:
            auth_time = issued_at
        elif isinstance(auth_time, bool) or not isinstance(auth_time, int):
            raise ValueError("auth_time must be an integer Unix time")
        family_id = new_family_id(subject)
        refresh_jti = _new_jti()
        pair = self._mint(
            subject,
            family_id,
            refresh_jti=refresh_jti,
            roles=roles,
            scopes=scopes,
            claims=claims,
            fresh=bool(fresh),
            auth_time=auth_time,
            issued_at=issued_at,
            dpop_jkt=dpop_jkt,
            amr=amr,
        )
        await self._store.create_family(
            subject, family_id, refresh_jti=refresh_jti, ttl=self._refresh_ttl + self._leeway
        )
        return pair

    def _mint(
        self,
        subject: str,
        family_id: str,
        *,
        refresh_jti: str,
        roles: Sequence[str],
        scopes: Collection[str],
        claims: Mapping[str, Any] | None,
        fresh: bool,
        auth_time: int,
        issued_at: int,
        dpop_jkt: str | None = None,
        amr: Sequence[str] = (),
    ) -> TokenPair:
        if isinstance(roles, str) or not all(isinstance(r, str) and r for r in roles):
            raise ValueError("roles must be a sequence of non-empty strings")
        if isinstance(amr, str) or not all(isinstance(m, str) and _AMR.fullmatch(m) for m in amr):
            raise ValueError("amr must be a sequence of authentication method names")
        if isinstance(scopes, str) or not all(
            isinstance(s, str) and SCOPE_TOKEN.fullmatch(s) for s in scopes
        ):
            raise ValueError("scopes must be a collection of RFC 6749 scope tokens")
        extra = dict(claims or {})
        clash = RESERVED_CLAIMS.intersection(extra)
        if clash:
            raise ConfigurationError(f"custom claims may not set reserved claims {sorted(clash)}")
        if not all(isinstance(name, str) for name in extra):
            raise ValueError("custom claim names must be strings")
        common: dict[str, Any] = {
            "iss": self._issuer,
            "sub": subject,
            "aud": self._aud_claim,
            "iat": issued_at,
            "sid": family_id,
            "auth_time": auth_time,
        }
        if amr:
            common["amr"] = list(dict.fromkeys(amr))
        if dpop_jkt is not None:
            common["cnf"] = {"jkt": dpop_jkt}
        access = {
            **extra,
            **common,
            "exp": issued_at + self._access_ttl,
            "jti": _new_jti(),
            "token_use": "access",
            "roles": list(dict.fromkeys(roles)),
            "scope": " ".join(sorted(set(scopes))),
            "fresh": fresh,
        }
        refresh = {
            **common,
            "exp": issued_at + self._refresh_ttl,
            "jti": refresh_jti,
            "token_use": "refresh",
            "roles": access["roles"],
            "scope": access["scope"],
        }
        return TokenPair(
            access_token=self._keys.sign(access, typ=ACCESS_TOKEN_TYP),
            refresh_token=self._keys.sign(refresh, typ=REFRESH_TOKEN_TYP),
            expires_in=self._access_ttl,
            refresh_expires_in=self._refresh_ttl,
            session_id=family_id,
            token_type="bearer" if dpop_jkt is None else "DPoP",
        )

    # -- verifying -------------------------------------------------------------

    def _decode(
        self,
        token: str,
        model: type[_Claims],
        typ: str,
        required: frozenset[str],
        *,
        check_expiry: bool = True,
    ) -> _Claims:
        verified = self._keys.verify(token)
        if verified.header.get("typ") != typ:
            raise InvalidTokenError(reason=f"typ header is not {typ}")
        try:
            claims = model.model_validate_json(verified.payload, strict=True)
        except ValidationError as exc:
            # No chaining: the validation error quotes claim values.
            raise InvalidTokenError(
                reason=f"claims invalid: {sorted({str(e['loc'][:1]) for e in exc.errors()})}"
            ) from None
        if not required <= claims.model_fields_set:
            missing = sorted(required - claims.model_fields_set)
            raise InvalidTokenError(reason=f"missing claims {missing}")
        if claims.iss != self._issuer:
            raise InvalidTokenError(reason="wrong issuer")
        audiences = (claims.aud,) if isinstance(claims.aud, str) else claims.aud
        if self._audiences.isdisjoint(audiences):
            raise InvalidTokenError(reason="wrong audience")
        now = self._clock()
        if claims.iat > now + self._leeway:
            raise InvalidTokenError(reason="issued in the future")
        if claims.nbf is not None and claims.nbf > now + self._leeway:
            raise InvalidTokenError(reason="not valid yet")
        if check_expiry and now >= claims.exp + self._leeway:
            raise ExpiredTokenError(reason="expired")
        return claims

    async def verify_access(self, token: str) -> AccessClaims:
        """The claims of a valid access token, else an :class:`InvalidTokenError`.

        Checks the signature, ``kid`` and algorithm (through the KeySet), the
        ``typ`` header and ``token_use`` claim, ``iss`` (exact), ``aud``,
        ``exp``/``nbf``/``iat`` with leeway, every required claim and, unless
        ``check_revocation=False``, the store: the token's ``jti``, its family
        and its subject must not be revoked. A store that cannot answer
        raises :class:`~fastapi_secure.errors.StoreUnavailableError` (503).
        """
        claims = self._decode(token, AccessClaims, ACCESS_TOKEN_TYP, _REQUIRED_ACCESS)
        if self._check_revocation:
            state = await self._store.check_access(claims.sub, claims.sid, jti=claims.jti)
            if state is not TokenState.ACTIVE:
                raise _refusal(state)
        return claims

    async def verify_refresh(self, token: str) -> RefreshClaims:
        """The claims of a refresh token that may be rotated now.

        Always checks the store (a consumed, revoked or unknown token is
        invalid) but consumes nothing and revokes nothing.
        """
        claims = self._decode(token, RefreshClaims, REFRESH_TOKEN_TYP, _REQUIRED_REFRESH)
        state = await self._store.check_refresh(claims.sub, claims.sid, jti=claims.jti)
        if state is not TokenState.ACTIVE:
            raise _refusal(state)
        return claims

    # -- rotation --------------------------------------------------------------

    async def rotate(
        self,
        refresh_token: str,
        *,
        grant_loader: GrantLoader | None = None,
        dpop_jkt: str | None = None,
    ) -> TokenPair:
        """Exchange a refresh token for a new pair of the same family.

        The grant loader (this argument, else the issuer's) is awaited first:
        ``None`` revokes the family and raises :class:`RevokedTokenError`.
        :func:`keep_login_grant` as the loader keeps the roles and scopes of
        the login instead (carried, signed, in the refresh token).
        Then the store consumes the token atomically: of N concurrent calls
        with one token exactly one succeeds. A token consumed before raises
        :class:`TokenReuseError` after revoking the family, which kills its
        access tokens too.

        With ``reuse_grace`` set, the token consumed last may be presented
        again within that many seconds while its successor has not been used:
        the answer is a new pair whose refresh token has the same ``jti`` as
        the successor already issued (either copy rotates next; then the
        other one is a consumed token). The new access token is not fresh;
        ``auth_time`` is the family's.

        ``dpop_jkt`` is the thumbprint of the key that signed the refresh
        request's DPoP proof. A session bound to a key refuses a refresh
        without it or from another key (``InvalidDPoPProofError``, an
        :class:`InvalidTokenError`), before
        anything is consumed: a thief without the key burns nothing. An
        unbound session refreshed with a proof becomes bound to that key.
        """
        loader = grant_loader or self._grant_loader
        _check_jkt(dpop_jkt)
        claims = self._decode(refresh_token, RefreshClaims, REFRESH_TOKEN_TYP, _REQUIRED_REFRESH)
        if claims.cnf is not None:
            # Imported here: the DPoP package is not needed by issuers that never bind.
            from fastapi_secure.dpop.proofs import InvalidDPoPProofError

            # RFC 9449, section 5: the refresh wants a proof from the session's key;
            # the answer is invalid_dpop_proof (401, WWW-Authenticate: DPoP).
            if dpop_jkt is None:
                raise InvalidDPoPProofError(reason="DPoP-bound refresh token without a DPoP proof")
            if not hmac.compare_digest(claims.cnf.jkt, dpop_jkt):
                raise InvalidDPoPProofError(reason="DPoP proof key is not the session's key")
        if (
            self._max_session_age is not None
            and self._clock() - claims.auth_time > self._max_session_age
        ):
            # The login is too old however often it was refreshed: sign in again.
            await self._store.revoke_family(claims.sid)
            raise ExpiredTokenError(reason="session older than max_session_age")
        grant = await loader(claims)
        if grant is None:
            await self._store.revoke_family(claims.sid)
            raise RevokedTokenError(reason="grant loader refused the subject")
        if not isinstance(grant, Grant):
            raise ConfigurationError("grant_loader must return a Grant or None")
        now = self._clock()
        successor = _successor_jti(claims.jti)
        # Mint before consuming: a bad grant must not burn the refresh token.
        pair = self._mint(
            claims.sub,
            claims.sid,
            refresh_jti=successor,
            roles=grant.roles,
            scopes=grant.scopes,
            claims=grant.claims,
            fresh=False,
            auth_time=claims.auth_time,
            issued_at=math.floor(now),
            dpop_jkt=claims.cnf.jkt if claims.cnf is not None else dpop_jkt,
            amr=claims.amr,
        )
        state = await self._store.rotate(
            claims.sub,
            claims.sid,
            jti=claims.jti,
            successor_jti=successor,
            ttl=self._refresh_ttl + self._leeway,
            now=now,
            grace=self._grace,
        )
        if state is TokenState.ROTATED or state is TokenState.GRACE:
            return pair
        if state is TokenState.REUSED:
            logger.warning(
                "refresh token reuse detected; token family %s revoked",
                digest("sid", claims.sid)[:12],
            )
            await emit_event(
                self.events,
                EventType.REFRESH_REUSE_DETECTED,
                clock=self._clock,
                subject=claims.sub,
                session_id=claims.sid,
                reason="refresh token reused; token family revoked",
            )
            raise TokenReuseError(reason="refresh token reused; family revoked")
        raise _refusal(state)

    # -- revocation ------------------------------------------------------------

    async def revoke(self, token: str) -> None:
        """Revoke one token: an access token's ``jti`` is denied until it
        expires; a refresh token revokes its whole family.

        The token must be genuine (signature, issuer, audience, kind) but may
        already be expired or revoked.
        """
        typ = self._keys.verify(token).header.get("typ")
        if typ == ACCESS_TOKEN_TYP:
            access = self._decode(
                token, AccessClaims, ACCESS_TOKEN_TYP, _REQUIRED_ACCESS, check_expiry=False
            )
            remaining = access.exp + self._leeway - self._clock()
            if remaining > 0:
                await self._store.deny_token(access.sub, access.sid, jti=access.jti, ttl=remaining)
        elif typ == REFRESH_TOKEN_TYP:
            refresh = self._decode(
                token, RefreshClaims, REFRESH_TOKEN_TYP, _REQUIRED_REFRESH, check_expiry=False
            )
            await self._store.revoke_family(refresh.sid)
        else:
            raise InvalidTokenError(reason="unknown typ header")

    async def revoke_family(self, family_id: str) -> None:
        """Revoke every token of one family (one login session): the ``sid`` claim."""
        await self._store.revoke_family(family_id)

    async def revoke_subject(self, subject: str) -> None:
        """Revoke every token of ``subject`` issued before this call (log out
        everywhere). Tokens issued after it returns are valid, even within
        the same clock second."""
        await self._store.revoke_subject(subject, ttl=self._refresh_ttl + self._leeway)
        await emit_event(
            self.events, EventType.LOGOUT_EVERYWHERE, clock=self._clock, subject=subject
        )


async def keep_login_grant(claims: RefreshClaims) -> Grant:
    """A grant loader that keeps the roles and scopes the login was issued with.

    The loosening, named: a removed role or a deactivated account then takes
    effect only when the session ends (``max_session_age``), not at the next
    refresh. Custom claims are not carried over.
    """
    return Grant(roles=claims.roles, scopes=claims.scopes)


def _refusal(state: TokenState) -> InvalidTokenError:
    if state in (TokenState.TOKEN_REVOKED, TokenState.FAMILY_REVOKED, TokenState.SUBJECT_REVOKED):
        return RevokedTokenError(reason=state.value)
    return InvalidTokenError(reason=state.value)
