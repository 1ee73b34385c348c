"""The reference API without the default settings: cookie transport, docs off."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.reference_api import ALICE_PASSWORD, make_settings, serve

pytestmark = pytest.mark.anyio


async def test_root_leaves_out_docs_when_they_are_off(tmp_path: Path) -> None:
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'api.db'}", docs_enabled=False)
    async for api in serve(settings):
        root = (await api.client.get("/")).json()
        assert "docs" not in root
        assert (await api.client.get(root["health"])).status_code == 200
        assert (await api.client.get(root["jwks"])).status_code == 200


async def test_cookie_mode_ignores_a_refresh_token_in_the_body(tmp_path: Path) -> None:
    # A token in a body is one a page script could have read: cookie mode takes
    # the HttpOnly cookie only, so a stolen (or planted) body token changes nothing.
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'api.db'}", auth_transport="cookie")
    async for api in serve(settings):
        await api.register("olga@example.com", "olga", ALICE_PASSWORD)
        await api.login("olga", ALICE_PASSWORD)
        token = api.client.cookies["refresh_token"]
        csrf = api.client.cookies["csrf_token"]
        api.client.cookies.clear()
        headers = {"Origin": "http://127.0.0.1:8000", "X-CSRF-Token": csrf}
        api.client.cookies.set("csrf_token", csrf)
        refused = await api.client.post(
            "/auth/refresh", headers=headers, json={"refresh_token": token}
        )
        assert refused.status_code == 401, refused.text
        assert not refused.headers.get_list("set-cookie")


async def test_cookie_mode_keeps_tokens_out_of_bodies_and_checks_csrf(tmp_path: Path) -> None:
    settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'api.db'}",
        auth_transport="cookie",
        cors_allow_origins=["http://app.example.test"],
    )
    origin = {"Origin": "http://app.example.test"}
    async for api in serve(settings):
        await api.register("judy@example.com", "judy", ALICE_PASSWORD)
        login = await api.client.post(
            "/auth/login", data={"username": "judy", "password": ALICE_PASSWORD}
        )
        assert login.status_code == 200
        body = login.json()
        assert body["token_type"] == "cookie"
        assert "access_token" not in body
        assert "refresh_token" not in body
        assert (await api.client.get("/users/me")).status_code == 200

        # The refresh cookie goes with any same-site request: refresh also wants
        # the CSRF header a page of the app alone can read from its cookie.
        no_csrf = await api.client.post("/auth/refresh", headers=origin)
        assert no_csrf.status_code == 403
        assert no_csrf.json()["detail"]["code"] == "csrf_failed"
        csrf = {**origin, "X-CSRF-Token": body["csrf_token"]}
        refreshed = await api.client.post("/auth/refresh", headers=csrf)
        assert refreshed.status_code == 200
        assert "refresh_token" not in refreshed.json()
        csrf = {**origin, "X-CSRF-Token": refreshed.json()["csrf_token"]}

        no_token = await api.client.post("/auth/logout-all", headers=origin)
        assert no_token.status_code == 403
        assert no_token.json()["detail"]["code"] == "csrf_failed"
        done = await api.client.post("/auth/logout-all", headers=csrf)
        assert done.status_code == 204
