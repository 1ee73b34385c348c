"""The reference API: every security decision is made by a fastapi-secure block.

``create_app()`` builds the components once from :class:`AppSettings`
(:mod:`.deps`) and mounts the routers (:mod:`.routes`):

* passwords: :class:`~fastapi_secure.PasswordHasher` (argon2id, off the event
  loop) and :class:`~fastapi_secure.PasswordPolicy` on the registration and
  password-change bodies;
* tokens: :class:`~fastapi_secure.KeySet` (EdDSA, published at
  ``/.well-known/jwks.json``), :class:`~fastapi_secure.TokenIssuer` with refresh
  rotation and reuse detection, on a token store in memory or, with
  ``REDIS_URL``, in Redis;
* the transport: :class:`~fastapi_secure.BearerAuth` or, with
  ``AUTH_TRANSPORT=cookie``, :class:`~fastapi_secure.CookieAuth` (CSRF and
  Origin checks); ``require_fresh`` and :class:`~fastapi_secure.RoleChecker`;
* :class:`~fastapi_secure.RateLimiter` per IP and per account on login, per
  user on password changes;
* :func:`~fastapi_secure.install_secure_defaults`: secure headers, CORS, body
  size limit, error handlers, docs CSP;
* :class:`~fastapi_secure.Database` sessions (SQLite by default, PostgreSQL
  with ``DATABASE_URL``).

Serve it with ``python -m examples.reference_api serve`` or
``uvicorn --factory examples.reference_api.main:create_app``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

import fastapi_secure
from fastapi_secure import install_secure_defaults

from .bootstrap import bootstrap_admin
from .deps import Components, build_components
from .errors import document_validation_errors
from .routes import routers
from .routes.meta import TITLE
from .settings import AppSettings

__all__ = ["create_app"]


def create_app(
    settings: AppSettings | None = None, *, components: Components | None = None
) -> FastAPI:
    """The application for ``settings`` (read from the environment when omitted)."""
    settings = settings or AppSettings()
    c = components or build_components(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await c.db.check()
        await bootstrap_admin(c)
        try:
            yield
        finally:
            await c.limiter.aclose()
            if c.oidc is not None:
                for provider in c.oidc.login.providers.values():
                    await provider.key_set.aclose()
            await c.api_keys.store.aclose()
            await c.mfa_store.aclose()
            await c.issuer.store.aclose()
            await c.db.dispose()

    docs = settings.docs_enabled
    app = FastAPI(
        title=TITLE,
        version=fastapi_secure.__version__,
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    for router in routers(c):
        app.include_router(router)
    install_secure_defaults(app, settings=settings, max_body_bytes=settings.max_body_bytes)
    document_validation_errors(app)
    app.state.components = c
    return app
