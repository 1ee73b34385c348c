"""MessageLimit's receive loops from the attacker's side: frames of the wrong kind,
text that is not JSON, JSON nested past the parser's depth.

Each used to escape the route as an exception (KeyError, JSONDecodeError,
RecursionError): the server logged an application error and closed with 1011.
The loop now closes the connection itself, with the RFC 6455 code that says why.

A message over ``max_bytes`` used to be parsed (and counted) whatever its size,
up to the server's frame limit (16 MiB on uvicorn); it now closes with 1009
before either.
"""

# No `from __future__ import annotations`: FastAPI resolves the endpoints' annotations.

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI, WebSocket
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import WebSocketTestSession

from fastapi_secure.errors import ConfigurationError
from fastapi_secure.ratelimit import RateLimiter
from fastapi_secure.websocket import (
    DEFAULT_MAX_MESSAGE_BYTES,
    WS_INVALID_PAYLOAD,
    WS_MESSAGE_TOO_BIG,
    WS_POLICY_VIOLATION,
    WS_UNSUPPORTED_DATA,
    MessageLimit,
)

SMALL = 64
"""The bound of the /small-* routes."""


def make_app() -> FastAPI:
    # Room for the deeply nested documents below: they must reach the parser.
    limit = MessageLimit(RateLimiter("memory://"), "1000/minute", name="attack", max_bytes=2**20)
    small = MessageLimit(RateLimiter("memory://"), "1000/minute", name="small", max_bytes=SMALL)
    default = MessageLimit(RateLimiter("memory://"), "1000/minute", name="default")
    once = MessageLimit(RateLimiter("memory://"), "1/minute", name="once")
    app = FastAPI()

    @app.websocket("/small-json")
    async def small_json(websocket: WebSocket) -> None:
        await websocket.accept()
        async for document in small.iter_json(websocket):
            await websocket.send_json({"echo": document})

    @app.websocket("/small-text")
    async def small_text(websocket: WebSocket) -> None:
        await websocket.accept()
        async for text in small.iter_text(websocket):
            await websocket.send_text(text)

    @app.websocket("/small-bytes")
    async def small_bytes(websocket: WebSocket) -> None:
        await websocket.accept()
        async for data in small.iter_bytes(websocket):
            await websocket.send_bytes(data)

    @app.websocket("/default-json")
    async def default_json(websocket: WebSocket) -> None:
        await websocket.accept()
        async for document in default.iter_json(websocket):
            await websocket.send_json({"echo": document})

    @app.websocket("/once-json")
    async def once_json(websocket: WebSocket) -> None:
        await websocket.accept()
        async for document in once.iter_json(websocket, key="one"):
            await websocket.send_json({"echo": document})

    @app.websocket("/json")
    async def by_json(websocket: WebSocket) -> None:
        await websocket.accept()
        async for document in limit.iter_json(websocket):
            await websocket.send_json({"echo": document})

    @app.websocket("/text")
    async def by_text(websocket: WebSocket) -> None:
        await websocket.accept()
        async for text in limit.iter_text(websocket):
            await websocket.send_text(text)

    @app.websocket("/bytes")
    async def by_bytes(websocket: WebSocket) -> None:
        await websocket.accept()
        async for data in limit.iter_bytes(websocket):
            await websocket.send_bytes(data)

    return app


@pytest.fixture(scope="module")
def tc() -> Iterator[TestClient]:
    # raise_server_exceptions (the default): an exception escaping the route fails the test.
    with TestClient(make_app()) as running:
        yield running


Send = Callable[[WebSocketTestSession], None]


def closed_with(tc: TestClient, path: str, send: Send) -> int:
    with tc.websocket_connect(path) as websocket:
        send(websocket)
        message = websocket.receive()
    assert message["type"] == "websocket.close", message
    code: int = message["code"]
    return code


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        "",
        "NaN-ish",
        '{"a": 1',
        "[" * 100_000,  # deeper than the parser recurses: RecursionError
        '{"a":' * 100_000 + "1" + "}" * 100_000,  # the same, in objects
    ],
    ids=["broken", "empty", "word", "unclosed", "deep-arrays", "deep-objects"],
)
def test_text_that_is_not_json_closes_with_1007(tc: TestClient, text: str) -> None:
    assert closed_with(tc, "/json", lambda ws: ws.send_text(text)) == WS_INVALID_PAYLOAD


@pytest.mark.parametrize(
    ("path", "send"),
    [
        ("/json", lambda ws: ws.send_bytes(b"{}")),
        ("/text", lambda ws: ws.send_bytes(b"hello")),
        ("/bytes", lambda ws: ws.send_text("hello")),
    ],
    ids=["bytes-to-json", "bytes-to-text", "text-to-bytes"],
)
def test_a_frame_of_the_other_kind_closes_with_1003(tc: TestClient, path: str, send: Send) -> None:
    assert closed_with(tc, path, send) == WS_UNSUPPORTED_DATA


def test_good_messages_before_a_bad_one_are_served(tc: TestClient) -> None:
    with tc.websocket_connect("/json") as websocket:
        websocket.send_json({"n": 1})
        assert websocket.receive_json() == {"echo": {"n": 1}}
        websocket.send_text("}")
        assert websocket.receive()["code"] == WS_INVALID_PAYLOAD


@settings(max_examples=60)
@given(text=st.text(max_size=40) | st.sampled_from(["NaN", "-Infinity", "[1e999]", '"\\ud800"']))
def test_any_text_is_echoed_as_json_or_closes_with_1007(tc: TestClient, text: str) -> None:
    try:
        expected: Any = json.loads(text)
    except ValueError:
        assert closed_with(tc, "/json", lambda ws: ws.send_text(text)) == WS_INVALID_PAYLOAD
        return
    with tc.websocket_connect("/json") as websocket:
        websocket.send_text(text)
        # Compared as text: Python's JSON takes NaN, which equals nothing.
        echoed = json.dumps({"echo": expected}, separators=(",", ":"), ensure_ascii=False)
        assert websocket.receive_text() == echoed


# -- max_bytes: oversized messages close with 1009, unparsed -------------------------


def test_the_default_bound_is_64_kib() -> None:
    limit = MessageLimit(RateLimiter("memory://"), "1/second", name="n")
    assert limit.max_bytes == DEFAULT_MAX_MESSAGE_BYTES == 64 * 1024
    assert "max_bytes=65536" in repr(limit)


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "64"])
def test_max_bytes_must_be_a_positive_int(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="max_bytes"):
        MessageLimit(RateLimiter("memory://"), "1/second", name="n", max_bytes=bad)


def test_a_document_over_the_default_bound_closes_with_1009_unparsed(tc: TestClient) -> None:
    # Valid JSON one byte over 64 KiB, then a deep one the parser would choke on:
    # both end at the size check.
    document = '"' + "a" * (DEFAULT_MAX_MESSAGE_BYTES - 1) + '"'
    assert closed_with(tc, "/default-json", lambda ws: ws.send_text(document)) == 1009
    deep = "[" * 100_000
    assert closed_with(tc, "/default-json", lambda ws: ws.send_text(deep)) == WS_MESSAGE_TOO_BIG
    # At the bound exactly it is served.
    fits = '"' + "a" * (DEFAULT_MAX_MESSAGE_BYTES - 2) + '"'
    with tc.websocket_connect("/default-json") as websocket:
        websocket.send_text(fits)
        assert websocket.receive_json() == {"echo": "a" * (DEFAULT_MAX_MESSAGE_BYTES - 2)}


@pytest.mark.parametrize(
    ("path", "send"),
    [
        ("/small-text", lambda ws: ws.send_text("x" * (SMALL + 1))),
        ("/small-json", lambda ws: ws.send_text("[" + "1," * SMALL + "1]")),
        ("/small-bytes", lambda ws: ws.send_bytes(b"\0" * (SMALL + 1))),
        # Measured in UTF-8 bytes, not characters: 33 characters, 66 bytes.
        ("/small-text", lambda ws: ws.send_text("\u00e9" * (SMALL // 2 + 1))),
        ("/small-json", lambda ws: ws.send_text('"' + "\u20ac" * (SMALL // 3) + '"')),
    ],
    ids=["text", "json", "bytes", "text-2-byte-chars", "json-3-byte-chars"],
)
def test_a_message_over_max_bytes_closes_with_1009(tc: TestClient, path: str, send: Send) -> None:
    assert closed_with(tc, path, send) == WS_MESSAGE_TOO_BIG


def test_messages_up_to_max_bytes_are_served(tc: TestClient) -> None:
    with tc.websocket_connect("/small-text") as websocket:
        for text in ["x" * SMALL, "\u00e9" * (SMALL // 2), "\U0001f600" * (SMALL // 4)]:
            websocket.send_text(text)
            assert websocket.receive_text() == text
        websocket.send_text("x" * (SMALL + 1))
        assert websocket.receive()["code"] == WS_MESSAGE_TOO_BIG
    with tc.websocket_connect("/small-bytes") as websocket:
        websocket.send_bytes(b"\xff" * SMALL)
        assert websocket.receive_bytes() == b"\xff" * SMALL


@settings(max_examples=60)
@given(text=st.text(min_size=SMALL // 4 - 2, max_size=SMALL + 2))
def test_text_is_served_exactly_when_its_utf8_fits(tc: TestClient, text: str) -> None:
    size = len(text.encode("utf-8", "surrogatepass"))
    with tc.websocket_connect("/small-text") as websocket:
        websocket.send_text(text)
        if size <= SMALL:
            assert websocket.receive_text() == text
        else:
            assert websocket.receive()["code"] == WS_MESSAGE_TOO_BIG


def test_a_message_over_the_rate_limit_is_not_parsed(tc: TestClient) -> None:
    # The second message is not JSON: refused by the limit (1008), never parsed (1007).
    with tc.websocket_connect("/once-json") as websocket:
        websocket.send_json({"n": 1})
        assert websocket.receive_json() == {"echo": {"n": 1}}
        websocket.send_text("[" * 50_000)
        assert websocket.receive()["code"] == WS_POLICY_VIOLATION


def test_the_loops_need_an_accepted_connection() -> None:
    limit = MessageLimit(RateLimiter("memory://"), "10/minute", name="unaccepted")
    app = FastAPI()

    @app.websocket("/unaccepted")
    async def unaccepted(websocket: WebSocket) -> None:
        async for _ in limit.iter_text(websocket):
            pass  # pragma: no cover

    with (
        TestClient(app) as client,
        pytest.raises(RuntimeError, match="accept"),
        client.websocket_connect("/unaccepted"),
    ):
        pass  # pragma: no cover
