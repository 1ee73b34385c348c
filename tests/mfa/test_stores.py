"""One contract, run on every MFA store backend: memory, Redis, Redis Cluster."""

from __future__ import annotations

import socket
from typing import Any

import anyio
import pytest

from fastapi_secure.errors import ConfigurationError, StoreUnavailableError
from fastapi_secure.mfa.stores import (
    AttemptCounter,
    ChallengeStore,
    MemoryMFAStore,
    MFAStore,
    RecoveryCodeStore,
    UsedCodeStore,
)
from fastapi_secure.mfa.stores.base import store_key
from fastapi_secure.testing import FakeClock

pytestmark = pytest.mark.anyio

N = 25


async def gather(count: int, make: Any) -> list[Any]:
    results: list[Any] = []

    async def one() -> None:
        results.append(await make())

    async with anyio.create_task_group() as group:
        for _ in range(count):
            group.start_soon(one)
    return results


async def test_every_backend_implements_every_protocol(mfa_store: Any) -> None:
    for protocol in (UsedCodeStore, AttemptCounter, ChallengeStore, RecoveryCodeStore, MFAStore):
        assert isinstance(mfa_store, protocol)


async def test_store_keys_are_digests_and_separate_purposes() -> None:
    key = store_key("totp-used", "alice", "123")
    assert "alice" not in key
    assert key.startswith("totp-used:")
    assert key != store_key("totp-used", "alice\x00123")  # no ambiguity by concatenation
    assert key != store_key("recovery", "alice", "123")


# -- UsedCodeStore ---------------------------------------------------------------


async def test_claim_once(mfa_store: Any) -> None:
    assert await mfa_store.claim("k1", 90) is True
    assert await mfa_store.claim("k1", 90) is False
    assert await mfa_store.claim("k2", 90) is True


async def test_concurrent_claims_exactly_one_wins(mfa_store: Any) -> None:
    results = await gather(N, lambda: mfa_store.claim("same", 90))
    assert sorted(results) == [False] * (N - 1) + [True]


async def test_bad_ttl_is_refused(mfa_store: Any) -> None:
    for ttl in (0, -1):
        with pytest.raises(ConfigurationError):
            await mfa_store.claim("k", ttl)
        with pytest.raises(ConfigurationError):
            await mfa_store.put("k", "v", ttl)
        with pytest.raises(ConfigurationError):
            await mfa_store.increment("k", ttl)


# -- AttemptCounter ---------------------------------------------------------------


async def test_increment_counts_and_reset_clears(mfa_store: Any) -> None:
    assert await mfa_store.failures("a") == (0, 0.0)
    for expected in (1, 2, 3):
        count, left = await mfa_store.increment("a", 300)
        assert count == expected
        assert 0 < left <= 300
    count, left = await mfa_store.failures("a")
    assert count == 3
    assert 0 < left <= 300
    await mfa_store.reset("a")
    assert await mfa_store.failures("a") == (0, 0.0)
    assert (await mfa_store.increment("a", 300))[0] == 1


async def test_concurrent_increments_are_all_counted(mfa_store: Any) -> None:
    results = await gather(N, lambda: mfa_store.increment("c", 300))
    assert sorted(count for count, _ in results) == list(range(1, N + 1))


# -- ChallengeStore ----------------------------------------------------------------


async def test_take_returns_once(mfa_store: Any) -> None:
    await mfa_store.put("ch", '{"p": "register"}', 300)
    assert await mfa_store.take("ch") == '{"p": "register"}'
    assert await mfa_store.take("ch") is None
    assert await mfa_store.take("never-put") is None


async def test_concurrent_takes_exactly_one_gets_the_value(mfa_store: Any) -> None:
    await mfa_store.put("ch", "value", 300)
    results = await gather(N, lambda: mfa_store.take("ch"))
    assert sorted(results, key=str) == [None] * (N - 1) + ["value"]


# -- RecoveryCodeStore ---------------------------------------------------------------


async def test_consume_once_and_replace_voids(mfa_store: Any) -> None:
    await mfa_store.replace("u", ["d1", "d2", "d3"])
    assert await mfa_store.remaining("u") == 3
    assert await mfa_store.consume("u", "d2") is True
    assert await mfa_store.consume("u", "d2") is False
    assert await mfa_store.consume("u", "nope") is False
    assert await mfa_store.consume("other-user", "d1") is False
    assert await mfa_store.remaining("u") == 2
    await mfa_store.replace("u", ["e1"])
    assert await mfa_store.consume("u", "d1") is False  # the old set is void
    assert await mfa_store.remaining("u") == 1
    await mfa_store.replace("u", [])
    assert await mfa_store.remaining("u") == 0
    assert await mfa_store.consume("u", "e1") is False


async def test_concurrent_consumes_exactly_one_wins(mfa_store: Any) -> None:
    await mfa_store.replace("u", ["d1", "d2"])
    results = await gather(N, lambda: mfa_store.consume("u", "d1"))
    assert sorted(results) == [False] * (N - 1) + [True]
    assert await mfa_store.remaining("u") == 1


# -- expiry -----------------------------------------------------------------------------


async def test_memory_entries_expire_on_the_injected_clock(fake_clock: FakeClock) -> None:
    store = MemoryMFAStore(clock=fake_clock, prune_interval=1000)
    assert await store.claim("k", 90)
    await store.put("ch", "v", 300)
    await store.increment("a", 90)
    fake_clock.advance(89)
    assert not await store.claim("k", 90)
    assert (await store.failures("a"))[0] == 1
    fake_clock.advance(1)
    assert await store.claim("k", 90)  # the mark lapsed exactly at its TTL
    assert await store.failures("a") == (0, 0.0)
    assert (await store.increment("a", 90))[0] == 1  # a new window
    fake_clock.advance(300)
    assert await store.take("ch") is None
    await store.aclose()


async def test_memory_store_prunes_expired_entries(fake_clock: FakeClock) -> None:
    store = MemoryMFAStore(clock=fake_clock, prune_interval=10)
    for i in range(5):
        await store.claim(f"k{i}", 5)
        await store.put(f"c{i}", "v", 5)
    await store.replace("u", ["d"])
    assert store.size == 11
    assert "entries=11" in repr(store)
    fake_clock.advance(11)
    assert await store.claim("fresh", 5)  # a write after the interval prunes
    assert store.size == 2
    fake_clock.advance(11)
    assert store.prune() == 1
    assert store.size == 1


@pytest.mark.redis
async def test_redis_entries_carry_ttls(redis_url: str, redis_prefix: str) -> None:
    from fastapi_secure.mfa.stores.redis import RedisMFAStore

    store = RedisMFAStore.from_url(redis_url, prefix=redis_prefix)
    try:
        await store.claim("k", 90)
        await store.put("ch", "v", 300)
        await store.increment("a", 60)
        await store.replace("u", ["d"])
        client = store.client
        assert 89_000 < await client.pttl(f"{redis_prefix}u:k") <= 90_000
        assert 299_000 < await client.pttl(f"{redis_prefix}c:ch") <= 300_000
        assert 59_000 < await client.pttl(f"{redis_prefix}a:a") <= 60_000
        assert await client.pttl(f"{redis_prefix}r:u") == -1  # codes last until replaced
        assert "RedisMFAStore" in repr(store)
    finally:
        await store.aclose()


@pytest.mark.redis
async def test_redis_counter_without_ttl_gets_one(redis_url: str, redis_prefix: str) -> None:
    from fastapi_secure.mfa.stores.redis import RedisMFAStore

    store = RedisMFAStore.from_url(redis_url, prefix=redis_prefix)
    try:
        # A counter left without a TTL (a crash between commands elsewhere) must not live forever.
        await store.client.set(f"{redis_prefix}a:stuck", 3)
        count, left = await store.increment("stuck", 60)
        assert count == 4
        assert left == 60
        assert await store.client.pttl(f"{redis_prefix}a:stuck") > 0
    finally:
        await store.aclose()


@pytest.mark.redis
async def test_two_clients_race_for_one_code_exactly_one_wins(
    redis_url: str, redis_prefix: str
) -> None:
    from fastapi_secure.mfa.stores.redis import RedisMFAStore

    stores = [RedisMFAStore.from_url(redis_url, prefix=redis_prefix) for _ in range(2)]
    try:
        results: list[bool] = []

        async def claim(store: RedisMFAStore) -> None:
            results.append(await store.claim("race", 90))

        async with anyio.create_task_group() as group:
            for i in range(N):
                group.start_soon(claim, stores[i % 2])
        assert sorted(results) == [False] * (N - 1) + [True]
    finally:
        for store in stores:
            await store.aclose()


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_redis_outage_is_store_unavailable_never_an_accept() -> None:
    pytest.importorskip("redis")
    from fastapi_secure.mfa.stores.redis import RedisMFAStore

    store = RedisMFAStore.from_url(
        f"redis://127.0.0.1:{_dead_port()}/0", socket_connect_timeout=0.2, socket_timeout=0.2
    )
    try:
        for operation in (
            store.claim("k", 90),
            store.increment("a", 60),
            store.failures("a"),
            store.reset("a"),
            store.put("c", "v", 60),
            store.take("c"),
            store.replace("u", ["d"]),
            store.consume("u", "d"),
            store.remaining("u"),
        ):
            with pytest.raises(StoreUnavailableError):
                await operation
    finally:
        await store.aclose()


async def test_redis_store_refuses_bad_timeout() -> None:
    pytest.importorskip("redis")
    from fastapi_secure.mfa.stores.redis import RedisMFAStore

    with pytest.raises(ConfigurationError):
        RedisMFAStore.from_url("redis://127.0.0.1:1/0", operation_timeout=0)


async def test_a_client_bug_fails_closed(redis_url: str, redis_prefix: str) -> None:
    from fastapi_secure.mfa.stores.redis import RedisMFAStore

    class Broken:
        def register_script(self, script: str) -> Any:
            return None

        def set(self, *args: Any, **kwargs: Any) -> Any:
            raise_later: Any = self._fail()
            return raise_later

        async def _fail(self) -> Any:
            raise AttributeError("bug in a client")

    store = RedisMFAStore(Broken(), prefix=redis_prefix)  # type: ignore[arg-type]
    with pytest.raises(StoreUnavailableError):
        await store.claim("k", 90)


async def test_store_chosen_by_url(redis_url: str, redis_prefix: str) -> None:
    from fastapi_secure.mfa.stores import mfa_store_from_url
    from fastapi_secure.mfa.stores.redis import RedisMFAStore

    clock = FakeClock()
    memory = mfa_store_from_url("memory://", clock=clock)
    assert isinstance(memory, MemoryMFAStore)
    redis_store = mfa_store_from_url(redis_url, prefix=redis_prefix)
    try:
        assert isinstance(redis_store, RedisMFAStore)
        assert await redis_store.claim("by-url", 60)
    finally:
        await redis_store.aclose()


@pytest.mark.parametrize("url", ["", "memory", "http://x", "redis+sentinel://h:1/s", "sqlite://"])
async def test_unknown_store_url_is_refused(url: str) -> None:
    from fastapi_secure.mfa.stores import mfa_store_from_url

    with pytest.raises(ConfigurationError):
        mfa_store_from_url(url)
