"""Swagger UI, ReDoc and the OAuth2 redirect page, with a CSP nonce on their scripts.

FastAPI's docs pages bootstrap with an inline ``<script>``, which a policy
without ``'unsafe-inline'`` blocks. :func:`install_secure_docs` serves the
same pages (rendered by FastAPI's own functions) with the request's nonce on
every ``<script>`` tag, so the docs policy of
:class:`~fastapi_secure.headers.SecureHeadersMiddleware` can stay nonce-based.
The middleware never rewrites a body: the nonce goes into the HTML here.
"""

from __future__ import annotations

import html
import secrets
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote, urlsplit

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from fastapi_secure.csp import CSP_NONCE, NONCE_BYTES, NONCE_SCOPE_KEY, ContentSecurityPolicy
from fastapi_secure.errors import ConfigurationError
from fastapi_secure.origins import origin_of

__all__ = [
    "DEFAULT_DOCS_CSP",
    "DOCS_PATHS",
    "NONCE_DOCS_STATE",
    "STOCK_DOCS_CSP",
    "DocsAssets",
    "install_secure_docs",
    "remove_docs",
    "serve_docs_assets",
]

DOCS_PATHS: Final = ("/docs", "/redoc", "/docs/oauth2-redirect")
"""FastAPI's default paths of Swagger UI, ReDoc and the OAuth2 redirect page."""


def _origin(url: str) -> str:
    """``https://cdn.example`` for an absolute URL, ``'self'`` for a relative one."""
    if not urlsplit(url).scheme:
        return "'self'"
    origin = origin_of(url)
    if origin is None:
        raise ConfigurationError(f"docs asset URL {url!r} must be https://... or a path")
    return origin


_REDOC_LOGO_ORIGIN: Final = "https://cdn.redoc.ly"


@dataclass(frozen=True)
class DocsAssets:
    """Where the docs pages load Swagger UI and ReDoc from.

    The defaults are FastAPI's (jsDelivr and Google Fonts). To self-host, give
    paths (``"/static/swagger-ui-bundle.js"``) and ``google_fonts=False``: the
    docs policy then allows only ``'self'``.

    ReDoc's bundle always loads its footer logo from ``https://cdn.redoc.ly``.
    ``redoc_logo`` allows that image; by default (``None``) only when ReDoc
    itself comes from another origin. Self-hosted, the image is blocked: ReDoc
    hides it, and the browser logs one CSP violation for it.
    """

    swagger_js_url: str = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"
    swagger_css_url: str = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"
    redoc_js_url: str = "https://cdn.jsdelivr.net/npm/redoc@2/bundles/redoc.standalone.js"
    favicon_url: str = "https://fastapi.tiangolo.com/img/favicon.png"
    google_fonts: bool = True
    redoc_logo: bool | None = None

    def __post_init__(self) -> None:
        for url in (self.swagger_js_url, self.swagger_css_url, self.redoc_js_url, self.favicon_url):
            if any(char in url for char in "<>\"'` \\") or not url.isprintable():
                raise ConfigurationError(f"docs asset URL {url!r} contains unsafe characters")
            _origin(url)

    def csp(self, *, inline_bootstrap: bool = False) -> ContentSecurityPolicy:
        """The policy under which these assets render, and nothing else loads.

        ``inline_bootstrap=True`` is for FastAPI's stock pages, whose inline
        bootstrap script carries no nonce: scripts then need ``'unsafe-inline'``
        instead (docs paths only; :func:`install_secure_docs` avoids it).
        Otherwise scripts need the per-request nonce (the inline bootstrap script and the
        bundles carry it). Styles allow ``'unsafe-inline'`` because Swagger UI
        and ReDoc inject style elements at run time; ReDoc runs its search in a
        ``blob:`` worker.
        """

        def origins(*urls: str) -> list[str]:
            return list(dict.fromkeys(_origin(url) for url in urls))

        scripts = origins(self.swagger_js_url, self.redoc_js_url)
        styles = ["'self'", "'unsafe-inline'", *origins(self.swagger_css_url)]
        fonts = ["'self'", "data:"]
        if self.google_fonts:
            styles.append("https://fonts.googleapis.com")
            fonts.append("https://fonts.gstatic.com")
        images = ["'self'", "data:", *origins(self.favicon_url)]
        redoc_logo = self.redoc_logo
        if redoc_logo is None:
            redoc_logo = _origin(self.redoc_js_url) != "'self'"
        if redoc_logo:
            images.append(_REDOC_LOGO_ORIGIN)
        return ContentSecurityPolicy(
            {
                "default-src": ["'none'"],
                "script-src": ["'unsafe-inline'" if inline_bootstrap else CSP_NONCE, *scripts],
                "style-src": list(dict.fromkeys(styles)),
                "img-src": list(dict.fromkeys(images)),
                "font-src": list(dict.fromkeys(fonts)),
                "connect-src": ["'self'"],
                "worker-src": ["blob:"],
                "base-uri": ["'none'"],
                "form-action": ["'self'"],
                "frame-ancestors": ["'none'"],
            }
        )


DEFAULT_DOCS_CSP: Final = DocsAssets().csp()

STOCK_DOCS_CSP: Final = DocsAssets().csp(inline_bootstrap=True)
"""The policy FastAPI's own docs pages (no nonce on their inline script) render under."""

NONCE_DOCS_STATE: Final = "fastapi_secure_nonce_docs"
"""``app.state`` flag set by :func:`install_secure_docs`: the docs pages carry a nonce."""
"""The docs pages' policy for FastAPI's default (CDN) assets."""

_UNSAFE_IN_URL = frozenset("<>\"'`\\ ")
# Characters kept as they are when a root path is put into the page; quotes and
# angle brackets are percent-encoded so a proxy-supplied prefix cannot break out.
_ROOT_PATH_SAFE = "/-._~!$&()*+,;=:@%"


def _check_path(name: str, path: str) -> str:
    if not path.startswith("/") or any(char in _UNSAFE_IN_URL for char in path):
        raise ConfigurationError(f"{name} {path!r} must be a path without quotes or brackets")
    return path


def _with_nonce(page: HTMLResponse, nonce: str) -> str:
    # Every developer-supplied string was escaped or checked before rendering, so
    # each "<script" left in the page is one of FastAPI's own tags.
    return bytes(page.body).decode("utf-8").replace("<script", f'<script nonce="{nonce}"')


def _remove_plain_routes(app: FastAPI, paths: Collection[str]) -> None:
    # FastAPI registers its docs and schema as plain Starlette routes, never APIRoutes.
    app.router.routes[:] = [
        route
        for route in app.router.routes
        if not (
            isinstance(route, Route) and not isinstance(route, APIRoute) and route.path in paths
        )
    ]


def remove_docs(app: FastAPI) -> None:
    """Stop serving the app's docs pages and its OpenAPI schema."""
    paths = [app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url]
    _remove_plain_routes(app, {path for path in paths if path})
    app.openapi_url = app.docs_url = app.redoc_url = None


def install_secure_docs(app: FastAPI, *, assets: DocsAssets | None = None) -> tuple[str, ...]:
    """Serve the app's docs pages with a nonce on their scripts.

    Replaces the routes FastAPI registered at ``app.docs_url``,
    ``app.redoc_url`` and ``app.swagger_ui_oauth2_redirect_url`` (keeping
    ``swagger_ui_parameters`` and ``swagger_ui_init_oauth``); a page turned
    off on the app (``docs_url=None``) stays off. Returns the paths served,
    which are the ``docs_paths`` to give :class:`SecureHeadersMiddleware`.

    Give ``assets`` to load Swagger UI and ReDoc from elsewhere (self-hosted),
    and the matching ``docs_csp=assets.csp()`` to the middleware. When the
    middleware does not cover a docs path, the page sets its own policy.
    """
    assets = assets or DocsAssets()
    if not app.openapi_url:
        return ()
    setattr(app.state, NONCE_DOCS_STATE, True)
    openapi_url = _check_path("openapi_url", app.openapi_url)
    title = html.escape(app.title)
    policy = assets.csp()
    pages: dict[str, Callable[[str], HTMLResponse]] = {}

    if app.docs_url:
        redirect = app.swagger_ui_oauth2_redirect_url
        if redirect:
            _check_path("swagger_ui_oauth2_redirect_url", redirect)

        def swagger(root_path: str) -> HTMLResponse:
            return get_swagger_ui_html(
                openapi_url=root_path + openapi_url,
                title=f"{title} - Swagger UI",
                swagger_js_url=assets.swagger_js_url,
                swagger_css_url=assets.swagger_css_url,
                swagger_favicon_url=assets.favicon_url,
                oauth2_redirect_url=root_path + redirect if redirect else None,
                init_oauth=app.swagger_ui_init_oauth,
                swagger_ui_parameters=app.swagger_ui_parameters,
            )

        pages[_check_path("docs_url", app.docs_url)] = swagger
        if redirect:
            pages[redirect] = lambda root_path: get_swagger_ui_oauth2_redirect_html()

    if app.redoc_url:

        def redoc(root_path: str) -> HTMLResponse:
            return get_redoc_html(
                openapi_url=root_path + openapi_url,
                title=f"{title} - ReDoc",
                redoc_js_url=assets.redoc_js_url,
                redoc_favicon_url=assets.favicon_url,
                with_google_fonts=assets.google_fonts,
            )

        pages[_check_path("redoc_url", app.redoc_url)] = redoc

    def endpoint(
        render: Callable[[str], HTMLResponse],
    ) -> Callable[[Request], Awaitable[HTMLResponse]]:
        async def page(request: Request) -> HTMLResponse:
            root_path = quote(request.scope.get("root_path", "").rstrip("/"), safe=_ROOT_PATH_SAFE)
            nonce = request.scope.get(NONCE_SCOPE_KEY)
            if isinstance(nonce, str):
                return HTMLResponse(_with_nonce(render(root_path), nonce))
            # No middleware covers this path: the page brings its own policy.
            nonce = secrets.token_urlsafe(NONCE_BYTES)
            response = HTMLResponse(_with_nonce(render(root_path), nonce))
            response.headers["Content-Security-Policy"] = policy.header_value(nonce)
            return response

        return page

    _remove_plain_routes(app, pages)
    for path, render in pages.items():
        app.add_route(path, endpoint(render), include_in_schema=False)
    return tuple(pages)


_OFFLINE_ASSETS: Final = (
    "swagger-ui-bundle.js",
    "swagger-ui.css",
    "redoc.standalone.js",
    "favicon.png",
)


def serve_docs_assets(app: FastAPI, *, path: str = "/docs-assets") -> DocsAssets:
    """Serve Swagger UI and ReDoc from this app, not a CDN: ``/docs`` works offline.

    The files come from the ``fastapi-offline`` package (the ``offline-docs``
    extra), which ships Swagger UI's bundle and stylesheet, ReDoc's standalone
    bundle and a favicon; they are mounted at ``path`` with Starlette's
    ``StaticFiles``. Give the returned :class:`DocsAssets` to
    :func:`~fastapi_secure.defaults.install_secure_defaults` (``docs_assets=``)
    or to :func:`install_secure_docs`: the docs policy then allows ``'self'``
    only, with no Google Fonts (ReDoc falls back to system fonts).
    """
    from importlib import resources

    from fastapi_secure._optional import require

    require("fastapi_offline", extra="offline-docs", feature="serve_docs_assets")
    from starlette.staticfiles import StaticFiles

    prefix = _check_path("path", path).rstrip("/")
    if not prefix:
        raise ConfigurationError("path must not be '/'")
    folder = resources.files("fastapi_offline").joinpath("static")
    missing = [name for name in _OFFLINE_ASSETS if not folder.joinpath(name).is_file()]
    if missing:
        raise ConfigurationError(f"fastapi-offline lacks {', '.join(missing)}; upgrade it")
    app.mount(prefix, StaticFiles(directory=str(folder)), name="fastapi-secure-docs-assets")
    return DocsAssets(
        swagger_js_url=f"{prefix}/swagger-ui-bundle.js",
        swagger_css_url=f"{prefix}/swagger-ui.css",
        redoc_js_url=f"{prefix}/redoc.standalone.js",
        favicon_url=f"{prefix}/favicon.png",
        google_fonts=False,
    )
