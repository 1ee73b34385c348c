"""One behavioural contract, run on every TokenStore: memory, Redis, Redis Cluster."""

from __future__ import annotations

# --- PasswordPolicy: NFKC of attacker-sized input on the event loop ---------------------
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterator

import anyio
import pytest
from fastapi import Depends, FastAPI

from fastapi_secure.auth import BearerAuth
from fastapi_secure.errors import (
    ConfigurationError,
    StoreUnavailableError,
)
from fastapi_secure.http_errors import status_of
from fastapi_secure.testing import FakeClock
from fastapi_secure.tokens.claims import AccessClaims
from fastapi_secure.tokens.stores.base import (
    TokenState,
    TokenStore,
    digest,
    family_tag,
    new_family_id,
    subject_tag,
)
from fastapi_secure.tokens.stores.memory import MemoryTokenStore
from fastapi_secure.tokens.stores.redis import RedisTokenStore
from tests.support.auth import bearer, client, make_issuer

pytestmark = pytest.mark.anyio

TTL = 3600.0
NOW = 1_800_000_000.0


async def _family(store: TokenStore, subject: str = "alice", jti: str = "rt-1") -> str:
    family_id = new_family_id(subject)
    await store.create_family(subject, family_id, refresh_jti=jti, ttl=TTL)
    return family_id


async def _rotate(
    store: TokenStore,
    family_id: str,
    jti: str,
    successor: str,
    *,
    subject: str = "alice",
    now: float = NOW,
    grace: float = 0.0,
) -> TokenState:
    return await store.rotate(
        subject, family_id, jti=jti, successor_jti=successor, ttl=TTL, now=now, grace=grace
    )


async def test_new_family_is_active(store: TokenStore) -> None:
    family_id = await _family(store)
    assert await store.check_access("alice", family_id, jti="at-1") is TokenState.ACTIVE
    assert await store.check_refresh("alice", family_id, jti="rt-1") is TokenState.ACTIVE


async def test_unknown_family_is_unknown(store: TokenStore) -> None:
    family_id = new_family_id("alice")  # well formed, never created
    assert await store.check_access("alice", family_id, jti="at") is TokenState.UNKNOWN
    assert await store.check_refresh("alice", family_id, jti="rt") is TokenState.UNKNOWN
    assert await _rotate(store, family_id, "rt", "rt-2") is TokenState.UNKNOWN


@pytest.mark.parametrize(
    "family_id",
    ["", "x", "not-a-family", "0123456789abcdef.", "../../etc/passwd", "{tag}.aaaaaaaaaaaaaaaa"],
)
async def test_malformed_family_ids_are_unknown_and_harmless(
    store: TokenStore, family_id: str
) -> None:
    assert await store.check_access("alice", family_id, jti="at") is TokenState.UNKNOWN
    assert await _rotate(store, family_id, "rt", "rt-2") is TokenState.UNKNOWN
    await store.revoke_family(family_id)
    await store.deny_token("alice", family_id, jti="at", ttl=TTL)


async def test_family_of_another_subject_is_unknown(store: TokenStore) -> None:
    family_id = await _family(store, "alice")
    assert await store.check_access("mallory", family_id, jti="at") is TokenState.UNKNOWN
    assert await store.check_refresh("mallory", family_id, jti="rt-1") is TokenState.UNKNOWN
    assert await _rotate(store, family_id, "rt-1", "x", subject="mallory") is TokenState.UNKNOWN
    # and alice's family is untouched by the attempt
    assert await store.check_refresh("alice", family_id, jti="rt-1") is TokenState.ACTIVE


async def test_create_family_refuses_an_id_made_for_another_subject(store: TokenStore) -> None:
    with pytest.raises(ValueError, match="family_id"):
        await store.create_family("alice", new_family_id("bob"), refresh_jti="rt", ttl=TTL)


async def test_rotation_moves_the_current_refresh_token(store: TokenStore) -> None:
    family_id = await _family(store)
    assert await _rotate(store, family_id, "rt-1", "rt-2") is TokenState.ROTATED
    assert await store.check_refresh("alice", family_id, jti="rt-1") is TokenState.CONSUMED
    assert await store.check_refresh("alice", family_id, jti="rt-2") is TokenState.ACTIVE
    assert await _rotate(store, family_id, "rt-2", "rt-3") is TokenState.ROTATED
    assert await store.check_refresh("alice", family_id, jti="rt-3") is TokenState.ACTIVE


async def test_check_refresh_of_a_consumed_token_changes_nothing(store: TokenStore) -> None:
    family_id = await _family(store)
    await _rotate(store, family_id, "rt-1", "rt-2")
    assert await store.check_refresh("alice", family_id, jti="rt-1") is TokenState.CONSUMED
    assert await store.check_refresh("alice", family_id, jti="rt-2") is TokenState.ACTIVE


async def test_reuse_revokes_the_family(store: TokenStore) -> None:
    family_id = await _family(store)
    assert await _rotate(store, family_id, "rt-1", "rt-2") is TokenState.ROTATED
    assert await _rotate(store, family_id, "rt-1", "rt-2") is TokenState.REUSED
    assert await store.check_access("alice", family_id, jti="at") is TokenState.FAMILY_REVOKED
    assert await store.check_refresh("alice", family_id, jti="rt-2") is TokenState.FAMILY_REVOKED
    assert await _rotate(store, family_id, "rt-2", "rt-3") is TokenState.FAMILY_REVOKED


async def test_reuse_of_an_older_ancestor_is_reuse(store: TokenStore) -> None:
    family_id = await _family(store)
    await _rotate(store, family_id, "rt-1", "rt-2")
    await _rotate(store, family_id, "rt-2", "rt-3")
    assert await _rotate(store, family_id, "rt-1", "rt-2", grace=30) is TokenState.REUSED


async def test_grace_window_answers_grace_and_changes_nothing(store: TokenStore) -> None:
    family_id = await _family(store)
    assert await _rotate(store, family_id, "rt-1", "rt-2", now=NOW) is TokenState.ROTATED
    assert await _rotate(store, family_id, "rt-1", "rt-2", now=NOW + 10, grace=10) is (
        TokenState.GRACE
    )
    assert await store.check_refresh("alice", family_id, jti="rt-2") is TokenState.ACTIVE
    # the successor still rotates normally afterwards
    assert await _rotate(store, family_id, "rt-2", "rt-3", now=NOW + 11) is TokenState.ROTATED


async def test_grace_window_ends(store: TokenStore) -> None:
    family_id = await _family(store)
    await _rotate(store, family_id, "rt-1", "rt-2", now=NOW)
    assert await _rotate(store, family_id, "rt-1", "rt-2", now=NOW + 10.001, grace=10) is (
        TokenState.REUSED
    )
    assert await store.check_access("alice", family_id, jti="at") is TokenState.FAMILY_REVOKED


async def test_grace_does_not_apply_once_the_successor_was_used(store: TokenStore) -> None:
    family_id = await _family(store)
    await _rotate(store, family_id, "rt-1", "rt-2", now=NOW)
    await _rotate(store, family_id, "rt-2", "rt-3", now=NOW + 1)
    assert await _rotate(store, family_id, "rt-2", "rt-3", now=NOW + 2, grace=30) is (
        TokenState.GRACE
    )
    # rt-1's successor (rt-2) is no longer current: rt-1 is plain reuse
    assert await _rotate(store, family_id, "rt-1", "rt-2", now=NOW + 2, grace=30) is (
        TokenState.REUSED
    )


async def test_grace_needs_the_same_successor(store: TokenStore) -> None:
    family_id = await _family(store)
    await _rotate(store, family_id, "rt-1", "rt-2", now=NOW)
    assert await _rotate(store, family_id, "rt-1", "other", now=NOW, grace=30) is (
        TokenState.REUSED
    )


async def test_without_grace_even_the_same_instant_is_reuse(store: TokenStore) -> None:
    family_id = await _family(store)
    await _rotate(store, family_id, "rt-1", "rt-2", now=NOW)
    assert await _rotate(store, family_id, "rt-1", "rt-2", now=NOW, grace=0) is TokenState.REUSED


async def test_concurrent_rotations_of_one_token_exactly_one_wins(store: TokenStore) -> None:
    family_id = await _family(store)
    results: list[TokenState] = []

    async def attempt() -> None:
        results.append(await _rotate(store, family_id, "rt-1", "rt-2"))

    async with anyio.create_task_group() as tasks:
        for _ in range(50):
            tasks.start_soon(attempt)
    assert results.count(TokenState.ROTATED) == 1
    assert set(results) <= {TokenState.ROTATED, TokenState.REUSED, TokenState.FAMILY_REVOKED}
    assert await store.check_access("alice", family_id, jti="at") is TokenState.FAMILY_REVOKED


async def test_deny_token_revokes_only_that_jti(store: TokenStore) -> None:
    family_id = await _family(store)
    await store.deny_token("alice", family_id, jti="at-1", ttl=60)
    assert await store.check_access("alice", family_id, jti="at-1") is TokenState.TOKEN_REVOKED
    assert await store.check_access("alice", family_id, jti="at-2") is TokenState.ACTIVE
    assert await store.check_refresh("alice", family_id, jti="rt-1") is TokenState.ACTIVE


async def test_revoke_family_revokes_only_that_family(store: TokenStore) -> None:
    first = await _family(store)
    second = await _family(store)
    await store.revoke_family(first)
    assert await store.check_access("alice", first, jti="at") is TokenState.FAMILY_REVOKED
    assert await _rotate(store, first, "rt-1", "rt-2") is TokenState.FAMILY_REVOKED
    assert await store.check_access("alice", second, jti="at") is TokenState.ACTIVE


async def test_revoke_unknown_family_is_a_no_op(store: TokenStore) -> None:
    family_id = new_family_id("alice")
    await store.revoke_family(family_id)
    assert await store.check_access("alice", family_id, jti="at") is TokenState.UNKNOWN


async def test_revoke_subject_revokes_every_earlier_family(store: TokenStore) -> None:
    families = [await _family(store) for _ in range(3)]
    other = await _family(store, "bob")
    await store.revoke_subject("alice", ttl=TTL)
    for family_id in families:
        assert await store.check_access("alice", family_id, jti="a") is (TokenState.SUBJECT_REVOKED)
        assert await _rotate(store, family_id, "rt-1", "rt-2") is TokenState.SUBJECT_REVOKED
    assert await store.check_access("bob", other, jti="a") is TokenState.ACTIVE


async def test_families_started_after_revoke_subject_are_active(store: TokenStore) -> None:
    before = await _family(store)
    await store.revoke_subject("alice", ttl=TTL)
    after = await _family(store)
    assert await store.check_access("alice", before, jti="a") is TokenState.SUBJECT_REVOKED
    assert await store.check_access("alice", after, jti="a") is TokenState.ACTIVE
    await store.revoke_subject("alice", ttl=TTL)
    assert await store.check_access("alice", after, jti="a") is TokenState.SUBJECT_REVOKED
    latest = await _family(store)
    assert await store.check_refresh("alice", latest, jti="rt-1") is TokenState.ACTIVE


# -- memory backend: expiry on the injected clock --------------------------------


async def test_memory_entries_expire_on_the_clock(fake_clock: FakeClock) -> None:
    store = MemoryTokenStore(clock=fake_clock)
    family_id = await _family(store)
    await store.deny_token("alice", family_id, jti="at", ttl=60)
    await store.revoke_subject("bob", ttl=60)
    fake_clock.advance(TTL - 1)
    assert await store.check_refresh("alice", family_id, jti="rt-1") is TokenState.ACTIVE
    fake_clock.advance(1)
    assert await store.check_refresh("alice", family_id, jti="rt-1") is TokenState.UNKNOWN


async def test_memory_prunes_expired_entries(fake_clock: FakeClock) -> None:
    store = MemoryTokenStore(clock=fake_clock, prune_interval=60)
    for subject in ("a", "b", "c"):
        family_id = await _family(store, subject)
        await store.deny_token(subject, family_id, jti="at", ttl=60)
        await store.revoke_subject(subject, ttl=60)
    assert store.size() == 9
    fake_clock.advance(TTL + 1)
    # any operation after the prune interval sweeps
    await store.revoke_family(new_family_id("z"))
    assert store.size() == 0


async def test_memory_prune_on_demand(fake_clock: FakeClock) -> None:
    store = MemoryTokenStore(clock=fake_clock, prune_interval=10**9)
    family_id = await _family(store)
    await store.deny_token("alice", family_id, jti="at", ttl=60)
    fake_clock.advance(61)
    assert store.prune() == 1
    assert store.size() == 1


async def test_memory_revocation_generation_outlives_its_families(fake_clock: FakeClock) -> None:
    store = MemoryTokenStore(clock=fake_clock)
    await store.revoke_subject("alice", ttl=10)
    family_id = await _family(store)  # ttl TTL, longer than the generation's 10 s
    fake_clock.advance(TTL / 2)
    await store.revoke_subject("alice", ttl=10)
    assert await store.check_access("alice", family_id, jti="a") is TokenState.SUBJECT_REVOKED


def test_memory_prune_interval_must_be_positive() -> None:
    with pytest.raises(ConfigurationError):
        MemoryTokenStore(prune_interval=0)


# -- Redis backend: key layout, TTLs, failures ------------------------------------


@pytest.fixture
async def redis_store(redis_url: str, redis_prefix: str) -> AsyncIterator[object]:
    from fastapi_secure.tokens.stores.redis import RedisTokenStore

    store = RedisTokenStore.from_url(redis_url, prefix=redis_prefix)
    try:
        yield store
    finally:
        await store.aclose()


@pytest.mark.redis
async def test_redis_keys_hold_digests_only_and_all_expire(
    redis_store: object, redis_prefix: str
) -> None:
    from fastapi_secure.tokens.stores.redis import RedisTokenStore

    assert isinstance(redis_store, RedisTokenStore)
    client = redis_store.client
    subject, jti = "alice@example.com", "raw-refresh-jti"
    family_id = new_family_id(subject)
    await redis_store.create_family(subject, family_id, refresh_jti=jti, ttl=TTL)
    await redis_store.deny_token(subject, family_id, jti="raw-access-jti", ttl=60)
    await redis_store.revoke_subject(subject, ttl=TTL)
    await redis_store.rotate(
        subject, family_id, jti=jti, successor_jti="raw-next-jti", ttl=TTL, now=NOW
    )
    keys = [key async for key in client.scan_iter(match=f"{redis_prefix}*")]
    assert len(keys) == 3
    tag = "{" + subject_tag(subject) + "}"
    for key in keys:
        text = key.decode()
        assert text.startswith(redis_prefix + tag)
        assert 0 < await client.pttl(key) <= TTL * 1000
        dump = text + repr(
            await client.hgetall(key)
            if await client.type(key) == b"hash"
            else await client.get(key)
        )
        for secret in (subject, family_id, jti, "raw-access-jti", "raw-next-jti"):
            assert secret not in dump


@pytest.mark.redis
async def test_redis_keys_of_one_subject_share_a_cluster_slot(
    redis_store: object, redis_prefix: str
) -> None:
    from redis.crc import key_slot

    from fastapi_secure.tokens.stores.redis import RedisTokenStore

    assert isinstance(redis_store, RedisTokenStore)
    family_id = new_family_id("alice")
    await redis_store.create_family("alice", family_id, refresh_jti="rt", ttl=TTL)
    await redis_store.deny_token("alice", family_id, jti="at", ttl=60)
    await redis_store.revoke_subject("alice", ttl=TTL)
    keys = [key async for key in redis_store.client.scan_iter(match=f"{redis_prefix}*")]
    assert len(keys) == 3
    assert len({key_slot(key) for key in keys}) == 1
    assert family_tag(family_id) == subject_tag("alice")


@pytest.mark.redis
async def test_redis_revocation_generation_outlives_its_families(redis_store: object) -> None:
    from fastapi_secure.tokens.stores.redis import RedisTokenStore

    assert isinstance(redis_store, RedisTokenStore)
    await redis_store.revoke_subject("alice", ttl=10)
    await _family(redis_store)
    subject_key = redis_store._subject_key("alice")
    assert await redis_store.client.pttl(subject_key) > 10_000


@pytest.mark.parametrize("prefix", ["app:{x}:", "a}b"])
def test_redis_prefix_may_not_move_the_hash_tag(prefix: str) -> None:
    pytest.importorskip("redis")
    from fastapi_secure.tokens.stores.redis import RedisTokenStore

    with pytest.raises(ConfigurationError, match="hash tag"):
        RedisTokenStore.from_url("redis://127.0.0.1:1/0", prefix=prefix)


@pytest.mark.parametrize(
    "options",
    [{"socket_timeout": None}, {"socket_connect_timeout": 0}, {"operation_timeout": -1}],
)
def test_redis_timeouts_are_required(options: dict[str, object]) -> None:
    pytest.importorskip("redis")
    from fastapi_secure.tokens.stores.redis import RedisTokenStore

    with pytest.raises(ConfigurationError, match="timeout"):
        RedisTokenStore.from_url("redis://127.0.0.1:1/0", **options)  # type: ignore[arg-type]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _every_operation(store: TokenStore) -> None:
    family_id = new_family_id("alice")
    calls = [
        store.create_family("alice", family_id, refresh_jti="rt", ttl=TTL),
        store.check_access("alice", family_id, jti="at"),
        store.check_refresh("alice", family_id, jti="rt"),
        _rotate(store, family_id, "rt", "rt-2"),
        store.deny_token("alice", family_id, jti="at", ttl=TTL),
        store.revoke_family(family_id),
        store.revoke_subject("alice", ttl=TTL),
    ]
    for call in calls:
        with pytest.raises(StoreUnavailableError) as caught:
            await call
        assert status_of(caught.value) == 503


async def test_redis_down_fails_closed_quickly() -> None:
    pytest.importorskip("redis")
    from fastapi_secure.tokens.stores.redis import RedisTokenStore

    store = RedisTokenStore.from_url(f"redis://127.0.0.1:{_closed_port()}/0")
    started = time.monotonic()
    try:
        await _every_operation(store)
    finally:
        await store.aclose()
    assert time.monotonic() - started < 5


@pytest.fixture
def hung_server() -> Iterator[int]:
    """A TCP port that accepts connections and never answers: a hung Redis."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    try:
        yield int(server.getsockname()[1])
    finally:
        server.close()


async def test_hung_redis_cannot_hang_a_request(hung_server: int) -> None:
    pytest.importorskip("redis")
    from fastapi_secure.tokens.stores.redis import RedisTokenStore

    store = RedisTokenStore.from_url(f"redis://127.0.0.1:{hung_server}/0", socket_timeout=0.2)
    started = time.monotonic()
    try:
        with pytest.raises(StoreUnavailableError):
            await store.check_access("alice", new_family_id("alice"), jti="at")
    finally:
        await store.aclose()
    assert time.monotonic() - started < 3


async def test_operation_timeout_bounds_a_client_without_socket_timeouts(hung_server: int) -> None:
    redis_asyncio = pytest.importorskip("redis.asyncio")
    from fastapi_secure.tokens.stores.redis import RedisTokenStore

    client = redis_asyncio.Redis(host="127.0.0.1", port=hung_server)  # no timeouts at all
    store = RedisTokenStore(client, operation_timeout=0.3)
    started = time.monotonic()
    try:
        with pytest.raises(StoreUnavailableError):
            await store.check_access("alice", new_family_id("alice"), jti="at")
    finally:
        await client.aclose()
    assert time.monotonic() - started < 3


def test_missing_redis_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi_secure.errors import MissingDependencyError
    from fastapi_secure.tokens.stores.redis import RedisTokenStore

    monkeypatch.setitem(sys.modules, "redis.asyncio", None)  # import now raises ImportError
    with pytest.raises(MissingDependencyError, match=r"fastapi-secure\[redis\]"):
        RedisTokenStore.from_url("redis://127.0.0.1:1/0")
    with pytest.raises(MissingDependencyError, match=r"fastapi-secure\[redis\]"):
        RedisTokenStore(object())  # type: ignore[arg-type]


def test_digest_is_fixed_length_and_accepts_lone_surrogates() -> None:
    assert len(digest("sub", "\ud800" * 10_000)) == 32
    assert digest("sub", "a") != digest("sid", "a")


DEAD_CLUSTER_URL = "redis+cluster://127.0.0.1:1"


@pytest.mark.anyio
async def test_dead_redis_cluster_is_store_unavailable_not_a_crash(fake_clock: FakeClock) -> None:
    # redis-py raises RedisClusterException, which is no RedisError: it escaped the
    # store, so login and refresh answered 500.
    store = RedisTokenStore.from_url(DEAD_CLUSTER_URL, socket_connect_timeout=0.5)
    issuer = make_issuer(fake_clock, store=store)
    try:
        with pytest.raises(StoreUnavailableError):
            await issuer.issue("alice")
        with pytest.raises(StoreUnavailableError):
            await store.check_access("alice", new_family_id("alice"), jti="j")
        with pytest.raises(StoreUnavailableError):
            await issuer.revoke_subject("alice")
    finally:
        await store.aclose()


@pytest.mark.anyio
async def test_dead_redis_cluster_answers_bearer_requests_with_503(fake_clock: FakeClock) -> None:
    # A token signed by the same keys, issued while the store still worked.
    token = (await make_issuer(fake_clock).issue("alice")).access_token
    store = RedisTokenStore.from_url(DEAD_CLUSTER_URL, socket_connect_timeout=0.5)
    auth = BearerAuth(make_issuer(fake_clock, store=store))
    app = FastAPI()

    @app.get("/me")
    async def me(claims: AccessClaims = Depends(auth)) -> dict[str, str]:  # noqa: B008
        return {"sub": claims.sub}

    try:
        async with client(app) as http:
            response = await http.get("/me", headers=bearer(token))
    finally:
        await store.aclose()
    assert response.status_code == 503
    assert response.json()["detail"]["code"] == "store_unavailable"


# --- Database: a password given as a URL query parameter ----------------------------------
