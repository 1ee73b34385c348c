"""The HTTP edge of an app: strict CORS, safe error answers, request size limits.

Each piece is usable alone; :func:`install_secure_defaults` installs the
recommended set in one call:

- :class:`CORSPolicy` checks CORS settings and builds Starlette's own
  ``CORSMiddleware`` from them (it does not reimplement CORS).
- :func:`install_error_handlers` makes every error answer JSON of one shape,
  ``{"detail": {"code": ..., "message": ...}}``, without stack traces,
  internal messages or echoed input.
- :class:`RequestSizeLimitMiddleware` refuses oversized headers (431) and
  bodies (413), chunked bodies included, as a pure ASGI middleware.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Final, cast

from fastapi import FastAPI
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError, WebSocketRequestValidationError
from fastapi.utils import is_body_allowed_for_status_code
from fastapi.websockets import WebSocket
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.status import WS_1008_POLICY_VIOLATION
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastapi_secure.apidocs import install_secure_docs, remove_docs
from fastapi_secure.clientip import TrustedProxies
from fastapi_secure.errors import ConfigurationError, ErrorCode, RequestTooLargeError
from fastapi_secure.headers import (
    DocsAssets,
    SecureHeadersMiddleware,
    _route_path,
    apply_secure_headers,
)
from fastapi_secure.settings import SecuritySettings

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_HEADER_BYTES",
    "RATE_LIMIT_HEADERS",
    "SECRET_FIELD_MARKERS",
    "CORSPolicy",
    "RequestSizeLimitMiddleware",
    "install_error_handlers",
    "install_secure_defaults",
]

logger = logging.getLogger("fastapi_secure.errors")

RATE_LIMIT_HEADERS: Final = ("RateLimit", "RateLimit-Policy", "Retry-After")
"""Response headers every :class:`CORSPolicy` exposes to browser scripts."""

DEFAULT_MAX_BODY_BYTES: Final = 1024 * 1024
DEFAULT_MAX_HEADER_BYTES: Final = 32 * 1024

SECRET_FIELD_MARKERS: Final = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "cookie",
    "credential",
    "private_key",
    "otp",
)
"""A 422 answer never repeats the message of a field whose name contains one of these."""

_ORIGIN = re.compile(r"https?://[a-z0-9.\-\[\]:]+")
# Origins no allow-list should match; a regex that matches them is a catch-all.
_PROBE_ORIGINS = (
    "https://attacker.invalid",
    "http://attacker.invalid",
    "https://evil.example.attacker.invalid",
    "null",
)


def _strings(name: str, values: Collection[str]) -> tuple[str, ...]:
    if isinstance(values, str):
        raise ConfigurationError(f"{name} must be a list of strings, not one string")
    return tuple(values)


@dataclass(frozen=True)
class CORSPolicy:
    """Checked CORS settings, turned into Starlette's ``CORSMiddleware``.

    Deny by default: with no ``allow_origins`` no cross-origin request is
    allowed. Refused with :class:`ConfigurationError`: ``"*"`` together with
    ``allow_credentials``; ``allow_origin_regex`` together with
    ``allow_credentials`` unless ``trust_origin_regex_with_credentials=True``
    (a regex such as ``https://.*example[.]com`` or an unescaped dot also
    admits ``https://attackerexample.com``; an explicit list cannot go wrong
    that way), and a catch-all regex even then; the ``"null"`` origin
    (sandboxed frames and ``file:`` pages share it), and origins that a
    browser never sends (a path, a trailing slash, upper case).
    :data:`RATE_LIMIT_HEADERS` are always exposed.
    """

    allow_origins: Collection[str] = ()
    allow_methods: Collection[str] = ("GET",)
    allow_headers: Collection[str] = ()
    allow_credentials: bool = False
    allow_origin_regex: str | None = None
    expose_headers: Collection[str] = ()
    max_age: int = 600
    trust_origin_regex_with_credentials: bool = False
    _exposed: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        origins = _strings("allow_origins", self.allow_origins)
        object.__setattr__(self, "allow_origins", origins)
        object.__setattr__(self, "allow_methods", _strings("allow_methods", self.allow_methods))
        object.__setattr__(self, "allow_headers", _strings("allow_headers", self.allow_headers))
        expose = _strings("expose_headers", self.expose_headers)
        object.__setattr__(self, "expose_headers", expose)
        exposed = {h.lower(): h for h in (*RATE_LIMIT_HEADERS, *expose)}
        object.__setattr__(self, "_exposed", tuple(exposed.values()))
        for origin in origins:
            if origin == "*":
                continue
            if origin == "null":
                raise ConfigurationError(
                    "the 'null' origin is shared by sandboxed frames and local files; "
                    "never allow it"
                )
            if not _ORIGIN.fullmatch(origin):
                raise ConfigurationError(
                    f"{origin!r} is not an origin as browsers send it: scheme://host[:port] "
                    "in lower case, without path or trailing slash"
                )
        if "*" in origins:
            if len(origins) > 1:
                raise ConfigurationError("'*' already allows every origin; list origins instead")
            if self.allow_credentials:
                raise ConfigurationError(
                    "allow_origins=['*'] with allow_credentials=True lets any site make "
                    "credentialed requests; list the allowed origins instead"
                )
        if self.allow_origin_regex is not None:
            try:
                pattern = re.compile(self.allow_origin_regex)
            except re.error as exc:
                raise ConfigurationError(f"allow_origin_regex is invalid: {exc}") from exc
            if self.allow_credentials and not self.trust_origin_regex_with_credentials:
                raise ConfigurationError(
                    "allow_origin_regex with allow_credentials=True is refused: a small "
                    "mistake in the regex lets other sites make credentialed requests. "
                    "List the origins in allow_origins, or pass "
                    "trust_origin_regex_with_credentials=True after reviewing the regex"
                )
            if self.allow_credentials and any(pattern.fullmatch(o) for o in _PROBE_ORIGINS):
                raise ConfigurationError(
                    "allow_origin_regex matches unrelated origins (it is a catch-all); "
                    "with allow_credentials=True anchor it to your own domains"
                )
        if self.max_age < 0:
            raise ConfigurationError("max_age must not be negative")

    @classmethod
    def from_settings(cls, settings: SecuritySettings, **options: Any) -> CORSPolicy:
        """Origins and credentials from ``settings``; methods etc. from ``options``."""
        return cls(
            allow_origins=settings.cors_allow_origins,
            allow_credentials=settings.cors_allow_credentials,
            **options,
        )

    def options(self) -> dict[str, Any]:
        """Keyword arguments of Starlette's ``CORSMiddleware``."""
        return {
            "allow_origins": self.allow_origins,
            "allow_methods": self.allow_methods,
            "allow_headers": self.allow_headers,
            "allow_credentials": self.allow_credentials,
            "allow_origin_regex": self.allow_origin_regex,
            "expose_headers": self._exposed,
            "max_age": self.max_age,
        }

    def middleware(self) -> Middleware:
        """For ``FastAPI(middleware=[...])``."""
        return Middleware(CORSMiddleware, **self.options())

    def install(self, app: FastAPI) -> None:
        """``app.add_middleware(CORSMiddleware, ...)`` with these settings."""
        app.add_middleware(CORSMiddleware, **self.options())


def _error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"detail": {"code": code, "message": message, **extra}}


def _refusal(status: int, code: ErrorCode, message: str) -> tuple[Message, Message]:
    body = json.dumps(_error_body(code.value, message), separators=(",", ":")).encode()
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            # The client may still be sending the body we refuse to read.
            (b"connection", b"close"),
        ],
    }
    return start, {"type": "http.response.body", "body": body}


class RequestSizeLimitMiddleware:
    """Refuses requests whose headers or body exceed a limit.

    A ``Content-Length`` over the limit is answered with 413 before the app
    runs. A body without one (chunked) is counted while the app reads it: the
    read that crosses the limit raises
    :class:`~fastapi_secure.errors.RequestTooLargeError` (an
    ``HTTPException``, so FastAPI answers 413), and whatever the app answers
    after that is replaced by a 413. The app never sees the bytes past the
    limit.

    Args:
        max_body_bytes: limit for every path; ``None`` for none.
        path_limits: path prefix -> limit (``None`` for none), longest prefix
            wins: ``{"/upload": 50 * 1024 * 1024}``.
        max_header_bytes: limit on the request headers, answered with 431.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int | None = DEFAULT_MAX_BODY_BYTES,
        path_limits: Mapping[str, int | None] | None = None,
        max_header_bytes: int | None = DEFAULT_MAX_HEADER_BYTES,
    ) -> None:
        for name, limit in (
            ("max_body_bytes", max_body_bytes),
            ("max_header_bytes", max_header_bytes),
            *(((f"path_limits[{p!r}]", v) for p, v in (path_limits or {}).items())),
        ):
            if limit is not None and (isinstance(limit, bool) or limit < 0):
                raise ConfigurationError(f"{name} must be a non-negative number of bytes")
        for prefix in path_limits or {}:
            if not prefix.startswith("/"):
                raise ConfigurationError(f"path_limits: {prefix!r} must start with '/'")
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_header_bytes = max_header_bytes
        self._path_limits = sorted(
            ((p.rstrip("/"), v) for p, v in (path_limits or {}).items()),
            key=lambda item: -len(item[0]),
        )
        self._too_large = _refusal(413, ErrorCode.REQUEST_TOO_LARGE, "request body too large")
        self._headers_too_large = _refusal(
            431, ErrorCode.HEADERS_TOO_LARGE, "request headers too large"
        )
        self._bad_length = _refusal(400, ErrorCode.BAD_REQUEST, "invalid Content-Length")

    def _limit_for(self, scope: Scope) -> int | None:
        path = _route_path(scope)
        for prefix, limit in self._path_limits:
            if path.startswith(prefix) and (len(path) == len(prefix) or path[len(prefix)] == "/"):
                return limit
        return self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        if self.max_header_bytes is not None:
            size = sum(len(name) + len(value) + 4 for name, value in headers)
            if size > self.max_header_bytes:
                await _answer(send, self._headers_too_large)
                return
        limit = self._limit_for(scope)
        if limit is None:
            await self.app(scope, receive, send)
            return
        lengths = {value for name, value in headers if name.lower() == b"content-length"}
        if lengths:
            declared = lengths.pop().strip()
            if lengths or not declared.isdigit():
                await _answer(send, self._bad_length)
                return
            # int() refuses more than 4300 digits (ValueError, a 500): compare
            # lengths first; leading zeros are allowed and mean nothing.
            digits = declared.lstrip(b"0")
            if len(digits) > len(str(limit)) or int(digits or b"0") > limit:
                await _answer(send, self._too_large)
                return

        received = 0
        exceeded = False
        started = False
        replaced = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            if exceeded:
                raise RequestTooLargeError()
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise RequestTooLargeError()
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started, replaced
            if replaced:
                return
            if message["type"] == "http.response.start":
                if exceeded and message["status"] != 413:
                    # The app swallowed the error and answered anyway.
                    replaced = True
                    await _answer(send, self._too_large)
                    return
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except RequestTooLargeError:
            if started:
                raise
            if not replaced:
                await _answer(send, self._too_large)
            return
        if exceeded and not started and not replaced:
            await _answer(send, self._too_large)


async def _answer(send: Send, messages: tuple[Message, Message]) -> None:
    start, body = messages
    await send(dict(start))
    await send(dict(body))


def _code_for(status: int) -> str:
    known = {
        400: ErrorCode.BAD_REQUEST,
        401: ErrorCode.NOT_AUTHENTICATED,
        403: ErrorCode.PERMISSION_DENIED,
        404: ErrorCode.NOT_FOUND,
        405: ErrorCode.METHOD_NOT_ALLOWED,
        413: ErrorCode.REQUEST_TOO_LARGE,
        429: ErrorCode.RATE_LIMITED,
        431: ErrorCode.HEADERS_TOO_LARGE,
        500: ErrorCode.INTERNAL_ERROR,
        503: ErrorCode.SERVICE_UNAVAILABLE,
    }
    if status in known:
        return known[status].value
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        return "http_error"
    return re.sub(r"[^a-z0-9]+", "_", phrase.lower()).strip("_")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "error"


def _is_secret(loc: Sequence[Any], markers: tuple[str, ...]) -> bool:
    for part in loc:
        if isinstance(part, str):
            name = part.lower().replace("-", "_")
            if any(marker in name for marker in markers):
                return True
    return False


def install_error_handlers(
    app: FastAPI,
    *,
    expose_internal_errors: bool = False,
    secret_fields: Collection[str] = SECRET_FIELD_MARKERS,
) -> None:
    """Answer every error with JSON ``{"detail": {"code", "message", ...}}``.

    - ``HTTPException``: its status and headers; ``code`` from
      :class:`~fastapi_secure.errors.ErrorCode` for the common statuses, else
      the status phrase in snake case (``409`` -> ``"conflict"``). Errors of
      this library keep their body as is.
    - Request validation: 422 ``validation_failed`` with ``errors``, each with
      ``loc``, ``type`` and ``msg`` but never the ``input`` nor its context;
      for a field whose name looks secret (``secret_fields``) the message is
      generic too. A body that is not valid JSON: 400 ``malformed_body``.
    - Any other exception: 500 ``internal_error`` with an opaque ``error_id``
      that is also logged (with the traceback) on the
      ``fastapi_secure.errors`` logger. Its type and message (never the
      traceback) appear in the answer only with ``expose_internal_errors=True``
      (development).

    Starlette sends the 500 from outside the middleware stack; this handler
    adds the :class:`~fastapi_secure.headers.SecureHeadersMiddleware` headers
    itself. With ``FastAPI(debug=True)`` Starlette shows its debug page
    instead of calling any 500 handler.
    """
    markers = tuple(marker.lower() for marker in secret_fields)

    async def http_error(request: Request, exc: Exception) -> Response:
        exc = cast(HTTPException, exc)
        headers = getattr(exc, "headers", None)
        if not is_body_allowed_for_status_code(exc.status_code):
            return Response(status_code=exc.status_code, headers=headers)
        detail: Any = exc.detail
        if isinstance(detail, Mapping) and "code" in detail and "message" in detail:
            body: dict[str, Any] = {"detail": dict(detail)}
        elif isinstance(detail, str):
            body = _error_body(_code_for(exc.status_code), detail)
        else:
            body = _error_body(
                _code_for(exc.status_code), _phrase(exc.status_code), data=jsonable_encoder(detail)
            )
        return JSONResponse(body, status_code=exc.status_code, headers=headers)

    async def validation_error(request: Request, exc: Exception) -> Response:
        errors = []
        malformed = True
        for error in cast(RequestValidationError, exc).errors():
            loc = list(error.get("loc", ()))
            kind = str(error.get("type", "value_error"))
            malformed = malformed and kind == "json_invalid"
            message = "invalid value" if _is_secret(loc, markers) else str(error.get("msg", ""))
            errors.append({"loc": loc, "type": kind, "msg": message})
        if malformed and errors:
            content = _error_body(
                ErrorCode.MALFORMED_BODY.value, "request body is not valid JSON", errors=errors
            )
            return JSONResponse(content, status_code=400)
        content = _error_body(
            ErrorCode.VALIDATION_FAILED.value, "request validation failed", errors=errors
        )
        return JSONResponse(content, status_code=422)

    async def websocket_validation_error(websocket: WebSocket, exc: Exception) -> None:
        # FastAPI's default puts the errors, input included, in the close reason.
        await websocket.close(code=WS_1008_POLICY_VIOLATION, reason="validation failed")

    async def internal_error(request: Request, exc: Exception) -> Response:
        error_id = uuid.uuid4().hex
        route = request.scope.get("route")
        logger.error(
            "unhandled %s in %s %s [error_id=%s]",
            type(exc).__name__,
            request.method,
            getattr(route, "path", "-"),
            error_id,
            exc_info=exc,
        )
        extra: dict[str, Any] = {"error_id": error_id}
        if expose_internal_errors:
            extra["exception"] = f"{type(exc).__name__}: {exc}"
        content = _error_body(ErrorCode.INTERNAL_ERROR.value, "internal server error", **extra)
        return apply_secure_headers(request, JSONResponse(content, status_code=500))

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(WebSocketRequestValidationError, websocket_validation_error)
    app.add_exception_handler(Exception, internal_error)


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
    # Each middleware is built once here so a wrong option fails now, not on the
    # first request; add_middleware puts each new one outside the previous ones.
    RequestSizeLimitMiddleware(app, max_body_bytes=max_body_bytes, path_limits=body_path_limits)
    app.add_middleware(
        RequestSizeLimitMiddleware, max_body_bytes=max_body_bytes, path_limits=body_path_limits
    )
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
    SecureHeadersMiddleware(app, **options)
    app.add_middleware(SecureHeadersMiddleware, **options)
