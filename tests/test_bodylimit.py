"""RequestSizeLimitMiddleware: oversized headers and bodies, chunked or declared."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI, Request, Response
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.types import Message, Receive, Scope, Send

from fastapi_secure.bodylimit import RequestSizeLimitMiddleware
from fastapi_secure.defaults import install_secure_defaults
from fastapi_secure.errors import (
    ConfigurationError,
    RequestTooLargeError,
)
from fastapi_secure.headers import SecureHeadersMiddleware
from fastapi_secure.http_errors import install_error_handlers
from tests.support.asgi import body_of, call, http_scope, status_of

# --- request size limits ------------------------------------------------------------------

LIMIT = 1000


def sized_app(seen: list[int], **options: Any) -> FastAPI:
    app = FastAPI()

    @app.post("/upload")
    async def upload(request: Request) -> dict[str, int]:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            seen.append(size)
        return {"size": size}

    @app.post("/swallow")
    async def swallow(request: Request) -> dict[str, str]:
        try:
            await request.body()
        except RequestTooLargeError:
            return {"status": "pretending all is well"}
        return {"status": "ok"}

    install_error_handlers(app)
    app.add_middleware(RequestSizeLimitMiddleware, max_body_bytes=LIMIT, **options)
    return app


def assert_413(response: Any) -> None:
    assert response.status_code == 413
    assert response.json() == {
        "detail": {"code": "request_too_large", "message": "request body too large"}
    }


def test_a_body_at_the_limit_is_accepted() -> None:
    response = TestClient(sized_app([])).post("/upload", content=b"x" * LIMIT)
    assert response.json() == {"size": LIMIT}


def test_a_content_length_over_the_limit_is_refused_before_the_app_runs() -> None:
    seen: list[int] = []
    response = TestClient(sized_app(seen)).post("/upload", content=b"x" * (LIMIT + 1))
    assert_413(response)
    assert response.headers["connection"] == "close"
    assert seen == []


def test_a_chunked_body_growing_over_the_limit_is_refused() -> None:
    seen: list[int] = []

    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b"y" * 300

    # httpx sends an iterator without Content-Length (Transfer-Encoding: chunked).
    response = TestClient(sized_app(seen)).post("/upload", content=chunks())
    assert_413(response)
    assert max(seen, default=0) <= LIMIT


def test_an_app_that_swallows_the_error_still_answers_413() -> None:
    response = TestClient(sized_app([])).post("/swallow", content=iter([b"z" * (LIMIT + 10)]))
    assert_413(response)


@pytest.mark.anyio
async def test_a_body_in_many_messages_is_cut_at_the_message_crossing_the_limit() -> None:
    seen: list[int] = []
    chunks = [b"a" * 400, b"b" * 400, b"c" * 400, b"d" * 400]
    messages = await call(sized_app(seen), http_scope("/upload", method="POST"), chunks)
    assert status_of(messages) == 413
    assert b"request_too_large" in body_of(messages)
    assert seen == [400, 800]


@pytest.mark.anyio
@pytest.mark.parametrize("value", [b"abc", b"-1", b"1e3"])
async def test_a_malformed_content_length_is_refused(value: bytes) -> None:
    scope = http_scope("/upload", method="POST", headers=[(b"content-length", value)])
    messages = await call(sized_app([]), scope)
    assert status_of(messages) == 400


@pytest.mark.anyio
async def test_conflicting_content_lengths_are_refused() -> None:
    scope = http_scope(
        "/upload", method="POST", headers=[(b"content-length", b"5"), (b"content-length", b"6")]
    )
    assert status_of(await call(sized_app([]), scope)) == 400


def test_path_limits_take_the_longest_prefix() -> None:
    client = TestClient(sized_app([], path_limits={"/up": 10, "/upload": 5000}))
    assert client.post("/upload", content=b"x" * 4000).json() == {"size": 4000}
    assert_413(client.post("/swallow", content=b"x" * (LIMIT + 1)))


@pytest.mark.anyio
async def test_path_limits_apply_to_the_path_below_the_root_path() -> None:
    limited = RequestSizeLimitMiddleware(_echo_size, max_body_bytes=None, path_limits={"/up": 5})
    scope = http_scope("/prefix/up", method="POST", root_path="/prefix")
    assert status_of(await call(limited, scope, [b"123456"])) == 413
    other = http_scope("/prefix/other", method="POST", root_path="/prefix")
    assert status_of(await call(limited, other, [b"123456"])) == 200


async def _echo_size(scope: Scope, receive: Receive, send: Send) -> None:
    size = len(await read_all(receive))
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})


def test_a_path_limit_of_none_lifts_the_limit() -> None:
    client = TestClient(sized_app([], path_limits={"/upload": None}))
    assert client.post("/upload", content=b"x" * 5000).json() == {"size": 5000}


def test_oversized_headers_get_431() -> None:
    client = TestClient(sized_app([], max_header_bytes=2048))
    response = client.post("/upload", content=b"", headers={"X-Big": "v" * 3000})
    assert response.status_code == 431
    assert response.json()["detail"]["code"] == "headers_too_large"
    assert client.post("/upload", content=b"", headers={"X-Small": "v"}).status_code == 200


def test_the_413_carries_the_security_headers_when_they_wrap_the_limit() -> None:
    app = sized_app([])
    app.add_middleware(SecureHeadersMiddleware)
    response = TestClient(app).post("/upload", content=b"x" * (LIMIT + 1))
    assert response.status_code == 413
    assert response.headers["x-frame-options"] == "DENY"


async def read_all(receive: Receive) -> bytes:
    body: bytes = b""
    while True:
        message = await receive()
        body += bytes(message.get("body", b""))
        if not message.get("more_body"):
            return body


@pytest.mark.anyio
async def test_a_raw_app_that_lets_the_error_escape_gets_a_413() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await read_all(receive)
        raise AssertionError("never reached: the read over the limit raises")

    limited = RequestSizeLimitMiddleware(app, max_body_bytes=10)
    messages = await call(limited, http_scope("/", method="POST"), [b"a" * 8, b"b" * 8])
    assert status_of(messages) == 413
    assert b"request_too_large" in body_of(messages)


@pytest.mark.anyio
async def test_an_app_that_keeps_reading_or_returns_silently_still_gets_a_413() -> None:
    refused_reads = 0

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal refused_reads
        for _ in range(2):
            try:
                await read_all(receive)
            except RequestTooLargeError:
                refused_reads += 1

    limited = RequestSizeLimitMiddleware(app, max_body_bytes=10)
    messages = await call(limited, http_scope("/", method="POST"), [b"a" * 8, b"b" * 8])
    assert refused_reads == 2
    assert status_of(messages) == 413
    assert len(messages) == 2


@pytest.mark.anyio
async def test_over_the_limit_after_the_response_started_the_error_propagates() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await read_all(receive)

    limited = RequestSizeLimitMiddleware(app, max_body_bytes=10)
    with pytest.raises(RequestTooLargeError):
        await call(limited, http_scope("/", method="POST"), [b"a" * 8, b"b" * 8])


@pytest.mark.parametrize(
    "options",
    [{"max_body_bytes": -1}, {"max_header_bytes": -5}, {"path_limits": {"upload": 5}}],
)
def test_size_limit_refuses_bad_settings(options: dict[str, Any]) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError

    with pytest.raises(ConfigurationError):
        RequestSizeLimitMiddleware(app, **options)


@pytest.mark.anyio
async def test_size_limit_passes_websockets_through() -> None:
    seen: list[Scope] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        raise AssertionError

    scope = {"type": "websocket", "path": "/ws", "headers": [(b"x", b"y" * 100_000)]}
    await RequestSizeLimitMiddleware(inner)(scope, receive, send)
    assert seen == [scope]


# --- RequestSizeLimitMiddleware: a Content-Length int() cannot parse -----------------------
# More than 4300 digits (leading zeros included) made int() raise ValueError: a 500.

DECLARED_LIMIT = 1024


def _size_limited_app() -> FastAPI:
    app = FastAPI()

    @app.post("/echo")
    async def echo(request: Request) -> Response:
        return Response(await request.body())

    install_secure_defaults(app, max_body_bytes=DECLARED_LIMIT)
    return app


async def _post_declaring(app: FastAPI, length: bytes, body: bytes = b"") -> int:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/echo",
        "raw_path": b"/echo",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), (b"content-length", length)],
        "client": ("203.0.113.9", 5000),
        "server": ("testserver", 80),
    }
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(scope, receive, send)
    return statuses[0]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("length", "status"),
    [
        (b"9" * 5000, 413),
        (b"0" * 5000 + b"1", 200),  # a valid (if silly) 1
        (b"0" * 5000, 200),
        (b"0" * 5000 + b"2048", 413),
        (b"+1", 400),
        (b" 1 ", 200),
    ],
)
async def test_absurd_content_length_is_a_4xx_not_a_500(length: bytes, status: int) -> None:
    body = b"x" if length.strip().lstrip(b"0") == b"1" else b""
    assert await _post_declaring(_size_limited_app(), length, body) == status


@pytest.mark.anyio
@settings(max_examples=60, deadline=None)
@given(zeros=st.integers(0, 6000), value=st.integers(0, 10**40))
async def test_any_digit_string_is_judged_by_its_value(zeros: int, value: int) -> None:
    declared = b"0" * zeros + str(value).encode()
    statuses: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    middleware = RequestSizeLimitMiddleware(app, max_body_bytes=DECLARED_LIMIT)
    scope = {"type": "http", "path": "/", "headers": [(b"content-length", declared)]}
    await middleware(scope, receive, send)
    assert statuses == [413 if value > DECLARED_LIMIT else 204]
