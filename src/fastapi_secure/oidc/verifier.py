"""Verify access tokens that an outside identity provider issued (a resource server).

:class:`ProviderTokenVerifier` has ``async verify_access(token) -> AccessClaims``,
so it plugs into :class:`~fastapi_secure.BearerAuth` where a
:class:`~fastapi_secure.TokenIssuer` would, and ``RoleChecker``,
``PermissionChecker`` and ``Security(..., scopes=[...])`` apply unchanged.

```python
verifier = ProviderTokenVerifier(
    TrustedIssuer(
        RemoteKeySet("https://sso.example.com/realms/main"),
        audience="orders-api",
        claims=keycloak_claims(client_id="orders-api"),
    )
)
bearer = BearerAuth(verifier)
```

What a token must carry: ``iss`` equal to one trusted issuer (which also
chooses the keys: several providers or tenants at once), a signature by one
of that issuer's keys with the key's pinned algorithm, ``aud`` naming one of
the configured audiences, ``sub``, ``exp`` in the future and ``iat``/``nbf``
not in the future (each within a leeway of at most five minutes). With
``rfc9068=True`` also the JOSE ``typ`` ``at+jwt`` and the ``client_id`` and
``jti`` claims (RFC 9068, section 4), so an ID token or another JWT of the
same provider is never taken for an access token.

Providers shape roles and scopes differently; a *claims mapper* turns the
provider's claims into roles and scopes: :func:`standard_claims` (``roles``,
``scope``/``scp``), :func:`keycloak_claims`, :func:`entra_claims`,
:func:`auth0_claims`, or any function of your own.

:class:`IntrospectionVerifier` does the same for opaque tokens by asking the
provider (RFC 7662), with a short cache.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import jwt
import pydantic

from fastapi_secure.clock import Clock, system_clock
from fastapi_secure.errors import ConfigurationError, ExpiredTokenError, InvalidTokenError
from fastapi_secure.oidc.errors import ProviderUnavailableError
from fastapi_secure.oidc.remote import (
    DEFAULT_MAX_BYTES,
    FetchError,
    HTTPClientOwner,
    RemoteKeySet,
    check_provider_url,
    fetch_json,
)
from fastapi_secure.tokens.claims import AccessClaims
from fastapi_secure.tokens.keys import DEFAULT_MAX_TOKEN_BYTES

if TYPE_CHECKING:
    import httpx

__all__ = [
    "MAX_LEEWAY",
    "ClaimsMapper",
    "IntrospectionVerifier",
    "MappedClaims",
    "ProviderTokenVerifier",
    "TrustedIssuer",
    "auth0_claims",
    "entra_claims",
    "keycloak_claims",
    "standard_claims",
]

logger = logging.getLogger("fastapi_secure.oidc")

MAX_LEEWAY = 300.0
"""Largest clock-skew leeway accepted (seconds)."""

# The integers JSON carries exactly (RFC 7493, section 2.2): the bound of a time claim.
_MAX_NUMERIC_DATE = 2**53

_AT_JWT_TYPES = frozenset({"at+jwt", "application/at+jwt"})


# -- claims mappers ------------------------------------------------------------


@dataclass(frozen=True)
class MappedClaims:
    """What a claims mapper extracts from a provider's token: roles and scopes."""

    roles: tuple[str, ...] = ()
    scopes: frozenset[str] = frozenset()


ClaimsMapper = Callable[[Mapping[str, Any]], MappedClaims]
"""A function from the provider's verified claims to :class:`MappedClaims`."""


def _strings(value: object) -> list[str]:
    """The non-empty strings of a JSON list (anything else: none)."""
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, str) and item]


def _scope_words(value: object) -> set[str]:
    """Scopes from a space-delimited string (RFC 6749) or a list of strings."""
    if isinstance(value, str):
        return set(value.split())
    return set(_strings(value))


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def standard_claims(claims: Mapping[str, Any]) -> MappedClaims:
    """Roles from ``roles`` (a list), scopes from ``scope`` (RFC 9068) or ``scp``.

    The shape of RFC 9068 / RFC 9068 section 7.2.1.1 tokens and of most
    providers without their own mapper (Okta, Cognito's ``scope``, our own
    tokens).
    """
    scopes = _scope_words(claims.get("scope")) | _scope_words(claims.get("scp"))
    return MappedClaims(roles=_unique(_strings(claims.get("roles"))), scopes=frozenset(scopes))


def keycloak_claims(*, client_id: str | None = None) -> ClaimsMapper:
    """Keycloak: realm roles, plus the client roles of ``client_id``.

    Keycloak puts realm roles in ``realm_access.roles`` and the roles of each
    client in ``resource_access.<client id>.roles``; scopes in ``scope``.
    Only the client roles of ``client_id`` (your API's client in Keycloak)
    are taken, so roles of other clients never grant anything here.
    """

    def keycloak(claims: Mapping[str, Any]) -> MappedClaims:
        roles: list[str] = []
        realm = claims.get("realm_access")
        if isinstance(realm, Mapping):
            roles += _strings(realm.get("roles"))
        resources = claims.get("resource_access")
        if client_id is not None and isinstance(resources, Mapping):
            own = resources.get(client_id)
            if isinstance(own, Mapping):
                roles += _strings(own.get("roles"))
        return MappedClaims(
            roles=_unique(roles), scopes=frozenset(_scope_words(claims.get("scope")))
        )

    return keycloak


def entra_claims() -> ClaimsMapper:
    """Microsoft Entra ID: app roles from ``roles``, delegated scopes from ``scp``.

    ``scp`` is a space-delimited string in user (delegated) tokens; app-only
    tokens carry ``roles`` and no ``scp``.
    """

    def entra(claims: Mapping[str, Any]) -> MappedClaims:
        return MappedClaims(
            roles=_unique(_strings(claims.get("roles"))),
            scopes=frozenset(_scope_words(claims.get("scp"))),
        )

    return entra


def auth0_claims(*, roles_claim: str | None = None) -> ClaimsMapper:
    """Auth0: scopes from ``scope`` and the RBAC ``permissions`` list.

    With RBAC's *Add Permissions in the Access Token*, Auth0 lists the
    granted API permissions (``read:orders``) in ``permissions``; they become
    scopes, so ``Security(bearer, scopes=["read:orders"])`` checks them.
    Auth0 puts no roles in access tokens by itself; an Action can add them
    under a namespaced claim, named here by ``roles_claim``
    (e.g. ``"https://example.com/roles"``).
    """

    def auth0(claims: Mapping[str, Any]) -> MappedClaims:
        scopes = _scope_words(claims.get("scope")) | set(_strings(claims.get("permissions")))
        roles = _strings(claims.get(roles_claim)) if roles_claim else []
        return MappedClaims(roles=_unique(roles), scopes=frozenset(scopes))

    return auth0


# -- shared claim checks ---------------------------------------------------------


def _number(payload: Mapping[str, Any], name: str, *, required: bool) -> float | None:
    value = payload.get(name)
    if value is None:
        if required:
            raise InvalidTokenError(reason=f"missing {name} claim")
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        # NaN fails too; comparing never turns a huge int into a float (OverflowError).
        or not -_MAX_NUMERIC_DATE <= value <= _MAX_NUMERIC_DATE
    ):
        raise InvalidTokenError(reason=f"{name} claim is not a number")
    return float(value)


def _check_time(
    payload: Mapping[str, Any], *, now: float, leeway: float, exp_required: bool
) -> None:
    exp = _number(payload, "exp", required=exp_required)
    if exp is not None and now >= exp + leeway:
        raise ExpiredTokenError(reason="token expired")
    nbf = _number(payload, "nbf", required=False)
    if nbf is not None and nbf > now + leeway:
        raise InvalidTokenError(reason="token not yet valid (nbf)")
    iat = _number(payload, "iat", required=False)
    if iat is not None and iat > now + leeway:
        raise InvalidTokenError(reason="token issued in the future (iat)")


def _check_audience(payload: Mapping[str, Any], audiences: frozenset[str]) -> None:
    aud = payload.get("aud")
    if isinstance(aud, str):
        presented = {aud}
    elif isinstance(aud, list) and len(_strings(aud)) == len(aud):
        presented = set(aud)
    else:
        presented = set()
    if not presented or "" in presented:
        raise InvalidTokenError(reason="missing or malformed aud claim")
    if presented.isdisjoint(audiences):
        raise InvalidTokenError(reason="token is for another audience")


def _build_claims(payload: Mapping[str, Any], *, token: str, mapper: ClaimsMapper) -> AccessClaims:
    sub = payload.get("sub")
    if not isinstance(sub, str) or not sub:
        raise InvalidTokenError(reason="missing sub claim")
    exp = _number(payload, "exp", required=True)
    iat = _number(payload, "iat", required=False)
    nbf = _number(payload, "nbf", required=False)
    auth_time = _number(payload, "auth_time", required=False)
    assert exp is not None  # required=True
    jti = payload.get("jti")
    if not isinstance(jti, str) or not jti:
        # Entra ID names its token id "uti"; otherwise a digest of the token is its id.
        uti = payload.get("uti")
        jti = uti if isinstance(uti, str) and uti else hashlib.sha256(token.encode()).hexdigest()
    sid = payload.get("sid")
    issued = int(iat) if iat is not None else int(nbf) if nbf is not None else int(exp)
    try:
        mapped = mapper(payload)
    except Exception as exc:
        logger.error("claims mapper %r failed: %s", mapper, type(exc).__name__)
        raise InvalidTokenError(reason=f"claims mapper failed: {type(exc).__name__}") from None
    extra: dict[str, Any] = {"provider_claims": dict(payload)}
    client_id = payload.get("client_id", payload.get("azp"))
    if isinstance(client_id, str):
        extra["client_id"] = client_id
    if "cnf" in payload:
        # A bound token stays bound: a binding we cannot read refuses the token
        # rather than turning it into a bearer token.
        if not isinstance(payload["cnf"], Mapping):
            raise InvalidTokenError(reason="cnf claim is not an object")
        extra["cnf"] = dict(payload["cnf"])
    try:
        return AccessClaims(
            iss=payload["iss"],
            sub=sub,
            aud=payload["aud"],
            exp=int(exp),
            iat=issued,
            nbf=int(nbf) if nbf is not None else None,
            jti=jti,
            sid=sid if isinstance(sid, str) and sid else jti,
            auth_time=int(auth_time) if auth_time is not None else issued,
            roles=mapped.roles,
            scope=frozenset(mapped.scopes),
            fresh=False,
            **extra,
        )
    except (pydantic.ValidationError, TypeError, KeyError) as exc:
        raise InvalidTokenError(reason=f"claims do not fit: {type(exc).__name__}") from None


def _audiences(audience: str | Sequence[str]) -> frozenset[str]:
    values = [audience] if isinstance(audience, str) else list(audience)
    if not values or not all(isinstance(value, str) and value for value in values):
        raise ConfigurationError("audience must be a non-empty string or list of strings")
    return frozenset(values)


def _check_leeway(leeway: float) -> float:
    if not 0 <= leeway <= MAX_LEEWAY:
        raise ConfigurationError(f"leeway must be between 0 and {MAX_LEEWAY:g} seconds")
    return float(leeway)


# -- JWT access tokens -------------------------------------------------------------


@dataclass(frozen=True)
class TrustedIssuer:
    """One provider (or tenant) whose access tokens are accepted.

    ``keys`` names the issuer (``keys.issuer``, compared exactly with ``iss``)
    and holds its keys; ``audience`` is this API's identifier at the provider
    (one or several); ``claims`` maps the provider's claims into roles and
    scopes; ``rfc9068=True`` requires RFC 9068 access tokens; ``leeway``
    (at most :data:`MAX_LEEWAY`) absorbs clock skew.
    """

    keys: RemoteKeySet
    audience: str | Sequence[str]
    claims: ClaimsMapper = standard_claims
    rfc9068: bool = False
    leeway: float = 30.0
    _audiences: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.keys, RemoteKeySet):
            raise ConfigurationError("keys must be a RemoteKeySet")
        if not callable(self.claims):
            raise ConfigurationError("claims must be a claims mapper (a function)")
        _check_leeway(self.leeway)
        object.__setattr__(self, "_audiences", _audiences(self.audience))

    @property
    def issuer(self) -> str:
        return self.keys.issuer


class ProviderTokenVerifier:
    """Access tokens of one or more identity providers -> :class:`AccessClaims`.

    The unverified ``iss`` picks the :class:`TrustedIssuer`; everything is
    then checked against that issuer alone (its keys, its audience), so a
    token of tenant A can never be checked with tenant B's keys. An unknown
    issuer is refused before any network access.

    Raises :class:`~fastapi_secure.errors.InvalidTokenError` (401) for any
    bad token, :class:`~fastapi_secure.errors.ExpiredTokenError` when expired,
    :class:`~fastapi_secure.oidc.errors.ProviderUnavailableError` (503) when
    the provider's keys were never obtainable.
    """

    def __init__(
        self,
        *issuers: TrustedIssuer,
        clock: Clock = system_clock,
        max_token_bytes: int = DEFAULT_MAX_TOKEN_BYTES,
    ) -> None:
        if not issuers:
            raise ConfigurationError("trust at least one issuer")
        by_issuer: dict[str, TrustedIssuer] = {}
        for trusted in issuers:
            if not isinstance(trusted, TrustedIssuer):
                raise ConfigurationError("issuers must be TrustedIssuer objects")
            if trusted.issuer in by_issuer:
                raise ConfigurationError(f"issuer {trusted.issuer!r} is trusted twice")
            by_issuer[trusted.issuer] = trusted
        self._issuers = by_issuer
        self.clock = clock
        self.max_token_bytes = max_token_bytes

    @property
    def issuers(self) -> tuple[str, ...]:
        return tuple(self._issuers)

    def __repr__(self) -> str:
        return f"ProviderTokenVerifier(issuers={list(self._issuers)!r})"

    def _choose(self, token: str) -> TrustedIssuer:
        if not isinstance(token, str) or len(token) > self.max_token_bytes:
            raise InvalidTokenError(reason="token too large or not a string")
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except (jwt.PyJWTError, ValueError, TypeError, RecursionError):
            raise InvalidTokenError(reason="not a JWT") from None
        iss = unverified.get("iss")
        trusted = self._issuers.get(iss) if isinstance(iss, str) else None
        if trusted is None:
            raise InvalidTokenError(reason="token from an issuer that is not trusted")
        return trusted

    async def verify_access(self, token: str) -> AccessClaims:
        """Verify an access token of a trusted provider and map its claims."""
        trusted = self._choose(token)
        verified = await trusted.keys.verify(token)
        if trusted.rfc9068:
            typ = verified.header.get("typ")
            if not isinstance(typ, str) or typ.lower() not in _AT_JWT_TYPES:
                raise InvalidTokenError(reason="typ is not at+jwt (RFC 9068)")
        payload = verified.claims()
        # The strictly parsed payload must name the issuer whose keys signed it.
        if payload.get("iss") != trusted.issuer:
            raise InvalidTokenError(reason="iss does not match the signing issuer")
        _check_audience(payload, trusted._audiences)
        _check_time(payload, now=self.clock(), leeway=trusted.leeway, exp_required=True)
        _number(payload, "iat", required=trusted.rfc9068)
        if trusted.rfc9068:
            for name in ("client_id", "jti", "sub"):
                if not isinstance(payload.get(name), str) or not payload[name]:
                    raise InvalidTokenError(reason=f"missing {name} claim (RFC 9068)")
        return _build_claims(payload, token=token, mapper=trusted.claims)


# -- opaque tokens: RFC 7662 introspection --------------------------------------------


@dataclass(frozen=True)
class _CachedAnswer:
    until: float
    claims: AccessClaims | None


class IntrospectionVerifier(HTTPClientOwner):
    """Opaque access tokens, checked by the provider's introspection endpoint (RFC 7662).

    The endpoint is called with this API's client credentials (HTTP Basic).
    An ``active`` answer must name ``issuer`` in ``iss`` when it has one, one
    of ``audience`` in ``aud`` (required), a ``sub``, and an ``exp`` in the
    future when it has one. Answers are cached for at most ``cache_ttl``
    seconds (never past the token's ``exp``), keyed by a digest of the token;
    refusals for ``negative_ttl`` seconds. A revoked token is thus accepted at
    most ``cache_ttl`` seconds after its revocation: keep it short.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        client_id: str,
        client_secret: str,
        issuer: str,
        audience: str | Sequence[str],
        claims: ClaimsMapper = standard_claims,
        cache_ttl: float = 30.0,
        negative_ttl: float = 5.0,
        max_cached: int = 10_000,
        leeway: float = 30.0,
        allow_insecure_loopback: bool = False,
        timeout: float = 5.0,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_token_bytes: int = DEFAULT_MAX_TOKEN_BYTES,
        http_client: httpx.AsyncClient | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self._init_http_client(http_client, feature="IntrospectionVerifier")
        self.endpoint = check_provider_url(
            endpoint, allow_insecure_loopback=allow_insecure_loopback
        )
        if not client_id or not client_secret:
            raise ConfigurationError("introspection needs client_id and client_secret")
        if not 0 <= negative_ttl <= cache_ttl <= 300 or max_cached < 1:
            raise ConfigurationError(
                "need 0 <= negative_ttl <= cache_ttl <= 300 and max_cached >= 1"
            )
        self._auth = (client_id, client_secret)
        self.issuer = issuer
        self._audiences = _audiences(audience)
        self.claims = claims
        self.cache_ttl = float(cache_ttl)
        self.negative_ttl = float(negative_ttl)
        self.max_cached = max_cached
        self.leeway = _check_leeway(leeway)
        self.timeout = float(timeout)
        self.max_bytes = max_bytes
        self.max_token_bytes = max_token_bytes
        self.clock = clock
        self._cache: OrderedDict[bytes, _CachedAnswer] = OrderedDict()
        self.request_count = 0
        """Introspection requests sent, for tests and metrics."""

    def __repr__(self) -> str:
        # Never the client secret.
        return f"IntrospectionVerifier(endpoint={self.endpoint!r}, client_id={self._auth[0]!r})"

    def _remember(self, key: bytes, answer: _CachedAnswer) -> None:
        self._cache[key] = answer
        self._cache.move_to_end(key)
        while len(self._cache) > self.max_cached:
            self._cache.popitem(last=False)

    async def verify_access(self, token: str) -> AccessClaims:
        """Ask the provider about ``token``; the answer is cached briefly."""
        if not isinstance(token, str) or not token or len(token) > self.max_token_bytes:
            raise InvalidTokenError(reason="token too large or not a string")
        key = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        now = self.clock()
        cached = self._cache.get(key)
        if cached is not None and now < cached.until:
            if cached.claims is None:
                raise InvalidTokenError(reason="inactive token (cached)")
            return cached.claims
        self.request_count += 1
        try:
            answer, _ = await fetch_json(
                self.http_client,
                self.endpoint,
                method="POST",
                data={"token": token, "token_type_hint": "access_token"},
                auth=self._auth,
                time_limit=self.timeout,
                max_bytes=self.max_bytes,
            )
        except FetchError as exc:
            logger.warning("token introspection failed: %s", exc)
            raise ProviderUnavailableError(reason=str(exc)) from None
        try:
            claims = self._check(answer, token, now)
        except InvalidTokenError:
            self._remember(key, _CachedAnswer(now + self.negative_ttl, None))
            raise
        exp = claims.exp
        self._remember(key, _CachedAnswer(min(now + self.cache_ttl, float(exp)), claims))
        return claims

    def _check(self, answer: Mapping[str, Any], token: str, now: float) -> AccessClaims:
        if answer.get("active") is not True:
            raise InvalidTokenError(reason="inactive token")
        iss = answer.get("iss", self.issuer)
        if iss != self.issuer:
            raise InvalidTokenError(reason="introspection names another issuer")
        _check_audience(answer, self._audiences)
        _check_time(answer, now=now, leeway=self.leeway, exp_required=False)
        payload = dict(answer)
        payload["iss"] = self.issuer
        if payload.get("exp") is None:
            payload["exp"] = int(now + self.cache_ttl)
        return _build_claims(payload, token=token, mapper=self.claims)
