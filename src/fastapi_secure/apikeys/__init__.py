"""API keys: identifiable, digest-stored, scoped, revocable, rotatable.

The core (this package) has no HTTP: :class:`APIKeyManager` over an
:class:`APIKeyStore`. The FastAPI side, :class:`~fastapi_secure.apikeys.auth.APIKeyAuth`,
is in :mod:`fastapi_secure.apikeys.auth`; :class:`~fastapi_secure.auth.first_of.FirstOf`
(a bearer token *or* an API key) in :mod:`fastapi_secure.auth`.
"""

from fastapi_secure.apikeys.keys import (
    API_KEY_AMR,
    APIKeyManager,
    APIKeyNotFoundError,
    APIKeyParameterError,
    CreatedAPIKey,
    InvalidAPIKeyError,
    is_api_key_claims,
)
from fastapi_secure.apikeys.stores import (
    APIKey,
    APIKeyStore,
    MemoryAPIKeyStore,
    StoredAPIKey,
    api_key_store_from_url,
)

__all__ = [
    "API_KEY_AMR",
    "APIKey",
    "APIKeyManager",
    "APIKeyNotFoundError",
    "APIKeyParameterError",
    "APIKeyStore",
    "CreatedAPIKey",
    "InvalidAPIKeyError",
    "MemoryAPIKeyStore",
    "StoredAPIKey",
    "api_key_store_from_url",
    "is_api_key_claims",
]
