"""API keys in the reference API: ``/users/me/api-keys`` and ``X-API-Key`` on the routes
that take a token, on SQLite + memory and on PostgreSQL + Redis."""

from __future__ import annotations

import pytest

from tests.support.reference_api import (
    ADMIN_PASSWORD,
    ALICE_PASSWORD,
    Api,
    bearer,
)

pytestmark = pytest.mark.anyio


async def _create(api: Api, tokens: dict[str, str], name: str) -> dict[str, str]:
    made = await api.client.post(
        "/users/me/api-keys",
        headers=bearer(tokens),
        json={"name": name, "scopes": [], "expires_in": 86400},
    )
    assert made.status_code == 201, made.text
    assert made.headers["cache-control"] == "no-store"
    body: dict[str, str] = made.json()
    return body


async def test_create_use_list_rotate_revoke(api: Api) -> None:
    assert (await api.register("alice@example.com", "alice", ALICE_PASSWORD)).status_code == 201
    tokens = await api.login("alice", ALICE_PASSWORD)
    made = await _create(api, tokens, "export")
    key = {"X-API-Key": made["key"]}

    me = await api.client.get("/users/me", headers=key)
    assert me.status_code == 200, me.text
    assert me.json()["username"] == "alice"
    listed = await api.client.get("/users/me/api-keys", headers=bearer(tokens))
    assert listed.status_code == 200
    assert made["key"] not in listed.text
    # A leaked key cannot list, mint or hide keys.
    assert (await api.client.get("/users/me/api-keys", headers=key)).status_code == 403
    # A bad key is refused, not rescued by anything else.
    forged = {"X-API-Key": made["key"][:-4] + "AAAA"}
    assert (await api.client.get("/users/me", headers=forged)).status_code == 401

    rotated = await api.client.post(
        f"/users/me/api-keys/{made['id']}/rotate", headers=bearer(tokens), json={"overlap": 60}
    )
    assert rotated.status_code == 201, rotated.text
    successor = {"X-API-Key": rotated.json()["key"]}
    assert (await api.client.get("/users/me", headers=successor)).status_code == 200
    assert (await api.client.get("/users/me", headers=key)).status_code == 200  # overlap

    gone = await api.client.delete(
        f"/users/me/api-keys/{rotated.json()['id']}", headers=bearer(tokens)
    )
    assert gone.status_code == 204
    assert (await api.client.get("/users/me", headers=successor)).status_code == 401


async def test_a_key_needs_a_fresh_login_and_dies_with_its_owner(api: Api) -> None:
    assert (await api.register("bob@example.com", "bob", ALICE_PASSWORD)).status_code == 201
    tokens = await api.login("bob", ALICE_PASSWORD)
    made = await _create(api, tokens, "ci")
    refreshed = await api.client.post(
        "/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    stale = await api.client.post(
        "/users/me/api-keys",
        headers=bearer(refreshed.json()),
        json={"name": "more", "scopes": [], "expires_in": 86400},
    )
    assert stale.status_code == 401
    assert stale.json()["detail"]["code"] == "fresh_token_required"

    admin = await api.login("admin", ADMIN_PASSWORD)
    bob_id = (await api.client.get("/users/me", headers={"X-API-Key": made["key"]})).json()["id"]
    off = await api.client.post(f"/admin/users/{bob_id}/deactivate", headers=bearer(admin))
    assert off.status_code == 200, off.text
    refused = await api.client.get("/users/me", headers={"X-API-Key": made["key"]})
    assert refused.status_code == 401
