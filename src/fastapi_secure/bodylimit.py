"""Request size limits: oversized headers (431) and bodies (413), a pure ASGI middleware."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastapi_secure.errors import ConfigurationError, ErrorCode, RequestTooLargeError
from fastapi_secure.headers import route_path
from fastapi_secure.http_errors import error_messages, http_exception

__all__ = ["DEFAULT_MAX_BODY_BYTES", "DEFAULT_MAX_HEADER_BYTES", "RequestSizeLimitMiddleware"]

DEFAULT_MAX_BODY_BYTES: Final = 1024 * 1024
DEFAULT_MAX_HEADER_BYTES: Final = 32 * 1024


class RequestSizeLimitMiddleware:
    """Refuses requests whose headers or body exceed a limit.

    A ``Content-Length`` over the limit is answered with 413 before the app
    runs. A body without one (chunked) is counted while the app reads it: the
    read that crosses the limit raises
    :class:`~fastapi_secure.errors.RequestTooLargeError` (as an
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
        self._too_large = error_messages(413, ErrorCode.REQUEST_TOO_LARGE, "request body too large")
        self._headers_too_large = error_messages(
            431, ErrorCode.HEADERS_TOO_LARGE, "request headers too large"
        )
        self._bad_length = error_messages(400, ErrorCode.BAD_REQUEST, "invalid Content-Length")

    def _limit_for(self, scope: Scope) -> int | None:
        path = route_path(scope)
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
                raise http_exception(RequestTooLargeError())
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise http_exception(RequestTooLargeError())
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
