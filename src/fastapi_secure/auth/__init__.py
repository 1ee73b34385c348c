"""Authentication dependencies (transports) and the guards over their claims.

- :mod:`~fastapi_secure.auth.base`: what every auth dependency shares.
- :mod:`~fastapi_secure.auth.bearer`: ``Authorization: Bearer``.
- :mod:`~fastapi_secure.auth.cookie`: HttpOnly cookies with CSRF and Origin checks.
- :mod:`~fastapi_secure.auth.transport`: the contract token routes are written over.
- :mod:`~fastapi_secure.auth.first_of`: ``FirstOf``, the first of several ways in.
- :mod:`~fastapi_secure.auth.guards`: roles, permissions, freshness.
- :mod:`~fastapi_secure.auth.roles`: role hierarchies and permission grants (no FastAPI).
"""

from fastapi_secure.auth.base import AccessTokenVerifier, ClaimsDependency, TokenAuth
from fastapi_secure.auth.bearer import BearerAuth
from fastapi_secure.auth.cookie import CookieAuth
from fastapi_secure.auth.first_of import FirstOf
from fastapi_secure.auth.guards import (
    ClaimsGuard,
    FreshnessChecker,
    MFAChecker,
    PermissionChecker,
    RoleChecker,
    require_fresh,
    require_mfa,
)
from fastapi_secure.auth.roles import RoleHierarchy, RolePermissions, permission_matches
from fastapi_secure.auth.transport import Transport

__all__ = [
    "AccessTokenVerifier",
    "BearerAuth",
    "ClaimsDependency",
    "ClaimsGuard",
    "CookieAuth",
    "FirstOf",
    "FreshnessChecker",
    "MFAChecker",
    "PermissionChecker",
    "RoleChecker",
    "RoleHierarchy",
    "RolePermissions",
    "TokenAuth",
    "Transport",
    "permission_matches",
    "require_fresh",
    "require_mfa",
]
