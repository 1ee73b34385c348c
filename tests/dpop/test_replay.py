"""DPoPReplayCache: one contract over memory, Redis and Redis Cluster.

Single use under concurrency (exactly one of N wins), shared by two clients
on one Redis, and a store outage that refuses rather than accepts.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from fastapi_secure.dpop import (
    DPoPReplayCache,
    DPoPVerifier,
    InvalidDPoPProofError,
    MemoryDPoPReplayCache,
    RedisDPoPReplayCache,
)
from fastapi_secure.errors import (
    ConfigurationError,
    MissingDependencyError,
    StoreUnavailableError,
)
from fastapi_secure.http_errors import status_of
from fastapi_secure.testing import FakeClock
from tests.conftest import IN_CI
from tests.support.dpop import DPoPClient

pytestmark = pytest.mark.anyio

URL = "https://api.example.test/orders"
CONCURRENCY = 40

KINDS = [
    "memory",
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("cluster", marks=pytest.mark.redis),
]


@pytest.fixture(params=KINDS)
async def cache(
    request: pytest.FixtureRequest, fake_clock: FakeClock
) -> AsyncIterator[DPoPReplayCache]:
    if request.param == "memory":
        yield MemoryDPoPReplayCache(clock=fake_clock)
        return
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")
    else:
        url = request.getfixturevalue("redis_cluster_url")
        prefix = f"fs-test:{uuid.uuid4().hex}:"
    redis_cache = RedisDPoPReplayCache.from_url(url, prefix=prefix)
    try:
        yield redis_cache
    finally:
        await redis_cache.aclose()


async def test_a_key_is_remembered_once(cache: DPoPReplayCache) -> None:
    assert isinstance(cache, DPoPReplayCache)
    assert await cache.remember("k1", 60) is True
    assert await cache.remember("k1", 60) is False
    assert await cache.remember("k2", 60) is True


async def test_of_n_concurrent_uses_of_one_key_exactly_one_wins(cache: DPoPReplayCache) -> None:
    results: list[bool] = []

    async def use() -> None:
        results.append(await cache.remember("contested", 60))

    async with anyio.create_task_group() as group:
        for _ in range(CONCURRENCY):
            group.start_soon(use)
    assert results.count(True) == 1
    assert len(results) == CONCURRENCY


async def test_of_n_concurrent_uses_of_one_proof_exactly_one_is_accepted(
    cache: DPoPReplayCache, fake_clock: FakeClock
) -> None:
    verifier = DPoPVerifier(clock=fake_clock, replay_cache=cache)
    proof = DPoPClient().proof("GET", URL, iat=fake_clock())
    outcomes: list[str] = []

    async def present() -> None:
        try:
            await verifier.verify(proof, method="GET", uri=URL)
        except InvalidDPoPProofError as err:
            outcomes.append(err.reason or "")
        else:
            outcomes.append("accepted")

    async with anyio.create_task_group() as group:
        for _ in range(CONCURRENCY):
            group.start_soon(present)
    assert outcomes.count("accepted") == 1
    assert outcomes.count("jti replayed") == CONCURRENCY - 1


@pytest.mark.parametrize(
    ("key", "ttl"), [("", 1), ("k" * 257, 1), ("k", 0), ("k", -1), ("k", True)]
)
async def test_bad_keys_and_ttls_are_refused(cache: DPoPReplayCache, key: str, ttl: float) -> None:
    with pytest.raises(ValueError, match=r"key|ttl"):
        await cache.remember(key, ttl)


async def test_memory_entries_expire_with_the_clock(fake_clock: FakeClock) -> None:
    cache = MemoryDPoPReplayCache(clock=fake_clock)
    assert await cache.remember("k", 10)
    fake_clock.advance(9.9)
    assert not await cache.remember("k", 10)
    assert len(cache) == 1
    fake_clock.advance(0.1)
    assert len(cache) == 0
    assert await cache.remember("k", 10)


async def test_memory_cache_is_bounded(fake_clock: FakeClock) -> None:
    cache = MemoryDPoPReplayCache(clock=fake_clock, max_entries=2)
    assert await cache.remember("a", 5)
    assert await cache.remember("b", 50)
    with pytest.raises(StoreUnavailableError):
        await cache.remember("c", 5)
    # Room again once an entry expires; a refused key was not remembered.
    fake_clock.advance(5)
    assert await cache.remember("c", 5)
    with pytest.raises(ConfigurationError):
        MemoryDPoPReplayCache(max_entries=0)


async def test_a_full_cache_warns_once_per_spell(
    fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A flood of refused proofs is one warning, not one a proof."""
    cache = MemoryDPoPReplayCache(clock=fake_clock, max_entries=1)
    caplog.set_level("WARNING", logger="fastapi_secure.dpop")
    assert await cache.remember("a", 5)
    for n in range(5):
        with pytest.raises(StoreUnavailableError):
            await cache.remember(f"flood-{n}", 5)
    assert [r.getMessage() for r in caplog.records].count(
        "DPoP replay cache full (1 entries): refusing new proofs until entries expire"
    ) == 1
    fake_clock.advance(5)
    assert await cache.remember("b", 5)  # the spell ended
    with pytest.raises(StoreUnavailableError):
        await cache.remember("c", 5)
    assert len([r for r in caplog.records if "cache full" in r.getMessage()]) == 2


async def test_a_full_memory_cache_drops_every_expired_entry_before_refusing(
    fake_clock: FakeClock,
) -> None:
    cache = MemoryDPoPReplayCache(clock=fake_clock, max_entries=3)
    assert await cache.remember("a", 10)
    assert await cache.remember("b", 10)
    assert await cache.remember("c", 100)
    with pytest.raises(StoreUnavailableError):
        await cache.remember("d", 10)
    # Full, a replay of a live key is still told apart: a replay (False), not a 503.
    assert not await cache.remember("a", 10)
    fake_clock.advance(9.99)
    with pytest.raises(StoreUnavailableError):
        await cache.remember("d", 10)
    # At their expiry both a and b are dropped: two new keys fit, a third does not.
    fake_clock.advance(0.01)
    assert await cache.remember("d", 10)
    assert await cache.remember("a", 10)
    with pytest.raises(StoreUnavailableError):
        await cache.remember("e", 10)
    assert len(cache) == 3


async def test_a_cache_filled_by_proofs_frees_itself_within_max_age_plus_leeway(
    fake_clock: FakeClock,
) -> None:
    # The flood of docs/dpop.md: valid proofs of fresh keys, each dated as far in
    # the future as the leeway lets it, to stay in the cache longest.
    cache = MemoryDPoPReplayCache(clock=fake_clock, max_entries=2)
    verifier = DPoPVerifier(clock=fake_clock, replay_cache=cache)
    start = fake_clock()
    for _ in range(2):
        proof = DPoPClient().proof("POST", URL, iat=start + verifier.leeway)
        await verifier.verify(proof, method="POST", uri=URL)
    honest = DPoPClient()
    with pytest.raises(StoreUnavailableError) as caught:
        await verifier.verify(honest.proof("POST", URL, iat=fake_clock()), method="POST", uri=URL)
    assert status_of(caught.value) == 503
    # Held at most max_age + leeway + 1 seconds (66 with the defaults), not longer.
    fake_clock.advance(verifier.max_age + verifier.leeway + 1 - 0.5)
    with pytest.raises(StoreUnavailableError):
        await verifier.verify(honest.proof("POST", URL, iat=fake_clock()), method="POST", uri=URL)
    fake_clock.advance(0.5)
    await verifier.verify(honest.proof("POST", URL, iat=fake_clock()), method="POST", uri=URL)
    await verifier.verify(honest.proof("POST", URL, iat=fake_clock()), method="POST", uri=URL)


@pytest.mark.redis
async def test_redis_keys_carry_the_ttl(redis_url: str, redis_prefix: str) -> None:
    cache = RedisDPoPReplayCache.from_url(redis_url, prefix=redis_prefix)
    try:
        assert await cache.remember("k", 42.5)
        pttl = await cache.client.pttl(f"{redis_prefix}k")
        assert 41_000 < pttl <= 42_500
    finally:
        await cache.aclose()


@pytest.mark.redis
async def test_two_workers_on_one_redis_share_the_replay_cache(
    redis_url: str, redis_prefix: str, fake_clock: FakeClock
) -> None:
    first = RedisDPoPReplayCache.from_url(redis_url, prefix=redis_prefix)
    second = RedisDPoPReplayCache.from_url(redis_url, prefix=redis_prefix)
    try:
        worker_a = DPoPVerifier(clock=fake_clock, replay_cache=first)
        worker_b = DPoPVerifier(clock=fake_clock, replay_cache=second)
        client = DPoPClient()
        proof = client.proof("GET", URL, iat=fake_clock())
        await worker_a.verify(proof, method="GET", uri=URL)
        with pytest.raises(InvalidDPoPProofError):
            await worker_b.verify(proof, method="GET", uri=URL)

        # Both at once, many times: still exactly one acceptance.
        contested = client.proof("GET", URL, iat=fake_clock())
        accepted: list[bool] = []

        async def present(worker: DPoPVerifier) -> None:
            try:
                await worker.verify(contested, method="GET", uri=URL)
            except InvalidDPoPProofError:
                accepted.append(False)
            else:
                accepted.append(True)

        async with anyio.create_task_group() as group:
            for index in range(CONCURRENCY):
                group.start_soon(present, worker_a if index % 2 else worker_b)
        assert accepted.count(True) == 1
    finally:
        await first.aclose()
        await second.aclose()


async def test_an_unreachable_redis_refuses_the_proof(fake_clock: FakeClock) -> None:
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    cache = RedisDPoPReplayCache.from_url(
        "redis://127.0.0.1:1/0", socket_timeout=0.5, socket_connect_timeout=0.5
    )
    try:
        verifier = DPoPVerifier(clock=fake_clock, replay_cache=cache)
        proof = DPoPClient().proof("GET", URL, iat=fake_clock())
        with pytest.raises(StoreUnavailableError) as caught:
            await verifier.verify(proof, method="GET", uri=URL)
        assert status_of(caught.value) == 503
    finally:
        await cache.aclose()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A redis-server of this test alone, on a free loopback port, that it may kill."""
    binary = shutil.which("redis-server")
    if binary is None:
        if IN_CI:
            pytest.fail("CI=true: redis-server is not installed")
        pytest.skip("redis-server is not installed")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    process.port = port  # type: ignore[attr-defined]
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail("private redis-server did not start")
                time.sleep(0.05)
        yield process
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)
            process.kill()
        process.wait(timeout=10)


@pytest.mark.parametrize("failure", ["killed", "hung"])
async def test_a_redis_that_dies_or_hangs_mid_run_fails_closed(
    private_redis: subprocess.Popen[bytes], fake_clock: FakeClock, failure: str
) -> None:
    port = private_redis.port  # type: ignore[attr-defined]
    cache = RedisDPoPReplayCache.from_url(
        f"redis://127.0.0.1:{port}/0", socket_timeout=0.5, operation_timeout=1.0
    )
    try:
        verifier = DPoPVerifier(clock=fake_clock, replay_cache=cache)
        client = DPoPClient()
        await verifier.verify(client.proof("GET", URL, iat=fake_clock()), method="GET", uri=URL)
        if failure == "killed":
            private_redis.kill()
            private_redis.wait(timeout=10)
        else:
            os.kill(private_redis.pid, signal.SIGSTOP)
        with pytest.raises(StoreUnavailableError):
            await verifier.verify(client.proof("GET", URL, iat=fake_clock()), method="GET", uri=URL)
    finally:
        if private_redis.poll() is None:
            os.kill(private_redis.pid, signal.SIGCONT)
        await cache.aclose()


def test_redis_configuration_is_checked() -> None:
    with pytest.raises(ConfigurationError):
        RedisDPoPReplayCache.from_url("redis://127.0.0.1:1/0", socket_timeout=0)
    with pytest.raises(ConfigurationError):
        RedisDPoPReplayCache.from_url("redis://127.0.0.1:1/0", operation_timeout=0)
    cache = RedisDPoPReplayCache.from_url("redis://:hunter2secret@127.0.0.1:1/0")
    assert "hunter2secret" not in repr(cache)


def test_without_the_redis_extra_the_error_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(MissingDependencyError, match=r"fastapi-secure\[redis\]"):
        RedisDPoPReplayCache.from_url("redis://127.0.0.1:1/0")


_WORKER = """
import asyncio, sys
from fastapi_secure.dpop import DPoPVerifier, InvalidDPoPProofError, RedisDPoPReplayCache

async def main() -> None:
    url, prefix, proof, target = sys.argv[1:5]
    cache = RedisDPoPReplayCache.from_url(url, prefix=prefix)
    try:
        await DPoPVerifier(replay_cache=cache).verify(proof, method="GET", uri=target)
    except InvalidDPoPProofError as err:
        print(err.reason)
    else:
        print("accepted")
    finally:
        await cache.aclose()

asyncio.run(main())
"""


@pytest.mark.redis
def test_two_processes_on_one_redis_accept_a_proof_once(redis_url: str, redis_prefix: str) -> None:
    proof = DPoPClient().proof("GET", URL, iat=time.time())
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, redis_url, redis_prefix, proof, URL],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    answers = sorted(worker.communicate(timeout=60)[0].strip() for worker in workers)
    assert answers == ["accepted", "jti replayed", "jti replayed", "jti replayed"]


@pytest.mark.redis
async def test_a_client_given_by_the_app_stays_open(redis_url: str, redis_prefix: str) -> None:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(redis_url)
    cache = RedisDPoPReplayCache(client, prefix=redis_prefix)
    try:
        assert await cache.remember("k", 5)
        await cache.aclose()  # not ours to close
        assert await client.ping()
    finally:
        await client.aclose()
    with pytest.raises(ConfigurationError):
        RedisDPoPReplayCache(client, prefix=7)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "option", ["operation_timeout", "socket_timeout", "socket_connect_timeout"]
)
def test_redis_cache_refuses_a_bool_for_a_timeout(option: str) -> None:
    # True is an int to Python: without this check it would mean one second.
    options: dict[str, Any] = {option: True}
    with pytest.raises(ConfigurationError, match=option):
        RedisDPoPReplayCache.from_url("redis://127.0.0.1:6379/0", **options)
