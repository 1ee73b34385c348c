"""Errors of the account blocks, subclasses of the :mod:`fastapi_secure.errors` tree.

```text
SecurityError
├── UserNotFoundError                  no user with that id (Python API only)
└── HTTPSecurityError
    ├── UserExistsError                409: the email or login name is taken
    ├── InvalidActionTokenError        400: unknown, used, expired, stale or foreign
    └── RateLimitExceededError
        └── AccountLockedError         429 + Retry-After: too many failed logins
```

Messages stay generic; ``reason`` carries the precise cause for debug logs.
"""

from __future__ import annotations

import math

from fastapi_secure.errors import (
    ErrorCode,
    HTTPSecurityError,
    RateLimitExceededError,
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


class UserExistsError(HTTPSecurityError):
    """409: a user with this email (or login name) already exists.

    Raised by every :class:`~fastapi_secure.accounts.users.UserStore` backend,
    including when the database's unique index refused a concurrent insert.
    """

    status = 409
    default_code = ErrorCode.CONFLICT
    default_message = "an account with this email or name already exists"


class InvalidActionTokenError(HTTPSecurityError):
    """400: an action token (email verification, password reset) cannot be used.

    Unknown, already used, expired, superseded by a newer request, bound to an
    older account state, issued for another purpose or another account: the
    answer is the same, ``reason`` says which.
    """

    status = 400
    default_code = ErrorCode.INVALID_TOKEN
    default_message = "invalid or expired token"


class AccountLockedError(RateLimitExceededError):
    """429: too many failed logins for this account or client address.

    ``retry_after`` is the number of whole seconds until the lock ends; the
    ``Retry-After`` header carries it.
    """

    default_message = "too many failed logins; try again later"

    def __init__(self, retry_after: float, *, reason: str | None = None) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(headers={"Retry-After": str(self.retry_after)}, reason=reason)
