"""Errors of the outside-identity-provider blocks.

```text
ServiceUnavailableError
└── ProviderUnavailableError   503: no usable keys or metadata from the provider
RequestRefusedError
└── OIDCLoginError             400: a sign-in through a provider could not complete
```

Both keep a generic message; the precise cause is in ``reason`` (for debug
logs only: it may name a URL of the provider, never a token or a secret).
"""

from __future__ import annotations

from fastapi_secure.errors import ErrorCode, RequestRefusedError, ServiceUnavailableError

__all__ = ["OIDCLoginError", "ProviderUnavailableError"]


class ProviderUnavailableError(ServiceUnavailableError):
    """503: the identity provider's keys or metadata could not be obtained.

    Raised only when no good key set was ever fetched (a set fetched before
    keeps serving while the provider is down), or when the provider's
    discovery document is unacceptable (another issuer, a plain-http URL).
    """

    default_message = "identity provider temporarily unavailable"


class OIDCLoginError(RequestRefusedError):
    """400: the sign-in could not complete (state, code, ID token or provider error).

    HTTP status through :func:`fastapi_secure.http_errors.status_of`: 400, as
    for any refusal of no more specific kind.
    """

    default_code = ErrorCode.BAD_REQUEST
    default_message = "sign-in with the identity provider failed"
