"""WebSocket connections: accepting without echoing a token, ending a connection
whose token expires or is revoked, and limiting messages.

The auth dependencies (``BearerAuth``, ``CookieAuth``, ``APIKeyAuth``,
``FirstOf``) and the guards (``RoleChecker``, ...) work on WebSocket routes as
they are and refuse a handshake by closing it with 1008 before it is
accepted. This module covers the rest of a connection's life:

* :func:`accept` accepts with the subprotocol the server speaks, never with
  the token a browser put in ``Sec-WebSocket-Protocol`` (``["bearer", token]``);
* :func:`guard_connection` verifies the token again every ``interval`` seconds
  (default 30) and at its ``exp``, and ends the connection with 1008 once it is
  expired or revoked;
* :class:`MessageLimit` counts received messages on a
  :class:`~fastapi_secure.ratelimit.RateLimiter` (same storage and keys as the
  HTTP limits) and closes with 1008, or answers an error frame, over the limit;
  its receive loops close with 1009 a message over ``max_bytes`` (default
  64 KiB) before counting or parsing it.

The guard needs asyncio (the loop uvicorn and hypercorn run FastAPI on).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Any, Literal

from starlette.websockets import WebSocket, WebSocketState

from fastapi_secure.auth.base import (
    ACCESS_TOKEN_SCOPE_KEY,
    WS_POLICY_VIOLATION,
    AccessTokenVerifier,
)
from fastapi_secure.auth.bearer import BEARER_SUBPROTOCOL, offered_subprotocols
from fastapi_secure.clock import Clock, system_clock
from fastapi_secure.errors import ConfigurationError, SecurityError
from fastapi_secure.ratelimit import RateLimiter
from fastapi_secure.tokens.claims import AccessClaims

__all__ = [
    "BEARER_SUBPROTOCOL",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DEFAULT_RECHECK_INTERVAL",
    "WS_INVALID_PAYLOAD",
    "WS_MESSAGE_TOO_BIG",
    "WS_POLICY_VIOLATION",
    "WS_UNSUPPORTED_DATA",
    "ConnectionGuard",
    "MessageLimit",
    "accept",
    "guard_connection",
    "select_subprotocol",
]

logger = logging.getLogger("fastapi_secure.websocket")

DEFAULT_RECHECK_INTERVAL = 30.0
"""Seconds between two verifications of a connection's token: the longest a
revoked token keeps its connection open."""

WS_UNSUPPORTED_DATA = 1003
"""Close code of a frame of the wrong kind (binary for text or the reverse; RFC 6455, 7.4.1)."""
WS_INVALID_PAYLOAD = 1007
"""Close code of a text frame that is not the JSON document ``iter_json`` expects."""
WS_MESSAGE_TOO_BIG = 1009
"""Close code of a message over ``MessageLimit.max_bytes`` (RFC 6455, 7.4.1)."""

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024
"""The largest message (its UTF-8 text or its bytes) the ``MessageLimit`` loops
take by default; the servers' own bound is far higher (16 MiB on uvicorn)."""

OnLimit = Literal["close", "error"]


def select_subprotocol(
    websocket: WebSocket, supported: Sequence[str] = (BEARER_SUBPROTOCOL,)
) -> str | None:
    """The first of ``supported`` (the server's order of preference) that the
    client offers, or None.

    Only names from ``supported`` can come back, so the token that follows
    ``bearer`` in the client's list is never chosen, whatever the client sends.
    """
    try:
        offered = offered_subprotocols(websocket.headers.getlist("sec-websocket-protocol"))
    except Exception:
        # An oversized header was already refused by the auth dependency; a
        # route without one simply speaks no subprotocol.
        return None
    for name in supported:
        if name in offered:
            return name
    return None


async def accept(
    websocket: WebSocket,
    *,
    subprotocols: Sequence[str] = (BEARER_SUBPROTOCOL,),
    headers: Sequence[tuple[bytes, bytes]] | None = None,
) -> str | None:
    """Accept ``websocket`` with :func:`select_subprotocol`; return the chosen one.

    Use it instead of ``websocket.accept()`` when clients may send their token
    as ``["bearer", token]``: browsers fail a connection whose server answers
    no subprotocol to a client that offered some, and echoing the client's
    whole list (or the token) would hand the token to every log on the way.
    List the application's own protocols before ``bearer`` in ``subprotocols``
    to pick one of them when the client offers it.
    """
    for name in subprotocols:
        if not name or "," in name or name != name.strip():
            raise ConfigurationError(f"{name!r} is not a subprotocol name")
    chosen = select_subprotocol(websocket, subprotocols)
    await websocket.accept(subprotocol=chosen, headers=headers)
    return chosen


class ConnectionGuard:
    """Ends a WebSocket connection (close 1008) once its token is expired or revoked.

    Made by :func:`guard_connection`; use it as ``async with``. A background
    task verifies the token through the issuer every ``interval`` seconds and
    at the token's ``exp``; when a verification fails (expired, revoked, the
    whole session logged out, store down: fail closed) it closes the
    connection with 1008 and cancels the block's task, whose
    ``CancelledError`` the ``async with`` then absorbs. ``ended`` tells
    afterwards whether the guard ended the connection.
    """

    def __init__(
        self,
        websocket: WebSocket,
        issuer: AccessTokenVerifier,
        token: str,
        claims: AccessClaims | None,
        *,
        interval: float,
        clock: Clock,
    ) -> None:
        if (
            isinstance(interval, bool)
            or not isinstance(interval, (int, float))
            or not math.isfinite(interval)
            or interval <= 0
        ):
            raise ConfigurationError("interval must be a positive number of seconds")
        self.websocket = websocket
        self.issuer = issuer
        self._token = token
        self.claims = claims
        self.interval = float(interval)
        self.clock = clock
        self.ended = False
        self.reason: str | None = None
        self._host: asyncio.Task[Any] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._exiting = False
        self._cancelled_host = False

    def __repr__(self) -> str:
        # Never the token.
        return f"ConnectionGuard(interval={self.interval!r}, ended={self.ended!r})"

    async def __aenter__(self) -> ConnectionGuard:
        self._host = asyncio.current_task()
        if self._host is None:  # pragma: no cover - always inside a task under asyncio
            raise ConfigurationError("guard_connection needs a running asyncio task")
        self._watcher = asyncio.get_running_loop().create_task(self._watch())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        # From here on the watcher must not cancel this task any more.
        self._exiting = True
        watcher = self._watcher
        if watcher is not None and not watcher.done():
            watcher.cancel()
            await asyncio.wait([watcher])
        if self._cancelled_host and exc_type is asyncio.CancelledError:
            # Absorb our own cancellation only, as asyncio.timeout does; Python
            # 3.10 has no uncancel(): there the close we sent ends the task anyway.
            uncancel = getattr(self._host, "uncancel", None)
            return uncancel is None or bool(uncancel() == 0)
        return False

    def _next_delay(self) -> float:
        if self.claims is None:
            return 0.0
        return max(0.0, min(self.interval, self.claims.exp - self.clock()))

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._next_delay())
            if self.claims is not None and self.clock() >= self.claims.exp:
                await self._end("token expired")
                return
            try:
                self.claims = await self.issuer.verify_access(self._token)
            except SecurityError as exc:
                await self._end(f"{type(exc).__name__}: {getattr(exc, 'reason', None)}")
                return
            except Exception as exc:
                # Fail closed: a connection whose token cannot be checked ends.
                await self._end(f"unexpected {type(exc).__name__}")
                return

    async def _end(self, reason: str) -> None:
        self.ended = True
        self.reason = reason
        logger.info("WebSocket connection ended (1008): %s", reason)
        with contextlib.suppress(Exception):
            await self.websocket.close(code=WS_POLICY_VIOLATION)
        if not self._exiting and self._host is not None:
            self._cancelled_host = True
            self._host.cancel()


def guard_connection(
    websocket: WebSocket,
    issuer: AccessTokenVerifier | None = None,
    token: str | None = None,
    *,
    claims: AccessClaims | None = None,
    interval: float = DEFAULT_RECHECK_INTERVAL,
    clock: Clock = system_clock,
) -> ConnectionGuard:
    """Keep ``websocket`` open only while its access token is valid.

    ``async with guard_connection(websocket): ...`` after a ``BearerAuth`` or
    ``CookieAuth`` dependency (or a guard over one) admitted the handshake: the
    issuer, the token and its claims are taken from the connection. Pass
    ``issuer`` and ``token`` (and ``claims``, else the first check is at once)
    to guard a token obtained otherwise. ``interval`` bounds how long a revoked
    token keeps the connection (default 30 s); ``clock`` is the time source
    compared with ``exp``, the same as the issuer's.
    """
    stored = websocket.scope.get(ACCESS_TOKEN_SCOPE_KEY)
    if issuer is None and token is None and stored is not None:
        issuer, token, stored_claims = stored
        claims = claims if claims is not None else stored_claims
    if issuer is None or token is None:
        raise ConfigurationError(
            "guard_connection needs issuer and token, or a connection admitted by "
            "BearerAuth or CookieAuth"
        )
    if not callable(getattr(issuer, "verify_access", None)):
        raise ConfigurationError("issuer must provide an async verify_access(token) method")
    return ConnectionGuard(websocket, issuer, token, claims, interval=interval, clock=clock)


class MessageLimit:
    """A per-message rate limit for WebSocket receive loops.

    ``MessageLimit(limiter, "10/second", name="chat")`` counts on ``limiter``
    (the same storage, failure policy and client keys as its HTTP limits;
    ``name`` and ``key_name`` select the counter exactly as
    :meth:`~fastapi_secure.ratelimit.RateLimiter.hit` does). Over the limit,
    ``on_limit="close"`` (default) closes the connection with 1008;
    ``on_limit="error"`` sends the error frame
    ``{"error": {"code": "rate_limited", "message": ..., "retry_after": s}}``,
    drops the message and keeps the connection.

    The ``iter_*`` loops end the connection themselves when the client sends
    what they cannot take, instead of letting the error escape the route: a
    frame of the other kind (binary to ``iter_text``/``iter_json``, text to
    ``iter_bytes``) closes with 1003, a text frame that is not JSON (or is
    nested too deep to parse) to ``iter_json`` with 1007, and a message over
    ``max_bytes`` (default :data:`DEFAULT_MAX_MESSAGE_BYTES`, 64 KiB; text is
    measured in UTF-8 bytes) with 1009, before it is counted or parsed. The
    loops count a message before parsing it, so a flood of large documents is
    cut at the limit without being parsed.
    """

    def __init__(
        self,
        limiter: RateLimiter,
        rates: str,
        *,
        name: str,
        key_name: str = "ip",
        on_limit: OnLimit = "close",
        max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        if not isinstance(limiter, RateLimiter):
            raise ConfigurationError("limiter must be a RateLimiter")
        if on_limit not in ("close", "error"):
            raise ConfigurationError("on_limit must be 'close' or 'error'")
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise ConfigurationError("max_bytes must be a positive number of bytes")
        self.limiter = limiter
        self.rates = rates
        self.name = name
        self.key_name = key_name
        self.on_limit: OnLimit = on_limit
        self.max_bytes = max_bytes
        # Fail at construction, not at the first message.
        from fastapi_secure.ratelimit import parse_limit

        parse_limit(rates, name)

    def __repr__(self) -> str:
        return (
            f"MessageLimit({self.rates!r}, name={self.name!r}, on_limit={self.on_limit!r}, "
            f"max_bytes={self.max_bytes!r})"
        )

    async def allow(self, websocket: WebSocket, key: str | None = None, cost: int = 1) -> bool:
        """Count one message of ``websocket`` for ``key`` (default: the client IP).

        True: handle the message. False: refused; with ``on_limit="close"`` the
        connection is closed (stop receiving), with ``"error"`` the error
        frame was sent (drop the message, keep receiving).
        """
        if key is None:
            key = self.limiter.client_key(websocket)
        decision = await self.limiter.hit(
            self.rates,
            key,
            name=self.name,
            key_name=self.key_name,
            cost=cost,
            scope=websocket.scope,
        )
        if decision:
            return True
        if self.on_limit == "close":
            logger.info("WebSocket connection ended (1008): message limit %s", self.name)
            with contextlib.suppress(Exception):
                await websocket.close(code=WS_POLICY_VIOLATION)
        else:
            await websocket.send_json(
                {
                    "error": {
                        "code": "rate_limited",
                        "message": "too many messages",
                        "retry_after": decision.retry_after,
                    }
                }
            )
        return False

    async def iter_text(self, websocket: WebSocket, key: str | None = None) -> AsyncIterator[str]:
        """The text messages of ``websocket`` that pass the limit, until it closes."""
        async for message in self._iter(websocket, key, "text"):
            yield message

    async def iter_bytes(
        self, websocket: WebSocket, key: str | None = None
    ) -> AsyncIterator[bytes]:
        """The binary messages of ``websocket`` that pass the limit, until it closes."""
        async for message in self._iter(websocket, key, "bytes"):
            yield message

    async def iter_json(self, websocket: WebSocket, key: str | None = None) -> AsyncIterator[Any]:
        """The JSON text messages of ``websocket`` that pass the limit, until it closes."""
        async for message in self._iter(websocket, key, "json"):
            yield message

    async def _iter(
        self, websocket: WebSocket, key: str | None, kind: Literal["text", "bytes", "json"]
    ) -> AsyncIterator[Any]:
        field = "bytes" if kind == "bytes" else "text"
        while True:
            if websocket.application_state != WebSocketState.CONNECTED:
                raise RuntimeError('WebSocket is not connected. Need to call "accept" first.')
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            payload = message.get(field)
            if not isinstance(payload, (str, bytes)):
                # A binary frame where text was expected or the reverse (some
                # servers send the other key as None).
                await _close_for_data(websocket, WS_UNSUPPORTED_DATA, f"not a {kind} frame")
                return
            if self._too_big(payload):
                # Before counting or parsing: the bound is what the loop takes,
                # far below the server's frame limit.
                await _close_for_data(websocket, WS_MESSAGE_TOO_BIG, "message too big")
                return
            if not await self.allow(websocket, key):
                if self.on_limit == "close":
                    return
                continue
            if kind != "json":
                yield payload
                continue
            try:
                document = json.loads(payload)
            except (ValueError, RecursionError):
                # Not JSON, or nested deeper than the parser goes.
                await _close_for_data(websocket, WS_INVALID_PAYLOAD, "message is not JSON")
                return
            yield document

    def _too_big(self, payload: str | bytes) -> bool:
        if isinstance(payload, bytes) or len(payload) > self.max_bytes:
            return len(payload) > self.max_bytes
        # A character is 1 to 4 UTF-8 bytes: encode only when it can matter.
        if len(payload) * 4 <= self.max_bytes:
            return False
        return len(payload.encode("utf-8", "surrogatepass")) > self.max_bytes


async def _close_for_data(websocket: WebSocket, code: int, reason: str) -> None:
    """End a connection whose client sent what the receive loop cannot take."""
    logger.info("WebSocket connection ended (%d): %s", code, reason)
    with contextlib.suppress(Exception):
        await websocket.close(code=code)
