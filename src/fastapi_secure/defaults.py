"""One call for the recommended HTTP edge of an app: :func:`install_secure_defaults`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from fastapi import FastAPI
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from fastapi_secure.apidocs import DocsAssets, install_secure_docs, remove_docs
from fastapi_secure.bodylimit import DEFAULT_MAX_BODY_BYTES, RequestSizeLimitMiddleware
from fastapi_secure.clientip import TrustedProxies
from fastapi_secure.cors import CORSPolicy
from fastapi_secure.headers import SecureHeadersMiddleware
from fastapi_secure.http_errors import install_error_handlers
from fastapi_secure.settings import SecuritySettings

__all__ = ["install_secure_defaults"]


def install_secure_defaults(
    app: FastAPI,
    *,
    settings: SecuritySettings | None = None,
    cors: CORSPolicy | None = None,
    trusted_proxies: TrustedProxies | None = None,
    allowed_hosts: Sequence[str] | None = None,
    max_body_bytes: int | None = DEFAULT_MAX_BODY_BYTES,
    body_path_limits: Mapping[str, int | None] | None = None,
    docs_assets: DocsAssets | None = None,
    expose_internal_errors: bool = False,
    secure_headers: Mapping[str, Any] | None = None,
) -> None:
    """Install the recommended edge on ``app`` in one call.

    From the outside in: :class:`SecureHeadersMiddleware`, CORS (``cors``, or
    from ``settings`` when they list origins), Starlette's
    ``TrustedHostMiddleware`` when ``allowed_hosts`` is given,
    :class:`RequestSizeLimitMiddleware`; then :func:`install_error_handlers`
    and, when the app has docs pages, :func:`~fastapi_secure.apidocs.install_secure_docs`
    with the matching docs policy. ``trusted_proxies`` (or the settings')
    decides whether a request came over HTTPS (for HSTS). Settings with
    ``docs_enabled=False`` take the docs pages and the OpenAPI schema off the app.
    ``secure_headers`` are more keyword arguments of the headers middleware.
    """
    if settings is not None:
        if not settings.docs_enabled:
            remove_docs(app)
        if cors is None and settings.cors_allow_origins:
            cors = CORSPolicy.from_settings(settings)
        if trusted_proxies is None and settings.trusted_proxies:
            trusted_proxies = TrustedProxies(settings.trusted_proxies)
    assets = docs_assets or DocsAssets()
    docs_paths = install_secure_docs(app, assets=assets)
    install_error_handlers(app, expose_internal_errors=expose_internal_errors)
    # Each middleware is built once, here, so a wrong option fails now and not at
    # the first request; the stack then takes these very instances (add_middleware
    # puts each new one outside the previous ones).
    size_limit = RequestSizeLimitMiddleware(
        app, max_body_bytes=max_body_bytes, path_limits=body_path_limits
    )
    app.add_middleware(_bound(size_limit))
    if allowed_hosts is not None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    if cors is not None:
        cors.install(app)
    redirect = app.swagger_ui_oauth2_redirect_url
    options: dict[str, Any] = {
        "docs_paths": docs_paths,
        "oauth2_redirect_paths": (redirect,) if redirect in docs_paths else (),
        "docs_csp": assets.csp(),
        "trusted_proxies": trusted_proxies,
    }
    options.update(secure_headers or {})
    app.add_middleware(_bound(SecureHeadersMiddleware(app, **options)))


class _Wrapping(Protocol):
    app: ASGIApp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...


def _bound(middleware: _Wrapping) -> Callable[[ASGIApp], ASGIApp]:
    """A middleware factory that hands Starlette an instance already built."""

    def bind(app: ASGIApp) -> ASGIApp:
        middleware.app = app
        return middleware

    return bind
