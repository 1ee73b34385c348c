"""FastAPI side of API keys: :class:`APIKeyAuth`.

``APIKeyAuth(manager)`` reads the key from a header (``X-API-Key``), verifies it
through an :class:`~fastapi_secure.apikeys.keys.APIKeyManager` and returns
:class:`~fastapi_secure.tokens.claims.AccessClaims` shaped like a token's, so
:class:`~fastapi_secure.auth.RoleChecker`, :class:`~fastapi_secure.auth.PermissionChecker`
and ``Security(..., scopes=[...])`` work unchanged. It registers an OpenAPI
``apiKey`` scheme, so Swagger UI's *Authorize* button offers it.

Answers: no key, ``401 not_authenticated``; a key that is malformed, unknown,
wrong, revoked or expired, ``401 invalid_token`` with one generic message
(the reason is logged at DEBUG, never the key); both with
``WWW-Authenticate: APIKey header="X-API-Key"``. A key lacking a required
scope: ``403 insufficient_scope``. Store down: 503.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import NoReturn

from fastapi.openapi.models import APIKey as APIKeyModel
from fastapi.openapi.models import APIKeyIn
from fastapi.security.base import SecurityBase
from fastapi.security.oauth2 import SecurityScopes
from starlette.requests import HTTPConnection

from fastapi_secure.apikeys.keys import APIKeyManager, InvalidAPIKeyError
from fastapi_secure.audit import AuditInfo
from fastapi_secure.auth.base import close_on_refusal
from fastapi_secure.auth.first_of import FirstOf as FirstOf  # re-exported: the same class
from fastapi_secure.clientip import TrustedProxies
from fastapi_secure.errors import (
    AuthenticationError,
    ConfigurationError,
    InsufficientScopeError,
    SecurityError,
)
from fastapi_secure.http_errors import http_exception
from fastapi_secure.tokens.claims import AccessClaims

__all__ = ["APIKeyAuth"]

logger = logging.getLogger("fastapi_secure.apikeys")

_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
_CACHE_KEY = "fastapi_secure.verified_api_key_claims"


def _refuse(err: SecurityError, *, challenge: str | None = None) -> NoReturn:
    """The one place this module turns a core error into an HTTP answer."""
    headers = {"WWW-Authenticate": challenge} if challenge else None
    raise http_exception(err, headers=headers) from None


class APIKeyAuth(SecurityBase):
    """An API key in a request header -> ``AccessClaims``.

    ``Depends(api_key)``, or ``Security(api_key, scopes=[...])`` to require
    scopes the key was created with. With ``auto_error=False`` a request
    without the header gives None (a key that is present but bad is still
    refused: it must not turn a request anonymous). ``trusted_proxies`` names
    the proxies whose forwarded client address the manager's ``api_key_refused``
    events report (without it: the socket peer).
    """

    model: APIKeyModel

    def __init__(
        self,
        manager: APIKeyManager,
        *,
        header_name: str = "X-API-Key",
        auto_error: bool = True,
        scheme_name: str | None = None,
        description: str | None = None,
        trusted_proxies: TrustedProxies | None = None,
    ) -> None:
        if not isinstance(manager, APIKeyManager):
            raise ConfigurationError("manager must be an APIKeyManager")
        if not _HEADER_NAME.fullmatch(header_name) or header_name.lower() == "authorization":
            raise ConfigurationError(f"{header_name!r} is not a usable header name")
        self.manager = manager
        self.trusted_proxies = trusted_proxies
        self.header_name = header_name
        self.auto_error = auto_error
        self.challenge = f'APIKey header="{header_name}"'
        self.model = APIKeyModel(
            **{"in": APIKeyIn.header},  # "in" is a keyword
            name=header_name,
            description=description,
        )
        self.scheme_name = scheme_name or type(self).__name__

    def _client_of(self, request: HTTPConnection) -> str | None:
        if self.trusted_proxies is not None:
            address = self.trusted_proxies.client_ip(request.scope)
            return None if address is None else str(address)
        return request.client.host if request.client else None

    def _invalid(self, reason: str) -> NoReturn:
        logger.debug("API key refused: %s", reason)
        _refuse(
            InvalidAPIKeyError(reason=reason), challenge=f'{self.challenge}, error="invalid_token"'
        )

    async def _verify(self, request: HTTPConnection, key: str) -> AccessClaims:
        # A router-level checker and the endpoint's own dependency verify (and
        # count the use of) one key once per request, not once each.
        cache: dict[tuple[int, str], AccessClaims] = request.scope.setdefault(_CACHE_KEY, {})
        cache_key = (id(self.manager), key)
        cached = cache.get(cache_key)
        if cached is not None:
            return cached
        try:
            claims = await self.manager.authenticate(
                key,
                client=self._client_of(request),
                user_agent=request.headers.get("user-agent"),
            )
        except InvalidAPIKeyError as exc:
            self._invalid(exc.reason or "invalid API key")
        except SecurityError as exc:
            _refuse(exc)
        except Exception as exc:
            # Whatever escapes a store's client refuses the request instead of a 500.
            logger.error("API key verification failed unexpectedly: %s", type(exc).__name__)
            self._invalid(f"unexpected {type(exc).__name__}")
        cache[cache_key] = claims
        return claims

    def _check_scopes(self, claims: AccessClaims, scopes: Sequence[str]) -> None:
        missing = set(scopes) - claims.scopes
        if not missing:
            return
        shown = " ".join(scope for scope in scopes if _SCOPE_TOKEN.fullmatch(scope))
        challenge = f'{self.challenge}, error="insufficient_scope"'
        if shown:
            challenge += f', scope="{shown}"'
        logger.debug("API key lacks scopes %s", sorted(missing))
        _refuse(
            InsufficientScopeError(scopes=scopes, reason=f"missing scopes {sorted(missing)}"),
            challenge=challenge,
        )

    async def authenticate(
        self, request: HTTPConnection, scopes: Sequence[str] = ()
    ) -> AccessClaims | None:
        """Verify the request's key and required ``scopes``; None only when the
        header is absent and ``auto_error`` is False."""
        values = request.headers.getlist(self.header_name)
        if not values:
            if self.auto_error:
                logger.debug("request not authenticated: no %s header", self.header_name)
                _refuse(
                    AuthenticationError(reason="no API key", scheme="APIKey"),
                    challenge=self.challenge,
                )
            return None
        if len(values) > 1:
            self._invalid(f"several {self.header_name} headers")
        claims = await self._verify(request, values[0].strip(" \t"))
        self._check_scopes(claims, scopes)
        return claims

    async def __call__(
        self, request: HTTPConnection, security_scopes: SecurityScopes
    ) -> AccessClaims | None:
        return await close_on_refusal(request, self.authenticate(request, security_scopes.scopes))

    def audit_info(self) -> AuditInfo:
        """What :func:`fastapi_secure.audit.audit` reports: an API key in a header."""
        return AuditInfo(
            authentication="api_key",
            optional=not self.auto_error,
            details={"header": self.header_name},
        )
