"""Security building blocks for FastAPI.

Each block is usable alone and installs no global state::

    from fastapi_secure import PasswordHasher, TokenIssuer, BearerAuth, RoleChecker

This namespace holds the blocks an application composes and the exception
tree; protocols, constants and helpers are imported from their modules
(``fastapi_secure.tokens.stores.TokenStore``, ``fastapi_secure.headers.csp_nonce``,
...). Optional backends (Redis, SQLAlchemy, asyncpg) are imported only when
used, so ``import fastapi_secure`` never pulls in a database or cache driver.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi_secure.accounts.manager import AccountManager
    from fastapi_secure.apikeys.auth import APIKeyAuth
    from fastapi_secure.apikeys.keys import APIKeyManager
    from fastapi_secure.auth.bearer import BearerAuth
    from fastapi_secure.auth.cookie import CookieAuth
    from fastapi_secure.auth.guards import PermissionChecker, RoleChecker, require_fresh
    from fastapi_secure.auth.roles import RolePermissions
    from fastapi_secure.clientip import TrustedProxies
    from fastapi_secure.cors import CORSPolicy
    from fastapi_secure.db import Database
    from fastapi_secure.defaults import install_secure_defaults
    from fastapi_secure.dpop.http import DPoPAuth
    from fastapi_secure.errors import (
        AuthenticationError,
        ConfigurationError,
        ConflictError,
        CSRFError,
        DatabaseUnavailableError,
        ErrorCode,
        ExpiredTokenError,
        InsufficientScopeError,
        InvalidTokenError,
        MissingDependencyError,
        PasswordError,
        PasswordTooLongError,
        PermissionDeniedError,
        RateLimitExceededError,
        RequestRefusedError,
        RequestTooLargeError,
        RevokedTokenError,
        SecurityError,
        ServiceUnavailableError,
        StepUpRequiredError,
        StoreUnavailableError,
        TokenReuseError,
        WeakPasswordError,
    )
    from fastapi_secure.events import SecurityEvents
    from fastapi_secure.headers import SecureHeadersMiddleware
    from fastapi_secure.http_errors import install_error_handlers
    from fastapi_secure.jwks import jwks_router
    from fastapi_secure.passwords import PasswordHasher, PasswordPolicy, StrongPassword
    from fastapi_secure.ratelimit import RateLimiter
    from fastapi_secure.settings import SecuritySettings
    from fastapi_secure.tokens.claims import AccessClaims, TokenPair
    from fastapi_secure.tokens.issuer import TokenIssuer
    from fastapi_secure.tokens.keys import KeySet
    from fastapi_secure.tokens.stores import MemoryTokenStore, token_store_from_url

__version__ = "0.2.0.dev0"

__all__ = [
    "APIKeyAuth",
    "APIKeyManager",
    "AccessClaims",
    "AccountManager",
    "AuthenticationError",
    "BearerAuth",
    "CORSPolicy",
    "CSRFError",
    "ConfigurationError",
    "ConflictError",
    "CookieAuth",
    "DPoPAuth",
    "Database",
    "DatabaseUnavailableError",
    "ErrorCode",
    "ExpiredTokenError",
    "InsufficientScopeError",
    "InvalidTokenError",
    "KeySet",
    "MemoryTokenStore",
    "MissingDependencyError",
    "PasswordError",
    "PasswordHasher",
    "PasswordPolicy",
    "PasswordTooLongError",
    "PermissionChecker",
    "PermissionDeniedError",
    "RateLimitExceededError",
    "RateLimiter",
    "RequestRefusedError",
    "RequestTooLargeError",
    "RevokedTokenError",
    "RoleChecker",
    "RolePermissions",
    "SecureHeadersMiddleware",
    "SecurityError",
    "SecurityEvents",
    "SecuritySettings",
    "ServiceUnavailableError",
    "StepUpRequiredError",
    "StoreUnavailableError",
    "StrongPassword",
    "TokenIssuer",
    "TokenPair",
    "TokenReuseError",
    "TrustedProxies",
    "WeakPasswordError",
    "install_error_handlers",
    "install_secure_defaults",
    "jwks_router",
    "require_fresh",
    "token_store_from_url",
]


# Imported on first use (PEP 562): `import fastapi_secure.errors` or `.tokens`
# must not drag FastAPI into a process that only hashes passwords or checks tokens.
_HOMES: dict[str, str] = {
    "AccountManager": "fastapi_secure.accounts.manager",
    "APIKeyAuth": "fastapi_secure.apikeys.auth",
    "APIKeyManager": "fastapi_secure.apikeys.keys",
    "DPoPAuth": "fastapi_secure.dpop.http",
    "AccessClaims": "fastapi_secure.tokens.claims",
    "AuthenticationError": "fastapi_secure.errors",
    "BearerAuth": "fastapi_secure.auth.bearer",
    "CORSPolicy": "fastapi_secure.cors",
    "CSRFError": "fastapi_secure.errors",
    "ConfigurationError": "fastapi_secure.errors",
    "ConflictError": "fastapi_secure.errors",
    "CookieAuth": "fastapi_secure.auth.cookie",
    "Database": "fastapi_secure.db",
    "DatabaseUnavailableError": "fastapi_secure.errors",
    "ErrorCode": "fastapi_secure.errors",
    "ExpiredTokenError": "fastapi_secure.errors",
    "InsufficientScopeError": "fastapi_secure.errors",
    "InvalidTokenError": "fastapi_secure.errors",
    "KeySet": "fastapi_secure.tokens.keys",
    "MemoryTokenStore": "fastapi_secure.tokens.stores",
    "MissingDependencyError": "fastapi_secure.errors",
    "PasswordError": "fastapi_secure.errors",
    "PasswordHasher": "fastapi_secure.passwords",
    "PasswordPolicy": "fastapi_secure.passwords",
    "PasswordTooLongError": "fastapi_secure.errors",
    "PermissionChecker": "fastapi_secure.auth.guards",
    "PermissionDeniedError": "fastapi_secure.errors",
    "RateLimitExceededError": "fastapi_secure.errors",
    "RateLimiter": "fastapi_secure.ratelimit",
    "RequestRefusedError": "fastapi_secure.errors",
    "RequestTooLargeError": "fastapi_secure.errors",
    "RevokedTokenError": "fastapi_secure.errors",
    "RoleChecker": "fastapi_secure.auth.guards",
    "RolePermissions": "fastapi_secure.auth.roles",
    "SecureHeadersMiddleware": "fastapi_secure.headers",
    "SecurityError": "fastapi_secure.errors",
    "SecurityEvents": "fastapi_secure.events",
    "SecuritySettings": "fastapi_secure.settings",
    "ServiceUnavailableError": "fastapi_secure.errors",
    "StepUpRequiredError": "fastapi_secure.errors",
    "StoreUnavailableError": "fastapi_secure.errors",
    "StrongPassword": "fastapi_secure.passwords",
    "TokenIssuer": "fastapi_secure.tokens.issuer",
    "TokenPair": "fastapi_secure.tokens.claims",
    "TokenReuseError": "fastapi_secure.errors",
    "TrustedProxies": "fastapi_secure.clientip",
    "WeakPasswordError": "fastapi_secure.errors",
    "install_error_handlers": "fastapi_secure.http_errors",
    "install_secure_defaults": "fastapi_secure.defaults",
    "jwks_router": "fastapi_secure.jwks",
    "require_fresh": "fastapi_secure.auth.guards",
    "token_store_from_url": "fastapi_secure.tokens.stores",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'fastapi_secure' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
