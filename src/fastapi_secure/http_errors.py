"""What the errors of :mod:`fastapi_secure.errors` mean in HTTP, and JSON error answers.

The core exception tree knows nothing of HTTP. This module gives each refusal
its status and headers (RFC 6750 ``WWW-Authenticate``, ``Retry-After``) and
the body ``{"detail": {"code": ..., "message": ...}}``:

- :func:`http_exception` turns a core error into an ``HTTPException`` that is
  still an instance of the core class (``except InvalidTokenError`` keeps
  working), so FastAPI answers it with no handler installed. The library's
  dependencies raise their refusals through it.
- :func:`install_error_handlers` makes every answer of an app JSON of that one
  shape: core errors that application code lets escape, ``HTTPException``,
  request validation (no echoed input), and any other exception as an opaque
  500.

=========================  ======  ============================================
core class                 status  headers
=========================  ======  ============================================
AuthenticationError        401     ``WWW-Authenticate: Bearer[ error="..."]``
PermissionDeniedError      403     ``WWW-Authenticate`` with ``scope`` for
                                   InsufficientScopeError
ConflictError              409
RequestTooLargeError       413
RateLimitExceededError     429     ``Retry-After`` when known
ServiceUnavailableError    503     ``Retry-After``
WeakPasswordError          422     (only through :func:`install_error_handlers`)
=========================  ======  ============================================
"""

from __future__ import annotations

import json
import logging
import math
import re
import uuid
from collections.abc import Collection, Mapping, Sequence
from http import HTTPStatus
from typing import Any, Final, cast

from fastapi import FastAPI
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError, WebSocketRequestValidationError
from fastapi.utils import is_body_allowed_for_status_code
from fastapi.websockets import WebSocket
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.status import WS_1008_POLICY_VIOLATION
from starlette.types import Message

from fastapi_secure.errors import (
    AuthenticationError,
    ConflictError,
    ErrorCode,
    InsufficientScopeError,
    PasswordError,
    PermissionDeniedError,
    RateLimitExceededError,
    RequestRefusedError,
    RequestTooLargeError,
    SecurityError,
    ServiceUnavailableError,
    StepUpRequiredError,
    WeakPasswordError,
)
from fastapi_secure.events import SECRET_FIELD_MARKERS
from fastapi_secure.headers import apply_secure_headers
from fastapi_secure.tokens.claims import SCOPE_TOKEN

__all__ = [
    "SECRET_FIELD_MARKERS",
    "error_body",
    "error_messages",
    "http_exception",
    "install_error_handlers",
    "status_of",
    "www_authenticate",
]

logger = logging.getLogger("fastapi_secure.http_errors")


_STATUS: Final[tuple[tuple[type[SecurityError], int], ...]] = (
    (AuthenticationError, 401),
    (PermissionDeniedError, 403),
    (ConflictError, 409),
    (RequestTooLargeError, 413),
    (RateLimitExceededError, 429),
    (ServiceUnavailableError, 503),
    (PasswordError, 422),
)


def status_of(error: SecurityError) -> int:
    """The HTTP status that answers ``error`` (400 for a refusal of no known kind)."""
    for kind, status in _STATUS:
        if isinstance(error, kind):
            return status
    return 400 if isinstance(error, RequestRefusedError) else 500


def www_authenticate(error: SecurityError) -> str | None:
    """The ``WWW-Authenticate`` challenge that goes with ``error``, if any (RFC 6750, 9470)."""
    if isinstance(error, AuthenticationError):
        if error.challenge_error is None:
            return error.scheme
        challenge = f'{error.scheme} error="{error.challenge_error}"'
        if isinstance(error, StepUpRequiredError):
            if error.description:
                # RFC 6750 limits error_description to %x20-21 / %x23-5B / %x5D-7E.
                text = "".join(c for c in error.description if " " <= c <= "~" and c not in '"\\')
                challenge += f', error_description="{text}"'
            if error.max_age is not None:
                challenge += f', max_age="{error.max_age}"'
        return challenge
    if isinstance(error, InsufficientScopeError):
        challenge = 'Bearer error="insufficient_scope"'
        shown = " ".join(scope for scope in error.scopes if SCOPE_TOKEN.fullmatch(scope))
        if shown:
            challenge += f', scope="{shown}"'
        return challenge
    return None


def _headers_of(error: SecurityError) -> dict[str, str]:
    headers: dict[str, str] = {}
    challenge = www_authenticate(error)
    if challenge is not None:
        headers["WWW-Authenticate"] = challenge
    retry_after = getattr(error, "retry_after", None)
    if isinstance(retry_after, (int, float)) and retry_after >= 0:
        headers["Retry-After"] = str(math.ceil(retry_after))
    return headers


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The JSON body of every error answer: ``{"detail": {"code", "message", ...}}``."""
    return {"detail": {"code": code, "message": message, **extra}}


def error_messages(status: int, code: ErrorCode, message: str) -> tuple[Message, Message]:
    """The two ASGI messages of a JSON error answer, for middleware that refuses
    a request before the app runs (the connection closes: the client may still be
    sending a body we refuse to read)."""
    body = json.dumps(error_body(code.value, message), separators=(",", ":")).encode()
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ],
    }
    return start, {"type": "http.response.body", "body": body}


_TWINS: dict[type[SecurityError], type[HTTPException]] = {}


def _http_twin(kind: type[SecurityError]) -> type[HTTPException]:
    # A subclass of both the core class and HTTPException: FastAPI answers it
    # with its status and headers, and `except InvalidTokenError` still catches it.
    twin = _TWINS.get(kind)
    if twin is None:
        twin = type(
            kind.__name__,
            (kind, HTTPException),
            {"__module__": kind.__module__, "__qualname__": kind.__qualname__},
        )
        _TWINS[kind] = twin
    return twin


def http_exception(
    error: SecurityError | HTTPException, *, headers: Mapping[str, str] | None = None
) -> HTTPException:
    """``error`` as an ``HTTPException`` with its status, headers and JSON detail.

    The result is an instance of ``type(error)`` as well. ``headers`` are added
    to (and override) the error's own. Passing an error that already is an
    ``HTTPException`` returns it, with ``headers`` merged in.
    """
    if isinstance(error, HTTPException):
        if headers:
            error.headers = {**(error.headers or {}), **headers}
        return error
    twin = _http_twin(type(error))
    answer = BaseException.__new__(twin)
    answer.__dict__.update(error.__dict__)
    answer.args = error.args
    answer.__cause__ = error.__cause__
    merged = _headers_of(error)
    merged.update(headers or {})
    if isinstance(error, RequestRefusedError):
        detail: Any = {"code": error.code.value, "message": error.message}
    elif isinstance(error, WeakPasswordError):
        detail = {
            "code": ErrorCode.VALIDATION_FAILED.value,
            "message": "password refused by policy",
            "problems": error.problems,
        }
    elif isinstance(error, PasswordError):
        detail = {"code": ErrorCode.VALIDATION_FAILED.value, "message": str(error)}
    else:
        detail = {"code": ErrorCode.INTERNAL_ERROR.value, "message": "internal server error"}
    HTTPException.__init__(answer, status_of(error), detail=detail, headers=merged or None)
    return answer


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


# Error types raised by PasswordPolicy: their messages come from the policy's
# rules, never from the input.
_OWN_PASSWORD_ERRORS: Final = frozenset({"weak_password", "password_type"})


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

    - Errors of :mod:`fastapi_secure.errors` that application code lets
      escape: answered as :func:`http_exception` says (a ``TokenReuseError``
      from ``issuer.rotate`` in a route is a 401, not a 500).
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
      ``fastapi_secure.http_errors`` logger. Its type and message (never the
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
            body = error_body(_code_for(exc.status_code), detail)
        else:
            body = error_body(
                _code_for(exc.status_code), _phrase(exc.status_code), data=jsonable_encoder(detail)
            )
        return JSONResponse(body, status_code=exc.status_code, headers=headers)

    async def security_error(request: Request, exc: Exception) -> Response:
        return await http_error(request, http_exception(cast(SecurityError, exc)))

    async def validation_error(request: Request, exc: Exception) -> Response:
        errors = []
        malformed = True
        for error in cast(RequestValidationError, exc).errors():
            loc = list(error.get("loc", ()))
            kind = str(error.get("type", "value_error"))
            malformed = malformed and kind == "json_invalid"
            entry: dict[str, Any] = {"loc": loc, "type": kind}
            if kind in _OWN_PASSWORD_ERRORS:
                # Written by PasswordPolicy from the rules alone: the reasons help
                # the user pick another password and never repeat this one.
                entry["msg"] = str(error.get("msg", ""))
                problems = (error.get("ctx") or {}).get("problems")
                if isinstance(problems, list):
                    entry["problems"] = [str(problem) for problem in problems]
            elif _is_secret(loc, markers):
                entry["msg"] = "invalid value"
            else:
                entry["msg"] = str(error.get("msg", ""))
            errors.append(entry)
        if malformed and errors:
            content = error_body(
                ErrorCode.MALFORMED_BODY.value, "request body is not valid JSON", errors=errors
            )
            return JSONResponse(content, status_code=400)
        content = error_body(
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
        content = error_body(ErrorCode.INTERNAL_ERROR.value, "internal server error", **extra)
        return apply_secure_headers(request, JSONResponse(content, status_code=500))

    app.add_exception_handler(SecurityError, security_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(WebSocketRequestValidationError, websocket_validation_error)
    app.add_exception_handler(Exception, internal_error)
