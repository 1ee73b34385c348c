"""Security building blocks for FastAPI.

Each block is usable alone and installs no global state::

    from fastapi_secure import PasswordHasher, TokenIssuer, BearerAuth, RoleChecker

Optional backends (Redis, SQLAlchemy, asyncpg) are imported only when used,
so ``import fastapi_secure`` never pulls in a database or cache driver.
"""

from fastapi_secure.apidocs import install_secure_docs, remove_docs
from fastapi_secure.auth import (
    AccessTokenVerifier,
    BearerAuth,
    ClaimsDependency,
    CookieAuth,
    FreshTokenRequired,
    TokenAuth,
    require_fresh,
)
from fastapi_secure.clientip import TrustedProxies
from fastapi_secure.clock import Clock, system_clock
from fastapi_secure.db import Database
from fastapi_secure.edges import (
    CORSPolicy,
    RequestSizeLimitMiddleware,
    install_error_handlers,
    install_secure_defaults,
)
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
from fastapi_secure.headers import (
    CSP_NONCE,
    HSTS,
    STRICT_API_CSP,
    ContentSecurityPolicy,
    DocsAssets,
    SecureHeadersMiddleware,
    apply_secure_headers,
    csp_nonce,
)
from fastapi_secure.passwords import (
    Argon2Scheme,
    BcryptScheme,
    PasswordHasher,
    PasswordPolicy,
    PasswordScheme,
    StrongPassword,
)
from fastapi_secure.ratelimit import (
    RateLimiter,
    RateLimitHeadersMiddleware,
    RateLimitKey,
    by_form_field,
    by_subject,
)
from fastapi_secure.rbac import (
    PermissionChecker,
    RoleChecker,
    RoleHierarchy,
    RolePermissions,
    permission_matches,
)
from fastapi_secure.settings import SecuritySettings
from fastapi_secure.tokens.claims import AccessClaims, RefreshClaims, TokenPair
from fastapi_secure.tokens.issuer import Grant, GrantLoader, TokenIssuer
from fastapi_secure.tokens.jwks import jwks_router
from fastapi_secure.tokens.keys import Key, KeySet, VerifiedJWS
from fastapi_secure.tokens.stores.base import TokenState, TokenStore
from fastapi_secure.tokens.stores.memory import MemoryTokenStore
from fastapi_secure.tokens.stores.redis import RedisTokenStore

__version__ = "0.1.0.dev0"

__all__ = [
    "CSP_NONCE",
    "HSTS",
    "STRICT_API_CSP",
    "AccessClaims",
    "AccessTokenVerifier",
    "Argon2Scheme",
    "AuthenticationError",
    "BcryptScheme",
    "BearerAuth",
    "CORSPolicy",
    "CSRFError",
    "ClaimsDependency",
    "Clock",
    "ConfigurationError",
    "ContentSecurityPolicy",
    "CookieAuth",
    "Database",
    "DatabaseUnavailableError",
    "DocsAssets",
    "ErrorCode",
    "ExpiredTokenError",
    "FreshTokenRequired",
    "Grant",
    "GrantLoader",
    "HTTPSecurityError",
    "InsufficientScopeError",
    "InvalidTokenError",
    "Key",
    "KeySet",
    "MemoryTokenStore",
    "MissingDependencyError",
    "PasswordError",
    "PasswordHasher",
    "PasswordPolicy",
    "PasswordScheme",
    "PasswordTooLongError",
    "PermissionChecker",
    "PermissionDeniedError",
    "RateLimitExceededError",
    "RateLimitHeadersMiddleware",
    "RateLimitKey",
    "RateLimiter",
    "RedisTokenStore",
    "RefreshClaims",
    "RequestSizeLimitMiddleware",
    "RequestTooLargeError",
    "RevokedTokenError",
    "RoleChecker",
    "RoleHierarchy",
    "RolePermissions",
    "SecureHeadersMiddleware",
    "SecurityError",
    "SecuritySettings",
    "ServiceUnavailableError",
    "StoreUnavailableError",
    "StrongPassword",
    "TokenAuth",
    "TokenIssuer",
    "TokenPair",
    "TokenReuseError",
    "TokenState",
    "TokenStore",
    "TrustedProxies",
    "VerifiedJWS",
    "WeakPasswordError",
    "__version__",
    "apply_secure_headers",
    "by_form_field",
    "by_subject",
    "csp_nonce",
    "install_error_handlers",
    "install_secure_defaults",
    "install_secure_docs",
    "jwks_router",
    "permission_matches",
    "remove_docs",
    "require_fresh",
    "system_clock",
]
