"""The account journey of the reference API (issue 10's surface), on SQLite + memory
stores and on real PostgreSQL + Redis, reading links from the file outbox."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from fastapi_secure.accounts.mail import FileOutbox
from tests.conftest import fresh_postgres_database
from tests.support.reference_api import ALICE_PASSWORD, Api, bearer, make_settings, serve

pytestmark = pytest.mark.anyio

BASE_URL = "https://app.example.test"
NEW_PASSWORD = "copper-lantern-meadow-42"


@pytest.fixture(
    params=[
        "sqlite-memory",
        pytest.param("postgres-redis", marks=[pytest.mark.postgres, pytest.mark.redis]),
    ]
)
async def api(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Api]:
    extra = {"email_outbox_dir": str(tmp_path / "outbox"), "public_base_url": BASE_URL}
    if request.param == "sqlite-memory":
        settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'api.db'}", **extra)
        async for served in serve(settings):
            yield served
        return
    redis_url: str = request.getfixturevalue("redis_url")
    prefix: str = request.getfixturevalue("redis_prefix")
    async with fresh_postgres_database() as postgres_url:
        settings = make_settings(postgres_url, redis_url, redis_key_prefix=prefix, **extra)
        async for served in serve(settings):
            yield served


def _token_from_outbox(api: Api, to: str, path: str) -> str:
    assert api.settings.email_outbox_dir is not None
    messages = [m for m in FileOutbox(api.settings.email_outbox_dir).messages() if m.to == to]
    assert messages, f"no mail to {to}"
    link = messages[-1].link
    assert link is not None
    parts = urlsplit(link)
    # From PUBLIC_BASE_URL, never from the request's Host header.
    assert f"{parts.scheme}://{parts.netloc}" == BASE_URL
    assert parts.path == path
    return parse_qs(parts.query)["token"][0]


async def _login(api: Api, name: str, password: str, agent: str) -> dict[str, str]:
    response = await api.client.post(
        "/auth/login",
        data={"username": name, "password": password},
        headers={"User-Agent": agent},
    )
    assert response.status_code == 200, response.text
    tokens: dict[str, str] = response.json()
    return tokens


async def test_register_verify_sessions_reset_journey(api: Api) -> None:
    created = await api.client.post(
        "/auth/register",
        json={"email": "alice@example.com", "username": "alice", "password": ALICE_PASSWORD},
        headers={"Host": "evil.example"},
    )
    assert created.status_code == 201, created.text
    assert created.json()["email_verified"] is False

    verify = _token_from_outbox(api, "alice@example.com", "/verify-email")
    confirmed = await api.client.post("/auth/verify/confirm", json={"token": verify})
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["email_verified"] is True
    again = await api.client.post("/auth/verify/confirm", json={"token": verify})
    assert again.status_code == 400

    laptop = await _login(api, "alice", ALICE_PASSWORD, "laptop")
    phone = await _login(api, "alice@example.com", ALICE_PASSWORD, "phone")
    listed = await api.client.get("/users/me/sessions", headers=bearer(laptop))
    assert listed.status_code == 200, listed.text
    sessions = listed.json()
    assert sorted(s["user_agent"] for s in sessions) == ["laptop", "phone"]
    phone_session = next(s["session_id"] for s in sessions if s["user_agent"] == "phone")

    revoked = await api.client.delete(f"/users/me/sessions/{phone_session}", headers=bearer(laptop))
    assert revoked.status_code == 204
    assert (await api.client.get("/users/me", headers=bearer(phone))).status_code == 401
    assert (await api.client.get("/users/me", headers=bearer(laptop))).status_code == 200
    gone = await api.client.delete(f"/users/me/sessions/{phone_session}", headers=bearer(laptop))
    assert gone.status_code == 404

    known = await api.client.post(
        "/auth/password-reset/request", json={"email": "alice@example.com"}
    )
    unknown = await api.client.post(
        "/auth/password-reset/request", json={"email": "nobody@example.com"}
    )
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    reset = _token_from_outbox(api, "alice@example.com", "/reset-password")
    body = {"token": reset, "new_password": NEW_PASSWORD}
    done = await api.client.post("/auth/password-reset/confirm", json=body)
    assert done.status_code == 204, done.text
    assert (await api.client.post("/auth/password-reset/confirm", json=body)).status_code == 400
    # Every session that existed before the reset is dead.
    assert (await api.client.get("/users/me", headers=bearer(laptop))).status_code == 401
    refused = await api.client.post(
        "/auth/refresh", json={"refresh_token": laptop["refresh_token"]}
    )
    assert refused.status_code == 401
    old = await api.client.post(
        "/auth/login", data={"username": "alice", "password": ALICE_PASSWORD}
    )
    assert old.status_code == 401
    assert (await _login(api, "alice", NEW_PASSWORD, "laptop"))["access_token"]


async def test_a_session_of_another_account_cannot_be_revoked(api: Api) -> None:
    for name in ("bob", "carol"):
        body = {"email": f"{name}@example.com", "username": name, "password": ALICE_PASSWORD}
        assert (await api.client.post("/auth/register", json=body)).status_code == 201
    bob = await _login(api, "bob", ALICE_PASSWORD, "bob")
    carol = await _login(api, "carol", ALICE_PASSWORD, "carol")
    [carol_session] = (await api.client.get("/users/me/sessions", headers=bearer(carol))).json()
    refused = await api.client.delete(
        f"/users/me/sessions/{carol_session['session_id']}", headers=bearer(bob)
    )
    assert refused.status_code == 404
    assert (await api.client.get("/users/me", headers=bearer(carol))).status_code == 200
    others = await api.client.delete("/users/me/sessions/others", headers=bearer(bob))
    assert others.status_code == 200
    assert others.json() == {"revoked": 0}


async def test_login_can_require_a_verified_email(tmp_path: Path) -> None:
    settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'api.db'}",
        email_outbox_dir=str(tmp_path / "outbox"),
        public_base_url=BASE_URL,
        require_verified_email=True,
    )
    async for api in serve(settings):
        body = {"email": "dan@example.com", "username": "dan", "password": ALICE_PASSWORD}
        assert (await api.client.post("/auth/register", json=body)).status_code == 201
        form = {"username": "dan", "password": ALICE_PASSWORD}
        unverified = await api.client.post("/auth/login", data=form)
        assert unverified.status_code == 403
        wrong = await api.client.post("/auth/login", data={**form, "password": "wrong-wrong"})
        assert wrong.status_code == 401  # the 403 only after the right password
        token = _token_from_outbox(api, "dan@example.com", "/verify-email")
        assert (await api.client.post("/auth/verify/confirm", json={"token": token})).is_success
        assert (await api.client.post("/auth/login", data=form)).status_code == 200
        # The admin from the settings counts as verified.
        assert (await api.login("admin", "admin-Passphrase-for-tests-4821"))["access_token"]


async def test_a_reset_link_from_an_older_request_or_another_purpose_is_refused(api: Api) -> None:
    body = {"email": "erin@example.com", "username": "erin", "password": ALICE_PASSWORD}
    assert (await api.client.post("/auth/register", json=body)).status_code == 201
    verify = _token_from_outbox(api, "erin@example.com", "/verify-email")
    request = {"email": "erin@example.com"}
    assert (await api.client.post("/auth/password-reset/request", json=request)).status_code == 202
    older = _token_from_outbox(api, "erin@example.com", "/reset-password")
    assert (await api.client.post("/auth/password-reset/request", json=request)).status_code == 202
    newer = _token_from_outbox(api, "erin@example.com", "/reset-password")
    assert newer != older
    for token in (older, verify, newer[:-1], newer + "A", "a" * 256):
        refused = await api.client.post(
            "/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
        )
        assert refused.status_code == 400, refused.text
        assert refused.json()["detail"]["code"] == "invalid_token"
    done = await api.client.post(
        "/auth/password-reset/confirm", json={"token": newer, "new_password": NEW_PASSWORD}
    )
    assert done.status_code == 204, done.text
