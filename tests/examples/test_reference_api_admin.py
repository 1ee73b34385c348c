"""The reference API's ``/admin`` routes (role check, roles, deactivation)."""

from __future__ import annotations

import pytest

from tests.support.reference_api import ADMIN_PASSWORD, ALICE_PASSWORD, Api, bearer

pytestmark = pytest.mark.anyio


async def test_admin_routes_and_deactivation(api: Api) -> None:
    await api.register("gina@example.com", "gina", ALICE_PASSWORD)
    user = await api.login("gina", ALICE_PASSWORD)
    forbidden = await api.client.get("/admin/users", headers=bearer(user))
    assert forbidden.status_code == 403
    assert (await api.client.get("/admin/users")).status_code == 401

    admin = await api.login("admin", ADMIN_PASSWORD)
    listed = await api.client.get("/admin/users?limit=1", headers=bearer(admin))
    assert listed.status_code == 200
    page = listed.json()
    assert page["total"] == 2
    assert len(page["items"]) == 1
    assert page["limit"] == 1
    gina_id = next(
        item["id"]
        for item in (await api.client.get("/admin/users", headers=bearer(admin))).json()["items"]
        if item["username"] == "gina"
    )
    granted = await api.client.post(
        f"/admin/users/{gina_id}/roles", headers=bearer(admin), json={"roles": ["editor"]}
    )
    assert granted.status_code == 200
    assert granted.json()["roles"] == ["editor"]
    # The role reaches gina's tokens at her next refresh, through the grant loader.
    refreshed = (
        await api.client.post("/auth/refresh", json={"refresh_token": user["refresh_token"]})
    ).json()
    assert refreshed["access_token"]
    missing = await api.client.post(
        "/admin/users/999999/roles", headers=bearer(admin), json={"roles": ["editor"]}
    )
    assert missing.status_code == 404

    off = await api.client.post(f"/admin/users/{gina_id}/deactivate", headers=bearer(admin))
    assert off.status_code == 200
    assert off.json()["is_active"] is False
    assert (await api.client.get("/users/me", headers=bearer(refreshed))).status_code == 401
    dead = await api.client.post(
        "/auth/refresh", json={"refresh_token": refreshed["refresh_token"]}
    )
    assert dead.status_code == 401
    relogin = await api.client.post(
        "/auth/login", data={"username": "gina", "password": ALICE_PASSWORD}
    )
    assert relogin.status_code == 401


async def test_admin_cannot_deactivate_themselves(api: Api) -> None:
    admin = await api.login("admin", ADMIN_PASSWORD)
    me = (await api.client.get("/users/me", headers=bearer(admin))).json()
    refused = await api.client.post(f"/admin/users/{me['id']}/deactivate", headers=bearer(admin))
    assert refused.status_code == 409
    assert refused.json()["detail"]["code"] == "conflict"
    assert (await api.client.get("/users/me", headers=bearer(admin))).status_code == 200
