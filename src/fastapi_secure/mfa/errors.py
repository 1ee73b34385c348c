"""Errors of the second-factor blocks.

```text
SecurityError
├── SecretDecryptionError              a stored secret could not be decrypted (server side: 500)
└── RequestRefusedError
    ├── AuthenticationError            401
    │   ├── InvalidOTPError            a TOTP or recovery code was refused (any reason)
    │   │   └── OTPReplayError         the code was already used within its window
    │   ├── PasskeyError               a WebAuthn ceremony was refused
    │   │   ├── ChallengeError         challenge unknown, expired, used or for another ceremony
    │   │   └── SignCountError         the authenticator's counter went backwards (a clone?)
    │   └── InvalidTokenError
    │       └── MFATokenError          (in mfa.challenge) the MFA token is not valid
    └── RateLimitExceededError         429
        └── TooManyAttemptsError       too many failed second-factor attempts; retry_after
```

:mod:`fastapi_secure.http_errors` maps them to HTTP answers.

Messages are generic: a refused code says "invalid code" whatever the cause
(wrong, replayed, malformed, another account's), so an attacker learns
nothing from the answer. The precise cause is in ``reason``, for debug logs.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi_secure.errors import (
    AuthenticationError,
    ErrorCode,
    RateLimitExceededError,
    SecurityError,
)

__all__ = [
    "ChallengeError",
    "InvalidOTPError",
    "OTPReplayError",
    "PasskeyError",
    "SecretDecryptionError",
    "SignCountError",
    "TooManyAttemptsError",
]


class SecretDecryptionError(SecurityError, ValueError):
    """A secret at rest could not be decrypted: tampered, truncated, or under a retired key.

    This is a server-side fault (the key list no longer holds the key that
    encrypted the secret, or the stored value was altered); it never names
    the key or echoes the ciphertext.
    """

    def __init__(self, reason: str = "invalid token") -> None:
        self.reason = reason
        super().__init__("stored secret could not be decrypted")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reason={self.reason!r})"


class InvalidOTPError(AuthenticationError):
    """401: a one-time code (TOTP or recovery code) was not accepted."""

    default_code = ErrorCode.INVALID_CREDENTIALS
    default_message = "invalid code"


class OTPReplayError(InvalidOTPError):
    """401: the code was valid but already used; same message as any refused code."""


class PasskeyError(AuthenticationError):
    """401: a passkey registration or assertion was not accepted."""

    default_code = ErrorCode.INVALID_CREDENTIALS
    default_message = "passkey verification failed"


class ChallengeError(PasskeyError):
    """401: the ceremony's challenge is unknown, expired, already used or not this ceremony's."""


class SignCountError(PasskeyError):
    """401: the signature counter did not grow: the credential may have been cloned.

    ``user_id`` and ``credential_id`` (base64url) name the passkey when known,
    ``stored_count`` and ``presented_count`` the counters (for the report).
    """

    def __init__(
        self,
        message: str | None = None,
        *,
        user_id: str | None = None,
        credential_id: str | None = None,
        stored_count: int | None = None,
        presented_count: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.user_id = user_id
        self.credential_id = credential_id
        self.stored_count = stored_count
        self.presented_count = presented_count


class TooManyAttemptsError(RateLimitExceededError):
    """429: too many failed second-factor attempts for this account; see ``retry_after``."""

    def __init__(self, retry_after: float, *, reason: str | None = None) -> None:
        super().__init__(
            "too many attempts", reason=reason, retry_after=max(1, math.ceil(retry_after))
        )
