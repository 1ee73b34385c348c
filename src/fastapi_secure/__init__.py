"""Security building blocks for FastAPI.

Each block is usable alone and installs no global state::

    from fastapi_secure import PasswordHasher, TokenIssuer, BearerAuth, RoleChecker

This namespace holds the blocks an application composes and the exception
tree; protocols, constants and helpers are imported from their modules
(``fastapi_secure.tokens.stores.TokenStore``, ``fastapi_secure.headers.csp_nonce``,
...). Optional backends (Redis, SQLAlchemy, asyncpg) are imported only when
used, so ``import fastapi_secure`` never pulls in a database or cache driver.
"""

from fastapi_secure.auth.bearer import BearerAuth
from fastapi_secure.auth.cookie import CookieAuth
from fastapi_secure.auth.guards import PermissionChecker, RoleChecker, require_fresh
from fastapi_secure.auth.roles import RolePermissions
from fastapi_secure.clientip import TrustedProxies
from fastapi_secure.cors import CORSPolicy
from fastapi_secure.db import Database
from fastapi_secure.defaults import install_secure_defaults
from fastapi_secure.errors import (
    AuthenticationError,
    ConfigurationError,
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
    "AccessClaims",
    "AuthenticationError",
    "BearerAuth",
    "CORSPolicy",
    "CSRFError",
    "ConfigurationError",
    "CookieAuth",
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
