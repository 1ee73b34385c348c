"""Audit an application's security: which routes are protected and how, and what the app lacks.

```python
from fastapi import Depends, FastAPI

from fastapi_secure.audit import assert_all_routes_protected, audit, public

app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


@app.get("/health", dependencies=[Depends(public)])
async def health() -> dict[str, str]:
    return {"status": "ok"}


report = audit(app)
assert [route.path for route in report.routes] == ["/health"]
assert report.routes[0].public
assert_all_routes_protected(app)
```

:func:`audit` walks the routes (HTTP and WebSocket, of included routers and
mounted sub-applications too) and, for each, the whole dependency tree
FastAPI will run, recognizing the blocks of this library by type
(:class:`~fastapi_secure.BearerAuth`, :class:`~fastapi_secure.CookieAuth`,
``require_fresh``, :class:`~fastapi_secure.RoleChecker`,
:class:`~fastapi_secure.PermissionChecker`, rate limits) and any other
dependency by the :class:`Auditable` protocol. It reads the middleware stack
(secure headers, CORS, body-size limit), the exception handlers and the docs
pages, and returns a typed :class:`AuditReport` whose :class:`Finding` items
carry a severity and a stable :class:`FindingCode`.

A route that is public on purpose (a login form, a health check, a JWKS)
says so with ``dependencies=[Depends(public)]`` (or ``Depends(Public("why"))``);
a plain Starlette route or a mounted app with :func:`mark_public`.

Other blocks plug in with :class:`Auditable`: a dependency with an
``audit_info()`` method (or a function with a ``__security_audit__``
attribute) returning :class:`AuditInfo`.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

import fastapi.routing
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

__all__ = [
    "AUDIT_ATTRIBUTE",
    "AppReport",
    "AuditInfo",
    "AuditReport",
    "Auditable",
    "Finding",
    "FindingCode",
    "Public",
    "RouteReport",
    "Severity",
    "assert_all_routes_protected",
    "audit",
    "mark_public",
    "public",
]

AUDIT_ATTRIBUTE = "__security_audit__"
"""Attribute holding an :class:`AuditInfo` on a function, route or app that has no method."""

Severity = Literal["high", "medium", "low"]
SEVERITIES: tuple[Severity, ...] = ("high", "medium", "low")

_T = TypeVar("_T")

ONE_YEAR = 31_536_000

# The name fastapi_secure.apidocs.serve_docs_assets gives its mount of the docs
# pages' own scripts and styles: part of the docs, like the pages themselves.
DOCS_ASSETS_MOUNT = "fastapi-secure-docs-assets"


@dataclass(frozen=True)
class AuditInfo:
    """What one dependency contributes to the protection of the routes it guards.

    Attributes:
        authentication: the kind of credentials it checks (``"bearer"``,
            ``"cookie"``, ``"api_key"``, ``"dpop"``, ``"oidc"``, ...); None when
            it authenticates nobody (a rate limit, a marker).
        optional: it lets requests without credentials through
            (``auto_error=False``): it does not protect the route alone.
        roles, permissions, scopes: what it requires of the authenticated party.
        fresh: it requires a fresh authentication (a recent password entry).
        rate_limits: the limits it enforces, as text (``"5 per 1 minute by ip"``).
        public: the route is public on purpose; ``public_reason`` says why.
        details: anything worth showing (cookie flags, a key store), as text.
        wraps: dependencies it calls itself rather than through FastAPI (a
            guard's ``auth=``); the audit inspects them too.
        any_of: dependencies of which a request must satisfy one
            (``FirstOf``'s members): inspected like ``wraps``, but their
            authentication counts as required, or as optional when this
            dependency is ``optional``, whatever their own ``auto_error``.
    """

    authentication: str | None = None
    optional: bool = False
    roles: frozenset[str] = frozenset()
    permissions: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()
    rate_limits: tuple[str, ...] = ()
    fresh: bool = False
    public: bool = False
    public_reason: str | None = None
    details: Mapping[str, str] = field(default_factory=dict)
    wraps: tuple[Any, ...] = ()
    any_of: tuple[Any, ...] = ()


@runtime_checkable
class Auditable(Protocol):
    """A dependency that tells the audit what it checks."""

    def audit_info(self) -> AuditInfo: ...


class Public:
    """A dependency marking a route public on purpose: ``Depends(Public("login form"))``.

    It does nothing at request time; :func:`audit` reads it. :data:`public`
    is the instance without a reason.
    """

    __slots__ = ("reason",)

    def __init__(self, reason: str = "marked public") -> None:
        self.reason = reason

    async def __call__(self) -> None:
        return None

    def audit_info(self) -> AuditInfo:
        return AuditInfo(public=True, public_reason=self.reason)

    def __repr__(self) -> str:
        return f"Public({self.reason!r})"


public = Public()
"""``dependencies=[Depends(public)]``: this route needs no authentication, on purpose."""


def mark_public(target: _T, reason: str = "marked public") -> _T:
    """Mark a Starlette route, endpoint or mounted app (``StaticFiles``) public; returns it."""
    setattr(target, AUDIT_ATTRIBUTE, AuditInfo(public=True, public_reason=reason))
    return target


class FindingCode(str, Enum):
    """Stable codes of findings: CI rules and suppressions match them."""

    UNPROTECTED_ROUTE = "unprotected_route"
    NO_SECURE_HEADERS = "no_secure_headers"
    HSTS_DISABLED = "hsts_disabled"
    HSTS_SHORT = "hsts_short"
    CSP_DISABLED = "csp_disabled"
    CORS_CREDENTIALS_ANY_ORIGIN = "cors_credentials_any_origin"
    CORS_CREDENTIALS_REGEX = "cors_credentials_regex"
    DOCS_EXPOSED = "docs_exposed_in_production"
    DEBUG_IN_PRODUCTION = "debug_in_production"
    ERROR_HANDLERS_MISSING = "error_handlers_missing"
    NO_BODY_LIMIT = "no_body_limit"
    COOKIE_NOT_SECURE = "cookie_not_secure"


@dataclass(frozen=True)
class Finding:
    """One problem: ``code`` is stable, ``message`` is for people."""

    code: FindingCode
    severity: Severity
    message: str
    path: str | None = None
    methods: tuple[str, ...] = ()


@dataclass(frozen=True)
class RouteReport:
    """How one route (or opaque mounted app) is protected."""

    path: str
    methods: tuple[str, ...]
    kind: Literal["http", "websocket", "mount"]
    name: str | None = None
    authentication: tuple[str, ...] = ()
    optional_authentication: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    permissions: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    fresh: bool = False
    rate_limits: tuple[str, ...] = ()
    public: bool = False
    public_reason: str | None = None
    docs: bool = False

    @property
    def protected(self) -> bool:
        """Whether a request without credentials is refused."""
        return bool(self.authentication)

    @property
    def needs_attention(self) -> bool:
        """Unprotected, and neither marked public nor a docs page."""
        return not (self.protected or self.public or self.docs)

    def protection(self) -> str:
        """One line: what protects the route."""
        parts: list[str] = []
        if self.authentication:
            parts.append(" or ".join(self.authentication) + (" (fresh)" if self.fresh else ""))
        elif self.docs:
            parts.append("docs page")
        elif self.public:
            parts.append(f"public ({self.public_reason})")
        else:
            parts.append("NONE")
        if self.optional_authentication and not self.authentication:
            parts.append("optional: " + ", ".join(self.optional_authentication))
        for label, values in (
            ("roles", self.roles),
            ("permissions", self.permissions),
            ("scopes", self.scopes),
            ("limits", self.rate_limits),
        ):
            if values:
                parts.append(f"{label}: {', '.join(values)}")
        return " | ".join(parts)


@dataclass(frozen=True)
class AppReport:
    """App-wide settings the audit found. Values are display text, never secrets."""

    middleware: tuple[str, ...] = ()
    secure_headers: bool = False
    hsts: str | None = None
    hsts_max_age: int | None = None
    csp: str | None = None
    cors_allow_origins: tuple[str, ...] = ()
    cors_allow_origin_regex: str | None = None
    cors_allow_credentials: bool = False
    max_body_bytes: int | None = None
    body_limit: bool = False
    error_handlers: bool = False
    docs_paths: tuple[str, ...] = ()
    debug: bool = False
    cookies: tuple[Mapping[str, str], ...] = ()


@dataclass(frozen=True)
class AuditReport:
    """The result of :func:`audit`."""

    routes: tuple[RouteReport, ...]
    app: AppReport
    findings: tuple[Finding, ...]
    production: bool

    @property
    def ok(self) -> bool:
        """No findings at all."""
        return not self.findings

    def unprotected(self) -> tuple[RouteReport, ...]:
        """Routes without authentication that are neither public on purpose nor docs pages."""
        return tuple(route for route in self.routes if route.needs_attention)

    def findings_at_least(self, severity: Severity) -> tuple[Finding, ...]:
        """Findings of ``severity`` or worse."""
        allowed = SEVERITIES[: SEVERITIES.index(severity) + 1]
        return tuple(finding for finding in self.findings if finding.severity in allowed)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (``python -m fastapi_secure audit --json`` prints it)."""
        return {
            "production": self.production,
            "ok": self.ok,
            "routes": [{**asdict(route), "protected": route.protected} for route in self.routes],
            "app": _plain(asdict(self.app)),
            "findings": [
                {**asdict(finding), "code": finding.code.value} for finding in self.findings
            ],
        }

    def format_table(self) -> str:
        """The report as a text table for a terminal."""
        rows = [("PATH", "METHODS", "PROTECTION")]
        for route in self.routes:
            methods = ",".join(route.methods) if route.kind != "websocket" else "WS"
            rows.append((route.path, methods, route.protection()))
        width_path = max(len(row[0]) for row in rows)
        width_methods = max(len(row[1]) for row in rows)
        lines = [
            f"{path:<{width_path}}  {methods:<{width_methods}}  {protection}".rstrip()
            for path, methods, protection in rows
        ]
        lines.append("")
        lines.extend(_app_lines(self.app))
        lines.append("")
        if not self.findings:
            lines.append("no findings")
        else:
            lines.append(f"findings ({len(self.findings)}):")
            for finding in self.findings:
                lines.append(
                    f"  {finding.severity.upper():<6}  {finding.code.value}: {finding.message}"
                )
        return "\n".join(lines) + "\n"


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _app_lines(app: AppReport) -> list[str]:
    headers = "no"
    if app.secure_headers:
        headers = f"yes (HSTS: {app.hsts or 'off'}; CSP: {app.csp or 'off'})"
    cors = "not installed"
    if app.cors_allow_origins or app.cors_allow_origin_regex:
        origins = ", ".join(app.cors_allow_origins) or f"regex {app.cors_allow_origin_regex}"
        credentials = "with" if app.cors_allow_credentials else "without"
        cors = f"{origins} ({credentials} credentials)"
    body = "none"
    if app.body_limit:
        body = "unlimited" if app.max_body_bytes is None else f"{app.max_body_bytes} bytes"
    lines = [
        f"middleware (outermost first): {', '.join(app.middleware) or 'none'}",
        f"secure headers: {headers}",
        f"CORS: {cors}",
        f"body-size limit: {body}",
        f"error handlers: {'installed' if app.error_handlers else 'FastAPI defaults'}",
        f"docs pages: {', '.join(app.docs_paths) or 'none'}",
    ]
    for cookie in app.cookies:
        lines.append("cookie auth: " + ", ".join(f"{k}={v}" for k, v in cookie.items()))
    return lines


# --- reading dependencies -----------------------------------------------------------------


@dataclass
class _Protection:
    authentication: set[str] = field(default_factory=set)
    optional: set[str] = field(default_factory=set)
    roles: set[str] = field(default_factory=set)
    permissions: set[str] = field(default_factory=set)
    scopes: set[str] = field(default_factory=set)
    rate_limits: list[str] = field(default_factory=list)
    fresh: bool = False
    public_reason: str | None = None

    def add(self, info: AuditInfo, scopes: Iterable[str]) -> None:
        if info.authentication is not None:
            (self.optional if info.optional else self.authentication).add(info.authentication)
            self.scopes.update(scopes)
        self.roles.update(info.roles)
        self.permissions.update(info.permissions)
        self.scopes.update(info.scopes)
        self.rate_limits.extend(r for r in info.rate_limits if r not in self.rate_limits)
        self.fresh = self.fresh or info.fresh
        if info.public and self.public_reason is None:
            self.public_reason = info.public_reason or "marked public"


class _Context:
    """State shared by one audit run."""

    def __init__(self) -> None:
        # Imported here: these modules import this one (rate limits, the JWKS route).
        from starlette.middleware.cors import CORSMiddleware

        from fastapi_secure.auth.base import TokenAuth
        from fastapi_secure.auth.bearer import BearerAuth
        from fastapi_secure.auth.cookie import CookieAuth
        from fastapi_secure.auth.guards import (
            ClaimsGuard,
            FreshnessChecker,
            PermissionChecker,
            RoleChecker,
        )
        from fastapi_secure.bodylimit import RequestSizeLimitMiddleware
        from fastapi_secure.headers import SecureHeadersMiddleware

        self.token_auth, self.bearer, self.cookie = TokenAuth, BearerAuth, CookieAuth
        self.guard, self.fresh, self.roles = ClaimsGuard, FreshnessChecker, RoleChecker
        self.permissions = PermissionChecker
        self.headers, self.body_limit, self.cors = (
            SecureHeadersMiddleware,
            RequestSizeLimitMiddleware,
            CORSMiddleware,
        )
        self.cookies: dict[int, Any] = {}

    def info_of(self, call: Any) -> AuditInfo | None:
        if isinstance(call, self.token_auth):
            optional = not call.auto_error
            if isinstance(call, self.cookie):
                self.cookies[id(call)] = call
                return AuditInfo(authentication="cookie", optional=optional)
            if isinstance(call, self.bearer):
                return AuditInfo(authentication="bearer", optional=optional)
            return AuditInfo(authentication=type(call).__name__.lower(), optional=optional)
        if isinstance(call, self.fresh):
            return AuditInfo(fresh=True, wraps=(call.auth,))
        if isinstance(call, self.roles):
            return AuditInfo(roles=call.roles, wraps=(call.auth,))
        if isinstance(call, self.permissions):
            return AuditInfo(permissions=call.permissions, wraps=(call.auth,))
        found: object = None
        method = getattr(call, "audit_info", None)
        if callable(method) and not isinstance(call, type):
            found = method()
        elif not isinstance(call, type):
            found = getattr(call, AUDIT_ATTRIBUTE, None)
        info = found if isinstance(found, AuditInfo) else None
        if isinstance(call, self.guard):
            # Any other guard (a step-up check, a second factor): follow its auth.
            info = info or AuditInfo()
            if not any(inner is call.auth for inner in info.wraps):
                info = replace(info, wraps=(*info.wraps, call.auth))
        return info

    def inspect_call(
        self,
        call: Any,
        scopes: Sequence[str],
        into: _Protection,
        depth: int = 0,
        optional: bool | None = None,
    ) -> None:
        info = self.info_of(call)
        if info is None:
            return
        if optional is not None and info.authentication is not None:
            # A member of an any_of: the chooser decides whether it is enforced.
            info = replace(info, optional=optional)
        into.add(info, scopes)
        if depth < 8:
            for inner in info.wraps:
                self.inspect_call(inner, scopes, into, depth + 1, optional)
            for inner in info.any_of:
                self.inspect_call(inner, scopes, into, depth + 1, info.optional)

    def inspect_dependant(self, dependant: Dependant, into: _Protection) -> None:
        seen: set[int] = set()
        stack = [dependant]
        while stack:
            current = stack.pop()
            if id(current) in seen:
                continue
            seen.add(id(current))
            scopes = [*(current.parent_oauth_scopes or ()), *(current.own_oauth_scopes or ())]
            if current.call is not None:
                self.inspect_call(current.call, scopes, into)
            stack.extend(current.dependencies)


def _route_report(
    path: str,
    methods: Iterable[str],
    kind: Literal["http", "websocket", "mount"],
    name: str | None,
    protection: _Protection,
    docs: bool,
) -> RouteReport:
    return RouteReport(
        path=path,
        methods=tuple(sorted(methods)),
        kind=kind,
        name=name,
        authentication=tuple(sorted(protection.authentication)),
        optional_authentication=tuple(sorted(protection.optional - protection.authentication)),
        roles=tuple(sorted(protection.roles)),
        permissions=tuple(sorted(protection.permissions)),
        scopes=tuple(sorted(protection.scopes)),
        fresh=protection.fresh,
        rate_limits=tuple(protection.rate_limits),
        public=protection.public_reason is not None,
        public_reason=protection.public_reason,
        docs=docs,
    )


def _unwrap(app: Any) -> Any:
    """The innermost object with ``routes`` under ASGI wrappers (middleware instances)."""
    for _ in range(32):
        if hasattr(app, "routes") or not hasattr(app, "app"):
            return app
        app = app.app
    return app


def _docs_paths(app: Any, prefix: str) -> set[str]:
    paths: set[str] = set()
    for name in ("openapi_url", "docs_url", "redoc_url"):
        value = getattr(app, name, None)
        if isinstance(value, str):
            paths.add(prefix + value)
    redirect = getattr(app, "swagger_ui_oauth2_redirect_url", None)
    if isinstance(redirect, str) and getattr(app, "docs_url", None):
        paths.add(prefix + redirect)
    return paths


def _flat_routes(routes: Iterable[BaseRoute]) -> Iterator[tuple[BaseRoute, Any]]:
    """Each route as (the route as declared, the route as served).

    FastAPI 0.16x keeps included routers lazily (``iter_route_contexts``
    resolves their prefixes and dependencies); older versions copy the
    routes into the app, where each is its own effective route.
    """
    iterate = getattr(fastapi.routing, "iter_route_contexts", None)
    if iterate is None:  # pragma: no cover - FastAPI before lazy router inclusion
        for route in routes:
            yield route, route
        return
    for context in iterate(list(routes)):
        yield context.original_route, context


def _walk(
    context: _Context,
    routes: Iterable[BaseRoute],
    prefix: str,
    docs: set[str],
    inherited: Sequence[Any],
    out: list[RouteReport],
) -> None:
    for route, served in _flat_routes(routes):
        protection = _Protection()
        for marker in inherited:
            context.inspect_call(marker, (), protection)
        context.inspect_call(route, (), protection)
        path = prefix + str(getattr(served, "path", "") or "")
        name = getattr(served, "name", None)
        if isinstance(route, (APIRoute, APIWebSocketRoute)):
            context.inspect_dependant(served.dependant, protection)
            is_http = isinstance(route, APIRoute)
            methods = (served.methods or ()) if is_http else ()
            kind: Literal["http", "websocket"] = "http" if is_http else "websocket"
            out.append(_route_report(path, methods, kind, name, protection, path in docs))
        elif isinstance(route, (Route, WebSocketRoute)):
            context.inspect_call(served.endpoint, (), protection)
            is_http = isinstance(route, Route)
            methods = (served.methods or ()) if is_http else ()
            kind = "http" if is_http else "websocket"
            out.append(_route_report(path, methods, kind, name, protection, path in docs))
        else:
            # Mount, Host, or a route kind this audit does not know (static frontends).
            mounted = getattr(served, "app", None)
            inner = _unwrap(mounted)
            sub_routes = getattr(inner, "routes", None)
            mount_prefix = path if isinstance(route, Mount) else prefix
            if sub_routes is None or mounted is None:
                if mounted is not None:
                    context.inspect_call(mounted, (), protection)
                is_docs = name == DOCS_ASSETS_MOUNT
                out.append(_route_report(path or "/", ("*",), "mount", name, protection, is_docs))
                continue
            _walk(
                context,
                sub_routes,
                mount_prefix,
                docs | _docs_paths(inner, mount_prefix),
                [*inherited, route, mounted],
                out,
            )


# --- app-wide settings ---------------------------------------------------------------------


def _options(spec: Any) -> dict[str, Any]:
    """The keyword arguments a ``Middleware`` spec gives its class, defaults included."""
    cls, args, kwargs = spec.cls, tuple(spec.args), dict(spec.kwargs)
    try:
        bound = inspect.signature(cls).bind_partial(None, *args, **kwargs)
    except (TypeError, ValueError):
        return kwargs
    bound.apply_defaults()
    return dict(bound.arguments)


def _csp_text(policy: Any) -> str | None:
    directives = getattr(policy, "directives", None)
    if not isinstance(directives, Mapping):
        return None
    return "; ".join(" ".join((name, *values)) for name, values in directives.items())


def _built_instance(factory: Any) -> Any:
    """The middleware instance a factory closes over (``install_secure_defaults``
    hands Starlette instances it built itself), or None."""
    for cell in getattr(factory, "__closure__", None) or ():
        try:
            value = cell.cell_contents
        except ValueError:  # pragma: no cover - an empty cell
            continue
        if hasattr(value, "app") and callable(value) and not isinstance(value, type):
            return value
    return None


def _read_instance(context: _Context, instance: Any, values: dict[str, Any]) -> str:
    """Record what a built middleware instance shows; return its display name."""
    if isinstance(instance, context.headers):
        values.setdefault("secure_headers", True)
        hsts = getattr(instance, "_hsts", None)
        text = hsts[1].decode("ascii") if hsts else None
        values.setdefault("hsts", text)
        if text is not None:
            age = text.split(";")[0].partition("=")[2]
            values.setdefault("hsts_max_age", int(age) if age.isdigit() else None)
        values.setdefault("csp", _profile_csp(getattr(instance, "_default", None)))
    elif isinstance(instance, context.body_limit):
        values.setdefault("body_limit", True)
        values.setdefault("max_body_bytes", instance.max_body_bytes)
    elif isinstance(instance, context.cors):
        _read_cors(
            values,
            instance.allow_origins,
            getattr(instance.allow_origin_regex, "pattern", None),
            any(k.lower() == "access-control-allow-credentials" for k in instance.simple_headers),
        )
    return type(instance).__name__


def _profile_csp(profile: Any) -> str | None:
    for name, value in getattr(profile, "static", ()):
        if name == b"content-security-policy":
            return str(value.decode("ascii"))
    for name, policy in getattr(profile, "nonce_policies", ()):
        if name == b"content-security-policy":
            return _csp_text(policy)
    return None


def _read_cors(values: dict[str, Any], origins: Any, regex: str | None, credentials: bool) -> None:
    values.setdefault("cors_allow_origins", tuple(origins or ()))
    values.setdefault("cors_allow_origin_regex", regex)
    values.setdefault("cors_allow_credentials", bool(credentials))


def _app_report(context: _Context, root: Any, docs_paths: Sequence[str]) -> AppReport:
    names: list[str] = []
    values: dict[str, Any] = {}
    outer = root
    while not hasattr(outer, "routes") and hasattr(outer, "app"):
        names.append(_read_instance(context, outer, values))
        outer = outer.app
    for spec in getattr(outer, "user_middleware", ()):
        cls = spec.cls
        if not isinstance(cls, type):
            instance = _built_instance(cls)
            if instance is not None:
                names.append(_read_instance(context, instance, values))
            else:
                names.append(getattr(cls, "__name__", type(cls).__name__))
            continue
        names.append(cls.__name__)
        options = _options(spec)
        if issubclass(cls, context.headers):
            hsts = options.get("hsts")
            values.setdefault("secure_headers", True)
            values.setdefault("hsts", hsts.header_value() if hsts is not None else None)
            values.setdefault("hsts_max_age", getattr(hsts, "max_age", None))
            values.setdefault("csp", _csp_text(options.get("csp")))
        elif issubclass(cls, context.cors):
            _read_cors(
                values,
                options.get("allow_origins"),
                options.get("allow_origin_regex"),
                bool(options.get("allow_credentials")),
            )
        elif issubclass(cls, context.body_limit):
            values.setdefault("body_limit", True)
            values.setdefault("max_body_bytes", options.get("max_body_bytes"))
    handlers: Mapping[Any, Any] = getattr(outer, "exception_handlers", {}) or {}
    error_handlers = _error_handlers_installed(handlers)
    cookies = tuple(
        {
            "scheme": str(auth.scheme_name),
            "secure": str(auth.secure).lower(),
            "samesite": str(auth.samesite),
            "access_cookie": str(auth.access_cookie),
            "refresh_cookie": str(auth.refresh_cookie),
            "csrf_cookie": str(auth.csrf_cookie),
        }
        for auth in context.cookies.values()
    )
    return AppReport(
        middleware=tuple(names),
        secure_headers=bool(values.get("secure_headers")),
        hsts=values.get("hsts"),
        hsts_max_age=values.get("hsts_max_age"),
        csp=values.get("csp"),
        cors_allow_origins=tuple(values.get("cors_allow_origins", ())),
        cors_allow_origin_regex=values.get("cors_allow_origin_regex"),
        cors_allow_credentials=bool(values.get("cors_allow_credentials")),
        max_body_bytes=values.get("max_body_bytes"),
        body_limit=bool(values.get("body_limit")),
        error_handlers=error_handlers,
        docs_paths=tuple(docs_paths),
        debug=bool(getattr(outer, "debug", False)),
        cookies=cookies,
    )


def _error_handlers_installed(handlers: Mapping[Any, Any]) -> bool:
    """A handler for unexpected exceptions, and a 422 handler that is not FastAPI's
    default (which echoes the rejected input, passwords included)."""
    from fastapi.exception_handlers import request_validation_exception_handler
    from fastapi.exceptions import RequestValidationError

    internal = Exception in handlers or 500 in handlers
    validation = handlers.get(RequestValidationError)
    return (
        internal
        and validation is not None
        and validation is not request_validation_exception_handler
    )


# --- findings ----------------------------------------------------------------------------


def _findings(routes: Sequence[RouteReport], app: AppReport, production: bool) -> list[Finding]:
    findings: list[Finding] = []
    for route in routes:
        if route.needs_attention:
            what = "WebSocket route" if route.kind == "websocket" else "route"
            if route.kind == "mount":
                what = "mounted app"
            detail = (
                f" (only optional authentication: {', '.join(route.optional_authentication)})"
                if route.optional_authentication
                else ""
            )
            findings.append(
                Finding(
                    FindingCode.UNPROTECTED_ROUTE,
                    "high",
                    f"{what} {' '.join(route.methods) or 'WS'} {route.path} has no "
                    f"authentication and is not marked public{detail}",
                    path=route.path,
                    methods=route.methods,
                )
            )
    if not app.secure_headers:
        findings.append(
            Finding(
                FindingCode.NO_SECURE_HEADERS,
                "medium",
                "SecureHeadersMiddleware is not installed (no HSTS, CSP, nosniff, ...)",
            )
        )
    else:
        if app.hsts is None:
            findings.append(
                Finding(FindingCode.HSTS_DISABLED, "medium", "HSTS is turned off (hsts=None)")
            )
        elif app.hsts_max_age is not None and app.hsts_max_age < ONE_YEAR:
            findings.append(
                Finding(
                    FindingCode.HSTS_SHORT,
                    "low",
                    f"HSTS max-age is {app.hsts_max_age} s; one year ({ONE_YEAR}) is the norm",
                )
            )
        if app.csp is None:
            findings.append(
                Finding(
                    FindingCode.CSP_DISABLED, "medium", "Content-Security-Policy is off (csp=None)"
                )
            )
    if app.cors_allow_credentials and "*" in app.cors_allow_origins:
        findings.append(
            Finding(
                FindingCode.CORS_CREDENTIALS_ANY_ORIGIN,
                "high",
                "CORS allows credentials from any origin ('*'): any site can act as the user",
            )
        )
    elif app.cors_allow_credentials and app.cors_allow_origin_regex:
        findings.append(
            Finding(
                FindingCode.CORS_CREDENTIALS_REGEX,
                "medium",
                "CORS allows credentials from origins matched by a regex; list them instead",
            )
        )
    if not app.body_limit or app.max_body_bytes is None:
        findings.append(
            Finding(
                FindingCode.NO_BODY_LIMIT,
                "medium",
                "no request body-size limit (RequestSizeLimitMiddleware)",
            )
        )
    if not app.error_handlers:
        findings.append(
            Finding(
                FindingCode.ERROR_HANDLERS_MISSING,
                "medium",
                "FastAPI's default error handlers are in place: 422 answers echo the "
                "input (passwords included); use install_error_handlers",
            )
        )
    if production:
        exposed = [route.path for route in routes if route.docs and not route.protected]
        if exposed:
            findings.append(
                Finding(
                    FindingCode.DOCS_EXPOSED,
                    "medium",
                    f"API docs are served in production: {', '.join(exposed)}",
                )
            )
        if app.debug:
            findings.append(
                Finding(
                    FindingCode.DEBUG_IN_PRODUCTION,
                    "high",
                    "debug=True in production: errors answer with tracebacks",
                )
            )
        for cookie in app.cookies:
            if cookie.get("secure") != "true":
                findings.append(
                    Finding(
                        FindingCode.COOKIE_NOT_SECURE,
                        "high",
                        f"{cookie.get('scheme')}: cookies without Secure and __Host- "
                        "(secure=False) in production",
                    )
                )
    return findings


def audit(app: Any, *, production: bool = False) -> AuditReport:
    """Audit ``app`` (a FastAPI or Starlette app, possibly wrapped in ASGI middleware).

    ``production=True`` also reports what is fine in development only: docs
    pages served, ``debug=True``, cookies without ``Secure``.
    """
    context = _Context()
    root = _unwrap(app)
    routes: list[RouteReport] = []
    docs = _docs_paths(root, "")
    _walk(context, getattr(root, "routes", ()), "", docs, (), routes)
    docs_served = tuple(route.path for route in routes if route.docs)
    app_report = _app_report(context, app, docs_served)
    findings = sorted(
        _findings(routes, app_report, production),
        key=lambda finding: SEVERITIES.index(finding.severity),
    )
    return AuditReport(
        routes=tuple(routes), app=app_report, findings=tuple(findings), production=production
    )


def assert_all_routes_protected(app: Any, *, allow: Iterable[str] = ()) -> None:
    """For the app's own tests: raise ``AssertionError`` listing every route that has
    no authentication and is neither marked public nor a docs page.

    ``allow`` names paths to pass anyway (prefer marking them public).
    """
    allowed = set(allow)
    missing = [route for route in audit(app).unprotected() if route.path not in allowed]
    if missing:
        lines = "\n".join(f"  {' '.join(route.methods) or 'WS'} {route.path}" for route in missing)
        raise AssertionError(
            f"{len(missing)} route(s) without authentication and not marked public "
            f"(add a dependency, or dependencies=[Depends(public)]):\n{lines}"
        )
