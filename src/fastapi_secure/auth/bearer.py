"""``Authorization: Bearer <access token>``: the bearer transport.

:class:`BearerAuth` reads the access token from the ``Authorization`` header
(on a WebSocket handshake also from a ``Sec-WebSocket-Protocol`` entry, and
from the query string only when ``allow_query_token=True``: see
``docs/websockets.md``) and answers the token routes the OAuth2 way: a login
or a refresh returns the pair in the JSON body, the refresh token comes back
in the body of the refresh request, and a logout has nothing to clear on the
client's behalf.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi.openapi.models import OAuth2 as OAuth2Model
from fastapi.openapi.models import OAuthFlowPassword, OAuthFlows
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from fastapi_secure.auth.base import (
    DEFAULT_MAX_TOKEN_LENGTH,
    AccessTokenVerifier,
    TokenAuth,
    is_websocket,
    refuse,
    token_syntax_problem,
)
from fastapi_secure.errors import AuthenticationError, ConfigurationError, InvalidTokenError
from fastapi_secure.tokens.claims import SCOPE_TOKEN, AccessClaims, TokenPair

__all__ = [
    "BEARER_SUBPROTOCOL",
    "DEFAULT_TOKEN_URL",
    "BearerAuth",
    "bearer_token",
    "offered_subprotocols",
    "subprotocol_token",
]

BEARER_SUBPROTOCOL = "bearer"
"""The ``Sec-WebSocket-Protocol`` entry announcing a token: a browser opens
``new WebSocket(url, ["bearer", token])`` and the entry after ``bearer`` is the
access token. The server accepts with ``bearer`` (or another protocol it
speaks), never with the token: see :func:`fastapi_secure.websocket.accept`."""
_MAX_SUBPROTOCOL_HEADER = 16384

DEFAULT_TOKEN_URL = "/auth/login"
"""Where Swagger UI's *Authorize* button posts the password form by default: the
login route of the accounts auth router and of the reference API."""


def bearer_token(values: Sequence[str], max_length: int) -> str | None:
    """The token of the ``Authorization`` header values, None when no Bearer credentials.

    Raises InvalidTokenError for Bearer credentials that cannot be a token.
    """
    if not values:
        return None
    if len(values) > 1:
        refuse(InvalidTokenError(reason="several Authorization headers"))
    scheme, _, param = values[0].strip(" ").partition(" ")
    if scheme.lower() != "bearer":
        # Another scheme (Basic, Digest, ...) or nothing: no Bearer credentials,
        # answered like a missing header (RFC 6750, section 3.1).
        return None
    token = param.strip(" ")
    if not token:
        refuse(InvalidTokenError(reason="empty Bearer credentials"))
    problem = token_syntax_problem(token, max_length)
    if problem is not None:
        refuse(InvalidTokenError(reason=problem))
    return token


def offered_subprotocols(values: Sequence[str]) -> list[str]:
    """The entries of the ``Sec-WebSocket-Protocol`` header values, in order.

    Raises InvalidTokenError when the header is absurdly long (it may carry a
    token, so its whole length is bounded like one).
    """
    if sum(len(value) for value in values) > _MAX_SUBPROTOCOL_HEADER:
        refuse(InvalidTokenError(reason="Sec-WebSocket-Protocol header too long"))
    return [
        entry.strip(" \t") for value in values for entry in value.split(",") if entry.strip(" \t")
    ]


def subprotocol_token(values: Sequence[str], max_length: int) -> str | None:
    """The token after the ``bearer`` entry of the ``Sec-WebSocket-Protocol``
    header values, None when the client offers no ``bearer`` entry.

    Raises InvalidTokenError for a ``bearer`` entry without a token after it,
    for several ``bearer`` entries, and for a token that cannot be one.
    """
    entries = offered_subprotocols(values)
    positions = [index for index, entry in enumerate(entries) if entry == BEARER_SUBPROTOCOL]
    if not positions:
        return None
    if len(positions) > 1:
        refuse(InvalidTokenError(reason="several bearer subprotocol entries"))
    index = positions[0] + 1
    if index >= len(entries):
        refuse(InvalidTokenError(reason="bearer subprotocol entry without a token"))
    token = entries[index]
    problem = token_syntax_problem(token, max_length)
    if problem is not None:
        refuse(InvalidTokenError(reason=f"subprotocol token: {problem}"))
    return token


class BearerAuth(TokenAuth):
    """``Authorization: Bearer <access token>`` -> ``AccessClaims``.

    Registers an OAuth2 password-flow scheme (``token_url``, ``scopes``) in
    OpenAPI; ``token_url`` is where Swagger UI's *Authorize* button posts the
    password form, :data:`DEFAULT_TOKEN_URL` (``/auth/login``) unless given.
    Use ``Depends(bearer)``, or ``Security(bearer, scopes=[...])`` to require
    scopes.

    On a WebSocket route the same dependency gives the same claims; the token
    comes from the ``Authorization`` header, else from the
    ``Sec-WebSocket-Protocol`` entry after ``bearer``
    (:data:`BEARER_SUBPROTOCOL`), else, only with ``allow_query_token=True``,
    from the ``query_param`` query parameter (off by default: URLs end up in
    access logs, proxies and browser history). A refusal closes the handshake
    with 1008 before it is accepted.
    """

    model: OAuth2Model

    def __init__(
        self,
        issuer: AccessTokenVerifier,
        *,
        token_url: str = DEFAULT_TOKEN_URL,
        refresh_url: str | None = None,
        scopes: Mapping[str, str] | None = None,
        auto_error: bool = True,
        scheme_name: str | None = None,
        description: str | None = None,
        max_token_length: int = DEFAULT_MAX_TOKEN_LENGTH,
        allow_query_token: bool = False,
        query_param: str = "access_token",
    ) -> None:
        super().__init__(issuer, auto_error=auto_error, max_token_length=max_token_length)
        if not query_param:
            raise ConfigurationError("query_param must not be empty")
        self.allow_query_token = allow_query_token
        self.query_param = query_param
        if not token_url:
            raise ConfigurationError("token_url must not be empty")
        for scope in scopes or {}:
            if not SCOPE_TOKEN.fullmatch(scope):
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
        self, request: HTTPConnection, scopes: Sequence[str] = ()
    ) -> AccessClaims | None:
        token = bearer_token(request.headers.getlist("authorization"), self.max_token_length)
        if token is None and is_websocket(request):
            token = self._websocket_token(request)
        if token is None:
            return self._not_authenticated("no Bearer credentials")
        claims = await self._verify(request, token)
        self._check_scopes(claims, scopes)
        return claims

    def peek_token(self, request: HTTPConnection) -> str | None:
        if is_websocket(request):
            return None
        try:
            return bearer_token(request.headers.getlist("authorization"), self.max_token_length)
        except HTTPException:
            return None  # refused when the dependency itself runs

    def _websocket_token(self, websocket: HTTPConnection) -> str | None:
        # Browsers cannot set headers on a WebSocket handshake: the subprotocol
        # list is the one place a script can put a token without the URL.
        token = subprotocol_token(
            websocket.headers.getlist("sec-websocket-protocol"), self.max_token_length
        )
        if token is not None or not self.allow_query_token:
            return token
        values = websocket.query_params.getlist(self.query_param)
        if not values:
            return None
        if len(values) > 1:
            refuse(InvalidTokenError(reason=f"several {self.query_param} query parameters"))
        problem = token_syntax_problem(values[0], self.max_token_length)
        if problem is not None:
            refuse(InvalidTokenError(reason=f"query token: {problem}"))
        return values[0]

    # --- transport: the response side of the token routes -------------------

    def login_response(self, pair: TokenPair, response: Response) -> dict[str, Any]:
        """The OAuth2 token response body (RFC 6749, section 5.1) for ``pair``."""
        response.headers["Cache-Control"] = "no-store"
        return pair.model_dump(mode="json")

    async def read_refresh(self, request: Request, presented: str | None = None) -> str:
        """The refresh token the client sent in the request body (``presented``)."""
        if not presented:
            refuse(AuthenticationError(reason="no refresh token"))
        problem = token_syntax_problem(presented, self.max_token_length)
        if problem is not None:
            refuse(InvalidTokenError(reason=f"refresh token: {problem}"))
        return presented

    def logout_response(self, response: Response) -> None:
        """Nothing to clear: a bearer client forgets its tokens itself."""
