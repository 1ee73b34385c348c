"""Security response headers as a pure ASGI middleware, and a typed CSP builder.

:class:`SecureHeadersMiddleware` is written like Starlette's own middleware:
the header list is encoded once in ``__init__``; per request it only wraps
``send`` and touches the ``http.response.start`` message, so streaming,
background tasks and context variables behave exactly as without it. Websocket
and lifespan scopes pass straight through.

The defaults are the strict ones for a JSON API. The interactive docs pages
(``/docs``, ``/redoc`` and the OAuth2 redirect page) get their own policy that
lets Swagger UI and ReDoc load, with a fresh nonce per request for their
inline script; see :mod:`fastapi_secure.apidocs` for routes that put that
nonce into the HTML.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Final, TypeVar

from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastapi_secure.apidocs import DEFAULT_DOCS_CSP, DOCS_PATHS, NONCE_DOCS_STATE, STOCK_DOCS_CSP
from fastapi_secure.clientip import TrustedProxies
from fastapi_secure.csp import NONCE_BYTES, NONCE_SCOPE_KEY, STRICT_API_CSP, ContentSecurityPolicy
from fastapi_secure.errors import ConfigurationError

__all__ = [
    "DEFAULT_PERMISSIONS_POLICY",
    "HEADERS_SCOPE_KEY",
    "HSTS",
    "SecureHeadersMiddleware",
    "apply_secure_headers",
    "csp_nonce",
    "route_path",
]

HEADERS_SCOPE_KEY: Final = "fastapi_secure.secure_headers"

DEFAULT_PERMISSIONS_POLICY: Final = ", ".join(
    f"{feature}=()"
    for feature in (
        "accelerometer",
        "autoplay",
        "camera",
        "display-capture",
        "encrypted-media",
        "fullscreen",
        "geolocation",
        "gyroscope",
        "hid",
        "idle-detection",
        "magnetometer",
        "microphone",
        "midi",
        "payment",
        "picture-in-picture",
        "publickey-credentials-get",
        "screen-wake-lock",
        "serial",
        "usb",
        "xr-spatial-tracking",
    )
)
"""Denies every powerful browser feature to the page and to any frame."""

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _check_header(name: str, value: str) -> tuple[bytes, bytes]:
    if not _TOKEN.fullmatch(name):
        raise ConfigurationError(f"{name!r} is not a valid header name")
    if not all(" " <= char <= "~" for char in value) or value != value.strip():
        raise ConfigurationError(
            f"the value of header {name!r} must be printable ASCII without surrounding "
            "whitespace (no CR, LF or other control characters)"
        )
    return name.lower().encode("ascii"), value.encode("ascii")


@dataclass(frozen=True)
class HSTS:
    """Strict-Transport-Security, sent only on responses to HTTPS requests.

    ``preload`` asks browsers to hard-code the domain; it is refused unless the
    policy meets the preload list's requirements (a year, subdomains included).
    """

    max_age: int = 31_536_000
    include_subdomains: bool = True
    preload: bool = False

    def __post_init__(self) -> None:
        if self.max_age < 0:
            raise ConfigurationError("HSTS max_age must not be negative")
        if self.preload and (self.max_age < 31_536_000 or not self.include_subdomains):
            raise ConfigurationError(
                "HSTS preload needs max_age >= 31536000 and include_subdomains=True"
            )

    def header_value(self) -> str:
        value = f"max-age={self.max_age}"
        if self.include_subdomains:
            value += "; includeSubDomains"
        if self.preload:
            value += "; preload"
        return value


_Headers = list[tuple[bytes, bytes]]
_CSP = b"content-security-policy"
_CSP_REPORT_ONLY = b"content-security-policy-report-only"
_SERVER = b"server"
_MANAGED = frozenset(
    {
        "content-security-policy",
        "content-security-policy-report-only",
        "strict-transport-security",
        "cache-control",
        "server",
    }
)


def route_path(scope: Scope) -> str:
    """The request path as the app's routes see it: without the ``root_path``."""
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path):
        return path[len(root_path) :] or "/"
    return path


class _Profile:
    """The headers of one kind of path, encoded once."""

    __slots__ = (
        "names",
        "nonce_policies",
        "scope_entry",
        "static",
        "strip",
        "touched",
        "untouched",
    )

    def __init__(
        self,
        static: _Headers,
        nonce_policies: list[tuple[bytes, ContentSecurityPolicy]],
        hsts: tuple[bytes, bytes] | None,
        override: frozenset[bytes] | None,
        drop_server: bool,
    ) -> None:
        self.static = static
        self.nonce_policies = nonce_policies
        names = {name for name, _ in static} | {name for name, _ in nonce_policies}
        if hsts is not None:
            names.add(hsts[0])
        self.names = frozenset(names)
        # Copies the app set that must go: the overridden headers this path sends.
        strip = set(self.names if override is None else self.names & override)
        if drop_server:
            strip.add(_SERVER)
        self.strip = frozenset(strip)
        self.touched = self.names | self.strip
        # Header names, as the app sends them, known to need nothing from _merge:
        # most responses carry only these, and then merging is one concatenation.
        self.untouched: set[bytes] = set()
        # What the scope keeps for apply_secure_headers when nothing varies per request.
        self.scope_entry = (static, self)


# Bounds the names remembered per profile (apps send a handful of distinct names).
_UNTOUCHED_LIMIT = 256


def _merge(
    existing: Iterable[tuple[bytes, bytes]], ours: _Headers, profile: _Profile
) -> list[tuple[bytes, bytes]]:
    merged = existing if type(existing) is list else list(existing)
    untouched = profile.untouched
    for pair in merged:
        if pair[0] not in untouched:
            break
    else:
        return [*merged, *ours]  # a new list: the app's own may be shared
    merged = list(merged)
    present = {pair[0].lower() for pair in merged}
    if len(untouched) < _UNTOUCHED_LIMIT:
        untouched.update(pair[0] for pair in merged if pair[0].lower() not in profile.touched)
    if not present.isdisjoint(profile.strip):
        merged = [pair for pair in merged if pair[0].lower() not in profile.strip]
        present -= profile.strip
    if present.isdisjoint(profile.names):
        merged += ours
    else:
        merged += [pair for pair in ours if pair[0] not in present]
    return merged


class SecureHeadersMiddleware:
    """Adds security headers to every HTTP response.

    A header the application set itself is kept (the default) unless its name
    is in ``override`` (or ``override=True``), in which case every copy the app
    set is replaced by one. Pass ``None`` for a header to leave it out.

    Args:
        csp: policy of API responses; :data:`STRICT_API_CSP` by default.
        csp_report_only: a second policy sent as
            ``Content-Security-Policy-Report-Only`` (try a stricter policy out).
        docs_csp: policy of the ``docs_paths``; allows what
            :class:`~fastapi_secure.apidocs.DocsAssets` loads, with a per-request
            nonce. ``None`` treats them like any path. Left at its default, an
            app whose docs pages are FastAPI's own (no
            :func:`~fastapi_secure.apidocs.install_secure_docs`) gets
            :data:`~fastapi_secure.apidocs.STOCK_DOCS_CSP` there instead, the
            policy those pages render under.
        docs_paths: exact paths of the docs pages. They get
            ``Cross-Origin-Opener-Policy: same-origin-allow-popups`` and the
            ``oauth2_redirect_paths`` among them none, so Swagger UI's OAuth2
            login popup can report back to the page that opened it.
        hsts: sent only when the request came over HTTPS: ``scope["scheme"]``,
            or ``X-Forwarded-Proto`` when the peer is one of ``trusted_proxies``.
        cache_control: value on every response (``no-store``: API answers
            carry personal data); ``cache_control_paths`` maps a path prefix to
            another value, or to ``None`` for none.
        remove_server_header: drop a ``Server`` header set by the app (the
            ASGI server adds its own: run uvicorn with ``--no-server-header``).
        extra_headers: more headers, sent with the same rules.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        csp: ContentSecurityPolicy | None = STRICT_API_CSP,
        csp_report_only: ContentSecurityPolicy | None = None,
        docs_csp: ContentSecurityPolicy | None = DEFAULT_DOCS_CSP,  # see _stock_docs
        docs_paths: Collection[str] = DOCS_PATHS,
        oauth2_redirect_paths: Collection[str] = ("/docs/oauth2-redirect",),
        hsts: HSTS | None = HSTS(),
        trusted_proxies: TrustedProxies | None = None,
        content_type_options: str | None = "nosniff",
        frame_options: str | None = "DENY",
        referrer_policy: str | None = "no-referrer",
        permissions_policy: str | None = DEFAULT_PERMISSIONS_POLICY,
        cross_origin_opener_policy: str | None = "same-origin",
        cross_origin_resource_policy: str | None = "same-origin",
        cross_origin_embedder_policy: str | None = None,
        permitted_cross_domain_policies: str | None = "none",
        cache_control: str | None = "no-store",
        cache_control_paths: Mapping[str, str | None] | None = None,
        remove_server_header: bool = True,
        extra_headers: Mapping[str, str] | None = None,
        override: bool | Collection[str] = False,
    ) -> None:
        self.app = app
        common: dict[str, str] = {}
        for name, value in (
            ("X-Content-Type-Options", content_type_options),
            ("X-Frame-Options", frame_options),
            ("Referrer-Policy", referrer_policy),
            ("Permissions-Policy", permissions_policy),
            ("Cross-Origin-Resource-Policy", cross_origin_resource_policy),
            ("Cross-Origin-Embedder-Policy", cross_origin_embedder_policy),
            ("X-Permitted-Cross-Domain-Policies", permitted_cross_domain_policies),
        ):
            if value is not None:
                common[name.lower()] = value
        for name, value in (extra_headers or {}).items():
            if name.lower() in _MANAGED:
                raise ConfigurationError(
                    f"{name!r} has its own argument (csp, csp_report_only, hsts, "
                    "cache_control, remove_server_header); extra_headers would send it twice"
                )
            common[name.lower()] = value
        encoded = [_check_header(name, value) for name, value in common.items()]
        self._hsts = (
            _check_header("strict-transport-security", hsts.header_value()) if hsts else None
        )
        overridden: frozenset[bytes] | None
        if override is True:
            overridden = None  # every header this middleware sends
        elif override is False:
            overridden = frozenset()
        elif isinstance(override, str):
            raise ConfigurationError("override takes True or a list of header names")
        else:
            overridden = frozenset(_check_header(name, "")[0] for name in override)

        def profile(
            policy: ContentSecurityPolicy | None,
            report_only: bool,
            cache: str | None,
            opener: str | None = cross_origin_opener_policy,
        ) -> _Profile:
            static = list(encoded)
            if opener is not None:
                static.append(_check_header("cross-origin-opener-policy", opener))
            dynamic: list[tuple[bytes, ContentSecurityPolicy]] = []
            for header, item in ((_CSP, policy), (_CSP_REPORT_ONLY, csp_report_only)):
                if item is None or (header == _CSP_REPORT_ONLY and not report_only):
                    continue
                if item.uses_nonce:
                    dynamic.append((header, item))
                else:
                    static.append((header, item.header_value().encode("ascii")))
            if cache is not None:
                static.append(_check_header("cache-control", cache))
            return _Profile(static, dynamic, self._hsts, overridden, remove_server_header)

        self._default = profile(csp, True, cache_control)
        self._docs_paths = frozenset(docs_paths)
        self._redirect_paths = frozenset(oauth2_redirect_paths) & self._docs_paths
        docs_policy = docs_csp if docs_csp is not None else csp
        # Swagger UI's OAuth2 login runs in a popup that reports back through
        # window.opener: the docs page must allow popups, and the redirect page
        # must not switch browsing context group (no COOP), or the link is cut.
        docs_opener = cross_origin_opener_policy and "same-origin-allow-popups"
        self._docs = profile(docs_policy, docs_csp is None, cache_control, docs_opener)
        self._redirect = profile(docs_policy, docs_csp is None, cache_control, None)
        # With the default docs policy, FastAPI's stock pages (no nonce on their
        # inline script: the app did not call install_secure_docs) get the policy
        # they render under, so adding this middleware alone never blanks /docs.
        self._stock_docs: tuple[_Profile, _Profile] | None = None
        if docs_csp is DEFAULT_DOCS_CSP:
            self._stock_docs = (
                profile(STOCK_DOCS_CSP, False, cache_control, docs_opener),
                profile(STOCK_DOCS_CSP, False, cache_control, None),
            )
        prefixes = sorted((cache_control_paths or {}).items(), key=lambda item: -len(item[0]))
        for prefix, _ in prefixes:
            if not prefix.startswith("/"):
                raise ConfigurationError(f"cache_control_paths: {prefix!r} must start with '/'")
        self._cache_paths = [
            (prefix.rstrip("/"), profile(csp, True, value)) for prefix, value in prefixes
        ]
        self._proxies = trusted_proxies
        # No path prefix has its own profile: only the docs paths differ.
        self._plain = not self._cache_paths

    def _profile_for(self, scope: Scope) -> _Profile:
        path = route_path(scope)
        if path in self._docs_paths:
            redirect = path in self._redirect_paths
            if self._stock_docs is not None and not getattr(
                getattr(scope.get("app"), "state", None), NONCE_DOCS_STATE, False
            ):
                return self._stock_docs[1] if redirect else self._stock_docs[0]
            return self._redirect if redirect else self._docs
        for prefix, profile in self._cache_paths:
            if path.startswith(prefix) and (len(path) == len(prefix) or path[len(prefix)] == "/"):
                return profile
        return self._default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._plain and not scope.get("root_path") and scope["path"] not in self._docs_paths:
            profile = self._default  # the common case, without route_path's work
        else:
            profile = self._profile_for(scope)
        headers = profile.static
        https = self._hsts is not None and (
            (self._proxies.scheme(scope) if self._proxies else scope.get("scheme")) == "https"
        )
        if not (profile.nonce_policies or https):
            scope[HEADERS_SCOPE_KEY] = profile.scope_entry
        else:
            headers = list(headers)
            if profile.nonce_policies:
                nonce = secrets.token_urlsafe(NONCE_BYTES)
                scope[NONCE_SCOPE_KEY] = nonce
                for name, policy in profile.nonce_policies:
                    headers.append((name, policy._render(nonce)))
            if https and self._hsts is not None:
                headers.append(self._hsts)
            scope[HEADERS_SCOPE_KEY] = (headers, profile)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = _merge(message.get("headers") or (), headers, profile)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def csp_nonce(request: HTTPConnection) -> str:
    """The CSP nonce of this request, for a ``nonce="..."`` attribute.

    Usable as a FastAPI dependency (``nonce: str = Depends(csp_nonce)``) or
    from a template context. It exists only on paths whose policy contains
    :data:`CSP_NONCE`; elsewhere this raises :class:`ConfigurationError`.
    """
    nonce = request.scope.get(NONCE_SCOPE_KEY)
    if not isinstance(nonce, str):
        raise ConfigurationError(
            "no CSP nonce for this request: SecureHeadersMiddleware is not installed, "
            "or the policy for this path does not contain CSP_NONCE"
        )
    return nonce


ResponseT = TypeVar("ResponseT", bound=Response)


def apply_secure_headers(request: HTTPConnection, response: ResponseT) -> ResponseT:
    """Add this request's security headers to ``response`` and return it.

    Starlette sends the answer to an unhandled exception from
    ``ServerErrorMiddleware``, outside every middleware added with
    ``app.add_middleware``; a custom 500 handler calls this so the answer
    still carries the headers. (The handler of
    :func:`~fastapi_secure.http_errors.install_error_handlers` already does.) Does
    nothing when :class:`SecureHeadersMiddleware` did not see the request.
    """
    found = request.scope.get(HEADERS_SCOPE_KEY)
    if found is not None:
        headers, profile = found
        response.raw_headers[:] = _merge(response.raw_headers, headers, profile)
    return response
