"""MessageLimit's receive loops from the attacker's side: frames of the wrong kind,
text that is not JSON, JSON nested past the parser's depth.

Each used to escape the route as an exception (KeyError, JSONDecodeError,
RecursionError): the server logged an application error and closed with 1011.
The loop now closes the connection itself, with the RFC 6455 code that says why.
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

from fastapi_secure.ratelimit import RateLimiter
from fastapi_secure.websocket import (
    WS_INVALID_PAYLOAD,
    WS_UNSUPPORTED_DATA,
    MessageLimit,
)


def make_app() -> FastAPI:
    limit = MessageLimit(RateLimiter("memory://"), "1000/minute", name="attack")
    app = FastAPI()

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
