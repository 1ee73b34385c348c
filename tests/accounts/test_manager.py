"""AccountManager flows beyond the routers: rehash, inactive users, mail failures."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from fastapi import FastAPI

from fastapi_secure.accounts.mail import LinkBuilder, MailMessage, MemoryOutbox
from fastapi_secure.accounts.manager import (
    AccountManager,
    CurrentPasswordError,
    InvalidCredentialsError,
    user_grant_loader,
)
from fastapi_secure.accounts.routers import auth_router, sessions_router
from fastapi_secure.accounts.users import MemoryUserStore, UserRecord
from fastapi_secure.auth.bearer import BearerAuth
from fastapi_secure.clientip import TrustedProxies
from fastapi_secure.errors import ConfigurationError, RevokedTokenError
from fastapi_secure.passwords.hasher import PasswordHasher
from fastapi_secure.testing import FakeClock
from fastapi_secure.tokens.claims import TokenPair
from fastapi_secure.tokens.stores.memory import MemoryTokenStore
from tests.support.accounts import ORIGIN, AccountsApp, build_accounts_app, token_from

pytestmark = pytest.mark.anyio

PASSWORD = "correct horse battery staple"


async def password_login(manager: AccountManager, name: str) -> TokenPair:
    """A login of an account without a second factor: always a token pair."""
    pair = await manager.login(name, PASSWORD)
    assert isinstance(pair, TokenPair)
    return pair


async def test_configuration_is_checked(fake_clock: FakeClock) -> None:
    world = build_accounts_app(fake_clock)
    with pytest.raises(ConfigurationError, match="links"):
        AccountManager(world.users, world.issuer, world.manager.hasher, mail=MemoryOutbox())
    with pytest.raises(ValueError, match="path"):
        AccountManager(
            world.users,
            world.issuer,
            world.manager.hasher,
            links=LinkBuilder("https://app.example.io"),
            reset_path="//evil.example",
        )
    assert "AccountManager(" in repr(world.manager)


async def test_a_legacy_hash_is_upgraded_without_ending_sessions(fake_clock: FakeClock) -> None:
    world = build_accounts_app(fake_clock)
    legacy = PasswordHasher.insecure_fast_for_tests()
    user = await world.users.create(email="old@x.io", password_hash="placeholder")
    upgraded_from = legacy.hash(PASSWORD)
    await world.users.set_password_hash(user.id, upgraded_from, rotate_stamp=False)
    stronger = PasswordHasher.recommended()
    manager = AccountManager(world.users, world.issuer, stronger)
    await manager.authenticate("old@x.io", PASSWORD)
    after = await world.users.get(user.id)
    assert after is not None
    assert after.password_hash != upgraded_from
    assert after.security_stamp == user.security_stamp


async def test_inactive_users_get_the_same_refusal(fake_clock: FakeClock) -> None:
    world = build_accounts_app(fake_clock)
    user = await world.manager.register("off@x.io", PASSWORD)
    await world.users.set_active(user.id, False)
    with pytest.raises(InvalidCredentialsError):
        await world.manager.authenticate("off@x.io", PASSWORD)
    await world.manager.request_verification("off@x.io")
    await world.manager.request_password_reset("off@x.io")
    assert world.outbox.to("off@x.io") == []
    with pytest.raises(InvalidCredentialsError):
        await world.manager.change_password(user.id, PASSWORD, "another long passphrase")


async def test_a_deactivated_user_cannot_refresh(fake_clock: FakeClock) -> None:
    world = build_accounts_app(fake_clock)
    user = await world.manager.register("gone@x.io", PASSWORD)
    pair = await world.manager.login("gone@x.io", PASSWORD)
    assert isinstance(pair, TokenPair)
    await world.users.set_active(user.id, False)
    with pytest.raises(RevokedTokenError):
        await world.manager.refresh(pair.refresh_token)


async def test_a_password_login_says_so_in_amr(fake_clock: FakeClock) -> None:
    world = build_accounts_app(fake_clock)
    await world.manager.register("pwd@x.io", PASSWORD)
    pair = await world.manager.login("pwd@x.io", PASSWORD)
    assert isinstance(pair, TokenPair)
    claims = await world.manager.issuer.verify_access(pair.access_token)
    assert claims.amr == ("pwd",)
    assert claims.fresh


async def test_a_wrong_current_password_is_refused(fake_clock: FakeClock) -> None:
    world = build_accounts_app(fake_clock)
    user = await world.manager.register("c@x.io", PASSWORD)
    with pytest.raises(CurrentPasswordError):
        await world.manager.change_password(user.id, "p" * 2000, "another long passphrase")


async def test_usernames_are_unlocked_by_a_reset(fake_clock: FakeClock) -> None:
    world = build_accounts_app(fake_clock)
    await world.manager.register("u@x.io", PASSWORD, username="Ursula")
    for _ in range(5):
        with pytest.raises(InvalidCredentialsError):
            await world.manager.authenticate("ursula", "wrong password")
    await world.manager.request_password_reset("u@x.io")
    message = world.outbox.to("u@x.io")[-1]
    assert message.link is not None
    token = message.link.split("token=")[1]
    await world.manager.confirm_password_reset(token, "a brand new passphrase")
    await world.manager.authenticate("ursula", "a brand new passphrase")


class BrokenSender:
    async def send(self, message: MailMessage) -> None:
        raise ConnectionError(f"smtp down while sending {message.link}")


async def test_a_failing_sender_is_logged_without_the_link(
    fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    world = build_accounts_app(fake_clock)
    manager = AccountManager(
        world.users,
        world.issuer,
        world.manager.hasher,
        mail=BrokenSender(),
        links=LinkBuilder("https://app.example.io"),
    )
    await manager.register("m@x.io", PASSWORD)
    with caplog.at_level(logging.ERROR, logger="fastapi_secure.accounts"):
        await manager.request_password_reset("m@x.io")
    assert "ConnectionError" in caplog.text
    assert "token=" not in caplog.text


async def test_without_mail_nothing_is_sent(fake_clock: FakeClock) -> None:
    world = build_accounts_app(fake_clock)
    manager = AccountManager(world.users, world.issuer, world.manager.hasher)
    user = await manager.register("q@x.io", PASSWORD)
    await manager.send_verification(user)
    await manager.notify_existing("q@x.io")
    await manager.request_password_reset("q@x.io")


async def test_trusted_proxies_decide_the_client_address(fake_clock: FakeClock) -> None:
    world = build_accounts_app(fake_clock)
    await world.manager.register("p@x.io", PASSWORD)
    app = FastAPI()
    transport = BearerAuth(world.issuer)
    proxies = TrustedProxies(["127.0.0.1/32"])
    app.include_router(auth_router(world.manager, transport, trusted_proxies=proxies))
    app.include_router(sessions_router(world.manager, transport))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 5000)), base_url=ORIGIN
    ) as client:
        login = await client.post(
            "/auth/login",
            data={"username": "p@x.io", "password": PASSWORD},
            headers={"X-Forwarded-For": "198.51.100.23"},
        )
        token = login.json()["access_token"]
        listed = await client.get(
            "/users/me/sessions", headers={"Authorization": f"Bearer {token}"}
        )
    assert listed.json()[0]["client_address"] == "198.51.100.0/24"


def test_sessions_router_needs_sessions(fake_clock: FakeClock) -> None:
    world = build_accounts_app(fake_clock)

    class Plain(MemoryTokenStore):
        record_session = None  # type: ignore[assignment]

    issuer_without = type(world.issuer)(
        world.issuer.keys,
        Plain(clock=fake_clock),
        issuer=ORIGIN,
        audience=ORIGIN,
        grant_loader=user_grant_loader(world.users),
    )
    manager = AccountManager(world.users, issuer_without, world.manager.hasher)
    assert manager.sessions is None
    with pytest.raises(ConfigurationError, match="sessions"):
        sessions_router(manager, BearerAuth(issuer_without))


async def test_quiet_registration_still_refuses_weak_passwords(fake_clock: FakeClock) -> None:
    world = build_accounts_app(fake_clock, reveal_existing=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=world.app), base_url=ORIGIN
    ) as client:
        response = await client.post(
            "/auth/register", json={"email": "w@x.io", "password": "password"}
        )
    assert response.status_code == 422


class _CountingHasher:
    """Counts every password verification, real or dummy."""

    def __init__(self, inner: PasswordHasher) -> None:
        self.inner = inner
        self.verifications = 0

    async def ahash(self, password: str) -> str:
        return await self.inner.ahash(password)

    async def averify(self, password: str, hash: str) -> bool:
        self.verifications += 1
        return await self.inner.averify(password, hash)

    async def averify_and_update(self, password: str, hash: str) -> tuple[bool, str | None]:
        self.verifications += 1
        return await self.inner.averify_and_update(password, hash)

    async def adummy_verify(self, password: str | None = None) -> None:
        self.verifications += 1
        await self.inner.adummy_verify(password)


@pytest.mark.parametrize(
    ("name", "password"),
    [
        ("alice@x.io", "wrong password"),  # known account, wrong password
        ("ghost@x.io", "wrong password"),  # unknown account
        ("alice", "wrong password"),  # unknown username
        ("\u0000bad", "wrong password"),  # implausible name
        ("alice@x.io", "p" * 5000),  # oversized password
        ("inactive@x.io", PASSWORD),  # right password, inactive account
    ],
)
async def test_every_failed_login_spends_one_verification(
    fake_clock: FakeClock, name: str, password: str
) -> None:
    world = build_accounts_app(fake_clock)
    hasher = _CountingHasher(PasswordHasher.insecure_fast_for_tests())
    manager = AccountManager(world.users, world.issuer, hasher)  # type: ignore[arg-type]
    await manager.register("alice@x.io", PASSWORD)
    inactive = await manager.register("inactive@x.io", PASSWORD)
    await world.users.set_active(inactive.id, False)
    hasher.verifications = 0
    with pytest.raises(InvalidCredentialsError) as caught:
        await manager.authenticate(name, password)
    assert hasher.verifications == 1
    assert caught.value.message == "incorrect login name or password"


class PausingUserStore(MemoryUserStore):
    """A user store that can hold one lookup until the test lets it go, to run
    another flow in the middle of a login."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.pause_in: str | None = None
        self.reached = asyncio.Event()
        self.release = asyncio.Event()

    async def _maybe_pause(self, method: str) -> None:
        if self.pause_in == method:
            self.pause_in = None
            self.reached.set()
            await self.release.wait()

    async def find_by_login(self, login_name: str) -> UserRecord | None:
        found = await super().find_by_login(login_name)
        await self._maybe_pause("find_by_login")
        return found

    async def get(self, user_id: str) -> UserRecord | None:
        await self._maybe_pause("get:before")
        found = await super().get(user_id)
        await self._maybe_pause("get:after")
        return found


async def _login_racing(
    world: AccountsApp, users: PausingUserStore, pause_in: str, change: str
) -> tuple[BaseException | TokenPair, str]:
    """Start a login, pause it in ``pause_in``, run ``change`` (a password change
    from another session, or a reset) to the end, then let the login finish."""
    user = await world.manager.register("race@x.io", PASSWORD)
    other = await password_login(world.manager, "race@x.io")
    users.pause_in = pause_in
    login = asyncio.ensure_future(password_login(world.manager, "race@x.io"))
    await asyncio.wait_for(users.reached.wait(), 5)
    if change == "change":
        await world.manager.change_password(
            user.id, PASSWORD, "a brand new passphrase", session_id=other.session_id
        )
    else:
        await world.manager.request_password_reset("race@x.io")
        token = token_from(world.outbox.to("race@x.io")[-1])
        await world.manager.confirm_password_reset(token, "a brand new passphrase")
    users.release.set()
    try:
        outcome: BaseException | TokenPair = await login
    except InvalidCredentialsError as refused:
        outcome = refused
    return outcome, user.id


@pytest.mark.parametrize("pause_in", ["find_by_login", "get:before"])
@pytest.mark.parametrize("change", ["change", "reset"])
async def test_a_login_racing_a_password_change_is_refused(
    fake_clock: FakeClock, pause_in: str, change: str
) -> None:
    """The login checked the old password (paused after reading the account, or
    after storing its session); the change ran to the end meanwhile. The login
    is refused and leaves no session behind."""
    users = PausingUserStore(fake_clock)
    world = build_accounts_app(fake_clock, users=users)
    outcome, subject = await _login_racing(world, users, pause_in, change)
    assert isinstance(outcome, InvalidCredentialsError)
    assert world.manager.sessions is not None
    live = await world.manager.sessions.list_sessions(subject)
    assert len(live) == (1 if change == "change" else 0)


@pytest.mark.parametrize("change", ["change", "reset"])
async def test_a_login_that_read_the_account_before_the_change_is_ended_by_it(
    fake_clock: FakeClock, change: str
) -> None:
    """Paused after its last read of the account: the change came later and its
    revocation step ends the session the login had already stored."""
    users = PausingUserStore(fake_clock)
    world = build_accounts_app(fake_clock, users=users)
    outcome, _ = await _login_racing(world, users, "get:after", change)
    assert isinstance(outcome, TokenPair)
    with pytest.raises(RevokedTokenError):
        await world.issuer.verify_access(outcome.access_token)
    with pytest.raises(RevokedTokenError):
        await world.manager.refresh(outcome.refresh_token)


async def test_a_login_that_finishes_before_the_change_is_ended_by_it(
    fake_clock: FakeClock,
) -> None:
    """The other order: the login's session exists before the change, which ends it."""
    world = build_accounts_app(fake_clock)
    user = await world.manager.register("order@x.io", PASSWORD)
    changer = await password_login(world.manager, "order@x.io")
    earlier = await password_login(world.manager, "order@x.io")
    await world.manager.change_password(
        user.id, PASSWORD, "a brand new passphrase", session_id=changer.session_id
    )
    with pytest.raises(RevokedTokenError):
        await world.manager.refresh(earlier.refresh_token)
    assert (await world.manager.refresh(changer.refresh_token)).access_token
