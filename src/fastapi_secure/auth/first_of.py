"""Accept one of several ways in: :class:`FirstOf` (a bearer token *or* an API
key *or* DPoP credentials).

A general combinator over :class:`~fastapi_secure.auth.ClaimsDependency`
members (``BearerAuth``, ``CookieAuth``, ``APIKeyAuth``, ``DPoPAuth``, a
checker...). It used to live in :mod:`fastapi_secure.apikeys.auth`, which
still re-exports it (the same class).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import NoReturn

from fastapi import Security
from fastapi.openapi.models import APIKey as APIKeyModel
from fastapi.openapi.models import APIKeyIn
from fastapi.security.base import SecurityBase
from fastapi.security.oauth2 import SecurityScopes
from starlette.requests import HTTPConnection

from fastapi_secure.audit import AuditInfo
from fastapi_secure.auth.base import ClaimsDependency, close_on_refusal
from fastapi_secure.errors import (
    AuthenticationError,
    ConfigurationError,
    ErrorCode,
    SecurityError,
)
from fastapi_secure.http_errors import http_exception
from fastapi_secure.tokens.claims import AccessClaims

__all__ = ["FirstOf"]


def _refuse(err: SecurityError, *, challenge: str) -> NoReturn:
    """The one place this module turns a core error into an HTTP answer."""
    raise http_exception(err, headers={"WWW-Authenticate": challenge}) from None


class _SchemeMarker(SecurityBase):
    """Shows a member's scheme in OpenAPI; authenticates nothing itself."""

    def __init__(self, auth: ClaimsDependency) -> None:
        self.model = auth.model
        self.scheme_name = auth.scheme_name

    async def __call__(self) -> None:
        return None


def _challenge_of(member: ClaimsDependency) -> str:
    challenge = getattr(member, "challenge", None)
    if isinstance(challenge, str):
        return challenge
    model = member.model
    if isinstance(model, APIKeyModel) and model.in_ == APIKeyIn.header:
        return f'APIKey header="{model.name}"'
    # BearerAuth, and CookieAuth, whose refusals say Bearer too.
    return "Bearer"


def _absent(exc: Exception) -> bool:
    """Whether a member's refusal only says "no credentials of this kind".

    Read from the stable error code (on the core error, or in the body of an
    HTTPException made from one), so a presented but bad credential, which
    carries another code, is never mistaken for an absent one.
    """
    code = getattr(exc, "code", None)
    if code is None:
        detail = getattr(exc, "detail", None)
        code = detail.get("code") if isinstance(detail, dict) else None
    return isinstance(code, str) and code == ErrorCode.NOT_AUTHENTICATED.value


class FirstOf:
    """Accept the first of several ways in that the request uses:
    ``FirstOf(bearer, api_key)``.

    Each member (``BearerAuth``, ``CookieAuth``, ``APIKeyAuth``, a checker...)
    is tried in order; a member whose credentials are absent is skipped, the
    first one present decides: its claims, or its refusal (a bad bearer
    token is not rescued by a good API key, nor the reverse). When none is
    present: 401 with every member's challenge in ``WWW-Authenticate`` (or
    None with ``auto_error=False``). Members' own ``auto_error`` does not
    matter.

    OpenAPI lists every member's scheme as an alternative on the route. It is
    a :class:`~fastapi_secure.auth.ClaimsDependency`, so checkers take it:
    ``RoleChecker(["admin"], auth=FirstOf(bearer, api_key))`` (OpenAPI then
    shows the first member's scheme).
    """

    def __init__(self, *members: ClaimsDependency, auto_error: bool = True) -> None:
        if len(members) < 2:
            raise ConfigurationError("FirstOf needs at least two auth dependencies")
        for member in members:
            if not isinstance(member, ClaimsDependency):
                raise ConfigurationError(
                    "every member must be a BearerAuth, CookieAuth, APIKeyAuth or another "
                    "ClaimsDependency"
                )
        self.members = members
        self.auto_error = auto_error
        self.model = members[0].model
        self.scheme_name = members[0].scheme_name
        self.challenge = ", ".join(dict.fromkeys(_challenge_of(member) for member in members))
        # FastAPI reads a dependency's parameters from its signature: one
        # Security(marker) per member puts each scheme (with the route's scopes)
        # in OpenAPI as an alternative, and the markers themselves do nothing.
        parameters = [
            inspect.Parameter(
                "request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=HTTPConnection
            ),
            inspect.Parameter(
                "security_scopes",
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                annotation=SecurityScopes,
            ),
            *(
                inspect.Parameter(
                    f"_scheme_{index}",
                    inspect.Parameter.KEYWORD_ONLY,
                    default=Security(_SchemeMarker(member)),
                    annotation=None,
                )
                for index, member in enumerate(members)
            ),
        ]
        self.__signature__ = inspect.Signature(parameters)

    async def authenticate(
        self, request: HTTPConnection, scopes: Sequence[str] = ()
    ) -> AccessClaims | None:
        """The claims of the first member whose credentials are present."""
        for member in self.members:
            try:
                claims = await member.authenticate(request, scopes)
            except Exception as exc:
                if not _absent(exc):
                    raise
                continue
            if claims is not None:
                return claims
        if self.auto_error:
            _refuse(
                AuthenticationError(reason="no credentials of any kind"), challenge=self.challenge
            )
        return None

    async def __call__(
        self, request: HTTPConnection, security_scopes: SecurityScopes, **_schemes: None
    ) -> AccessClaims | None:
        return await close_on_refusal(request, self.authenticate(request, security_scopes.scopes))

    def audit_info(self) -> AuditInfo:
        """What :func:`fastapi_secure.audit.audit` reports: each member's way in, as
        alternatives, enforced unless ``auto_error`` is False."""
        return AuditInfo(optional=not self.auto_error, any_of=self.members)
