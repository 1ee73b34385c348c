"""FastAPI dependencies that authenticate a request and return its ``AccessClaims``.

Where the token travels is separate from what it is: :class:`BearerAuth` reads
``Authorization: Bearer``, :class:`CookieAuth` an HttpOnly cookie guarded by a
signed double-submit CSRF token and an Origin check. Both verify through one
issuer (anything with ``async verify_access(token) -> AccessClaims``, normally
a :class:`~fastapi_secure.tokens.issuer.TokenIssuer`) and both register an
OpenAPI security scheme, so Swagger UI's *Authorize* button works.

Use them with ``Security(auth, scopes=[...])`` to require OAuth2 scopes: the
scopes appear in the OpenAPI operation and a token lacking one gets
``403 insufficient_scope``.

Answers (RFC 6750):

* no credentials: ``401 not_authenticated`` with ``WWW-Authenticate: Bearer``;
* anything wrong with a presented token (malformed, oversized, forged,
  expired, revoked, a refresh token): ``401 invalid_token`` with
  ``WWW-Authenticate: Bearer error="invalid_token"`` and one generic message;
  the precise reason is logged at DEBUG on the ``fastapi_secure.auth`` logger,
  never the token itself;
* token store down: ``503 store_unavailable`` (fail closed).

``auto_error=False`` only makes *absent* credentials return ``None`` (optional
authentication, or chaining several schemes). A token that is presented but
invalid is still refused with 401: an expired or revoked token must not
silently downgrade a request to anonymous.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import math
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, Protocol, runtime_checkable
from urllib.parse import urlsplit

from fastapi.openapi.models import APIKey, APIKeyIn, OAuthFlowPassword, OAuthFlows
from fastapi.openapi.models import OAuth2 as OAuth2Model
from fastapi.security.base import SecurityBase
from fastapi.security.oauth2 import SecurityScopes
from starlette.requests import Request
from starlette.responses import Response

from fastapi_secure.clock import Clock, system_clock
from fastapi_secure.errors import (
    AuthenticationError,
    ConfigurationError,
    CSRFError,
    ErrorCode,
    HTTPSecurityError,
    InsufficientScopeError,
    InvalidTokenError,
)
from fastapi_secure.tokens.claims import AccessClaims, TokenPair

__all__ = [
    "AccessTokenVerifier",
    "BearerAuth",
    "ClaimsDependency",
    "CookieAuth",
    "FreshTokenRequired",
    "TokenAuth",
    "require_fresh",
]

logger = logging.getLogger("fastapi_secure.auth")

DEFAULT_MAX_TOKEN_LENGTH = 8192
"""Longest token accepted before any parsing (characters)."""

# RFC 6750, section 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# RFC 6749, appendix A.4: scope-token characters; anything else stays out of a header.
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
# RFC 6265 cookie-name (an RFC 7230 token).
_COOKIE_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_CLAIMS_CACHE_KEY = "fastapi_secure.verified_access_claims"
_CSRF_CONTEXT = b"fastapi-secure/csrf/v1"
_MIN_CSRF_SECRET_BYTES = 32


@runtime_checkable
class AccessTokenVerifier(Protocol):
    """What the auth dependencies need from an issuer."""

    async def verify_access(self, token: str) -> AccessClaims: ...


@runtime_checkable
class ClaimsDependency(Protocol):
    """An object that authenticates a request into ``AccessClaims``.

    :class:`BearerAuth`, :class:`CookieAuth`, :class:`FreshTokenRequired` and
    :class:`~fastapi_secure.rbac.RoleChecker` all are, so they compose:
    ``RoleChecker(["admin"], auth=require_fresh(bearer))``. ``model`` and
    ``scheme_name`` are the OpenAPI security scheme the request is checked
    against.
    """

    model: Any
    scheme_name: str

    async def authenticate(
        self, request: Request, scopes: Sequence[str] = ()
    ) -> AccessClaims | None: ...


def _token_syntax_ok(token: str, max_length: int) -> str | None:
    """The reason a raw token is refused before verification, or None."""
    if len(token) > max_length:
        return f"token longer than {max_length} characters"
    if not _B64TOKEN.fullmatch(token):
        return "token is not a b64token"
    return None


def _bearer_token(values: Sequence[str], max_length: int) -> str | None:
    """The token of the ``Authorization`` header values, None when no Bearer credentials.

    Raises InvalidTokenError for Bearer credentials that cannot be a token.
    """
    if not values:
        return None
    if len(values) > 1:
        raise InvalidTokenError(reason="several Authorization headers")
    scheme, _, param = values[0].strip(" ").partition(" ")
    if scheme.lower() != "bearer":
        # Another scheme (Basic, Digest, ...) or nothing: no Bearer credentials,
        # answered like a missing header (RFC 6750, section 3.1).
        return None
    token = param.strip(" ")
    if not token:
        raise InvalidTokenError(reason="empty Bearer credentials")
    problem = _token_syntax_ok(token, max_length)
    if problem is not None:
        raise InvalidTokenError(reason=problem)
    return token


def _insufficient_scope(required: Sequence[str], missing: set[str]) -> InsufficientScopeError:
    shown = " ".join(scope for scope in required if _SCOPE_TOKEN.fullmatch(scope))
    challenge = 'Bearer error="insufficient_scope"'
    if shown:
        challenge += f', scope="{shown}"'
    return InsufficientScopeError(
        headers={"WWW-Authenticate": challenge},
        reason=f"missing scopes {sorted(missing)}",
    )


class TokenAuth(SecurityBase):
    """Common machinery of :class:`BearerAuth` and :class:`CookieAuth`."""

    def __init__(
        self,
        issuer: AccessTokenVerifier,
        *,
        auto_error: bool,
        max_token_length: int,
    ) -> None:
        if not callable(getattr(issuer, "verify_access", None)):
            raise ConfigurationError("issuer must provide an async verify_access(token) method")
        if max_token_length < 64:
            raise ConfigurationError("max_token_length below 64 characters cannot hold a JWT")
        self.issuer = issuer
        self.auto_error = auto_error
        self.max_token_length = max_token_length

    def _not_authenticated(self, reason: str) -> AccessClaims | None:
        if self.auto_error:
            logger.debug("request not authenticated: %s", reason)
            raise AuthenticationError(reason=reason)
        return None

    async def _verify(self, request: Request, token: str) -> AccessClaims:
        # Several dependencies of one request (a router-level RoleChecker and the
        # endpoint's own auth) verify the same token once, not once each.
        cache: dict[tuple[int, str], AccessClaims] = request.scope.setdefault(_CLAIMS_CACHE_KEY, {})
        key = (id(self.issuer), token)
        cached = cache.get(key)
        if cached is not None:
            return cached
        try:
            claims = await self.issuer.verify_access(token)
        except HTTPSecurityError as exc:
            logger.debug("access token refused: %s (%s)", type(exc).__name__, exc.reason)
            raise
        except Exception as exc:
            # The issuer promises InvalidTokenError for any bad input; if some
            # other exception escapes, refuse the request rather than answer 500.
            logger.error("access token verification failed unexpectedly: %s", type(exc).__name__)
            raise InvalidTokenError(reason=f"unexpected {type(exc).__name__}") from None
        cache[key] = claims
        return claims

    @staticmethod
    def _check_scopes(claims: AccessClaims, scopes: Sequence[str]) -> None:
        missing = set(scopes) - claims.scopes
        if missing:
            logger.debug("access token lacks scopes %s", sorted(missing))
            raise _insufficient_scope(scopes, missing)

    async def authenticate(
        self, request: Request, scopes: Sequence[str] = ()
    ) -> AccessClaims | None:
        """Verify the request's token and required ``scopes``; None only when
        credentials are absent and ``auto_error`` is False."""
        raise NotImplementedError

    async def __call__(
        self, request: Request, security_scopes: SecurityScopes
    ) -> AccessClaims | None:
        return await self.authenticate(request, security_scopes.scopes)


class BearerAuth(TokenAuth):
    """``Authorization: Bearer <access token>`` -> ``AccessClaims``.

    Registers an OAuth2 password-flow scheme (``token_url``, ``scopes``) in
    OpenAPI. Use ``Depends(bearer)``, or ``Security(bearer, scopes=[...])``
    to require scopes.
    """

    model: OAuth2Model

    def __init__(
        self,
        issuer: AccessTokenVerifier,
        *,
        token_url: str = "/auth/token",  # noqa: S107 - a URL path, not a secret
        refresh_url: str | None = None,
        scopes: Mapping[str, str] | None = None,
        auto_error: bool = True,
        scheme_name: str | None = None,
        description: str | None = None,
        max_token_length: int = DEFAULT_MAX_TOKEN_LENGTH,
    ) -> None:
        super().__init__(issuer, auto_error=auto_error, max_token_length=max_token_length)
        if not token_url:
            raise ConfigurationError("token_url must not be empty")
        for scope in scopes or {}:
            if not _SCOPE_TOKEN.fullmatch(scope):
                raise ConfigurationError(f"scope {scope!r} is not a valid OAuth2 scope token")
        self.model = OAuth2Model(
            flows=OAuthFlows(
                password=OAuthFlowPassword(
                    tokenUrl=token_url, refreshUrl=refresh_url, scopes=dict(scopes or {})
                )
            ),
            description=description,
        )
        self.scheme_name = scheme_name or type(self).__name__

    async def authenticate(
        self, request: Request, scopes: Sequence[str] = ()
    ) -> AccessClaims | None:
        token = _bearer_token(request.headers.getlist("authorization"), self.max_token_length)
        if token is None:
            return self._not_authenticated("no Bearer credentials")
        claims = await self._verify(request, token)
        self._check_scopes(claims, scopes)
        return claims


class CookieAuth(TokenAuth):
    """The access token from an HttpOnly cookie, with CSRF protection.

    Unsafe methods (anything but GET, HEAD, OPTIONS, TRACE) must carry:

    * an ``Origin`` (or, when absent, ``Referer``) in ``allowed_origins``;
    * the CSRF token in the ``X-CSRF-Token`` header, equal to the CSRF cookie
      and HMAC-bound (with ``csrf_secret``) to the token family ``sid`` of the
      access token, so a token from another session fails.

    Cookies get ``Secure``, ``HttpOnly`` (all but the CSRF cookie, which the
    page's JavaScript reads to echo it) and ``SameSite``; the access and CSRF
    cookies use the ``__Host-`` prefix, and so does the refresh cookie
    (``SameSite=Strict``). ``__Host-`` requires ``Path=/``: path scoping is no
    security boundary (RFC 6265, section 8.5), while a ``__Secure-`` cookie
    scoped to the refresh path could be planted by a sibling subdomain and log
    a signed-out victim into the planter's session. ``secure=False`` drops
    ``Secure`` and the prefixes for local development over plain http.

    A request carrying one of these cookies twice (one planted from another
    host under the same name) is refused rather than served with whichever
    copy comes last: 401 for the access cookie, 403 for the CSRF cookie, and
    :meth:`refresh_token` returns None.
    """

    model: APIKey

    def __init__(
        self,
        issuer: AccessTokenVerifier,
        *,
        csrf_secret: str | bytes,
        allowed_origins: Iterable[str],
        secure: bool = True,
        samesite: Literal["lax", "strict"] = "lax",
        access_cookie: str = "access_token",
        refresh_cookie: str = "refresh_token",
        csrf_cookie: str = "csrf_token",
        csrf_header: str = "X-CSRF-Token",
        auto_error: bool = True,
        scheme_name: str | None = None,
        description: str | None = None,
        max_token_length: int = DEFAULT_MAX_TOKEN_LENGTH,
    ) -> None:
        super().__init__(issuer, auto_error=auto_error, max_token_length=max_token_length)
        secret = csrf_secret.encode() if isinstance(csrf_secret, str) else bytes(csrf_secret)
        if len(secret) < _MIN_CSRF_SECRET_BYTES:
            raise ConfigurationError(
                f"csrf_secret must be at least {_MIN_CSRF_SECRET_BYTES} bytes; "
                "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        self._csrf_key = secret
        self.allowed_origins = frozenset(_normalize_origin(origin) for origin in allowed_origins)
        if not self.allowed_origins:
            raise ConfigurationError("allowed_origins must name at least one origin")
        if samesite not in ("lax", "strict"):
            raise ConfigurationError("samesite must be 'lax' or 'strict'")
        for name in (access_cookie, refresh_cookie, csrf_cookie, csrf_header):
            if not _COOKIE_NAME.fullmatch(name) or name.startswith("__"):
                raise ConfigurationError(
                    f"{name!r} is not a valid name (the __Host- prefix is added by secure=True)"
                )
        self.secure = secure
        self.samesite = samesite
        self.csrf_header = csrf_header
        self.access_cookie = f"__Host-{access_cookie}" if secure else access_cookie
        self.csrf_cookie = f"__Host-{csrf_cookie}" if secure else csrf_cookie
        self.refresh_cookie = f"__Host-{refresh_cookie}" if secure else refresh_cookie
        self.model = APIKey(
            **{"in": APIKeyIn.cookie},  # "in" is a keyword
            name=self.access_cookie,
            description=description,
        )
        self.scheme_name = scheme_name or type(self).__name__

    # --- request side -------------------------------------------------------

    async def authenticate(
        self, request: Request, scopes: Sequence[str] = ()
    ) -> AccessClaims | None:
        token = request.cookies.get(self.access_cookie)
        if not token:
            # No cookie means no ambient authority a forged request could abuse.
            return self._not_authenticated("no access token cookie")
        if _cookie_count(request, self.access_cookie) > 1:
            raise InvalidTokenError(reason="several access token cookies")
        problem = _token_syntax_ok(token, self.max_token_length)
        if problem is not None:
            logger.debug("access token cookie refused: %s", problem)
            raise InvalidTokenError(reason=problem)
        unsafe = request.method.upper() not in _SAFE_METHODS
        if unsafe:
            self.check_origin(request)
        claims = await self._verify(request, token)
        if unsafe:
            self._check_csrf_token(request, claims.sid)
        self._check_scopes(claims, scopes)
        return claims

    def check_origin(self, request: Request) -> None:
        """Raise :class:`~fastapi_secure.errors.CSRFError` unless the request's
        ``Origin`` (else ``Referer``) is allowed.

        Unsafe methods go through it automatically; call it yourself in routes
        that act on cookies without this dependency, such as the refresh route.
        """
        origin = request.headers.get("origin")
        if origin is None:
            referer = request.headers.get("referer")
            if referer is None:
                raise _csrf_refused("neither Origin nor Referer on an unsafe request")
            origin = _origin_of(referer)
        else:
            origin = origin.strip().lower()
        if origin is None or origin not in self.allowed_origins:
            raise _csrf_refused("Origin or Referer not in allowed_origins")

    def _check_csrf_token(self, request: Request, sid: str) -> None:
        header = request.headers.get(self.csrf_header)
        cookie = request.cookies.get(self.csrf_cookie)
        if not header or not cookie:
            raise _csrf_refused("CSRF header or cookie missing")
        if _cookie_count(request, self.csrf_cookie) > 1:
            raise _csrf_refused("several CSRF cookies")
        if not hmac.compare_digest(_as_bytes(header), _as_bytes(cookie)):
            raise _csrf_refused("CSRF header does not match the CSRF cookie")
        nonce, dot, mac = header.partition(".")
        if not dot or not hmac.compare_digest(
            _as_bytes(mac), _as_bytes(self._csrf_mac(sid, nonce))
        ):
            raise _csrf_refused("CSRF token not bound to this session")

    def _csrf_mac(self, sid: str, nonce: str) -> str:
        message = b"\x00".join((_CSRF_CONTEXT, sid.encode(), nonce.encode()))
        digest = hmac.new(self._csrf_key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def csrf_token_for(self, sid: str) -> str:
        """A new CSRF token bound to the token family (session) ``sid``."""
        nonce = secrets.token_urlsafe(16)
        return f"{nonce}.{self._csrf_mac(sid, nonce)}"

    def refresh_token(self, request: Request) -> str | None:
        """The refresh token cookie of ``request`` (for the refresh route), or None.

        Returns None as well for a value that cannot be a token, and when the
        request carries several refresh cookies: without ``secure=True`` (no
        ``__Host-`` prefix) a cookie can be planted by a sibling subdomain
        (``Domain=`` the parent), and Starlette keeps the last copy, which would
        refresh the victim into the planter's session.
        """
        token = request.cookies.get(self.refresh_cookie)
        if not token or _token_syntax_ok(token, self.max_token_length) is not None:
            return None
        if _cookie_count(request, self.refresh_cookie) > 1:
            logger.debug("refresh token cookie refused: several cookies of that name")
            return None
        return token

    # --- response side ------------------------------------------------------

    async def set_cookies(self, response: Response, tokens: TokenPair) -> str:
        """Set the access, refresh and CSRF cookies on ``response``; return the CSRF token.

        The access token is verified to learn its session (``sid``), which the
        CSRF token is bound to. Call it after login and after each rotation.
        """
        claims = await self.issuer.verify_access(tokens.access_token)
        csrf_token = self.csrf_token_for(claims.sid)
        self._set(response, self.access_cookie, tokens.access_token, tokens.expires_in, "/")
        self._set(
            response,
            self.refresh_cookie,
            tokens.refresh_token,
            tokens.refresh_expires_in,
            "/",
            samesite="strict",
        )
        self._set(
            response,
            self.csrf_cookie,
            csrf_token,
            tokens.refresh_expires_in,
            "/",
            httponly=False,
        )
        return csrf_token

    def clear_cookies(self, response: Response) -> None:
        """Expire the three cookies (logout)."""
        for name, path, samesite, httponly in (
            (self.access_cookie, "/", self.samesite, True),
            (self.refresh_cookie, "/", "strict", True),
            (self.csrf_cookie, "/", self.samesite, False),
        ):
            response.delete_cookie(
                name,
                path=path,
                secure=self.secure,
                httponly=httponly,
                samesite=samesite,
            )

    def _set(
        self,
        response: Response,
        name: str,
        value: str,
        max_age: int,
        path: str,
        *,
        samesite: Literal["lax", "strict"] | None = None,
        httponly: bool = True,
    ) -> None:
        # No Domain attribute ever: __Host- requires it, and host-only cookies
        # are not sent to sibling subdomains.
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path=path,
            secure=self.secure,
            httponly=httponly,
            samesite=samesite or self.samesite,
        )


def _cookie_count(request: Request, name: str) -> int:
    """How many cookies called ``name`` the request carries.

    ``request.cookies`` keeps only the last of several; which one a browser
    puts last depends on paths and creation times, which a cookie planted from
    another host controls. The split mirrors Starlette's ``cookie_parser``.
    """
    count = 0
    for header in request.headers.getlist("cookie"):
        for chunk in header.split(";"):
            key = chunk.split("=", 1)[0] if "=" in chunk else ""
            if key.strip() == name:
                count += 1
    return count


def _as_bytes(value: str) -> bytes:
    # Header and cookie values may hold any latin-1 character; compare_digest
    # refuses non-ASCII str, so compare bytes.
    return value.encode("utf-8", "surrogatepass")


def _csrf_refused(reason: str) -> CSRFError:
    logger.debug("CSRF check failed: %s", reason)
    return CSRFError(reason=reason)


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of an absolute http(s) URL, lowercased, default port dropped."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in _DEFAULT_PORTS or not host or parts.username or parts.password:
        return None
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _normalize_origin(origin: str) -> str:
    normalized = _origin_of(origin)
    parts = urlsplit(origin.strip())
    if normalized is None or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigurationError(
            f"allowed origin {origin!r} must look like https://host[:port] (no '*', no path)"
        )
    return normalized


class FreshTokenRequired(SecurityBase):
    """Dependency made by :func:`require_fresh`: the claims of a fresh token."""

    def __init__(
        self, auth: ClaimsDependency, *, max_age: float | None, clock: Clock = system_clock
    ) -> None:
        if not isinstance(auth, ClaimsDependency):
            raise ConfigurationError(
                "auth must be a BearerAuth, CookieAuth, RoleChecker or another ClaimsDependency"
            )
        if max_age is not None and max_age <= 0:
            raise ConfigurationError("max_age must be positive seconds")
        self.auth = auth
        self.max_age = max_age
        self.clock = clock
        self.model = auth.model
        self.scheme_name = auth.scheme_name

    def _refused(self, reason: str) -> AuthenticationError:
        logger.debug("fresh token required: %s", reason)
        challenge = 'Bearer error="insufficient_user_authentication"'
        if self.max_age is not None:
            challenge += f', max_age="{math.ceil(self.max_age)}"'
        return AuthenticationError(
            "fresh authentication required",
            code=ErrorCode.FRESH_TOKEN_REQUIRED,
            headers={"WWW-Authenticate": challenge},
            reason=reason,
        )

    async def authenticate(self, request: Request, scopes: Sequence[str] = ()) -> AccessClaims:
        claims = await self.auth.authenticate(request, scopes)
        if claims is None:
            raise AuthenticationError(reason="no credentials")
        if not claims.fresh:
            raise self._refused("token is not fresh")
        if self.max_age is not None and self.clock() - claims.auth_time > self.max_age:
            raise self._refused("last authentication older than max_age")
        return claims

    async def __call__(self, request: Request, security_scopes: SecurityScopes) -> AccessClaims:
        return await self.authenticate(request, security_scopes.scopes)


def require_fresh(
    auth: ClaimsDependency, *, max_age: float | None = None, clock: Clock = system_clock
) -> FreshTokenRequired:
    """A dependency for sensitive operations (password change, deleting the account).

    Passes only tokens issued by a credential login (``fresh``: rotated tokens
    are not) and, with ``max_age`` (seconds), whose ``auth_time`` is at most
    that old. Otherwise ``401 fresh_token_required`` with the RFC 9470
    challenge ``Bearer error="insufficient_user_authentication"``, telling the
    client to ask for the password again.
    """
    return FreshTokenRequired(auth, max_age=max_age, clock=clock)
