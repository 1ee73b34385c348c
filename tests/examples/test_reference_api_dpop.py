"""``DPOP_REQUIRED=true`` in the reference API, on SQLite + memory and PostgreSQL + Redis.

Login and refresh need a DPoP proof and give tokens bound to the client's key;
every route that takes an access token wants ``Authorization: DPoP`` and a
proof signed for ``PUBLIC_BASE_URL``. The attacker has the tokens, or a captured
proof, never the private key.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from examples.reference_api.main import create_app
from examples.reference_api.migrate import aupgrade_to_head
from examples.reference_api.settings import AppSettings
from fastapi.testclient import TestClient
from pydantic import ValidationError
from starlette.websockets import WebSocketDisconnect

from tests.conftest import fresh_postgres_database
from tests.support.dpop import DPoPClient
from tests.support.reference_api import ADMIN_PASSWORD, ALICE_PASSWORD, Api, make_settings, serve

pytestmark = pytest.mark.anyio


@pytest.fixture(
    params=[
        "sqlite-memory",
        pytest.param("postgres-redis", marks=[pytest.mark.postgres, pytest.mark.redis]),
    ]
)
async def api(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Api]:
    if request.param == "sqlite-memory":
        settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'api.db'}", dpop_required=True)
        async for served in serve(settings):
            yield served
        return
    redis_url: str = request.getfixturevalue("redis_url")
    prefix: str = request.getfixturevalue("redis_prefix")
    async with fresh_postgres_database() as postgres_url:
        settings = make_settings(
            postgres_url, redis_url, redis_key_prefix=prefix, dpop_required=True
        )
        async for served in serve(settings):
            yield served


class Holder:
    """A client with its DPoP key, signing for the API's public URL."""

    def __init__(self, api: Api, key: DPoPClient | None = None) -> None:
        self.api = api
        self.key = key or DPoPClient()
        self.base = api.settings.public_base_url.rstrip("/")

    def proof(self, method: str, path: str, token: str | None = None, **extra: Any) -> str:
        url = f"{self.base}{path}"
        return self.key.proof(method, url, iat=time.time(), access_token=token, **extra)

    def headers(self, token: str, method: str, path: str, **extra: Any) -> dict[str, str]:
        return {"Authorization": f"DPoP {token}", "DPoP": self.proof(method, path, token, **extra)}

    async def login(self, name: str, password: str) -> httpx.Response:
        return await self.api.client.post(
            "/auth/login",
            data={"username": name, "password": password},
            headers={"DPoP": self.proof("POST", "/auth/login")},
        )

    async def refresh(self, refresh_token: str) -> httpx.Response:
        return await self.api.client.post(
            "/auth/refresh",
            json={"refresh_token": refresh_token},
            headers={"DPoP": self.proof("POST", "/auth/refresh")},
        )


def refused(response: httpx.Response, error: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith(f'DPoP error="{error}"'), (
        response.headers["www-authenticate"]
    )


async def _alice(api: Api) -> tuple[Holder, dict[str, Any]]:
    assert (await api.register("alice@example.com", "alice", ALICE_PASSWORD)).status_code == 201
    alice = Holder(api)
    login = await alice.login("alice", ALICE_PASSWORD)
    assert login.status_code == 200, login.text
    pair: dict[str, Any] = login.json()
    return alice, pair


async def test_login_with_a_proof_gives_a_bound_pair_that_works_with_proofs(api: Api) -> None:
    alice, pair = await _alice(api)
    assert pair["token_type"] == "DPoP"
    token = pair["access_token"]
    me = await api.client.get("/users/me", headers=alice.headers(token, "GET", "/users/me"))
    assert me.status_code == 200, me.text
    assert me.json()["username"] == "alice"
    sessions = await api.client.get(
        "/users/me/sessions", headers=alice.headers(token, "GET", "/users/me/sessions")
    )
    assert sessions.status_code == 200, sessions.text


async def test_a_login_without_a_proof_is_refused(api: Api) -> None:
    await api.register("alice@example.com", "alice", ALICE_PASSWORD)
    response = await api.client.post(
        "/auth/login", data={"username": "alice", "password": ALICE_PASSWORD}
    )
    refused(response, "invalid_dpop_proof")


async def test_protected_routes_refuse_everything_but_a_fresh_proof_of_the_key(api: Api) -> None:
    alice, pair = await _alice(api)
    token = pair["access_token"]
    me = "/users/me"

    no_proof = await api.client.get(me, headers={"Authorization": f"DPoP {token}"})
    refused(no_proof, "invalid_dpop_proof")

    as_bearer = await api.client.get(me, headers={"Authorization": f"Bearer {token}"})
    refused(as_bearer, "invalid_token")

    honest = alice.headers(token, "GET", me)
    assert (await api.client.get(me, headers=honest)).status_code == 200
    refused(await api.client.get(me, headers=honest), "invalid_dpop_proof")  # replayed

    wrong_htm = alice.headers(token, "POST", me)
    refused(await api.client.get(me, headers=wrong_htm), "invalid_dpop_proof")
    wrong_htu = alice.headers(token, "GET", "/users/me/sessions")
    refused(await api.client.get(me, headers=wrong_htu), "invalid_dpop_proof")
    # The request's own Host is not the URL clients sign for.
    internal = {
        "Authorization": f"DPoP {token}",
        "DPoP": alice.key.proof(
            "GET", f"http://testserver{me}", iat=time.time(), access_token=token
        ),
    }
    refused(await api.client.get(me, headers=internal), "invalid_dpop_proof")

    thief = Holder(api)  # has the token, signs with their own key
    refused(await api.client.get(me, headers=thief.headers(token, "GET", me)), "invalid_dpop_proof")

    admin = await api.client.get(
        "/admin/users", headers=alice.headers(token, "GET", "/admin/users")
    )
    assert admin.status_code == 403  # authenticated, not an admin


async def test_refresh_needs_a_proof_from_the_same_key(api: Api) -> None:
    alice, pair = await _alice(api)
    refresh = pair["refresh_token"]

    no_proof = await api.client.post("/auth/refresh", json={"refresh_token": refresh})
    refused(no_proof, "invalid_dpop_proof")
    refused(await Holder(api).refresh(refresh), "invalid_dpop_proof")  # a thief's key

    renewed = await alice.refresh(refresh)  # the failures burned nothing
    assert renewed.status_code == 200, renewed.text
    assert renewed.json()["token_type"] == "DPoP"
    token = renewed.json()["access_token"]
    me = await api.client.get("/users/me", headers=alice.headers(token, "GET", "/users/me"))
    assert me.status_code == 200
    # The consumed refresh token, even with the right key, is reuse: the session ends.
    assert (await alice.refresh(refresh)).status_code == 401
    gone = await api.client.get("/users/me", headers=alice.headers(token, "GET", "/users/me"))
    refused(gone, "invalid_token")


async def test_logout_and_admin_routes_take_dpop(api: Api) -> None:
    admin = Holder(api)
    pair = (await admin.login("admin", ADMIN_PASSWORD)).json()
    token = pair["access_token"]
    listed = await api.client.get(
        "/admin/users", headers=admin.headers(token, "GET", "/admin/users")
    )
    assert listed.status_code == 200, listed.text
    as_bearer = await api.client.get("/admin/users", headers={"Authorization": f"Bearer {token}"})
    refused(as_bearer, "invalid_token")
    out = await api.client.post(
        "/auth/logout", headers=admin.headers(token, "POST", "/auth/logout")
    )
    assert out.status_code == 204
    after = await api.client.get(
        "/admin/users", headers=admin.headers(token, "GET", "/admin/users")
    )
    refused(after, "invalid_token")


async def test_api_keys_are_made_with_dpop_and_used_as_keys(api: Api) -> None:
    alice, pair = await _alice(api)
    token = pair["access_token"]
    path = "/users/me/api-keys"
    made = await api.client.post(
        path, headers=alice.headers(token, "POST", path), json={"name": "ci", "expires_in": 3600}
    )
    assert made.status_code == 201, made.text
    key = {"X-API-Key": made.json()["key"]}
    # An API key is its own credential, not a DPoP token: it works where keys do...
    assert (await api.client.get("/users/me", headers=key)).status_code == 200
    # ...and still cannot manage keys.
    assert (await api.client.get(path, headers=key)).status_code == 403
    # Nothing at all: both challenges.
    anonymous = await api.client.get("/users/me")
    assert anonymous.status_code == 401
    challenge = anonymous.headers["www-authenticate"]
    assert challenge.startswith('DPoP algs="')
    assert challenge.endswith('APIKey header="X-API-Key"')


async def test_a_password_change_with_a_proof(api: Api) -> None:
    alice, pair = await _alice(api)
    token = pair["access_token"]
    path = "/users/me/password"
    body = {"current_password": ALICE_PASSWORD, "new_password": "another-long-passphrase-93"}
    as_bearer = await api.client.patch(
        path, json=body, headers={"Authorization": f"Bearer {token}"}
    )
    refused(as_bearer, "invalid_token")
    changed = await api.client.patch(path, json=body, headers=alice.headers(token, "PATCH", path))
    assert changed.status_code == 204, changed.text


def test_cookie_transport_and_dpop_are_refused_together(tmp_path: Path) -> None:
    # pydantic reports the validator's ConfigurationError as a ValidationError.
    with pytest.raises(ValidationError, match="AUTH_TRANSPORT=bearer"):
        make_settings(
            f"sqlite+aiosqlite:///{tmp_path / 'api.db'}",
            auth_transport="cookie",
            dpop_required=True,
        )


@pytest.fixture
def ws_api(tmp_path: Path) -> Iterator[TestClient]:
    settings: AppSettings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'api.db'}", dpop_required=True
    )
    anyio.run(aupgrade_to_head, settings.database_url.get_secret_value())  # type: ignore[union-attr]
    with TestClient(create_app(settings), client=("203.0.113.7", 40000)) as client:
        yield client


@pytest.mark.parametrize("with_token", [False, True])
def test_websocket_handshakes_are_refused_under_dpop(ws_api: TestClient, with_token: bool) -> None:
    headers = {}
    if with_token:
        issuer = ws_api.app.state.components.issuer  # type: ignore[attr-defined]
        assert ws_api.portal is not None
        pair = ws_api.portal.call(lambda: issuer.issue("1", dpop_jkt=DPoPClient().jkt))
        headers = {"Authorization": f"DPoP {pair.access_token}"}
    with (
        pytest.raises(WebSocketDisconnect) as caught,
        ws_api.websocket_connect("/ws/echo", headers=headers),
    ):
        pass  # pragma: no cover
    assert caught.value.code == 1008


def test_every_route_that_reads_a_login_proof_declares_it(tmp_path: Path) -> None:
    """Login, refresh and the second steps (code, passkey) read a DPoP proof
    themselves, not through a Header() parameter: the schema still names it."""
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'api.db'}", dpop_required=True)
    paths = create_app(settings).openapi()["paths"]
    readers = ["/auth/login", "/auth/refresh", "/auth/mfa/verify", "/auth/passkey/verify"]
    for path in readers:
        parameters = paths[path]["post"].get("parameters", [])
        declared = [p for p in parameters if p["in"] == "header" and p["name"] == "DPoP"]
        assert len(declared) == 1, path
        assert declared[0]["required"] is True, path
