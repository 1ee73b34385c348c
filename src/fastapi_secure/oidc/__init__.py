"""Outside identity providers: remote key sets, a verifier for their access
tokens (a resource server) and sign-in with an OpenID provider.

Needs the ``oidc`` extra (``pip install "fastapi-secure[oidc]"``): httpx for
fetches, Authlib for the login flow. Importing this package does not import
either; using a block without them raises
:class:`~fastapi_secure.errors.MissingDependencyError`.
"""

from __future__ import annotations

from fastapi_secure.oidc.errors import OIDCLoginError, ProviderUnavailableError
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

__all__ = [
    "ClaimsMapper",
    "IntrospectionVerifier",
    "MappedClaims",
    "OIDCLoginError",
    "ProviderTokenVerifier",
    "ProviderUnavailableError",
    "RemoteKeySet",
    "TrustedIssuer",
    "auth0_claims",
    "entra_claims",
    "keycloak_claims",
    "standard_claims",
]
