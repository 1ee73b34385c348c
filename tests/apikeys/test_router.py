"""api_keys_router: a user's own keys over HTTP (create once, list, revoke, rotate)."""

# No `from __future__ import annotations`: FastAPI resolves string annotations in the
# module globals, and these endpoints close over per-test dependencies.
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends, FastAPI

from fastapi_secure.apikeys.auth import APIKeyAuth
from fastapi_secure.apikeys.keys import APIKeyManager
from fastapi_secure.apikeys.router import api_keys_router
from fastapi_secure.apikeys.stores.memory import MemoryAPIKeyStore
from fastapi_secure.auth import BearerAuth, FirstOf, require_fresh
from fastapi_secure.errors import ConfigurationError
from fastapi_secure.testing import FakeClock
from fastapi_secure.tokens.claims import AccessClaims
from fastapi_secure.tokens.issuer import TokenIssuer
from tests.support.auth import access_token, bearer, client, make_issuer

pytestmark = pytest.mark.anyio

BASE = "/users/me/api-keys"


@pytest.fixture
def issuer(fake_clock: FakeClock) -> TokenIssuer:
    return make_issuer(fake_clock)


@pytest.fixture
def manager(fake_clock: FakeClock) -> APIKeyManager:
    return APIKeyManager(MemoryAPIKeyStore(), clock=fake_clock)


def make_app(manager: APIKeyManager, issuer: TokenIssuer, **options: Any) -> FastAPI:
    bearer_auth = BearerAuth(issuer)
    either = FirstOf(bearer_auth, APIKeyAuth(manager))
    options.setdefault("grantable_scopes", ["orders:read", "orders:write"])
    app = FastAPI()
    app.include_router(api_keys_router(manager, auth=either, **options))

    @app.get("/whoami")
    async def whoami(claims: Annotated[AccessClaims, Depends(either)]) -> dict[str, Any]:
        return {"sub": claims.sub, "scopes": sorted(claims.scopes)}

    return app


async def test_create_use_list_revoke(
    manager: APIKeyManager, issuer: TokenIssuer, fake_clock: FakeClock
) -> None:
    token = bearer(await access_token(issuer, "alice", roles=["editor"]))
    async with client(make_app(manager, issuer)) as http:
        made = await http.post(
            BASE, headers=token, json={"name": "export", "scopes": ["orders:read"]}
        )
        assert made.status_code == 201
        assert made.headers["cache-control"] == "no-store"
        body = made.json()
        key = body["key"]
        assert body["roles"] == ["editor"]
        assert body["expires_at"] == fake_clock() + 90 * 86400
        used = await http.get("/whoami", headers={"X-API-Key": key})
        assert used.json() == {"sub": "alice", "scopes": ["orders:read"]}

        listed = await http.get(BASE, headers=token)
        assert [item["id"] for item in listed.json()] == [body["id"]]
        assert key not in listed.text
        assert key.split("_")[2] not in listed.text

        assert (await http.delete(f"{BASE}/{body['id']}", headers=token)).status_code == 204
        assert (await http.get("/whoami", headers={"X-API-Key": key})).status_code == 401
        assert (await http.get(BASE, headers=token)).json()[0]["revoked"] is True


async def test_rotate_over_http(
    manager: APIKeyManager, issuer: TokenIssuer, fake_clock: FakeClock
) -> None:
    token = bearer(await access_token(issuer, "alice"))
    async with client(make_app(manager, issuer)) as http:
        old = (await http.post(BASE, headers=token, json={"name": "ci"})).json()
        new = await http.post(f"{BASE}/{old['id']}/rotate", headers=token, json={"overlap": 60})
        assert new.status_code == 201
        assert new.headers["cache-control"] == "no-store"
        fake_clock.advance(60)
        assert (await http.get("/whoami", headers={"X-API-Key": old["key"]})).status_code == 401
        assert (await http.get("/whoami", headers={"X-API-Key": new.json()["key"]})).json()[
            "sub"
        ] == "alice"
        again = await http.post(f"{BASE}/{old['id']}/rotate", headers=token)
        assert again.status_code == 404
        default = await http.post(f"{BASE}/{new.json()['id']}/rotate", headers=token)
        assert default.status_code == 201


async def test_another_users_key_is_not_found(manager: APIKeyManager, issuer: TokenIssuer) -> None:
    alice = bearer(await access_token(issuer, "alice"))
    mallory = bearer(await access_token(issuer, "mallory"))
    async with client(make_app(manager, issuer)) as http:
        made = (await http.post(BASE, headers=alice, json={"name": "ci"})).json()
        for answer in (
            await http.delete(f"{BASE}/{made['id']}", headers=mallory),
            await http.post(f"{BASE}/{made['id']}/rotate", headers=mallory),
            await http.delete(f"{BASE}/not-an-id", headers=alice),
        ):
            assert answer.status_code == 404
            assert answer.json()["detail"]["code"] == "not_found"
        assert (await http.get(BASE, headers=mallory)).json() == []
        assert (await http.get("/whoami", headers={"X-API-Key": made["key"]})).status_code == 200


async def test_a_key_cannot_manage_keys(manager: APIKeyManager, issuer: TokenIssuer) -> None:
    key = (await manager.create("alice", name="ci")).key
    async with client(make_app(manager, issuer)) as http:
        for method, path in (
            ("POST", BASE),
            ("GET", BASE),
            ("POST", f"{BASE}/{key.split('_')[1]}/rotate"),
            ("DELETE", f"{BASE}/{key.split('_')[1]}"),
        ):
            answer = await http.request(
                method, path, headers={"X-API-Key": key}, json={"name": "x"}
            )
            assert answer.status_code == 403, (method, path)
    assert len(await manager.list_for("alice")) == 1


async def test_unauthenticated_is_401(manager: APIKeyManager, issuer: TokenIssuer) -> None:
    async with client(make_app(manager, issuer)) as http:
        assert (await http.get(BASE)).status_code == 401
        assert (await http.post(BASE, json={"name": "x"})).status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "scopes": ["admin"]},
        {"name": "x", "expires_in": 366 * 86400},
        {"name": "x", "expires_in": 0},
        {"name": ""},
        {"name": "x" * 101},
        {"name": "line\nbreak"},
        {"name": "x", "roles": ["admin"]},
        {},
    ],
)
async def test_bad_requests_are_422(
    manager: APIKeyManager, issuer: TokenIssuer, body: dict[str, Any]
) -> None:
    token = bearer(await access_token(issuer, "alice"))
    async with client(make_app(manager, issuer)) as http:
        answer = await http.post(BASE, headers=token, json=body)
    assert answer.status_code == 422
    assert await manager.list_for("alice") == []


async def test_a_too_long_overlap_is_422(manager: APIKeyManager, issuer: TokenIssuer) -> None:
    token = bearer(await access_token(issuer, "alice"))
    async with client(make_app(manager, issuer, max_overlap=3600)) as http:
        made = (await http.post(BASE, headers=token, json={"name": "ci"})).json()
        answer = await http.post(
            f"{BASE}/{made['id']}/rotate", headers=token, json={"overlap": 3601}
        )
    assert answer.status_code == 422


async def test_keys_per_user_are_capped(manager: APIKeyManager, issuer: TokenIssuer) -> None:
    token = bearer(await access_token(issuer, "alice"))
    async with client(make_app(manager, issuer, max_keys=2)) as http:
        made = [(await http.post(BASE, headers=token, json={"name": f"k{i}"})) for i in range(3)]
        assert [answer.status_code for answer in made] == [201, 201, 409]
        await http.delete(f"{BASE}/{made[0].json()['id']}", headers=token)
        assert (await http.post(BASE, headers=token, json={"name": "k3"})).status_code == 201


async def test_creation_can_require_a_step_up(manager: APIKeyManager, issuer: TokenIssuer) -> None:
    step_up = require_fresh(BearerAuth(issuer))
    fresh = bearer(await access_token(issuer, "alice", fresh=True))
    stale = bearer(await access_token(issuer, "alice", fresh=False))
    async with client(make_app(manager, issuer, manage_auth=step_up)) as http:
        refused = await http.post(BASE, headers=stale, json={"name": "ci"})
        assert refused.status_code == 401
        assert refused.json()["detail"]["code"] == "fresh_token_required"
        assert (await http.get(BASE, headers=stale)).status_code == 200
        assert (await http.post(BASE, headers=fresh, json={"name": "ci"})).status_code == 201


async def test_optional_auth_without_credentials_is_401(
    manager: APIKeyManager, issuer: TokenIssuer
) -> None:
    app = FastAPI()
    app.include_router(api_keys_router(manager, auth=BearerAuth(issuer, auto_error=False)))
    async with client(app) as http:
        answer = await http.get(BASE)
    assert answer.status_code == 401


@pytest.mark.parametrize(
    "options",
    [
        {"default_lifetime": 0},
        {"default_lifetime": 10, "max_lifetime": 5},
        {"max_lifetime": float("inf"), "default_lifetime": 5},
        {"max_overlap": -1},
        {"max_overlap": float("inf")},
        {"max_keys": 0},
    ],
)
def test_router_configuration_is_checked(
    manager: APIKeyManager, issuer: TokenIssuer, options: dict[str, Any]
) -> None:
    with pytest.raises(ConfigurationError):
        api_keys_router(manager, auth=BearerAuth(issuer), **options)


def test_openapi_documents_every_answer_and_both_schemes(
    manager: APIKeyManager, issuer: TokenIssuer
) -> None:
    replacement = {422: {"description": "the app's own validation answer"}}
    schema = make_app(manager, issuer, responses=replacement).openapi()
    paths = schema["paths"]
    expected = {
        ("post", BASE): {"201", "401", "403", "409", "422", "503"},
        ("get", BASE): {"200", "401", "403", "503"},
        ("delete", f"{BASE}/{{key_id}}"): {"204", "401", "403", "404", "422", "503"},
        ("post", f"{BASE}/{{key_id}}/rotate"): {"201", "401", "403", "404", "422", "503"},
    }
    for (method, path), codes in expected.items():
        operation = paths[path][method]
        assert set(operation["responses"]) == codes, (method, path)
        assert operation["security"] == [{"BearerAuth": []}, {"APIKeyAuth": []}]
        if "422" in codes and method == "post" and path == BASE:
            assert operation["responses"]["422"]["description"] == (
                "the app's own validation answer"
            )
    assert "key" in schema["components"]["schemas"]["NewAPIKeyOut"]["properties"]
    assert "key" not in schema["components"]["schemas"]["APIKeyOut"]["properties"]


async def test_an_oversized_key_id_is_422(manager: APIKeyManager, issuer: TokenIssuer) -> None:
    token = bearer(await access_token(issuer, "alice"))
    async with client(make_app(manager, issuer)) as http:
        answer = await http.delete(f"{BASE}/{'A' * 65}", headers=token)
    assert answer.status_code == 422


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "TRACE"])
async def test_a_wrong_method_is_405_naming_every_allowed_one(
    manager: APIKeyManager, issuer: TokenIssuer, method: str
) -> None:
    token = bearer(await access_token(issuer, "alice"))
    outer = FastAPI()
    # Included twice over (app <- router <- api_keys_router), as applications do.
    users = APIRouter(prefix="/users")
    users.include_router(api_keys_router(manager, auth=BearerAuth(issuer), prefix="/me/api-keys"))
    outer.include_router(users)
    for app in (make_app(manager, issuer), outer):
        async with client(app) as http:
            refused = await http.request(method, BASE, headers=token)
            assert refused.status_code == 405
            assert sorted(refused.headers["allow"].split(", ")) == ["GET", "POST"]
            # The routes themselves are unchanged.
            assert (await http.get(BASE, headers=token)).status_code == 200
            one = await http.request(method, f"{BASE}/some-id/rotate", headers=token)
            assert one.status_code == 405
            assert one.headers["allow"] == "POST"
