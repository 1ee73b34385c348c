"""What the API says about itself: a root answer, its health, its public keys."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from examples.reference_api.deps import Components
from examples.reference_api.errors import responses
from fastapi_secure import ServiceUnavailableError, jwks_router
from fastapi_secure.audit import Public

__all__ = ["TITLE", "router"]

TITLE = "fastapi-secure reference API"


def router(c: Components) -> APIRouter:
    """``GET /``, ``GET /health`` and the JWKS (``GET /.well-known/jwks.json``)."""
    api = APIRouter(tags=["meta"])

    @api.get("/", dependencies=[Depends(Public("root answer"))])
    async def root() -> dict[str, str]:
        # Where to go next; no version or backend names for an anonymous caller.
        answer = {"name": TITLE, "health": "/health"}
        if not all(key.is_symmetric for key in c.keys.keys):
            answer["jwks"] = "/.well-known/jwks.json"
        if c.settings.docs_enabled:
            answer["docs"] = "/docs"
        return answer

    @api.get("/health", responses=responses(503), dependencies=[Depends(Public("health check"))])
    async def health() -> dict[str, str]:
        checks = {"database": "ok" if await c.db.is_available() else "unavailable"}
        if c.redis_ping is not None:
            checks["redis"] = "ok" if await c.redis_ping() else "unavailable"
        if any(value != "ok" for value in checks.values()):
            raise ServiceUnavailableError(reason=str(checks))
        return {"status": "ok", **checks}

    if not all(key.is_symmetric for key in c.keys.keys):
        api.include_router(jwks_router(c.keys))  # an HMAC key has nothing public to publish
    return api
