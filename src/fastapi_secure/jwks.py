"""The HTTP side of keys: a route publishing a :class:`~fastapi_secure.tokens.keys.KeySet`."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from fastapi_secure.audit import Public
from fastapi_secure.errors import ConfigurationError
from fastapi_secure.tokens.keys import KeySet

__all__ = ["DEFAULT_JWKS_PATH", "jwks_router"]

DEFAULT_JWKS_PATH = "/.well-known/jwks.json"


def jwks_router(
    keys: KeySet,
    *,
    path: str = DEFAULT_JWKS_PATH,
    max_age: int = 300,
    include_in_schema: bool = True,
) -> APIRouter:
    """An ``APIRouter`` with ``GET {path}`` returning ``keys.jwks()``.

    The body is read from the key set on every request, so :meth:`KeySet.add`,
    :meth:`KeySet.rotate` and :meth:`KeySet.retire` show at once; verifiers may
    cache it for ``max_age`` seconds (``Cache-Control: public, max-age=...``).
    Publish a new key at least ``max_age`` seconds before signing with it.

    An HMAC key set has nothing public to publish: :class:`ConfigurationError`.
    """
    if not isinstance(keys, KeySet):
        raise ConfigurationError("jwks_router needs a KeySet")
    if all(key.is_symmetric for key in keys.keys):
        raise ConfigurationError("an HMAC key set has no public keys to publish")
    if isinstance(max_age, bool) or not isinstance(max_age, int) or max_age < 0:
        raise ConfigurationError("max_age must be a non-negative number of seconds")
    if not path.startswith("/"):
        raise ConfigurationError("path must start with '/'")
    cache_control = f"public, max-age={max_age}"
    router = APIRouter()

    @router.get(
        path,
        include_in_schema=include_in_schema,
        summary="JSON Web Key Set",
        description="The public keys that verify this service's tokens (RFC 7517).",
        response_class=JSONResponse,
        responses={200: {"description": "The public JWK Set."}},
        # Public by nature; says so to fastapi_secure.audit.
        dependencies=[Depends(Public("public keys (RFC 7517)"))],
    )
    async def jwks() -> JSONResponse:
        return JSONResponse(keys.jwks(), headers={"Cache-Control": cache_control})

    return router
