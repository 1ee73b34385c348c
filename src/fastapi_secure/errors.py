"""Exceptions raised by fastapi-secure: the core tree, free of FastAPI.

Every exception derives from :class:`SecurityError`. Those that refuse a
request derive from :class:`RequestRefusedError` and carry a stable
machine-readable :class:`ErrorCode`, a generic ``message`` and, for logs only,
a precise ``reason``. What they mean in HTTP (status, ``WWW-Authenticate``,
``Retry-After``, the ``{"detail": {"code": ..., "message": ...}}`` body) lives
in :mod:`fastapi_secure.http_errors`; the FastAPI dependencies of this library
raise them as ``HTTPException`` twins, so no handler needs to be installed for
them, and :func:`~fastapi_secure.http_errors.install_error_handlers` answers
those that application code lets escape.

```text
SecurityError
├── ConfigurationError                 a component was configured wrongly
│   └── MissingDependencyError         an optional extra is not installed
├── PasswordError
│   ├── PasswordTooLongError           over the hasher's maximum, before hashing
│   └── WeakPasswordError              refused by PasswordPolicy
└── RequestRefusedError                carries code, message, reason
    ├── AuthenticationError            401 + WWW-Authenticate
    │   ├── InvalidTokenError          401, error="invalid_token"
    │   │   ├── ExpiredTokenError
    │   │   ├── RevokedTokenError
    │   │   └── TokenReuseError        a rotated refresh token came back
    │   └── StepUpRequiredError        401, error="insufficient_user_authentication"
    ├── PermissionDeniedError          403
    │   ├── InsufficientScopeError     403, error="insufficient_scope"
    │   └── CSRFError                  403
    ├── ConflictError                  409, the resource exists (an account, a name)
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
from collections.abc import Collection
from typing import ClassVar

__all__ = [
    "AuthenticationError",
    "CSRFError",
    "ConfigurationError",
    "ConflictError",
    "DatabaseUnavailableError",
    "ErrorCode",
    "ExpiredTokenError",
    "InsufficientScopeError",
    "InvalidTokenError",
    "MissingDependencyError",
    "PasswordError",
    "PasswordTooLongError",
    "PermissionDeniedError",
    "RateLimitExceededError",
    "RequestRefusedError",
    "RequestTooLargeError",
    "RevokedTokenError",
    "SecurityError",
    "ServiceUnavailableError",
    "StepUpRequiredError",
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
    MFA_REQUIRED = "mfa_required"
    PERMISSION_DENIED = "permission_denied"
    INSUFFICIENT_SCOPE = "insufficient_scope"
    CSRF_FAILED = "csrf_failed"
    REQUEST_TOO_LARGE = "request_too_large"
    RATE_LIMITED = "rate_limited"
    SERVICE_UNAVAILABLE = "service_unavailable"
    STORE_UNAVAILABLE = "store_unavailable"
    DATABASE_UNAVAILABLE = "database_unavailable"
    CONFLICT = "conflict"
    # Generic answers of fastapi_secure.http_errors.install_error_handlers.
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


class RequestRefusedError(SecurityError):
    """An error that refuses a request, with a stable code and a generic message.

    ``reason`` is the precise cause, for debug logs only, never for answers.
    """

    default_code: ClassVar[ErrorCode] = ErrorCode.PERMISSION_DENIED
    default_message: ClassVar[str] = "request refused"
    default_retry_after: ClassVar[int | None] = None

    def __init__(
        self,
        message: str | None = None,
        *,
        code: ErrorCode | None = None,
        reason: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        self.code = code or self.default_code
        self.message = message or self.default_message
        self.reason = reason
        #: seconds after which the client may try again, when known
        self.retry_after = self.default_retry_after if retry_after is None else retry_after
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.code.value}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code.value!r}, message={self.message!r})"


class AuthenticationError(RequestRefusedError):
    """No credentials, or credentials that cannot be accepted (HTTP 401).

    ``scheme`` and ``challenge_error`` are the RFC 6750 challenge the answer
    carries (``Bearer error="invalid_token"``); a DPoP-protected resource sets
    ``scheme="DPoP"``.
    """

    default_code = ErrorCode.NOT_AUTHENTICATED
    default_message = "not authenticated"
    default_challenge_error: ClassVar[str | None] = None

    def __init__(
        self,
        message: str | None = None,
        *,
        code: ErrorCode | None = None,
        reason: str | None = None,
        scheme: str = "Bearer",
        challenge_error: str | None = None,
    ) -> None:
        super().__init__(message, code=code, reason=reason)
        self.scheme = scheme
        self.challenge_error = challenge_error or self.default_challenge_error


class InvalidTokenError(AuthenticationError):
    """The token is malformed, forged, expired, revoked or of the wrong kind (401).

    The message stays generic whatever the cause; ``reason`` says which.
    """

    default_code = ErrorCode.INVALID_TOKEN
    default_message = "invalid or expired token"
    default_challenge_error = "invalid_token"


class ExpiredTokenError(InvalidTokenError):
    """The token's ``exp`` is in the past (beyond the leeway)."""


class RevokedTokenError(InvalidTokenError):
    """The token, its family or its subject was revoked."""


class TokenReuseError(InvalidTokenError):
    """A refresh token that was already rotated came back.

    The whole token family has been revoked by the time this is raised
    (RFC 9700, section 4.14).
    """


class StepUpRequiredError(AuthenticationError):
    """The credentials are valid but not recent or strong enough (401, RFC 9470).

    ``max_age`` (seconds) is how recent the last authentication must be, when
    the guard that raised it has a bound; ``description`` says what is missing
    (a second factor, for :func:`~fastapi_secure.auth.guards.require_mfa`).
    """

    default_code = ErrorCode.FRESH_TOKEN_REQUIRED
    default_message = "fresh authentication required"
    default_challenge_error = "insufficient_user_authentication"

    def __init__(
        self,
        message: str | None = None,
        *,
        code: ErrorCode | None = None,
        reason: str | None = None,
        max_age: int | None = None,
        description: str | None = None,
    ) -> None:
        super().__init__(message, code=code, reason=reason)
        self.max_age = max_age
        #: what the client must do, for the challenge's ``error_description``
        self.description = description


class PermissionDeniedError(RequestRefusedError):
    """Authenticated, but not allowed (HTTP 403)."""

    default_code = ErrorCode.PERMISSION_DENIED
    default_message = "not allowed"


class InsufficientScopeError(PermissionDeniedError):
    """The token lacks a required OAuth2 scope (403, RFC 6750).

    ``scopes`` are the scopes the route requires.
    """

    default_code = ErrorCode.INSUFFICIENT_SCOPE
    default_message = "insufficient scope"

    def __init__(
        self,
        message: str | None = None,
        *,
        code: ErrorCode | None = None,
        reason: str | None = None,
        scopes: Collection[str] = (),
    ) -> None:
        super().__init__(message, code=code, reason=reason)
        self.scopes = tuple(scopes)


class CSRFError(PermissionDeniedError):
    """The CSRF token or the Origin of an unsafe request did not match (403)."""

    default_code = ErrorCode.CSRF_FAILED
    default_message = "CSRF check failed"


class ConflictError(RequestRefusedError):
    """The request collides with what exists, such as an account's email (409)."""

    default_code = ErrorCode.CONFLICT
    default_message = "already exists"


class RequestTooLargeError(RequestRefusedError):
    """The request body exceeds the configured limit (413)."""

    default_code = ErrorCode.REQUEST_TOO_LARGE
    default_message = "request body too large"


class RateLimitExceededError(RequestRefusedError):
    """A rate limit was hit (429); ``retry_after`` says when to come back (seconds)."""

    default_code = ErrorCode.RATE_LIMITED
    default_message = "too many requests"


class ServiceUnavailableError(RequestRefusedError):
    """A backing service is unavailable; the request was refused, not allowed (503)."""

    default_code = ErrorCode.SERVICE_UNAVAILABLE
    default_message = "service temporarily unavailable"
    # A 503 always tells clients when to come back (RFC 9110, section 10.2.3).
    default_retry_after = 5


class StoreUnavailableError(ServiceUnavailableError):
    """A token or rate-limit store could not be reached in time (503)."""

    default_code = ErrorCode.STORE_UNAVAILABLE


class DatabaseUnavailableError(ServiceUnavailableError):
    """The database could not be reached, or no pooled connection came free in time (503).

    The message never contains the database URL; ``reason`` names the driver error class.
    """

    default_code = ErrorCode.DATABASE_UNAVAILABLE
    default_message = "database temporarily unavailable"
