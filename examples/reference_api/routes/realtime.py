"""``WS /ws/echo``: an authenticated WebSocket with a per-message limit.

The token comes the way the transport takes it (bearer: the ``Authorization``
header or ``new WebSocket(url, ["bearer", token])``; cookie: the session cookie
from an allowed ``Origin``); the connection ends (1008) within 30 seconds of a
logout or revocation and at the token's expiry; a message over 4 KiB closes it
with 1009.
"""

# No `from __future__ import annotations`: FastAPI resolves the endpoint's
# annotations, and Claims is local to router().

from typing import Annotated

from fastapi import APIRouter, Depends, WebSocket

from examples.reference_api.deps import Components
from fastapi_secure.tokens.claims import AccessClaims
from fastapi_secure.websocket import MessageLimit, accept, guard_connection

__all__ = ["MESSAGE_MAX_BYTES", "MESSAGE_RATES", "router"]

MESSAGE_RATES = "10/second;300/minute"
"""Messages one user may send over all of their connections."""
MESSAGE_MAX_BYTES = 4096
"""The largest message echoed (UTF-8 bytes); a larger one closes with 1009 unread."""


def router(c: Components) -> APIRouter:
    """``WS /ws/echo``."""
    api = APIRouter(tags=["realtime"])
    messages = MessageLimit(
        c.limiter,
        MESSAGE_RATES,
        name="ws-echo",
        key_name="subject",
        max_bytes=MESSAGE_MAX_BYTES,
    )
    # With DPOP_REQUIRED every handshake is refused (1008): RFC 9449 defines no
    # WebSocket binding, and a browser cannot send a DPoP header on one.
    Claims = Annotated[AccessClaims, Depends(c.auth)]

    @api.websocket("/ws/echo")
    async def echo(websocket: WebSocket, claims: Claims) -> None:
        await accept(websocket)
        async with guard_connection(websocket, clock=c.issuer.clock):
            async for text in messages.iter_text(websocket, key=claims.sub):
                await websocket.send_text(text)

    return api
