"""``WS /ws/echo`` of the reference API: login, then echo; refused without a token;
an oversized message closes it with 1009. (A connection ended by revocation within
the guard's interval is tested on the block, through a real server, in
tests/test_websocket.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from examples.reference_api.main import create_app
from examples.reference_api.migrate import aupgrade_to_head
from examples.reference_api.routes.realtime import MESSAGE_MAX_BYTES
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from tests.support.reference_api import ADMIN_PASSWORD, make_settings


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'api.db'}")
    anyio.run(aupgrade_to_head, settings.database_url.get_secret_value())  # type: ignore[union-attr]
    with TestClient(create_app(settings), client=("203.0.113.7", 40000)) as client:
        yield client


def login(api: TestClient) -> str:
    answer = api.post("/auth/login", data={"username": "admin", "password": ADMIN_PASSWORD})
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


def test_echo_needs_a_token(api: TestClient) -> None:
    with pytest.raises(WebSocketDisconnect) as caught, api.websocket_connect("/ws/echo"):
        pass  # pragma: no cover
    assert caught.value.code == 1008


def test_echo_with_the_bearer_subprotocol(api: TestClient) -> None:
    token = login(api)
    with api.websocket_connect("/ws/echo", subprotocols=["bearer", token]) as ws:
        assert ws.accepted_subprotocol == "bearer"
        ws.send_text("ping")
        assert ws.receive_text() == "ping"


def test_echo_closes_on_a_message_over_its_bound(api: TestClient) -> None:
    token = login(api)
    with api.websocket_connect("/ws/echo", subprotocols=["bearer", token]) as ws:
        ws.send_text("x" * MESSAGE_MAX_BYTES)
        assert ws.receive_text() == "x" * MESSAGE_MAX_BYTES
        ws.send_text("x" * (MESSAGE_MAX_BYTES + 1))
        assert ws.receive()["code"] == 1009
