"""Sessions per device: one contract over memory, Redis and Redis Cluster."""

from __future__ import annotations

import anyio
import pytest

from fastapi_secure.testing import FakeClock
from fastapi_secure.tokens.stores.base import (
    MAX_USER_AGENT_LENGTH,
    SessionInfo,
    SessionStore,
    TokenState,
    TokenStore,
    clean_user_agent,
    new_family_id,
)
from fastapi_secure.tokens.stores.memory import MemoryTokenStore

pytestmark = pytest.mark.anyio

TTL = 3600.0
NOW = 1_800_000_000.0


def _sessions(store: TokenStore) -> SessionStore:
    assert isinstance(store, SessionStore)
    return store


async def _login(
    store: TokenStore,
    subject: str = "alice",
    *,
    now: float = NOW,
    max_sessions: int = 10,
    user_agent: str | None = "Firefox",
    address: str | None = "203.0.113.0/24",
) -> tuple[str, list[str]]:
    family_id = new_family_id(subject)
    await store.create_family(subject, family_id, refresh_jti=f"rt-{family_id}", ttl=TTL)
    evicted = await _sessions(store).record_session(
        subject,
        family_id,
        now=now,
        ttl=TTL,
        max_sessions=max_sessions,
        user_agent=user_agent,
        client_address=address,
    )
    return family_id, evicted


async def test_sessions_are_listed_newest_first(store: TokenStore) -> None:
    first, _ = await _login(store, now=NOW, user_agent="Firefox")
    second, _ = await _login(store, now=NOW + 5, user_agent=None, address="2001:db8::/64")
    listed = await _sessions(store).list_sessions("alice")
    assert listed == [
        SessionInfo(second, NOW + 5, NOW + 5, None, "2001:db8::/64"),
        SessionInfo(first, NOW, NOW, "Firefox", "203.0.113.0/24"),
    ]


async def test_sessions_are_per_user(store: TokenStore) -> None:
    await _login(store, "alice")
    bobs, _ = await _login(store, "bob")
    assert [s.session_id for s in await _sessions(store).list_sessions("bob")] == [bobs]
    assert await _sessions(store).list_sessions("carol") == []


async def test_revoking_a_session_kills_its_access_tokens_at_once(store: TokenStore) -> None:
    doomed, _ = await _login(store, now=NOW)
    kept, _ = await _login(store, now=NOW + 1)
    assert await _sessions(store).revoke_session("alice", doomed) is True
    assert await store.check_access("alice", doomed, jti="at") is TokenState.FAMILY_REVOKED
    assert await store.check_access("alice", kept, jti="at") is TokenState.ACTIVE
    assert [s.session_id for s in await _sessions(store).list_sessions("alice")] == [kept]
    assert await _sessions(store).revoke_session("alice", doomed) is False


async def test_nobody_revokes_another_users_session(store: TokenStore) -> None:
    alices, _ = await _login(store, "alice")
    assert await _sessions(store).revoke_session("mallory", alices) is False
    assert await store.check_access("alice", alices, jti="at") is TokenState.ACTIVE
    assert len(await _sessions(store).list_sessions("alice")) == 1


@pytest.mark.parametrize("family_id", ["", "x", "0123456789abcdef.", "{tag}.aaaaaaaaaaaaaaaa"])
async def test_malformed_session_ids_are_harmless(store: TokenStore, family_id: str) -> None:
    await _login(store)
    assert await _sessions(store).revoke_session("alice", family_id) is False
    await _sessions(store).touch_session("alice", family_id, now=NOW, ttl=TTL)
    with pytest.raises(ValueError, match="family_id"):
        await _sessions(store).record_session("alice", family_id, now=NOW, ttl=TTL, max_sessions=3)
    assert len(await _sessions(store).list_sessions("alice")) == 1


async def test_the_oldest_session_ends_first(store: TokenStore) -> None:
    ids = []
    for index in range(3):
        family_id, evicted = await _login(store, now=NOW + index, max_sessions=3)
        assert evicted == []
        ids.append(family_id)
    newest, evicted = await _login(store, now=NOW + 10, max_sessions=3)
    assert evicted == [ids[0]]
    assert await store.check_access("alice", ids[0], jti="at") is TokenState.FAMILY_REVOKED
    assert await store.check_refresh("alice", ids[0], jti=f"rt-{ids[0]}") is not TokenState.ACTIVE
    listed = [s.session_id for s in await _sessions(store).list_sessions("alice")]
    assert listed == [newest, ids[2], ids[1]]


async def test_revoked_sessions_do_not_count_toward_the_bound(store: TokenStore) -> None:
    first, _ = await _login(store, now=NOW, max_sessions=2)
    second, _ = await _login(store, now=NOW + 1, max_sessions=2)
    await store.revoke_family(first)
    third, evicted = await _login(store, now=NOW + 2, max_sessions=2)
    assert evicted == []
    assert [s.session_id for s in await _sessions(store).list_sessions("alice")] == [third, second]


async def test_logout_everywhere_empties_the_list(store: TokenStore) -> None:
    await _login(store, now=NOW)
    await _login(store, now=NOW + 1)
    await store.revoke_subject("alice", ttl=TTL)
    assert await _sessions(store).list_sessions("alice") == []
    after, _ = await _login(store, now=NOW + 2)
    assert [s.session_id for s in await _sessions(store).list_sessions("alice")] == [after]


async def test_refresh_token_reuse_drops_the_session(store: TokenStore) -> None:
    family_id, _ = await _login(store)
    jti = f"rt-{family_id}"
    await store.rotate("alice", family_id, jti=jti, successor_jti="n", ttl=TTL, now=NOW)
    state = await store.rotate("alice", family_id, jti=jti, successor_jti="n2", ttl=TTL, now=NOW)
    assert state is TokenState.REUSED
    assert await _sessions(store).list_sessions("alice") == []


async def test_touch_records_the_last_use(store: TokenStore) -> None:
    family_id, _ = await _login(store, now=NOW)
    await _sessions(store).touch_session("alice", family_id, now=NOW + 60, ttl=TTL)
    await _sessions(store).touch_session("alice", family_id, now=NOW + 30, ttl=TTL)  # late write
    [session] = await _sessions(store).list_sessions("alice")
    assert session.created_at == NOW
    assert session.last_used_at == NOW + 60
    await _sessions(store).touch_session("alice", new_family_id("alice"), now=NOW, ttl=TTL)


async def test_concurrent_logins_respect_the_bound(store: TokenStore) -> None:
    evicted: list[str] = []

    async def login(index: int) -> None:
        _, gone = await _login(store, now=NOW + index, max_sessions=3)
        evicted.extend(gone)

    async with anyio.create_task_group() as group:
        for index in range(12):
            group.start_soon(login, index)
    listed = await _sessions(store).list_sessions("alice")
    assert len(listed) == 3
    assert len(evicted) == 9
    assert not {s.session_id for s in listed} & set(evicted)


async def test_user_agents_are_cleaned(store: TokenStore) -> None:
    await _login(store, user_agent="Evil\r\nInjected\x00" + "A" * 1000)
    [session] = await _sessions(store).list_sessions("alice")
    assert session.user_agent is not None
    assert session.user_agent.isprintable()
    assert len(session.user_agent) == MAX_USER_AGENT_LENGTH
    assert clean_user_agent("") is None
    assert clean_user_agent("\x00\x01") is None


async def test_max_sessions_must_be_positive(store: TokenStore) -> None:
    family_id = new_family_id("alice")
    with pytest.raises(ValueError, match="max_sessions"):
        await _sessions(store).record_session("alice", family_id, now=NOW, ttl=TTL, max_sessions=0)


async def test_memory_sessions_expire_with_their_metadata(fake_clock: FakeClock) -> None:
    store = MemoryTokenStore(clock=fake_clock, prune_interval=10)
    family_id = new_family_id("alice")
    await store.create_family("alice", family_id, refresh_jti="rt", ttl=TTL * 2)
    await store.record_session("alice", family_id, now=NOW, ttl=TTL, max_sessions=3)
    await store.touch_session("alice", family_id, now=NOW + 1, ttl=TTL)
    fake_clock.advance(TTL + 1)
    await store.touch_session("alice", family_id, now=NOW + 2, ttl=TTL)  # too late: gone
    assert await store.list_sessions("alice") == []
    assert store.prune() >= 0
    assert store.size() == 1  # the family itself lives on until its own expiry


async def test_a_redis_outage_is_a_store_error() -> None:
    pytest.importorskip("redis")
    from fastapi_secure.errors import StoreUnavailableError
    from fastapi_secure.tokens.stores.redis import RedisTokenStore

    store = RedisTokenStore.from_url("redis://127.0.0.1:1/0", operation_timeout=1)
    try:
        with pytest.raises(StoreUnavailableError):
            await store.list_sessions("alice")
        with pytest.raises(StoreUnavailableError):
            await store.record_session(
                "alice", new_family_id("alice"), now=NOW, ttl=TTL, max_sessions=3
            )
    finally:
        await store.aclose()
