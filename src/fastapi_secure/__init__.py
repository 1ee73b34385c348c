"""Security building blocks for FastAPI.

Each block is usable alone and installs no global state::

    from fastapi_secure import PasswordHasher, TokenIssuer, BearerAuth, RoleChecker

Optional backends (Redis, SQLAlchemy, asyncpg) are imported only when used,
so ``import fastapi_secure`` never pulls in a database or cache driver.
"""

from fastapi_secure.clientip import TrustedProxies
from fastapi_secure.clock import Clock, system_clock
from fastapi_secure.db import Database
from fastapi_secure.errors import (
    AuthenticationError,
    ConfigurationError,
    CSRFError,
    DatabaseUnavailableError,
    ErrorCode,
    ExpiredTokenError,
    HTTPSecurityError,
    InsufficientScopeError,
    InvalidTokenError,
    MissingDependencyError,
    PasswordError,
    PasswordTooLongError,
    PermissionDeniedError,
    RateLimitExceededError,
    RequestTooLargeError,
    RevokedTokenError,
    SecurityError,
    ServiceUnavailableError,
    StoreUnavailableError,
    TokenReuseError,
    WeakPasswordError,
)
from fastapi_secure.ratelimit import (
    RateLimiter,
    RateLimitHeadersMiddleware,
    RateLimitKey,
    by_form_field,
    by_subject,
)
from fastapi_secure.settings import SecuritySettings
from fastapi_secure.tokens.jwks import jwks_router
from fastapi_secure.tokens.keys import Key, KeySet, VerifiedJWS

__version__ = "0.1.0.dev0"

__all__ = [
    "AuthenticationError",
    "CSRFError",
    "Clock",
    "ConfigurationError",
    "Database",
    "DatabaseUnavailableError",
    "ErrorCode",
    "ExpiredTokenError",
    "HTTPSecurityError",
    "InsufficientScopeError",
    "InvalidTokenError",
    "Key",
    "KeySet",
    "MissingDependencyError",
    "PasswordError",
    "PasswordTooLongError",
    "PermissionDeniedError",
    "RateLimitExceededError",
    "RateLimitHeadersMiddleware",
    "RateLimitKey",
    "RateLimiter",
    "RequestTooLargeError",
    "RevokedTokenError",
    "SecurityError",
    "SecuritySettings",
    "ServiceUnavailableError",
    "StoreUnavailableError",
    "TokenReuseError",
    "TrustedProxies",
    "VerifiedJWS",
    "WeakPasswordError",
    "__version__",
    "by_form_field",
    "by_subject",
    "jwks_router",
    "system_clock",
]
