"""The transport contract: where tokens travel between client and server.

Token routes (login, refresh, logout) are written once over a
:class:`Transport`; :class:`~fastapi_secure.auth.bearer.BearerAuth` (tokens in
the JSON body and the ``Authorization`` header) and
:class:`~fastapi_secure.auth.cookie.CookieAuth` (HttpOnly cookies, CSRF and
Origin checks) both implement it, so a route never branches on the mode::

    @router.post("/login")
    async def login(response: Response, ...) -> dict[str, Any]:
        pair = await issuer.issue(user.id, roles=user.roles)
        return transport.login_response(pair, response)

    @router.post("/refresh")
    async def refresh(request: Request, response: Response, body: RefreshBody | None = None):
        token = await transport.read_refresh(request, body.refresh_token if body else None)
        return transport.login_response(await issuer.rotate(token), response)
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from fastapi.security.oauth2 import SecurityScopes
from starlette.requests import Request
from starlette.responses import Response

from fastapi_secure.auth.base import ClaimsDependency
from fastapi_secure.tokens.claims import AccessClaims, TokenPair

__all__ = ["Transport"]


@runtime_checkable
class Transport(ClaimsDependency, Protocol):
    """An auth dependency that also answers the token routes."""

    async def __call__(
        self, request: Request, security_scopes: SecurityScopes
    ) -> AccessClaims | None:
        """The FastAPI dependency: the request's verified claims."""
        ...

    def login_response(self, pair: TokenPair, response: Response) -> dict[str, Any]:
        """Deliver ``pair`` (after a login or a rotation); return the JSON body to send."""
        ...

    async def read_refresh(self, request: Request, presented: str | None = None) -> str:
        """The refresh token of a refresh request, or raise the HTTP refusal.

        ``presented`` is what the client put in the request body, if anything;
        a transport that keeps tokens out of bodies ignores it.
        """
        ...

    def logout_response(self, response: Response) -> None:
        """Make the client forget its tokens, where the server can."""
        ...
