"""Calling an ASGI app directly and recording what it sends, for middleware tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.types import ASGIApp, Message


def http_scope(
    path: str = "/",
    *,
    method: str = "GET",
    headers: Sequence[tuple[bytes, bytes]] = (),
    scheme: str = "http",
    client: tuple[str, int] | None = ("192.0.2.10", 50000),
    root_path: str = "",
) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": scheme,
        "path": path,
        "raw_path": path.encode(),
        "root_path": root_path,
        "query_string": b"",
        "headers": [(b"host", b"testserver"), *headers],
        "client": client,
        "server": ("testserver", 443 if scheme == "https" else 80),
    }


async def call(
    app: ASGIApp, scope: dict[str, Any], body_chunks: Sequence[bytes] = (b"",)
) -> list[Message]:
    """Run one request through ``app``; returns every message it sent."""
    pending: list[Message] = [
        {"type": "http.request", "body": chunk, "more_body": index < len(body_chunks) - 1}
        for index, chunk in enumerate(body_chunks)
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def response_headers(messages: Sequence[Message]) -> list[tuple[str, str]]:
    start = next(m for m in messages if m["type"] == "http.response.start")
    return [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in start["headers"]]


def status_of(messages: Sequence[Message]) -> int:
    start = next(m for m in messages if m["type"] == "http.response.start")
    return int(start["status"])


def body_of(messages: Sequence[Message]) -> bytes:
    return b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
