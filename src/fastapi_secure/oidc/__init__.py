"""Outside identity providers: remote key sets, a verifier for their access
tokens (a resource server) and sign-in with an OpenID provider.

Needs the ``oidc`` extra (``pip install "fastapi-secure[oidc]"``): httpx for
fetches, Authlib for the login flow. Importing this package does not import
either; using a block without them raises
:class:`~fastapi_secure.errors.MissingDependencyError`.

The resource-server half (``remote``, ``verifier``) and ``linking`` are core
modules; the login names (``OIDCLogin``, ``OIDCProvider``, ``oidc_router``,
``safe_next_path``, ``providers_from_json``) come from
:mod:`fastapi_secure.oidc.login`, imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from fastapi_secure.oidc.errors import OIDCLoginError, ProviderUnavailableError
from fastapi_secure.oidc.linking import (
    IdentityLinker,
    LinkedIdentity,
    LinkResult,
    MemoryIdentityLinker,
    OIDCIdentity,
    link_identity,
)
from fastapi_secure.oidc.remote import RemoteKeySet
from fastapi_secure.oidc.verifier import (
    ClaimsMapper,
    IntrospectionVerifier,
    MappedClaims,
    ProviderTokenVerifier,
    TrustedIssuer,
    auth0_claims,
    entra_claims,
    keycloak_claims,
    standard_claims,
)

if TYPE_CHECKING:
    from fastapi_secure.oidc.login import (
        OIDCLogin,
        OIDCProvider,
        oidc_router,
        providers_from_json,
        safe_next_path,
    )

__all__ = [
    "ClaimsMapper",
    "IdentityLinker",
    "IntrospectionVerifier",
    "LinkResult",
    "LinkedIdentity",
    "MappedClaims",
    "MemoryIdentityLinker",
    "OIDCIdentity",
    "OIDCLogin",
    "OIDCLoginError",
    "OIDCProvider",
    "ProviderTokenVerifier",
    "ProviderUnavailableError",
    "RemoteKeySet",
    "TrustedIssuer",
    "auth0_claims",
    "entra_claims",
    "keycloak_claims",
    "link_identity",
    "oidc_router",
    "providers_from_json",
    "safe_next_path",
    "standard_claims",
]

_LOGIN_NAMES = frozenset(
    {"OIDCLogin", "OIDCProvider", "oidc_router", "providers_from_json", "safe_next_path"}
)


def __getattr__(name: str) -> Any:
    # The login half needs FastAPI; the resource-server half must not import it.
    if name in _LOGIN_NAMES:
        return getattr(importlib.import_module("fastapi_secure.oidc.login"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
