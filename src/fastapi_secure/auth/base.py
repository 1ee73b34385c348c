"""What every authentication dependency shares: the verifier it asks, the claims
it returns, token syntax checks and one verification per request.

:class:`TokenAuth` is the base of :class:`~fastapi_secure.auth.bearer.BearerAuth`
and :class:`~fastapi_secure.auth.cookie.CookieAuth`. Both verify through one
issuer (anything with ``async verify_access(token) -> AccessClaims``, normally
a :class:`~fastapi_secure.tokens.issuer.TokenIssuer`) and both register an
OpenAPI security scheme, so Swagger UI's *Authorize* button works.

Answers (RFC 6750):

* no credentials: ``401 not_authenticated`` with ``WWW-Authenticate: Bearer``;
* anything wrong with a presented token (malformed, oversized, forged,
  expired, revoked, a refresh token): ``401 invalid_token`` with
  ``WWW-Authenticate: Bearer error="invalid_token"`` and one generic message;
  the precise reason is logged at DEBUG on the ``fastapi_secure.auth`` logger,
  never the token itself;
* a token lacking a scope of ``Security(auth, scopes=[...])``:
  ``403 insufficient_scope``;
* token store down: ``503 store_unavailable`` (fail closed).

``auto_error=False`` only makes *absent* credentials return ``None`` (optional
authentication, or chaining several schemes). A token that is presented but
invalid is still refused with 401: an expired or revoked token must not
silently downgrade a request to anonymous.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Sequence
from typing import Any, NoReturn, Protocol, TypeVar, runtime_checkable

from fastapi import WebSocketException
from fastapi.security.base import SecurityBase
from fastapi.security.oauth2 import SecurityScopes
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection

from fastapi_secure._redis import READ_AHEAD_SCOPE_KEY, PiggybackRead
from fastapi_secure.errors import (
    AuthenticationError,
    ConfigurationError,
    InsufficientScopeError,
    InvalidTokenError,
    SecurityError,
)
from fastapi_secure.http_errors import http_exception
from fastapi_secure.tokens.claims import AccessClaims
from fastapi_secure.tokens.issuer import read_ahead

__all__ = [
    "ACCESS_TOKEN_SCOPE_KEY",
    "DEFAULT_MAX_TOKEN_LENGTH",
    "WS_POLICY_VIOLATION",
    "AccessTokenVerifier",
    "ClaimsDependency",
    "TokenAuth",
    "close_on_refusal",
    "is_websocket",
    "refuse",
    "token_syntax_problem",
]

logger = logging.getLogger("fastapi_secure.auth")

DEFAULT_MAX_TOKEN_LENGTH = 8192
"""Longest token accepted before any parsing (characters)."""

# RFC 6750, section 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_CLAIMS_CACHE_KEY = "fastapi_secure.verified_access_claims"
ACCESS_TOKEN_SCOPE_KEY = "fastapi_secure.access_token"
"""Where a WebSocket's verified access token is kept in its ASGI scope, so
:func:`fastapi_secure.websocket.guard_connection` can verify it again later."""
WS_POLICY_VIOLATION = 1008
"""The close code of every refused WebSocket (RFC 6455, section 7.4.1)."""

_T = TypeVar("_T")


def refuse(error: SecurityError) -> NoReturn:
    """Raise ``error`` as the HTTP answer it stands for (see :mod:`fastapi_secure.http_errors`)."""
    raise http_exception(error) from None


def is_websocket(connection: HTTPConnection) -> bool:
    """Whether ``connection`` is a WebSocket handshake rather than an HTTP request."""
    return bool(connection.scope.get("type") == "websocket")


async def close_on_refusal(connection: HTTPConnection, answer: Awaitable[_T]) -> _T:
    """Await ``answer`` (an authentication); on a WebSocket, a refusal closes with 1008.

    Dependencies refuse with an ``HTTPException`` (401, 403, 429, 503). A
    WebSocket handshake has no such answer: FastAPI closes the connection
    before accepting it when a dependency raises ``WebSocketException``. The
    close carries no reason, so a client learns nothing about why (a missing,
    forged, expired or revoked token all look the same).
    """
    if not is_websocket(connection):
        return await answer
    try:
        return await answer
    except HTTPException as exc:
        logger.debug("WebSocket handshake refused (%s): closing with 1008", exc.status_code)
        raise WebSocketException(code=WS_POLICY_VIOLATION) from None


@runtime_checkable
class AccessTokenVerifier(Protocol):
    """What the auth dependencies need from an issuer."""

    async def verify_access(self, token: str) -> AccessClaims: ...


@runtime_checkable
class ClaimsDependency(Protocol):
    """An object that authenticates a request into ``AccessClaims``.

    :class:`BearerAuth`, :class:`CookieAuth` and the guards of
    :mod:`fastapi_secure.auth.guards` all are, so they compose:
    ``RoleChecker(["admin"], auth=require_fresh(bearer))``. ``model`` and
    ``scheme_name`` are the OpenAPI security scheme the request is checked
    against.
    """

    model: Any
    scheme_name: str

    async def authenticate(
        self, request: HTTPConnection, scopes: Sequence[str] = ()
    ) -> AccessClaims | None: ...


def token_syntax_problem(token: str, max_length: int) -> str | None:
    """The reason a raw token is refused before verification, or None."""
    if len(token) > max_length:
        return f"token longer than {max_length} characters"
    if not _B64TOKEN.fullmatch(token):
        return "token is not a b64token"
    return None


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
            refuse(AuthenticationError(reason=reason))
        return None

    def peek_token(self, request: HTTPConnection) -> str | None:
        """The token this dependency would verify for ``request``, without
        refusing anything (None when there is none, or none well-formed)."""
        return None

    def store_reads(self, request: HTTPConnection) -> list[PiggybackRead]:
        """The token store reads verifying ``request`` will need, offered to run
        ahead in another Redis call on the same server.

        The rate limiter runs them in the script that counts the request, so the
        revocation check costs no round trip of its own; the answers wait in the
        request's scope until :meth:`_verify` needs them. Nothing is offered for
        a token already verified in this request, nor when the issuer has no
        such read (a memory store, ``check_revocation=False``, another verifier).
        """
        token = self.peek_token(request)
        if token is None:
            return []
        cache = request.scope.get(_CLAIMS_CACHE_KEY)
        if cache is not None and (id(self.issuer), token) in cache:
            return []
        offer = getattr(self.issuer, "access_check_read", None)
        read = offer(token) if offer is not None else None
        return [read] if isinstance(read, PiggybackRead) else []

    async def _verify(self, request: HTTPConnection, token: str) -> AccessClaims:
        # Several dependencies of one request (a router-level RoleChecker and the
        # endpoint's own auth) verify the same token once, not once each.
        cache: dict[tuple[int, str], AccessClaims] = request.scope.setdefault(_CLAIMS_CACHE_KEY, {})
        key = (id(self.issuer), token)
        cached = cache.get(key)
        if cached is not None:
            return cached
        try:
            answers = request.scope.get(READ_AHEAD_SCOPE_KEY)
            if answers:
                # The store's answers read ahead in the rate limiter's Redis call.
                with read_ahead(answers):
                    claims = await self.issuer.verify_access(token)
            else:
                claims = await self.issuer.verify_access(token)
        except SecurityError as exc:
            logger.debug(
                "access token refused: %s (%s)", type(exc).__name__, getattr(exc, "reason", None)
            )
            refuse(exc)
        except Exception as exc:
            # The issuer promises InvalidTokenError for any bad input; if some
            # other exception escapes, refuse the request rather than answer 500.
            logger.error("access token verification failed unexpectedly: %s", type(exc).__name__)
            refuse(InvalidTokenError(reason=f"unexpected {type(exc).__name__}"))
        if claims.cnf is not None:
            # A DPoP-bound token travels only with its proof (RFC 9449, section 7.2);
            # accepting it here would let a thief simply drop the proof.
            refuse(InvalidTokenError(reason="DPoP-bound token presented without DPoP"))
        cache[key] = claims
        if is_websocket(request):
            request.scope[ACCESS_TOKEN_SCOPE_KEY] = (self.issuer, token, claims)
        return claims

    @staticmethod
    def _check_scopes(claims: AccessClaims, scopes: Sequence[str]) -> None:
        missing = set(scopes) - claims.scopes
        if missing:
            logger.debug("access token lacks scopes %s", sorted(missing))
            refuse(
                InsufficientScopeError(scopes=scopes, reason=f"missing scopes {sorted(missing)}")
            )

    async def authenticate(
        self, request: HTTPConnection, scopes: Sequence[str] = ()
    ) -> AccessClaims | None:
        """Verify the request's token and required ``scopes``; None only when
        credentials are absent and ``auto_error`` is False."""
        raise NotImplementedError

    async def __call__(
        self, request: HTTPConnection, security_scopes: SecurityScopes
    ) -> AccessClaims | None:
        return await close_on_refusal(request, self.authenticate(request, security_scopes.scopes))
