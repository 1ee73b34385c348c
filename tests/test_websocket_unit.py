"""fastapi_secure.websocket in process (Starlette's TestClient): the guard's edge
cases (fail closed, explicit token, normal end), accept, MessageLimit options."""

# No `from __future__ import annotations`: FastAPI resolves the endpoints' annotations.

from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated, Any, TypeVar

import pytest
from fastapi import Depends, FastAPI, WebSocket
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from fastapi_secure.auth import BearerAuth, CookieAuth
from fastapi_secure.errors import ConfigurationError, StoreUnavailableError
from fastapi_secure.events import SecurityEvent
from fastapi_secure.ratelimit import RateLimiter
from fastapi_secure.testing import FakeClock
from fastapi_secure.tokens.claims import AccessClaims
from fastapi_secure.tokens.issuer import TokenIssuer
from fastapi_secure.websocket import (
    ConnectionGuard,
    MessageLimit,
    accept,
    guard_connection,
    select_subprotocol,
)
from tests.support.auth import make_issuer

_T = TypeVar("_T")
INTERVAL = 0.01
ORIGIN = "https://app.example.test"


class Outage:
    """An issuer whose store went away after the handshake."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def verify_access(self, token: str) -> AccessClaims:
        raise self.error


class Collected:
    def __init__(self) -> None:
        self.events: list[SecurityEvent] = []

    async def emit(self, event: SecurityEvent) -> None:
        self.events.append(event)


class World:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.issuer: TokenIssuer = make_issuer(self.clock)
        self.guards: list[ConnectionGuard] = []
        self.events = Collected()
        self.limiter = RateLimiter("memory://")
        self.app = self._app()

    def _app(self) -> FastAPI:
        bearer = BearerAuth(self.issuer)
        cookie = CookieAuth(
            self.issuer,
            csrf_secret="csrf-secret-with-at-least-32-bytes-of-entropy!!",
            allowed_origins=[ORIGIN],
            secure=False,
            events=self.events,
        )
        binary = MessageLimit(self.limiter, "2/minute", name="bin")
        documents = MessageLimit(self.limiter, "2/minute", name="json", on_limit="error")
        app = FastAPI()

        @app.websocket("/outage")
        async def outage(
            websocket: WebSocket, claims: Annotated[AccessClaims, Depends(bearer)]
        ) -> None:
            await accept(websocket)
            guard = guard_connection(
                websocket,
                Outage(StoreUnavailableError()),
                "some.token.value",
                interval=INTERVAL,
                clock=self.clock,
            )
            self.guards.append(guard)
            async with guard:
                await websocket.receive_text()

        @app.websocket("/crash")
        async def crash(
            websocket: WebSocket, claims: Annotated[AccessClaims, Depends(bearer)]
        ) -> None:
            await accept(websocket)
            guard = guard_connection(
                websocket, Outage(RuntimeError("driver bug")), "x.y.z", interval=INTERVAL
            )
            self.guards.append(guard)
            async with guard:
                await websocket.receive_text()

        @app.websocket("/explicit")
        async def explicit(websocket: WebSocket) -> None:
            token = websocket.query_params["t"]
            await websocket.accept()
            guard = guard_connection(websocket, self.issuer, token, clock=self.clock)
            self.guards.append(guard)
            async with guard:
                await websocket.send_text("open")
                await websocket.receive_text()

        @app.websocket("/short")
        async def short(
            websocket: WebSocket, claims: Annotated[AccessClaims, Depends(bearer)]
        ) -> None:
            await accept(websocket)
            guard = guard_connection(websocket)
            self.guards.append(guard)
            async with guard:
                await websocket.send_text(claims.sub)
            await websocket.close()

        @app.websocket("/cookie")
        async def by_cookie(
            websocket: WebSocket, claims: Annotated[AccessClaims, Depends(cookie)]
        ) -> None:
            await accept(websocket)  # pragma: no cover - only refused handshakes here

        @app.websocket("/bytes")
        async def by_bytes(websocket: WebSocket) -> None:
            await websocket.accept()
            async for data in binary.iter_bytes(websocket):
                await websocket.send_bytes(data)

        @app.websocket("/json")
        async def by_json(websocket: WebSocket) -> None:
            await websocket.accept()
            async for document in documents.iter_json(websocket):
                await websocket.send_json({"echo": document})

        @app.websocket("/protocols")
        async def protocols(websocket: WebSocket) -> None:
            chosen = select_subprotocol(websocket, ("graphql-transport-ws", "bearer"))
            await accept(websocket, subprotocols=("graphql-transport-ws", "bearer"))
            await websocket.send_json({"chosen": chosen})
            await websocket.close()

        return app


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
def tc(world: World) -> Iterator[TestClient]:
    with TestClient(world.app) as running:
        yield running


def on_app_loop(tc: TestClient, function: Callable[[], Awaitable[_T]]) -> _T:
    assert tc.portal is not None
    return tc.portal.call(function)


def token(tc: TestClient, world: World, subject: str = "alice") -> str:
    return on_app_loop(tc, lambda: world.issuer.issue(subject)).access_token


def closed_with(tc: TestClient, path: str, **options: Any) -> int:
    with tc.websocket_connect(path, **options) as ws:
        with pytest.raises(WebSocketDisconnect) as caught:
            receive_forever(ws)
        return caught.value.code


def receive_forever(ws: Any) -> None:
    while True:
        ws.receive_text()


@pytest.mark.parametrize("path", ["/outage", "/crash"])
def test_a_token_that_cannot_be_checked_ends_the_connection(
    tc: TestClient, world: World, path: str
) -> None:
    value = token(tc, world)
    assert closed_with(tc, path, subprotocols=["bearer", value]) == 1008
    (guard,) = world.guards
    assert guard.ended
    assert guard.reason is not None
    assert "driver bug" not in guard.reason
    assert value not in repr(guard)
    assert "token" not in repr(guard).lower().replace("connectionguard", "")


def test_an_explicit_revoked_token_is_checked_at_once(tc: TestClient, world: World) -> None:
    value = token(tc, world)
    on_app_loop(tc, lambda: world.issuer.revoke(value))
    with tc.websocket_connect(f"/explicit?t={value}") as ws:
        assert ws.receive_text() == "open"
        with pytest.raises(WebSocketDisconnect) as caught:
            ws.receive_text()
    assert caught.value.code == 1008
    assert world.guards[0].ended


def test_a_guard_whose_block_ends_first_closes_nothing(tc: TestClient, world: World) -> None:
    value = token(tc, world)
    with tc.websocket_connect("/short", subprotocols=["bearer", value]) as ws:
        assert ws.receive_text() == "alice"
        with pytest.raises(WebSocketDisconnect) as caught:
            ws.receive_text()
    assert caught.value.code == 1000
    assert not world.guards[0].ended


def test_guard_configuration_errors(tc: TestClient, world: World) -> None:
    scope = {"type": "websocket", "headers": [], "path": "/", "query_string": b""}

    async def nothing(*_: Any) -> Any:
        return None  # pragma: no cover

    websocket = WebSocket(scope, nothing, nothing)
    with pytest.raises(ConfigurationError):
        guard_connection(websocket)
    with pytest.raises(ConfigurationError):
        guard_connection(websocket, object(), "a.b.c")  # type: ignore[arg-type]
    for interval in (0, -1, float("nan"), float("inf"), True):
        with pytest.raises(ConfigurationError):
            guard_connection(websocket, world.issuer, "a.b.c", interval=interval)


def test_cookie_handshake_from_a_foreign_origin_is_a_security_event(
    tc: TestClient, world: World
) -> None:
    value = token(tc, world)
    with (
        pytest.raises(WebSocketDisconnect),
        tc.websocket_connect(
            "/cookie",
            headers={"Cookie": f"access_token={value}", "Origin": "https://evil.example.test"},
        ),
    ):
        pass  # pragma: no cover
    assert [event.type.value for event in world.events.events] == ["origin_refused"]


def test_binary_messages_limit_closes_1008(tc: TestClient) -> None:
    with tc.websocket_connect("/bytes") as ws:
        for data in (b"1", b"2"):
            ws.send_bytes(data)
            assert ws.receive_bytes() == data
        ws.send_bytes(b"3")
        with pytest.raises(WebSocketDisconnect) as caught:
            ws.receive_bytes()
    assert caught.value.code == 1008


def test_json_messages_limit_answers_error_frames(tc: TestClient) -> None:
    with tc.websocket_connect("/json") as ws:
        for number in range(2):
            ws.send_json({"n": number})
            assert ws.receive_json() == {"echo": {"n": number}}
        ws.send_json({"n": 2})
        error = ws.receive_json()["error"]
        assert error["code"] == "rate_limited"
        assert error["retry_after"] >= 1


def test_accept_prefers_the_apps_order_and_never_the_token(tc: TestClient, world: World) -> None:
    value = token(tc, world)
    with tc.websocket_connect(
        "/protocols", subprotocols=["bearer", value, "graphql-transport-ws"]
    ) as ws:
        assert ws.accepted_subprotocol == "graphql-transport-ws"
        assert ws.receive_json() == {"chosen": "graphql-transport-ws"}
    with tc.websocket_connect("/protocols", subprotocols=["bearer", value]) as ws:
        assert ws.accepted_subprotocol == "bearer"
    with tc.websocket_connect("/protocols", subprotocols=["other", value]) as ws:
        assert ws.accepted_subprotocol is None
    oversized = {"Sec-WebSocket-Protocol": "bearer, " + "x" * 20000}
    with tc.websocket_connect("/protocols", headers=oversized) as ws:
        assert ws.accepted_subprotocol is None


@pytest.mark.parametrize("name", ["", "a,b", " bearer"])
@pytest.mark.anyio
async def test_accept_refuses_bad_protocol_names(name: str) -> None:
    scope = {"type": "websocket", "headers": [], "path": "/", "query_string": b""}

    async def nothing(*_: Any) -> Any:
        return None  # pragma: no cover

    with pytest.raises(ConfigurationError):
        await accept(WebSocket(scope, nothing, nothing), subprotocols=(name,))


@pytest.mark.parametrize(
    "options",
    [
        {"limiter": object()},
        {"on_limit": "ignore"},
        {"rates": "often"},
        {"name": "has space"},
    ],
)
def test_message_limit_configuration_errors(options: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {
        "limiter": RateLimiter("memory://"),
        "rates": "1/second",
        "name": "chat",
        **options,
    }
    limiter = arguments.pop("limiter")
    rates = arguments.pop("rates")
    with pytest.raises(ConfigurationError):
        MessageLimit(limiter, rates, **arguments)


def test_message_limit_repr() -> None:
    limit = MessageLimit(RateLimiter("memory://"), "1/second", name="chat")
    assert repr(limit) == (
        "MessageLimit('1/second', name='chat', on_limit='close', max_bytes=65536)"
    )
