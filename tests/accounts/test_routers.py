"""The account routers end to end, in bearer and cookie mode alike."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from fastapi_secure.accounts.hooks import AccountEvent, HookContext
from fastapi_secure.accounts.lockout import Lockout
from fastapi_secure.testing import FakeClock
from tests.support.accounts import ORIGIN, AccountsApp, build_accounts_app, token_from

pytestmark = pytest.mark.anyio

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a whole new passphrase 42"


class Device:
    """One browser or app: its own cookie jar and tokens."""

    def __init__(self, world: AccountsApp) -> None:
        self.world = world
        self.mode = "bearer" if type(world.transport).__name__ == "BearerAuth" else "cookie"
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=world.app), base_url=ORIGIN
        )
        self.access: str | None = None
        self.refresh_token: str | None = None
        self.csrf: str | None = None

    async def aclose(self) -> None:
        await self.client.aclose()

    def headers(self) -> dict[str, str]:
        if self.mode == "bearer":
            return {"Authorization": f"Bearer {self.access}"} if self.access else {}
        return {"Origin": ORIGIN, "X-CSRF-Token": self.csrf or ""}

    def _keep(self, response: httpx.Response) -> None:
        if response.status_code != 200:
            return
        body = response.json()
        if self.mode == "bearer":
            self.access, self.refresh_token = body["access_token"], body["refresh_token"]
        else:
            assert "access_token" not in body
            self.csrf = body["csrf_token"]

    async def login(self, name: str, password: str = PASSWORD) -> httpx.Response:
        response = await self.client.post(
            "/auth/login",
            data={"username": name, "password": password},
            headers={"Origin": ORIGIN, "User-Agent": f"device-{id(self)}"},
        )
        self._keep(response)
        return response

    async def refresh(self) -> httpx.Response:
        if self.mode == "bearer":
            response = await self.client.post(
                "/auth/refresh", json={"refresh_token": self.refresh_token}
            )
        else:
            response = await self.client.post("/auth/refresh", headers=self.headers())
        self._keep(response)
        return response

    async def call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return await self.client.request(method, url, headers=self.headers(), **kwargs)


@pytest.fixture(params=["bearer", "cookie"])
def world(request: pytest.FixtureRequest, fake_clock: FakeClock) -> AccountsApp:
    return build_accounts_app(fake_clock, mode=request.param)


@pytest.fixture
async def device(world: AccountsApp) -> AsyncIterator[Device]:
    one = Device(world)
    try:
        yield one
    finally:
        await one.aclose()


async def _register(device: Device, email: str = "alice@example.io") -> httpx.Response:
    return await device.client.post("/auth/register", json={"email": email, "password": PASSWORD})


async def test_the_whole_journey(world: AccountsApp, device: Device) -> None:
    await _journey(world, device)


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.parametrize("mode", ["bearer", "cookie"])
async def test_the_whole_journey_on_postgres_and_redis(
    fake_clock: FakeClock, redis_url: str, redis_prefix: str, mode: str
) -> None:
    from fastapi_secure.accounts.redis import RedisActionTokenStore, RedisLockoutStore
    from fastapi_secure.accounts.sqlalchemy import SQLAlchemyUserStore
    from fastapi_secure.tokens.stores.redis import RedisTokenStore
    from tests.conftest import fresh_postgres_database
    from tests.support.accounts import AppUser, sql_database

    tokens = RedisTokenStore.from_url(redis_url, prefix=redis_prefix + "t:")
    actions = RedisActionTokenStore.from_url(redis_url, prefix=redis_prefix + "a:")
    locks = RedisLockoutStore.from_url(redis_url, prefix=redis_prefix + "l:")
    try:
        async with fresh_postgres_database() as url, sql_database(url) as db:
            world = build_accounts_app(
                fake_clock,
                mode=mode,
                store=tokens,
                users=SQLAlchemyUserStore(AppUser, db.transaction, clock=fake_clock),
                action_store=actions,
                lockout=Lockout(locks, clock=fake_clock),
            )
            device = Device(world)
            try:
                await _journey(world, device)
            finally:
                await device.aclose()
    finally:
        for store in (tokens, actions, locks):
            await store.aclose()


async def _journey(world: AccountsApp, device: Device) -> None:
    response = await _register(device)
    assert response.status_code == 201
    assert response.json()["email_verified"] is False
    [verify_mail] = world.outbox.to("alice@example.io")
    assert verify_mail.link is not None
    assert verify_mail.link.startswith("https://app.example.io/verify-email?token=")
    confirm = await device.client.post(
        "/auth/verify/confirm", json={"token": token_from(verify_mail)}
    )
    assert confirm.status_code == 200
    assert confirm.json()["email_verified"] is True
    again = await device.client.post(
        "/auth/verify/confirm", json={"token": token_from(verify_mail)}
    )
    assert again.status_code == 400

    laptop, phone = device, Device(world)
    try:
        assert (await laptop.login("alice@example.io")).status_code == 200
        world.clock.advance(5)
        assert (await phone.login("ALICE@example.io")).status_code == 200
        listed = await phone.call("GET", "/users/me/sessions")
        assert listed.status_code == 200
        sessions = listed.json()
        assert len(sessions) == 2
        assert [s["current"] for s in sessions] == [True, False]
        laptop_session = sessions[1]["session_id"]
        assert (
            sessions[1]["client_address"] == "127.0.0.0/24"
            or sessions[1]["client_address"] is None
            or "/" in sessions[1]["client_address"]
        )

        gone = await phone.call("DELETE", f"/users/me/sessions/{laptop_session}")
        assert gone.status_code == 204
        assert (await laptop.call("GET", "/users/me/sessions")).status_code == 401
        assert (await phone.call("GET", "/users/me/sessions")).status_code == 200
        missing = await phone.call("DELETE", f"/users/me/sessions/{laptop_session}")
        assert missing.status_code == 404

        # reset: the same answer for a known and an unknown address
        known = await device.client.post(
            "/auth/password-reset/request", json={"email": "alice@example.io"}
        )
        unknown = await device.client.post(
            "/auth/password-reset/request", json={"email": "nobody@example.io"}
        )
        assert (known.status_code, known.json()) == (unknown.status_code, unknown.json())
        assert known.status_code == 202
        assert world.outbox.to("nobody@example.io") == []
        reset_mail = world.outbox.to("alice@example.io")[-1]
        assert reset_mail.link is not None
        assert reset_mail.link.startswith("https://app.example.io/reset-password?token=")
        token = token_from(reset_mail)
        done = await device.client.post(
            "/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
        )
        assert done.status_code == 204
        assert (await phone.call("GET", "/users/me/sessions")).status_code == 401
        replay = await device.client.post(
            "/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
        )
        assert replay.status_code == 400
        assert (await phone.login("alice@example.io", PASSWORD)).status_code == 401
        assert (await phone.login("alice@example.io", NEW_PASSWORD)).status_code == 200
    finally:
        await phone.aclose()


async def _reset_token(world: AccountsApp, device: Device, email: str) -> str:
    await device.client.post("/auth/password-reset/request", json={"email": email})
    return token_from(world.outbox.to(email)[-1])


async def test_expired_and_superseded_reset_tokens_are_refused(
    world: AccountsApp, device: Device
) -> None:
    await _register(device)
    older = await _reset_token(world, device, "alice@example.io")
    newer = await _reset_token(world, device, "alice@example.io")
    body = {"token": older, "new_password": NEW_PASSWORD}
    assert (await device.client.post("/auth/password-reset/confirm", json=body)).status_code == 400
    world.clock.advance(30 * 60 + 1)
    body = {"token": newer, "new_password": NEW_PASSWORD}
    refused = await device.client.post("/auth/password-reset/confirm", json=body)
    assert refused.status_code == 400
    assert refused.json()["detail"]["code"] == "invalid_token"


async def test_a_weak_password_does_not_burn_the_reset_link(
    world: AccountsApp, device: Device
) -> None:
    await _register(device)
    token = await _reset_token(world, device, "alice@example.io")
    weak = await device.client.post(
        "/auth/password-reset/confirm", json={"token": token, "new_password": "password"}
    )
    assert weak.status_code == 422
    strong = await device.client.post(
        "/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert strong.status_code == 204


async def test_register_twice_is_409_by_default(device: Device) -> None:
    assert (await _register(device)).status_code == 201
    taken = await _register(device, "ALICE@Example.io")
    assert taken.status_code == 409
    assert taken.json()["detail"]["code"] == "conflict"


@pytest.mark.parametrize("mode", ["bearer", "cookie"])
async def test_register_can_hide_existing_accounts(fake_clock: FakeClock, mode: str) -> None:
    world = build_accounts_app(fake_clock, mode=mode, reveal_existing=False)
    device = Device(world)
    try:
        first = await _register(device)
        second = await _register(device, "Alice@example.io")
        assert first.status_code == second.status_code == 202
        assert first.json() == second.json()
        subjects = [m.subject for m in world.outbox.to("alice@example.io")]
        assert subjects == [
            "Verify your email address",
            "Someone tried to register with your address",
        ]
    finally:
        await device.aclose()


async def test_refresh_rotates_and_reuse_ends_the_session(
    world: AccountsApp, device: Device
) -> None:
    seen: list[HookContext] = []

    @world.hooks.on(AccountEvent.REFRESH_REUSE_DETECTED)
    async def record(context: HookContext) -> None:
        seen.append(context)

    await _register(device)
    await device.login("alice@example.io")
    first_refresh = device.refresh_token
    assert (await device.refresh()).status_code == 200
    assert (await device.call("GET", "/users/me/sessions")).status_code == 200
    if device.mode == "bearer":
        device.refresh_token = first_refresh
        assert (await device.refresh()).status_code == 401
        assert len(seen) == 1
        assert seen[0].subject is not None
        device.refresh_token = None
    assert (await device.client.post("/auth/refresh", json={})).status_code in {401, 403}


async def test_logout_and_logout_everywhere(world: AccountsApp, device: Device) -> None:
    await _register(device)
    other = Device(world)
    try:
        await device.login("alice@example.io")
        await other.login("alice@example.io")
        assert (await device.call("POST", "/auth/logout")).status_code == 204
        assert (await device.call("GET", "/users/me/sessions")).status_code == 401
        assert (await other.call("GET", "/users/me/sessions")).status_code == 200
        await device.login("alice@example.io")
        assert (await device.call("POST", "/auth/logout-all")).status_code == 204
        assert (await other.call("GET", "/users/me/sessions")).status_code == 401
    finally:
        await other.aclose()


async def test_revoke_other_sessions(world: AccountsApp, device: Device) -> None:
    await _register(device)
    other = Device(world)
    try:
        await other.login("alice@example.io")
        await device.login("alice@example.io")
        response = await device.call("DELETE", "/users/me/sessions/others")
        assert response.json() == {"revoked": 1}
        assert (await other.call("GET", "/users/me/sessions")).status_code == 401
        assert (await device.call("GET", "/users/me/sessions")).status_code == 200
    finally:
        await other.aclose()


async def test_lockout_answers_429_the_same_for_unknown_accounts(
    world: AccountsApp, device: Device
) -> None:
    await _register(device)
    for name in ("alice@example.io", "ghost@example.io"):
        for _ in range(5):
            assert (await device.login(name, "wrong password")).status_code == 401
        locked = await device.login(name, PASSWORD)
        assert locked.status_code == 429
        assert locked.headers["Retry-After"] == "60"
        assert locked.json()["detail"]["code"] == "rate_limited"
    world.clock.advance(60)
    assert (await device.login("alice@example.io")).status_code == 200


async def test_password_change_needs_a_fresh_token(world: AccountsApp, device: Device) -> None:
    await _register(device)
    other = Device(world)
    try:
        await other.login("alice@example.io")
        await device.login("alice@example.io")
        body = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
        wrong = {"current_password": "not it at all", "new_password": NEW_PASSWORD}
        assert (await device.call("PATCH", "/users/me/password", json=wrong)).status_code == 403
        await device.refresh()  # a refreshed token is not fresh
        stale = await device.call("PATCH", "/users/me/password", json=body)
        assert stale.status_code == 401
        assert stale.json()["detail"]["code"] == "fresh_token_required"
        await device.login("alice@example.io")
        assert (await device.call("PATCH", "/users/me/password", json=body)).status_code == 204
        assert (await device.call("GET", "/users/me/sessions")).status_code == 200
        assert (await other.call("GET", "/users/me/sessions")).status_code == 401
    finally:
        await other.aclose()


async def test_unverified_accounts_can_be_refused(fake_clock: FakeClock) -> None:
    world = build_accounts_app(fake_clock, require_verified_email=True)
    device = Device(world)
    try:
        await _register(device)
        refused = await device.login("alice@example.io")
        assert refused.status_code == 403
        await device.client.post("/auth/verify/request", json={"email": "alice@example.io"})
        await device.client.post("/auth/verify/request", json={"email": "nobody@example.io"})
        token = token_from(world.outbox.to("alice@example.io")[-1])
        await device.client.post("/auth/verify/confirm", json={"token": token})
        assert (await device.login("alice@example.io")).status_code == 200
    finally:
        await device.aclose()


@pytest.mark.parametrize(
    ("url", "body"),
    [
        ("/auth/register", {"email": "x" * 300 + "@x.io", "password": PASSWORD}),
        ("/auth/register", {"email": "no-at", "password": PASSWORD}),
        ("/auth/register", {"email": "a b@x.io", "password": PASSWORD}),
        ("/auth/register", {"email": "a@x.io", "password": "p" * 5000}),
        ("/auth/register", {"email": "a@x.io", "password": PASSWORD, "username": "a@b"}),
        ("/auth/register", {"email": "a\u0000@x.io", "password": PASSWORD}),
        ("/auth/register", {"email": "a@x.io", "password": "password"}),
        ("/auth/verify/confirm", {"token": "t" * 5000}),
        ("/auth/verify/confirm", {"token": ""}),
        ("/auth/verify/confirm", {}),
        ("/auth/password-reset/request", {"email": ["a@x.io"]}),
        ("/auth/password-reset/confirm", {"token": "x", "new_password": "p" * 5000}),
        ("/auth/verify/request", {"email": None}),
    ],
)
async def test_malformed_bodies_are_4xx(device: Device, url: str, body: dict[str, Any]) -> None:
    response = await device.client.post(url, json=body)
    assert 400 <= response.status_code < 500


@pytest.mark.parametrize(
    "token",
    ["", "x", "0" * 16 + "." + "A" * 43, "../../etc", "\u0000" * 10, "a.b.c", "0" * 256],
)
async def test_forged_tokens_are_400(device: Device, token: str) -> None:
    for url in ("/auth/verify/confirm", "/auth/password-reset/confirm"):
        response = await device.client.post(
            url, json={"token": token, "new_password": NEW_PASSWORD}
        )
        assert response.status_code in {400, 422}


async def test_bad_session_ids_are_4xx(world: AccountsApp, device: Device) -> None:
    await _register(device)
    await device.login("alice@example.io")
    for session_id in ("x", "0" * 16 + ".x", "a" * 200, "%00"):
        response = await device.call("DELETE", f"/users/me/sessions/{session_id}")
        assert response.status_code in {404, 422}


async def test_a_malformed_login_is_401_not_500(device: Device) -> None:
    for name in ("", "\u0000", "x" * 10_000):
        response = await device.login(name, "whatever")
        assert response.status_code in {401, 422}
    assert (await device.login("alice", "p" * 5000)).status_code == 401


def test_openapi_lists_every_status(world: AccountsApp) -> None:
    schema = world.app.openapi()
    paths = schema["paths"]
    expected = {
        ("/auth/login", "post"): {"200", "401", "422", "429", "503"},
        ("/auth/refresh", "post"): {"200", "401", "503"},
        ("/auth/logout", "post"): {"204", "401", "503"},
        ("/auth/logout-all", "post"): {"204", "401"},
        ("/auth/register", "post"): {"201", "409", "422"},
        ("/auth/verify/request", "post"): {"202", "422"},
        ("/auth/verify/confirm", "post"): {"200", "400", "422"},
        ("/auth/password-reset/request", "post"): {"202", "422"},
        ("/auth/password-reset/confirm", "post"): {"204", "400", "422"},
        ("/users/me/password", "patch"): {"204", "401", "403", "422"},
        ("/users/me/sessions", "get"): {"200", "401"},
        ("/users/me/sessions/{session_id}", "delete"): {"204", "401", "404", "422"},
        ("/users/me/sessions/others", "delete"): {"200", "401"},
    }
    for (path, method), codes in expected.items():
        assert codes <= set(paths[path][method]["responses"]), (path, method)


class _CountingUsers:
    """A user store that records, in ``events``, each lookup by email."""

    def __init__(self, inner: Any, events: list[str]) -> None:
        self._inner = inner
        self._events = events

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def find_by_email(self, email: str) -> Any:
        self._events.append("lookup")
        return await self._inner.find_by_email(email)


async def _raw_post(app: Any, path: str, body: bytes, events: list[str]) -> int:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 443),
    }
    status_code = 0
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if delivered:
            return {"type": "http.disconnect"}
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status_code
        if message["type"] == "http.response.start":
            status_code = message["status"]
        elif message["type"] == "http.response.body" and not message.get("more_body"):
            events.append("response sent")

    await app(scope, receive, send)
    return status_code


@pytest.mark.parametrize("path", ["/auth/password-reset/request", "/auth/verify/request"])
async def test_request_routes_do_the_same_work_before_answering(
    fake_clock: FakeClock, path: str
) -> None:
    events: list[str] = []
    world = build_accounts_app(fake_clock)
    await world.manager.register("alice@example.io", PASSWORD)
    world.manager.users = _CountingUsers(world.users, events)
    traces = {}
    for email in ("alice@example.io", "nobody@example.io"):
        events.clear()
        status_code = await _raw_post(world.app, path, f'{{"email": "{email}"}}'.encode(), events)
        assert status_code == 202
        traces[email] = list(events)
    # Nothing is looked up before the answer leaves, for a known and an unknown
    # address alike; the lookup follows it.
    assert traces["alice@example.io"] == traces["nobody@example.io"] == ["response sent", "lookup"]


async def test_every_lifecycle_event_fires(fake_clock: FakeClock) -> None:
    world = build_accounts_app(fake_clock)
    fired: list[AccountEvent] = []

    async def record(context: HookContext) -> None:
        fired.append(context.event)

    for event in AccountEvent:
        world.hooks.add(event, record)
    device, other = Device(world), Device(world)
    try:
        await _register(device)
        token = token_from(world.outbox.to("alice@example.io")[-1])
        await device.client.post("/auth/verify/confirm", json={"token": token})
        await device.login("alice@example.io", "wrong password")
        await device.login("alice@example.io")
        old_refresh = device.refresh_token
        await device.refresh()
        device.refresh_token = old_refresh
        await device.refresh()  # reuse
        await device.login("alice@example.io")
        body = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
        await device.call("PATCH", "/users/me/password", json=body)
        await device.call("POST", "/auth/logout")
        reset = await _reset_token(world, device, "alice@example.io")
        await device.client.post(
            "/auth/password-reset/confirm", json={"token": reset, "new_password": PASSWORD}
        )
        for _ in range(5):
            await other.login("alice@example.io", "wrong again")
    finally:
        await device.aclose()
        await other.aclose()
    assert set(fired) == set(AccountEvent)
