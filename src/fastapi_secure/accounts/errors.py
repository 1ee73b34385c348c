"""Errors of the account blocks, subclasses of the :mod:`fastapi_secure.errors` tree.

```text
SecurityError
├── UserNotFoundError                  no user with that id (Python API only)
└── RequestRefusedError
    ├── ConflictError
    │   └── UserExistsError            the email or login name is taken (HTTP 409)
    ├── InvalidActionTokenError        unknown, used, expired, stale or foreign (400)
    └── RateLimitExceededError
        └── AccountLockedError         too many failed logins (429 + Retry-After)
```

Messages stay generic; ``reason`` carries the precise cause for debug logs.
"""

from __future__ import annotations

import math

from fastapi_secure.errors import (
    ConflictError,
    ErrorCode,
    RateLimitExceededError,
    RequestRefusedError,
    SecurityError,
)

__all__ = [
    "AccountLockedError",
    "InvalidActionTokenError",
    "UserExistsError",
    "UserNotFoundError",
]


class UserNotFoundError(SecurityError, LookupError):
    """A store operation named a user id that does not exist."""

    def __init__(self, reason: str = "no such user") -> None:
        self.reason = reason
        super().__init__("no such user")


class UserExistsError(ConflictError):
    """A user with this email (or login name) already exists (HTTP 409).

    Raised by every :class:`~fastapi_secure.accounts.users.UserStore` backend,
    including when the database's unique index refused a concurrent insert.
    """

    default_message = "an account with this email or name already exists"


class InvalidActionTokenError(RequestRefusedError):
    """An action token (email verification, password reset) cannot be used (HTTP 400).

    Unknown, already used, expired, superseded by a newer request, bound to an
    older account state, issued for another purpose or another account: the
    answer is the same, ``reason`` says which.
    """

    default_code = ErrorCode.INVALID_TOKEN
    default_message = "invalid or expired token"


class AccountLockedError(RateLimitExceededError):
    """Too many failed logins for this account or client address (HTTP 429).

    ``retry_after`` is the number of whole seconds until the lock ends; the
    HTTP answer carries it as ``Retry-After``.
    """

    default_message = "too many failed logins; try again later"

    def __init__(self, retry_after: float, *, reason: str | None = None) -> None:
        super().__init__(reason=reason, retry_after=max(1, math.ceil(retry_after)))
