"""Exceptions raised by fastapi-secure.

Every exception derives from :class:`SecurityError`. Those that answer an HTTP
request derive from :class:`HTTPSecurityError`, which is also a FastAPI
``HTTPException``: raised from a dependency, FastAPI turns it into the right
status, headers and a JSON body ``{"detail": {"code": ..., "message": ...}}``
with a stable machine-readable :class:`ErrorCode`. No handler needs to be
installed.

```text
SecurityError
├── ConfigurationError                 a component was configured wrongly
│   └── MissingDependencyError         an optional extra is not installed
├── PasswordError
│   ├── PasswordTooLongError           over the hasher's maximum, before hashing
│   └── WeakPasswordError              refused by PasswordPolicy
└── HTTPSecurityError                  carries status_code, headers, code
    ├── AuthenticationError            401 + WWW-Authenticate
    │   └── InvalidTokenError          401, error="invalid_token"
    │       ├── ExpiredTokenError
    │       ├── RevokedTokenError
    │       └── TokenReuseError        a rotated refresh token came back
    ├── PermissionDeniedError          403
    │   ├── InsufficientScopeError     403, error="insufficient_scope"
    │   └── CSRFError                  403
    ├── RequestTooLargeError           413
    ├── RateLimitExceededError         429 + Retry-After
    └── ServiceUnavailableError        503 + Retry-After
        ├── StoreUnavailableError      a token or limit store is down
        └── DatabaseUnavailableError   the database is unreachable or its pool is exhausted
```

Messages are generic on purpose: they never contain a token, a password, a
hash or a secret. The precise reason goes to the ``reason`` attribute, which
is meant for debug logs, never for responses.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import ClassVar

from fastapi import HTTPException

__all__ = [
    "AuthenticationError",
    "CSRFError",
    "ConfigurationError",
    "DatabaseUnavailableError",
    "ErrorCode",
    "ExpiredTokenError",
    "HTTPSecurityError",
    "InsufficientScopeError",
    "InvalidTokenError",
    "MissingDependencyError",
    "PasswordError",
    "PasswordTooLongError",
    "PermissionDeniedError",
    "RateLimitExceededError",
    "RequestTooLargeError",
    "RevokedTokenError",
    "SecurityError",
    "ServiceUnavailableError",
    "StoreUnavailableError",
    "TokenReuseError",
    "WeakPasswordError",
]


class ErrorCode(str, enum.Enum):
    """Stable machine-readable codes found in ``detail.code`` of error bodies."""

    NOT_AUTHENTICATED = "not_authenticated"
    INVALID_CREDENTIALS = "invalid_credentials"
    INVALID_TOKEN = "invalid_token"
    FRESH_TOKEN_REQUIRED = "fresh_token_required"
    PERMISSION_DENIED = "permission_denied"
    INSUFFICIENT_SCOPE = "insufficient_scope"
    CSRF_FAILED = "csrf_failed"
    REQUEST_TOO_LARGE = "request_too_large"
    RATE_LIMITED = "rate_limited"
    SERVICE_UNAVAILABLE = "service_unavailable"
    STORE_UNAVAILABLE = "store_unavailable"
    DATABASE_UNAVAILABLE = "database_unavailable"
    CONFLICT = "conflict"
    # Generic answers of fastapi_secure.edges.install_error_handlers.
    BAD_REQUEST = "bad_request"
    MALFORMED_BODY = "malformed_body"
    VALIDATION_FAILED = "validation_failed"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    HEADERS_TOO_LARGE = "headers_too_large"
    INTERNAL_ERROR = "internal_error"

    def __str__(self) -> str:
        return self.value


class SecurityError(Exception):
    """Base class of every exception raised by fastapi-secure."""


class ConfigurationError(SecurityError, ValueError):
    """A component was given arguments that are unsafe or inconsistent.

    Raised at construction time, never with ``assert`` (which ``python -O``
    strips).
    """


class MissingDependencyError(ConfigurationError, ImportError):
    """An optional backend was used without its extra installed."""

    def __init__(self, feature: str, extra: str, module: str) -> None:
        self.feature = feature
        self.extra = extra
        self.module = module
        super().__init__(
            f"{feature} needs the optional dependency {module!r}, which is not "
            f'installed. Install it with: pip install "fastapi-secure[{extra}]"'
        )


class PasswordError(SecurityError):
    """Base class of password-related errors."""


class PasswordTooLongError(PasswordError, ValueError):
    """The password exceeds the configured maximum; nothing was hashed."""

    def __init__(self, limit: int, unit: str) -> None:
        self.limit = limit
        self.unit = unit
        super().__init__(f"password is longer than the maximum of {limit} {unit}")


class WeakPasswordError(PasswordError, ValueError):
    """The password was refused by a :class:`~fastapi_secure.PasswordPolicy`.

    ``problems`` lists human-readable reasons; none of them echoes the password.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems) or "password refused by policy")


class HTTPSecurityError(SecurityError, HTTPException):
    """An error that answers an HTTP request with a fixed status and code."""

    status: ClassVar[int] = 400
    default_code: ClassVar[ErrorCode] = ErrorCode.PERMISSION_DENIED
    default_message: ClassVar[str] = "request refused"

    def __init__(
        self,
        message: str | None = None,
        *,
        code: ErrorCode | None = None,
        headers: Mapping[str, str] | None = None,
        reason: str | None = None,
    ) -> None:
        self.code = code or self.default_code
        self.message = message or self.default_message
        self.reason = reason
        merged = self.default_headers()
        merged.update(headers or {})
        HTTPException.__init__(
            self,
            status_code=self.status,
            detail={"code": self.code.value, "message": self.message},
            headers=merged or None,
        )

    @classmethod
    def default_headers(cls) -> dict[str, str]:
        """Headers every answer of this class carries; ``headers=`` overrides them."""
        return {}

    def __str__(self) -> str:
        return f"{self.status} {self.code.value}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code.value!r}, message={self.message!r})"


class AuthenticationError(HTTPSecurityError):
    """401: no credentials, or credentials that cannot be accepted."""

    status = 401
    default_code = ErrorCode.NOT_AUTHENTICATED
    default_message = "not authenticated"
    scheme: ClassVar[str] = "Bearer"
    bearer_error: ClassVar[str | None] = None

    @classmethod
    def default_headers(cls) -> dict[str, str]:
        if cls.bearer_error is None:
            return {"WWW-Authenticate": cls.scheme}
        return {"WWW-Authenticate": f'{cls.scheme} error="{cls.bearer_error}"'}


class InvalidTokenError(AuthenticationError):
    """401: the token is malformed, forged, expired, revoked or of the wrong kind.

    The message stays generic whatever the cause; ``reason`` says which.
    """

    default_code = ErrorCode.INVALID_TOKEN
    default_message = "invalid or expired token"
    bearer_error = "invalid_token"


class ExpiredTokenError(InvalidTokenError):
    """401: the token's ``exp`` is in the past (beyond the leeway)."""


class RevokedTokenError(InvalidTokenError):
    """401: the token, its family or its subject was revoked."""


class TokenReuseError(InvalidTokenError):
    """401: a refresh token that was already rotated came back.

    The whole token family has been revoked by the time this is raised
    (RFC 9700, section 4.14).
    """


class PermissionDeniedError(HTTPSecurityError):
    """403: authenticated, but not allowed."""

    status = 403
    default_code = ErrorCode.PERMISSION_DENIED
    default_message = "not allowed"


class InsufficientScopeError(PermissionDeniedError):
    """403: the token lacks a required OAuth2 scope (RFC 6750)."""

    default_code = ErrorCode.INSUFFICIENT_SCOPE
    default_message = "insufficient scope"


class CSRFError(PermissionDeniedError):
    """403: the CSRF token or the Origin of an unsafe request did not match."""

    default_code = ErrorCode.CSRF_FAILED
    default_message = "CSRF check failed"


class RequestTooLargeError(HTTPSecurityError):
    """413: the request body exceeds the configured limit."""

    status = 413
    default_code = ErrorCode.REQUEST_TOO_LARGE
    default_message = "request body too large"


class RateLimitExceededError(HTTPSecurityError):
    """429: a rate limit was hit; ``Retry-After`` says when to come back."""

    status = 429
    default_code = ErrorCode.RATE_LIMITED
    default_message = "too many requests"


class ServiceUnavailableError(HTTPSecurityError):
    """503: a backing service is unavailable; the request was refused, not allowed."""

    status = 503
    default_code = ErrorCode.SERVICE_UNAVAILABLE
    default_message = "service temporarily unavailable"
    default_retry_after: ClassVar[int] = 5

    @classmethod
    def default_headers(cls) -> dict[str, str]:
        # A 503 always tells clients when to come back (RFC 9110, section 10.2.3).
        return {"Retry-After": str(cls.default_retry_after)}


class StoreUnavailableError(ServiceUnavailableError):
    """503: a token or rate-limit store could not be reached in time."""

    default_code = ErrorCode.STORE_UNAVAILABLE


class DatabaseUnavailableError(ServiceUnavailableError):
    """503: the database could not be reached, or no pooled connection came free in time.

    The message never contains the database URL; ``reason`` names the driver error class.
    """

    default_code = ErrorCode.DATABASE_UNAVAILABLE
    default_message = "database temporarily unavailable"
