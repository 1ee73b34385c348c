"""WebSocket authentication and connection limits through a real uvicorn server
on 127.0.0.1 and a real client (the ``websockets`` package), from the attacker's side."""

# No `from __future__ import annotations`: FastAPI resolves the endpoints' annotations.

import uuid
from collections.abc import Iterator
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, WebSocket
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin, Subprotocol

from fastapi_secure.auth import BearerAuth, CookieAuth, RoleChecker
from fastapi_secure.ratelimit import RateLimiter
from fastapi_secure.testing import FakeClock
from fastapi_secure.tokens.claims import AccessClaims
from fastapi_secure.tokens.issuer import TokenIssuer
from fastapi_secure.websocket import MessageLimit, accept, guard_connection
from tests.support.auth import ACCESS_TTL, LEEWAY, access_token, make_issuer
from tests.support.live_server import LiveServer, live_server

ORIGIN = "https://app.example.test"
CSRF_SECRET = "csrf-secret-with-at-least-32-bytes-of-entropy!!"
INTERVAL = 0.05
TIMEOUT = 10.0


class Deployment:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.issuer: TokenIssuer = make_issuer(self.clock)
        self.limiter = RateLimiter("memory://")
        self.app = self._app()

    def _app(self) -> FastAPI:
        bearer = BearerAuth(self.issuer)
        query = BearerAuth(self.issuer, allow_query_token=True)
        cookie = CookieAuth(
            self.issuer, csrf_secret=CSRF_SECRET, allowed_origins=[ORIGIN], secure=False
        )
        admin = RoleChecker(["admin"], auth=bearer)
        closing = MessageLimit(self.limiter, "3/minute", name="ws-close")
        erroring = MessageLimit(self.limiter, "3/minute", name="ws-error", on_limit="error")
        clock = self.clock
        app = FastAPI()

        def echo(path: str, auth: Any, limit: MessageLimit) -> None:
            """A route on ``path`` admitted by ``auth`` that echoes "sub:text" under ``limit``."""

            @app.websocket(path)
            async def endpoint(
                websocket: WebSocket, claims: Annotated[AccessClaims, Depends(auth)]
            ) -> None:
                await accept(websocket)
                async with guard_connection(websocket, interval=INTERVAL, clock=clock):
                    async for text in limit.iter_text(websocket, key=claims.sub):
                        await websocket.send_text(f"{claims.sub}:{text}")

        echo("/ws/echo", bearer, closing)
        echo("/ws/soft", bearer, erroring)
        echo("/ws/cookie", cookie, closing)
        echo("/ws/query", query, closing)
        echo("/ws/admin", admin, closing)
        return app


@pytest.fixture(scope="module")
def deployment() -> Deployment:
    return Deployment()


@pytest.fixture(scope="module")
def server(deployment: Deployment) -> Iterator[LiveServer]:
    with live_server(deployment.app) as running:
        yield running


def new_subject() -> str:
    return f"user-{uuid.uuid4().hex[:12]}"


def token_for(server: LiveServer, deployment: Deployment, *roles: str) -> tuple[str, str]:
    subject = new_subject()
    return subject, server.run(access_token(deployment.issuer, subject, roles=roles))


def open_ws(
    server: LiveServer,
    path: str,
    *,
    protocols: list[str] | None = None,
    headers: dict[str, str] | None = None,
    origin: str | None = None,
) -> ClientConnection:
    return connect(
        server.ws_url + path,
        subprotocols=None if protocols is None else [Subprotocol(p) for p in protocols],
        additional_headers=headers,
        origin=None if origin is None else Origin(origin),
        open_timeout=TIMEOUT,
    )


def assert_handshake_refused(
    server: LiveServer,
    path: str,
    *,
    protocols: list[str] | None = None,
    headers: dict[str, str] | None = None,
    origin: str | None = None,
) -> None:
    """A refusal before accept: uvicorn answers the handshake with 403 and no detail."""
    with pytest.raises(InvalidStatus) as caught:
        open_ws(server, path, protocols=protocols, headers=headers, origin=origin)
    answer = caught.value.response
    assert answer.status_code == 403
    assert b"token" not in bytes(answer.body or b"").lower()


def receive_until_closed(ws: ClientConnection) -> None:
    while True:
        ws.recv(timeout=TIMEOUT)


def assert_closed_1008(ws: ClientConnection) -> None:
    with pytest.raises(ConnectionClosed) as caught:
        receive_until_closed(ws)
    assert caught.value.rcvd is not None
    assert caught.value.rcvd.code == 1008
    assert caught.value.rcvd.reason == ""


# --- refused handshakes -------------------------------------------------------


def test_no_token_is_refused_before_accept(server: LiveServer) -> None:
    assert_handshake_refused(server, "/ws/echo")


def test_forged_token_is_refused_before_accept(server: LiveServer, deployment: Deployment) -> None:
    _, token = token_for(server, deployment)
    head, payload, signature = token.split(".")
    forged = f"{head}.{payload}.{signature[:-4]}AAAA"
    assert_handshake_refused(server, "/ws/echo", headers={"Authorization": f"Bearer {forged}"})
    assert_handshake_refused(server, "/ws/echo", protocols=["bearer", forged])
    assert_handshake_refused(server, "/ws/echo", protocols=["bearer"])
    assert_handshake_refused(server, "/ws/echo", protocols=["bearer", token, "bearer", token])


def test_expired_token_is_refused_before_accept(server: LiveServer, deployment: Deployment) -> None:
    _, token = token_for(server, deployment)
    deployment.clock.advance(ACCESS_TTL + LEEWAY + 1)
    assert_handshake_refused(server, "/ws/echo", headers={"Authorization": f"Bearer {token}"})


def test_cookie_from_a_foreign_origin_is_refused_before_accept(
    server: LiveServer, deployment: Deployment
) -> None:
    _, token = token_for(server, deployment)
    cookie = {"Cookie": f"access_token={token}"}
    # Cross-site WebSocket hijacking: the browser attaches the victim's cookie.
    assert_handshake_refused(
        server, "/ws/cookie", headers=cookie, origin="https://evil.example.test"
    )
    # No Origin at all is no browser: refused as well.
    assert_handshake_refused(server, "/ws/cookie", headers=cookie)


def test_query_token_is_ignored_unless_switched_on(
    server: LiveServer, deployment: Deployment
) -> None:
    subject, token = token_for(server, deployment)
    assert_handshake_refused(server, f"/ws/echo?access_token={token}")
    with open_ws(server, f"/ws/query?access_token={token}") as ws:
        ws.send("hi")
        assert ws.recv(timeout=TIMEOUT) == f"{subject}:hi"


def test_role_checker_refuses_a_wrong_role_before_accept(
    server: LiveServer, deployment: Deployment
) -> None:
    _, user_token = token_for(server, deployment, "user")
    assert_handshake_refused(server, "/ws/admin", protocols=["bearer", user_token])
    admin, admin_token = token_for(server, deployment, "admin")
    with open_ws(server, "/ws/admin", protocols=["bearer", admin_token]) as ws:
        ws.send("hi")
        assert ws.recv(timeout=TIMEOUT) == f"{admin}:hi"


# --- admitted connections -----------------------------------------------------


def test_token_in_the_authorization_header_echoes(
    server: LiveServer, deployment: Deployment
) -> None:
    subject, token = token_for(server, deployment)
    with open_ws(server, "/ws/echo", headers={"Authorization": f"Bearer {token}"}) as ws:
        ws.send("hello")
        assert ws.recv(timeout=TIMEOUT) == f"{subject}:hello"


def test_token_in_the_subprotocol_echoes_and_is_never_echoed_back(
    server: LiveServer, deployment: Deployment
) -> None:
    subject, token = token_for(server, deployment)
    with open_ws(server, "/ws/echo", protocols=["bearer", token]) as ws:
        assert ws.subprotocol == "bearer"
        assert ws.response is not None
        assert token not in str(ws.response.headers)
        ws.send("hello")
        assert ws.recv(timeout=TIMEOUT) == f"{subject}:hello"


def test_cookie_with_an_allowed_origin_echoes(server: LiveServer, deployment: Deployment) -> None:
    subject, token = token_for(server, deployment)
    with open_ws(
        server, "/ws/cookie", headers={"Cookie": f"access_token={token}"}, origin=ORIGIN
    ) as ws:
        ws.send("hello")
        assert ws.recv(timeout=TIMEOUT) == f"{subject}:hello"


# --- the connection's lifetime ------------------------------------------------


def test_revoked_token_ends_the_connection_with_1008(
    server: LiveServer, deployment: Deployment
) -> None:
    subject, token = token_for(server, deployment)
    with open_ws(server, "/ws/echo", protocols=["bearer", token]) as ws:
        ws.send("before")
        assert ws.recv(timeout=TIMEOUT) == f"{subject}:before"
        server.run(deployment.issuer.revoke(token))
        assert_closed_1008(ws)


def test_logging_out_everywhere_ends_the_connection(
    server: LiveServer, deployment: Deployment
) -> None:
    subject, token = token_for(server, deployment)
    with open_ws(server, "/ws/echo", protocols=["bearer", token]) as ws:
        server.run(deployment.issuer.revoke_subject(subject))
        assert_closed_1008(ws)


def test_token_expiring_during_the_connection_ends_it(
    server: LiveServer, deployment: Deployment
) -> None:
    subject, token = token_for(server, deployment)
    with open_ws(server, "/ws/echo", protocols=["bearer", token]) as ws:
        ws.send("still valid")
        assert ws.recv(timeout=TIMEOUT) == f"{subject}:still valid"
        deployment.clock.advance(ACCESS_TTL + 1)
        assert_closed_1008(ws)


# --- per-message limit --------------------------------------------------------


def test_message_limit_is_exact_then_closes_1008(
    server: LiveServer, deployment: Deployment
) -> None:
    subject, token = token_for(server, deployment)
    with open_ws(server, "/ws/echo", protocols=["bearer", token]) as ws:
        for number in range(3):
            ws.send(str(number))
            assert ws.recv(timeout=TIMEOUT) == f"{subject}:{number}"
        ws.send("one too many")
        assert_closed_1008(ws)


def test_message_limit_counts_across_connections_of_one_subject(
    server: LiveServer, deployment: Deployment
) -> None:
    subject, token = token_for(server, deployment)
    for number in range(3):
        with open_ws(server, "/ws/echo", protocols=["bearer", token]) as ws:
            ws.send(str(number))
            assert ws.recv(timeout=TIMEOUT) == f"{subject}:{number}"
    with open_ws(server, "/ws/echo", protocols=["bearer", token]) as ws:
        ws.send("fourth")
        assert_closed_1008(ws)


def test_message_limit_in_error_mode_sends_an_error_frame_and_keeps_the_connection(
    server: LiveServer, deployment: Deployment
) -> None:
    subject, token = token_for(server, deployment)
    with open_ws(server, "/ws/soft", protocols=["bearer", token]) as ws:
        for number in range(3):
            ws.send(str(number))
            assert ws.recv(timeout=TIMEOUT) == f"{subject}:{number}"
        for _ in range(2):
            ws.send("refused")
            frame = ws.recv(timeout=TIMEOUT)
            assert '"code":"rate_limited"' in str(frame)
            assert '"retry_after":' in str(frame)
