"""End-to-end journey through the reference API, on SQLite + memory stores and on
real PostgreSQL + Redis."""

from __future__ import annotations

import pytest

from tests.support.reference_api import (
    ALICE_PASSWORD,
    Api,
    bearer,
)

pytestmark = pytest.mark.anyio


async def test_register_login_me_refresh_reuse(api: Api) -> None:
    created = await api.register("Alice@Example.com", "alice", ALICE_PASSWORD)
    assert created.status_code == 201, created.text
    body = created.json()
    # Kept as typed; uniqueness and logins use the normalized key.
    assert body["email"] == "Alice@Example.com"
    assert body["email_verified"] is False
    assert "password" not in created.text
    assert "hash" not in created.text

    duplicate = await api.register("alice@example.com", "alice2", ALICE_PASSWORD)
    assert duplicate.status_code == 409
    same_name = await api.register("other@example.com", "ALICE", ALICE_PASSWORD)
    assert same_name.status_code == 409

    tokens = await api.login("alice", ALICE_PASSWORD)
    assert tokens["token_type"] == "bearer"
    me = await api.client.get("/users/me", headers=bearer(tokens))
    assert me.status_code == 200
    assert me.json()["username"] == "alice"
    assert me.headers["cache-control"] == "no-store"
    assert me.headers["x-content-type-options"] == "nosniff"

    rotated = await api.client.post(
        "/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()
    assert new["refresh_token"] != tokens["refresh_token"]
    assert (await api.client.get("/users/me", headers=bearer(new))).status_code == 200

    replay = await api.client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert replay.status_code == 401
    assert replay.headers["www-authenticate"].startswith("Bearer")
    # Reuse revoked the whole family: the successor pair is dead too.
    assert (await api.client.get("/users/me", headers=bearer(new))).status_code == 401
    again = await api.client.post("/auth/refresh", json={"refresh_token": new["refresh_token"]})
    assert again.status_code == 401


async def test_login_failures_look_the_same(api: Api) -> None:
    assert (await api.register("bob@example.com", "bob", ALICE_PASSWORD)).status_code == 201
    wrong = await api.client.post("/auth/login", data={"username": "bob", "password": "nope-nope"})
    unknown = await api.client.post(
        "/auth/login", data={"username": "nobody", "password": "nope-nope"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    by_email = await api.login("bob@example.com", ALICE_PASSWORD)
    assert by_email["access_token"]


async def test_weak_password_is_refused_without_echo(api: Api) -> None:
    response = await api.register("carol@example.com", "carol", "password123")
    assert response.status_code == 422
    assert "password123" not in response.text
    context = await api.register("dave@example.com", "davedave", "davedave1")
    assert context.status_code == 422
    assert "davedave1" not in context.text


async def test_logout_and_logout_everywhere(api: Api) -> None:
    await api.register("erin@example.com", "erin", ALICE_PASSWORD)
    first = await api.login("erin", ALICE_PASSWORD)
    second = await api.login("erin", ALICE_PASSWORD)
    out = await api.client.post(
        "/auth/logout", headers=bearer(first), json={"refresh_token": first["refresh_token"]}
    )
    assert out.status_code == 204
    assert (await api.client.get("/users/me", headers=bearer(first))).status_code == 401
    refused = await api.client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert refused.status_code == 401
    assert (await api.client.get("/users/me", headers=bearer(second))).status_code == 200

    third = await api.login("erin", ALICE_PASSWORD)
    everywhere = await api.client.post("/auth/logout-all", headers=bearer(third))
    assert everywhere.status_code == 204
    for tokens in (second, third):
        assert (await api.client.get("/users/me", headers=bearer(tokens))).status_code == 401


async def test_password_change_needs_fresh_token_and_revokes_other_sessions(api: Api) -> None:
    await api.register("frank@example.com", "frank", ALICE_PASSWORD)
    other = await api.login("frank", ALICE_PASSWORD)
    tokens = await api.login("frank", ALICE_PASSWORD)
    rotated = (
        await api.client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    ).json()
    body = {"current_password": ALICE_PASSWORD, "new_password": "new-lantern-meadow-42"}
    stale = await api.client.patch("/users/me/password", headers=bearer(rotated), json=body)
    assert stale.status_code == 401
    assert stale.json()["detail"]["code"] == "fresh_token_required"

    fresh = await api.login("frank", ALICE_PASSWORD)
    wrong = await api.client.patch(
        "/users/me/password",
        headers=bearer(fresh),
        json={"current_password": "not-it-at-all", "new_password": "new-lantern-meadow-42"},
    )
    # The accounts router: the caller is signed in, a wrong current password is a 403.
    assert wrong.status_code == 403
    changed = await api.client.patch("/users/me/password", headers=bearer(fresh), json=body)
    assert changed.status_code == 204, changed.text
    assert (await api.client.get("/users/me", headers=bearer(other))).status_code == 401
    # The caller's own session stays.
    assert (await api.client.get("/users/me", headers=bearer(fresh))).status_code == 200
    refused = await api.client.post(
        "/auth/login", data={"username": "frank", "password": ALICE_PASSWORD}
    )
    assert refused.status_code == 401
    assert (await api.login("frank", "new-lantern-meadow-42"))["access_token"]


async def test_login_is_rate_limited_per_username(api: Api) -> None:
    await api.register("hank@example.com", "hank", ALICE_PASSWORD)
    statuses = []
    for _ in range(7):
        response = await api.client.post(
            "/auth/login", data={"username": "hank", "password": "wrong-wrong"}
        )
        statuses.append(response.status_code)
    assert statuses[:5] == [401] * 5
    assert statuses[5:] == [429, 429]
    assert int(response.headers["retry-after"]) > 0
    assert response.json()["detail"]["code"] == "rate_limited"


async def test_jwks_health_and_headers(api: Api) -> None:
    jwks = await api.client.get("/.well-known/jwks.json")
    assert jwks.status_code == 200
    keys = jwks.json()["keys"]
    assert keys
    assert all("d" not in key for key in keys)
    health = await api.client.get("/health")
    assert health.status_code == 200
    assert health.json()["database"] == "ok"
    assert "server" not in health.headers
    assert health.headers["content-security-policy"].startswith("default-src 'none'")


async def test_root_points_to_health_jwks_and_docs_only(api: Api) -> None:
    root = await api.client.get("/")
    assert root.status_code == 200
    assert root.json() == {
        "name": "fastapi-secure reference API",
        "health": "/health",
        "jwks": "/.well-known/jwks.json",
        "docs": "/docs",
    }
    # No version or backend names for an anonymous caller.
    assert "version" not in root.text
    assert "redis" not in root.text


async def test_openapi_documents_error_statuses(api: Api) -> None:
    schema = (await api.client.get("/openapi.json")).json()
    login = schema["paths"]["/auth/login"]["post"]["responses"]
    assert {"200", "401", "422", "429"} <= set(login)
    register = schema["paths"]["/auth/register"]["post"]["responses"]
    assert {"201", "409", "422", "429"} <= set(register)
    sessions = schema["paths"]["/users/me/sessions/{session_id}"]["delete"]["responses"]
    assert {"204", "401", "404"} <= set(sessions)
    admin = schema["paths"]["/admin/users"]["get"]["responses"]
    assert {"200", "401", "403"} <= set(admin)
    assert "password_hash" not in str(schema)


async def test_login_lockout_counts_the_name_not_its_spelling(api: Api) -> None:
    """The accounts lockout keys the normalized name tried (case, spaces and width
    fold together), whether an account has it or not, so it reveals nothing."""
    await api.register("kate@example.com", "kate", ALICE_PASSWORD)
    codes = []
    for name in ["kate", "KATE", "kate", " kate ", "Kate", "\uff4b\uff41\uff54\uff45", "KATE"]:
        response = await api.client.post(
            "/auth/login", data={"username": name, "password": "wrong-wrong"}
        )
        codes.append(response.status_code)
    assert codes == [401] * 5 + [429, 429]
    # Another account keeps its own budget.
    await api.register("liam@example.com", "liam", ALICE_PASSWORD)
    assert (await api.login("liam@example.com", ALICE_PASSWORD))["access_token"]
