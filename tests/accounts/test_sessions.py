"""SessionManager over a real TokenIssuer: list, revoke one, revoke others, bound."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastapi_secure.accounts.addresses import coarsen_address
from fastapi_secure.accounts.hooks import AccountEvent, AccountHooks, HookContext
from fastapi_secure.accounts.sessions import SessionManager
from fastapi_secure.errors import ConfigurationError, RevokedTokenError
from fastapi_secure.testing import FakeClock
from fastapi_secure.tokens.claims import TokenPair
from fastapi_secure.tokens.issuer import TokenIssuer, keep_login_grant
from fastapi_secure.tokens.keys import KeySet
from fastapi_secure.tokens.stores.base import TokenStore
from fastapi_secure.tokens.stores.memory import MemoryTokenStore

pytestmark = pytest.mark.anyio

SECRET = "accounts-test-secret-of-at-least-32-bytes!!"


@pytest.fixture
def issuer(store: TokenStore, fake_clock: FakeClock) -> TokenIssuer:
    return TokenIssuer(
        KeySet.from_secret(SECRET, kid="k1"),
        store,
        issuer="https://issuer.test",
        audience="https://api.test",
        clock=fake_clock,
        grant_loader=keep_login_grant,
    )


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def store(request: pytest.FixtureRequest, fake_clock: FakeClock) -> AsyncIterator[TokenStore]:
    if request.param == "memory":
        yield MemoryTokenStore(clock=fake_clock)
        return
    from fastapi_secure.tokens.stores.redis import RedisTokenStore

    url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_prefix")
    redis_store = RedisTokenStore.from_url(url, prefix=prefix)
    try:
        yield redis_store
    finally:
        await redis_store.aclose()


async def _login(
    issuer: TokenIssuer,
    sessions: SessionManager,
    subject: str = "7",
    *,
    agent: str = "Firefox",
    address: str = "203.0.113.9",
) -> tuple[TokenPair, str]:
    pair = await issuer.issue(subject)
    session_id = (await issuer.verify_access(pair.access_token)).sid
    await sessions.start(subject, session_id, user_agent=agent, client_address=address)
    return pair, session_id


async def test_two_logins_two_sessions_revoke_one(
    issuer: TokenIssuer, fake_clock: FakeClock
) -> None:
    sessions = SessionManager(issuer)
    laptop, laptop_id = await _login(issuer, sessions, agent="Laptop", address="203.0.113.9")
    fake_clock.advance(10)
    phone, phone_id = await _login(issuer, sessions, agent="Phone", address="2001:db8:5:6::1")
    listed = await sessions.list_sessions("7")
    assert [(s.session_id, s.user_agent, s.client_address) for s in listed] == [
        (phone_id, "Phone", "2001:db8:5:6::/64"),
        (laptop_id, "Laptop", "203.0.113.0/24"),
    ]
    assert await sessions.revoke("7", laptop_id) is True
    with pytest.raises(RevokedTokenError):
        await issuer.verify_access(laptop.access_token)
    await issuer.verify_access(phone.access_token)
    assert [s.session_id for s in await sessions.list_sessions("7")] == [phone_id]


async def test_a_user_cannot_revoke_another_users_session(issuer: TokenIssuer) -> None:
    sessions = SessionManager(issuer)
    victim, victim_session = await _login(issuer, sessions, "1")
    await _login(issuer, sessions, "2")
    assert await sessions.revoke("2", victim_session) is False
    for junk in ("", "junk", "x" * 5000, victim_session + "x"):
        assert await sessions.revoke("2", junk) is False
    await issuer.verify_access(victim.access_token)


async def test_revoke_others_keeps_the_current_session(
    issuer: TokenIssuer, fake_clock: FakeClock
) -> None:
    hooks = AccountHooks(clock=fake_clock)
    seen: list[HookContext] = []

    @hooks.on(AccountEvent.SESSION_REVOKED)
    async def record(context: HookContext) -> None:
        seen.append(context)

    sessions = SessionManager(issuer, hooks=hooks)
    pairs = []
    for _ in range(3):
        pairs.append(await _login(issuer, sessions))
        fake_clock.advance(1)
    current = pairs[1][1]
    ended = await sessions.revoke_others("7", current)
    assert sorted(ended) == sorted([pairs[0][1], pairs[2][1]])
    assert [s.session_id for s in await sessions.list_sessions("7")] == [current]
    await issuer.verify_access(pairs[1][0].access_token)
    assert {context.session_id for context in seen} == set(ended)
    assert all(context.subject == "7" for context in seen)


async def test_the_oldest_session_ends_beyond_the_bound(
    issuer: TokenIssuer, fake_clock: FakeClock
) -> None:
    sessions = SessionManager(issuer, max_sessions=2)
    first, first_id = await _login(issuer, sessions)
    fake_clock.advance(1)
    await _login(issuer, sessions)
    fake_clock.advance(1)
    await _login(issuer, sessions)
    assert first_id not in [s.session_id for s in await sessions.list_sessions("7")]
    assert len(await sessions.list_sessions("7")) == 2
    with pytest.raises(RevokedTokenError):
        await issuer.verify_access(first.access_token)


async def test_refresh_touches_the_session(issuer: TokenIssuer, fake_clock: FakeClock) -> None:
    sessions = SessionManager(issuer)
    _, session_id = await _login(issuer, sessions)
    started = fake_clock()
    fake_clock.advance(120)
    await sessions.touch("7", session_id)
    [session] = await sessions.list_sessions("7")
    assert session.created_at == started
    assert session.last_used_at == started + 120


async def test_logout_everywhere_empties_the_list(issuer: TokenIssuer) -> None:
    sessions = SessionManager(issuer)
    await _login(issuer, sessions)
    await issuer.revoke_subject("7")
    assert await sessions.list_sessions("7") == []


def test_configuration_is_checked(fake_clock: FakeClock) -> None:
    issuer = TokenIssuer(
        KeySet.from_secret(SECRET, kid="k1"),
        MemoryTokenStore(clock=fake_clock),
        issuer="https://issuer.test",
        audience="https://api.test",
        grant_loader=keep_login_grant,
    )
    for bad in (0, -1, 10**6, True):
        with pytest.raises(ConfigurationError):
            SessionManager(issuer, max_sessions=bad)
    assert "max_sessions=10" in repr(SessionManager(issuer))
    assert SessionManager(issuer, max_sessions=3).max_sessions == 3


def test_a_store_without_sessions_is_refused(fake_clock: FakeClock) -> None:
    class Plain(MemoryTokenStore):
        record_session = None  # type: ignore[assignment]

    issuer = TokenIssuer(
        KeySet.from_secret(SECRET, kid="k1"),
        Plain(clock=fake_clock),
        issuer="https://issuer.test",
        audience="https://api.test",
        grant_loader=keep_login_grant,
    )
    with pytest.raises(ConfigurationError, match="sessions"):
        SessionManager(issuer)


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("203.0.113.77", "203.0.113.0/24"),
        ("::ffff:203.0.113.77", "203.0.113.0/24"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        (ipaddress.ip_address("198.51.100.1"), "198.51.100.0/24"),
        (None, None),
        ("", None),
        ("not-an-address", None),
        ("1" * 100, None),
    ],
)
def test_addresses_are_coarsened(
    address: str | ipaddress.IPv4Address | None, expected: str | None
) -> None:
    assert coarsen_address(address) == expected


def test_coarsening_prefixes_are_checked() -> None:
    assert coarsen_address("203.0.113.77", ipv4_prefix=32) == "203.0.113.77/32"
    with pytest.raises(ValueError, match="prefix"):
        coarsen_address("203.0.113.77", ipv4_prefix=33)


@given(st.text(max_size=80))
def test_any_text_coarsens_to_a_network_or_nothing(text: str) -> None:
    network = coarsen_address(text)
    if network is not None:
        parsed = ipaddress.ip_network(network)
        assert parsed.prefixlen in {24, 64}


@given(st.ip_addresses())
def test_every_address_lands_in_its_own_network(address: ipaddress.IPv4Address) -> None:
    network = coarsen_address(str(address))
    assert network is not None
    mapped = getattr(address, "ipv4_mapped", None)
    assert (mapped or address) in ipaddress.ip_network(network)
