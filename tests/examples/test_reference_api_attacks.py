"""The reference API attacked from the outside: login CSRF, cookie tossing, password
change guesses, policy bypasses, control characters. Each attack succeeded before its fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from tests.support.reference_api import ALICE_PASSWORD, Api, make_settings, serve

APP_ORIGIN = "http://127.0.0.1:8000"  # the reference API's default allowed origin
EVIL_ORIGIN = "https://evil.example"
MALLORY_PASSWORD = "mallory-owns-this-account-93"


def _cookie_settings(tmp_path: Path, **extra: Any) -> Any:
    return make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'api.db'}", auth_transport="cookie", **extra
    )


def _set_cookie_names(response: httpx.Response) -> set[str]:
    return {value.split("=", 1)[0] for value in response.headers.get_list("set-cookie")}


async def _two_accounts(api: Api) -> None:
    for email, name, password in (
        ("alice@example.com", "alice", ALICE_PASSWORD),
        ("mallory@example.com", "mallory", MALLORY_PASSWORD),
    ):
        created = await api.register(email, name, password)
        assert created.status_code == 201, created.text


async def _mallory_refresh_token(api: Api) -> str:
    login = await api.client.post(
        "/auth/login", data={"username": "mallory", "password": MALLORY_PASSWORD}
    )
    assert login.status_code == 200, login.text
    token = api.client.cookies["refresh_token"]
    api.client.cookies.clear()
    return token


# --- Reference API, cookie mode: login CSRF ----------------------------------------------
# A page of any site could POST the attacker's credentials to /auth/login: the
# answer's Set-Cookie logged the victim's browser into the attacker's account
# (whatever the victim then typed went to the attacker).


@pytest.mark.anyio
@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": EVIL_ORIGIN},
        {"Origin": "null"},  # sandboxed frame or privacy-stripped origin
        {"Referer": f"{EVIL_ORIGIN}/login-as-me.html"},
    ],
)
async def test_login_from_a_foreign_page_sets_no_session(
    tmp_path: Path, headers: dict[str, str]
) -> None:
    async for api in serve(_cookie_settings(tmp_path)):
        await _two_accounts(api)
        forged = await api.client.post(
            "/auth/login",
            data={"username": "mallory", "password": MALLORY_PASSWORD},
            headers=headers,
        )
        assert forged.status_code == 403, forged.text
        assert forged.json()["detail"]["code"] == "csrf_failed"
        assert not forged.headers.get_list("set-cookie")


@pytest.mark.anyio
@pytest.mark.parametrize(
    "headers", [{"Origin": APP_ORIGIN}, {"Referer": f"{APP_ORIGIN}/login"}, {}]
)
async def test_login_from_the_app_or_a_non_browser_client_still_works(
    tmp_path: Path, headers: dict[str, str]
) -> None:
    async for api in serve(_cookie_settings(tmp_path)):
        await _two_accounts(api)
        login = await api.client.post(
            "/auth/login", data={"username": "alice", "password": ALICE_PASSWORD}, headers=headers
        )
        assert login.status_code == 200, login.text
        assert "access_token" in _set_cookie_names(login)


# --- Reference API, cookie mode: refresh cookie tossing -----------------------------------
# Without the __Host- prefix (secure=False here, or the former __Secure- refresh
# cookie) a sibling subdomain can set a cookie with Domain=<parent>. The browser then
# sends two refresh cookies; Starlette kept the last one, so the victim's next refresh
# moved them into the planter's session.


@pytest.mark.anyio
async def test_a_planted_second_refresh_cookie_does_not_swap_the_session(
    tmp_path: Path,
) -> None:
    async for api in serve(_cookie_settings(tmp_path)):
        await _two_accounts(api)
        mallory = await _mallory_refresh_token(api)
        await api.login("alice", ALICE_PASSWORD)
        alice = api.client.cookies["refresh_token"]
        csrf = api.client.cookies["csrf_token"]
        api.client.cookies.clear()
        # Alice's page passes the Origin and CSRF checks: only the cookies differ.
        page = {"Origin": APP_ORIGIN, "X-CSRF-Token": csrf}

        tossed = await api.client.post(
            "/auth/refresh",
            headers={
                **page,
                "Cookie": f"csrf_token={csrf}; refresh_token={alice}; refresh_token={mallory}",
            },
        )
        assert tossed.status_code == 401, tossed.text
        assert not tossed.headers.get_list("set-cookie")

        alone = await api.client.post(
            "/auth/refresh",
            headers={**page, "Cookie": f"csrf_token={csrf}; refresh_token={alice}"},
        )
        assert alone.status_code == 200, alone.text
        me = await api.client.get("/users/me")
        assert me.json()["username"] == "alice"


# --- Reference API: password change guesses ------------------------------------------------
# A stolen fresh token allowed unlimited guesses of the current password, each an
# argon2 verify (CPU on the hasher's few threads, shared with every login).


@pytest.mark.anyio
async def test_current_password_guesses_are_rate_limited(tmp_path: Path) -> None:
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'api.db'}")
    async for api in serve(settings):
        await _two_accounts(api)
        alice = await api.login("alice", ALICE_PASSWORD)
        headers = {"Authorization": f"Bearer {alice['access_token']}"}
        codes = []
        for guess in range(8):
            answer = await api.client.patch(
                "/users/me/password",
                headers=headers,
                json={"current_password": f"guess-{guess}", "new_password": "a-new-passphrase-77"},
            )
            codes.append(answer.status_code)
        assert codes[:5] == [403] * 5  # the accounts router: a wrong current password
        assert codes[5:] == [429] * 3

        # Counted per user: another account is not slowed down by alice's limit.
        mallory = await api.login("mallory", MALLORY_PASSWORD)
        changed = await api.client.patch(
            "/users/me/password",
            headers={"Authorization": f"Bearer {mallory['access_token']}"},
            json={"current_password": MALLORY_PASSWORD, "new_password": "a-new-passphrase-77"},
        )
        assert changed.status_code == 204, changed.text


# --- Reference API: a password change skipped the context-word rule -----------------------
# Registration refuses a password based on the username or email; the change
# route's body has neither field, so "alicewonderland1" was accepted there.


@pytest.mark.anyio
@pytest.mark.parametrize("new_password", ["alicewonderland1", "alice.liddell@example.com"])
async def test_password_change_refuses_a_password_based_on_the_account(
    tmp_path: Path, new_password: str
) -> None:
    async for api in serve(make_settings(f"sqlite+aiosqlite:///{tmp_path / 'api.db'}")):
        refused = await api.register("alice.liddell@example.com", "alicewonderland", new_password)
        assert refused.status_code == 422
        created = await api.register("alice.liddell@example.com", "alicewonderland", ALICE_PASSWORD)
        assert created.status_code == 201, created.text
        alice = await api.login("alicewonderland", ALICE_PASSWORD)
        headers = {"Authorization": f"Bearer {alice['access_token']}"}

        changed = await api.client.patch(
            "/users/me/password",
            headers=headers,
            json={"current_password": ALICE_PASSWORD, "new_password": new_password},
        )
        assert changed.status_code == 422, changed.text
        # The same policy answer as registration gives (the accounts routers' body).
        assert changed.json()["detail"]["code"] == refused.json()["detail"]["code"]
        assert changed.json()["detail"]["problems"]
        assert new_password not in changed.text
        still = await api.client.post(
            "/auth/login", data={"username": "alicewonderland", "password": ALICE_PASSWORD}
        )
        assert still.status_code == 200

        fine = await api.client.patch(
            "/users/me/password",
            headers=headers,
            json={"current_password": ALICE_PASSWORD, "new_password": "quiet-lantern-meadow-58"},
        )
        assert fine.status_code == 204, fine.text


# --- Reference API on PostgreSQL: a NUL in the login name -----------------------------------
# PostgreSQL text cannot hold NUL: the lookup raised DBAPIError, answered 500.


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'api.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.mark.anyio
@pytest.mark.parametrize(
    "name", ["alice\x00", "al\x00ice", "alice@example.com\x00", "ali\x1bce", "\x00"]
)
async def test_control_characters_in_the_login_name_are_bad_credentials(
    database_url: str, name: str
) -> None:
    async for api in serve(make_settings(database_url)):
        await _two_accounts(api)
        for content_type, body in (
            (
                "application/x-www-form-urlencoded",
                urlencode({"username": name, "password": ALICE_PASSWORD}).encode(),
            ),
            (
                "multipart/form-data; boundary=B",
                b"--B\r\nContent-Disposition: form-data; name=username\r\n\r\n"
                + name.encode()
                + b"\r\n--B\r\nContent-Disposition: form-data; name=password\r\n\r\n"
                + ALICE_PASSWORD.encode()
                + b"\r\n--B--\r\n",
            ),
        ):
            answer = await api.client.post(
                "/auth/login", content=body, headers={"content-type": content_type}
            )
            assert answer.status_code == 401, answer.text
            assert answer.json()["detail"]["code"] == "invalid_credentials"
        # The same account without the control character still logs in.
        assert (await api.login(" alice ", ALICE_PASSWORD))["access_token"]


# --- Reference API in cookie mode: the refresh route acts on a cookie ---------------------


@pytest.mark.anyio
async def test_cookie_refresh_from_a_foreign_origin_is_refused(tmp_path: Path) -> None:
    # CookieAuth's docs: routes that act on cookies without the dependency (the
    # refresh route) must call check_origin. A page on a sibling subdomain is
    # same-site, so even the SameSite=Strict refresh cookie goes with its POST.
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'api.db'}", auth_transport="cookie")
    async for api in serve(settings):
        registered = await api.register("alice@example.com", "alice", ALICE_PASSWORD)
        assert registered.status_code == 201, registered.text
        await api.login("alice", ALICE_PASSWORD)
        assert "refresh_token" in api.client.cookies

        # Even with the right CSRF header, the foreign Origin alone is refused.
        csrf = api.client.cookies["csrf_token"]
        forged = await api.client.post(
            "/auth/refresh",
            headers={"Origin": "http://evil.127.0.0.1.nip.io", "X-CSRF-Token": csrf},
        )
        assert forged.status_code == 403, forged.text
        assert forged.json()["detail"]["code"] == "csrf_failed"

        own = await api.client.post(
            "/auth/refresh", headers={"Origin": "http://127.0.0.1:8000", "X-CSRF-Token": csrf}
        )
        assert own.status_code == 200, own.text
