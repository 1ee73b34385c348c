"""The access token from an HttpOnly cookie, guarded by a signed double-submit
CSRF token and an Origin check: the cookie transport.

A login or a refresh sets the access, refresh and CSRF cookies (no token in
the body); the refresh route reads the refresh cookie after checking Origin
and the CSRF header; a logout expires the cookies.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, NoReturn

from fastapi.openapi.models import APIKey, APIKeyIn
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from fastapi_secure.auth.base import (
    DEFAULT_MAX_TOKEN_LENGTH,
    AccessTokenVerifier,
    TokenAuth,
    is_websocket,
    logger,
    refuse,
    token_syntax_problem,
)
from fastapi_secure.errors import (
    AuthenticationError,
    ConfigurationError,
    CSRFError,
    InvalidTokenError,
)
from fastapi_secure.events import EventSink, EventType, emit_event
from fastapi_secure.origins import normalize_origin, origin_of
from fastapi_secure.tokens.claims import AccessClaims, TokenPair

__all__ = ["SAFE_METHODS", "CookieAuth"]

# RFC 6265 cookie-name (an RFC 7230 token).
_COOKIE_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
"""Methods that change nothing, so carry no CSRF or Origin check."""
_CSRF_CONTEXT = b"fastapi-secure/csrf/v1"
_MIN_CSRF_SECRET_BYTES = 32


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
        events: EventSink | None = None,
    ) -> None:
        super().__init__(issuer, auto_error=auto_error, max_token_length=max_token_length)
        self.events = events
        secret = csrf_secret.encode() if isinstance(csrf_secret, str) else bytes(csrf_secret)
        if len(secret) < _MIN_CSRF_SECRET_BYTES:
            raise ConfigurationError(
                f"csrf_secret must be at least {_MIN_CSRF_SECRET_BYTES} bytes; "
                "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        self._csrf_key = secret
        self.allowed_origins = frozenset(
            normalize_origin(origin, what="allowed origin") for origin in allowed_origins
        )
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

    def peek_token(self, request: HTTPConnection) -> str | None:
        token = request.cookies.get(self.access_cookie)
        if not token or _cookie_count(request, self.access_cookie) > 1:
            return None
        return None if token_syntax_problem(token, self.max_token_length) else token

    async def authenticate(
        self, request: HTTPConnection, scopes: Sequence[str] = ()
    ) -> AccessClaims | None:
        token = request.cookies.get(self.access_cookie)
        if not token:
            # No cookie means no ambient authority a forged request could abuse.
            return self._not_authenticated("no access token cookie")
        if _cookie_count(request, self.access_cookie) > 1:
            refuse(InvalidTokenError(reason="several access token cookies"))
        problem = token_syntax_problem(token, self.max_token_length)
        if problem is not None:
            logger.debug("access token cookie refused: %s", problem)
            refuse(InvalidTokenError(reason=problem))
        # A WebSocket handshake is a GET that no CSRF header can accompany, yet
        # the browser attaches the cookie to a cross-site one: its Origin is
        # the only defence against cross-site WebSocket hijacking.
        websocket = is_websocket(request)
        unsafe = not websocket and str(request.scope["method"]).upper() not in SAFE_METHODS
        if unsafe or websocket:
            await self._reported(EventType.ORIGIN_REFUSED, request, self.check_origin, request)
        claims = await self._verify(request, token)
        if unsafe:
            await self._reported(
                EventType.CSRF_REFUSED,
                request,
                self._check_csrf_token,
                request,
                claims.sid,
                subject=claims.sub,
                session_id=claims.sid,
            )
        self._check_scopes(claims, scopes)
        return claims

    async def _reported(
        self,
        event: EventType,
        request: HTTPConnection,
        check: Callable[..., None],
        *args: Any,
        subject: str | None = None,
        session_id: str | None = None,
    ) -> None:
        """Run ``check``; a refusal is also a security event for ``events``."""
        try:
            check(*args)
        except CSRFError as exc:
            await emit_event(
                self.events,
                event,
                scope=request.scope,
                subject=subject,
                session_id=session_id,
                reason=exc.reason,
            )
            raise

    def check_origin(self, request: HTTPConnection) -> None:
        """Raise :class:`~fastapi_secure.errors.CSRFError` unless the request's
        ``Origin`` (else ``Referer``) is allowed.

        Unsafe methods and WebSocket handshakes (which need an ``Origin``: a
        browser always sends one) go through it automatically; call it yourself
        in routes that act on cookies without this dependency, such as the
        refresh route.
        """
        origin = request.headers.get("origin")
        if origin is None and is_websocket(request):
            _csrf_refused("no Origin on a WebSocket handshake")
        if origin is None:
            referer = request.headers.get("referer")
            if referer is None:
                _csrf_refused("neither Origin nor Referer on an unsafe request")
            origin = origin_of(referer)
        else:
            origin = origin.strip().lower()
        if origin is None or origin not in self.allowed_origins:
            _csrf_refused("Origin or Referer not in allowed_origins")

    def _check_csrf_token(self, request: HTTPConnection, sid: str) -> None:
        header = request.headers.get(self.csrf_header)
        cookie = request.cookies.get(self.csrf_cookie)
        if not header or not cookie:
            _csrf_refused("CSRF header or cookie missing")
        if _cookie_count(request, self.csrf_cookie) > 1:
            _csrf_refused("several CSRF cookies")
        if not hmac.compare_digest(_as_bytes(header), _as_bytes(cookie)):
            _csrf_refused("CSRF header does not match the CSRF cookie")
        nonce, dot, mac = header.partition(".")
        if not dot or not hmac.compare_digest(
            _as_bytes(mac), _as_bytes(self._csrf_mac(sid, nonce))
        ):
            _csrf_refused("CSRF token not bound to this session")

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
        if not token or token_syntax_problem(token, self.max_token_length) is not None:
            return None
        if _cookie_count(request, self.refresh_cookie) > 1:
            logger.debug("refresh token cookie refused: several cookies of that name")
            return None
        return token

    # --- response side ------------------------------------------------------

    def set_cookies(self, response: Response, tokens: TokenPair) -> str:
        """Set the access, refresh and CSRF cookies on ``response``; return the CSRF token.

        The CSRF token is bound to the pair's session (``tokens.session_id``).
        Call it after login and after each rotation (:meth:`login_response`
        does).
        """
        csrf_token = self.csrf_token_for(tokens.session_id)
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

    # --- transport: the response side of the token routes -------------------

    def login_response(self, pair: TokenPair, response: Response) -> dict[str, Any]:
        """Set the three cookies; the body carries no token, only the CSRF token
        the page echoes in ``X-CSRF-Token`` and the lifetimes."""
        response.headers["Cache-Control"] = "no-store"
        csrf_token = self.set_cookies(response, pair)
        return {
            "token_type": "cookie",
            "csrf_token": csrf_token,
            "expires_in": pair.expires_in,
            "refresh_expires_in": pair.refresh_expires_in,
        }

    async def read_refresh(self, request: Request, presented: str | None = None) -> str:
        """The refresh cookie, for a request whose ``Origin`` (else ``Referer``) is
        allowed and whose CSRF header matches the CSRF cookie.

        ``presented`` (a token in the body) is ignored: in cookie mode a token
        never travels where page scripts can read it. The CSRF token cannot be
        bound to a session here (there is no verified access token yet); the
        refresh cookie itself is ``SameSite=Strict`` and ``__Host-``.
        """
        await self._reported(EventType.ORIGIN_REFUSED, request, self.check_origin, request)
        await self._reported(EventType.CSRF_REFUSED, request, self._check_refresh_csrf, request)
        token = self.refresh_token(request)
        if token is None:
            refuse(AuthenticationError(reason="no usable refresh token cookie"))
        return token

    def _check_refresh_csrf(self, request: Request) -> None:
        header = request.headers.get(self.csrf_header)
        cookie = request.cookies.get(self.csrf_cookie)
        if not header or not cookie or _cookie_count(request, self.csrf_cookie) > 1:
            _csrf_refused("CSRF header or cookie missing on refresh")
        if not hmac.compare_digest(_as_bytes(header), _as_bytes(cookie)):
            _csrf_refused("CSRF header does not match the CSRF cookie on refresh")

    def logout_response(self, response: Response) -> None:
        """Expire the three cookies."""
        self.clear_cookies(response)


def _cookie_count(request: HTTPConnection, name: str) -> int:
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


def _csrf_refused(reason: str) -> NoReturn:
    logger.debug("CSRF check failed: %s", reason)
    refuse(CSRFError(reason=reason))
