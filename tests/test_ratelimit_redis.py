"""RateLimiter on real Redis: exactness across tasks and processes, and the failure policy.

Outage tests never touch the shared server: they start their own ``redis-server``
on a free loopback port, then refuse, kill or hang (SIGSTOP) it.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
import pytest
from fastapi import Depends, FastAPI

import fastapi_secure.ratelimit
from fastapi_secure.ratelimit import (
    RateLimiter,
    StorageErrorPolicy,
    Strategy,
)
from tests.conftest import IN_CI, SENTINEL_SERVICE, local_redis_sentinel

pytestmark = [pytest.mark.redis, pytest.mark.anyio]

STRATEGIES: list[Strategy] = ["sliding-window-counter", "fixed-window", "moving-window"]
TIMEOUT = 0.5
# A generous bound on one request when Redis misbehaves: the timeout plus scheduling slack
# on a busy two-core machine. Without the timeouts a hung Redis would hold it forever.
BOUND = TIMEOUT + 2.5


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class OwnRedis:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"redis://:hunter2@127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


@pytest.fixture
def own_redis(tmp_path: os.PathLike[str]) -> Iterator[OwnRedis]:
    """A private redis-server (password hunter2) that the test may refuse, kill or hang."""
    binary = shutil.which("redis-server")
    if binary is None:
        if IN_CI:
            pytest.fail("CI=true: redis-server is not installed")
        pytest.skip("redis-server is not installed")
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--requirepass",
            "hunter2",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail("own redis-server did not start")
                time.sleep(0.05)
        yield OwnRedis(process, port)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)
            process.kill()
        process.wait(timeout=10)


@pytest.fixture
async def limiters() -> AsyncIterator[list[RateLimiter]]:
    """Limiters created by a test, closed after it."""
    created: list[RateLimiter] = []
    yield created
    for limiter in created:
        with anyio.move_on_after(2):
            await limiter.aclose()


def build_app(limiter: RateLimiter, rates: str) -> FastAPI:
    app = FastAPI()

    @app.get("/limited", dependencies=[Depends(limiter.limit(rates, name="t"))])
    async def limited() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/free")
    async def free() -> dict[str, bool]:
        return {"ok": True}

    return app


def client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.1", 4711))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def timed_get(http: httpx.AsyncClient, path: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await http.get(path)
    return response, time.monotonic() - started


# --- exactness -----------------------------------------------------------------------------


async def fifty_concurrent_hits(limiter: RateLimiter) -> list[int]:
    """Status codes of 50 simultaneous requests to a route limited to 10/day."""
    codes: list[int] = []
    async with client(build_app(limiter, "10/day")) as http:

        async def hit() -> None:
            codes.append((await http.get("/limited")).status_code)

        async with anyio.create_task_group() as group:
            for _ in range(50):
                group.start_soon(hit)
    return codes


@pytest.mark.parametrize("deployment", ["single", "cluster", "sentinel"])
@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_fifty_concurrent_hits_admit_exactly_ten(
    strategy: Strategy,
    deployment: str,
    request: pytest.FixtureRequest,
    limiters: list[RateLimiter],
) -> None:
    # Cold start on purpose: redis-py's cluster client raced when its first uses were
    # concurrent (the limiter now sends the first storage call alone), and through a
    # sentinel 50 first requests ask for the master at once.
    if deployment == "single":
        url: str = request.getfixturevalue("redis_url")
        prefix: str = request.getfixturevalue("redis_prefix")
    else:
        # The cluster and the sentinel's master are private to the test session; a
        # unique prefix keeps the strategies apart.
        url = request.getfixturevalue(f"redis_{deployment}_url")
        prefix = f"fs-test-{uuid.uuid4().hex[:12]}"
    limiter = RateLimiter(url, strategy=strategy, key_prefix=prefix)
    limiters.append(limiter)
    codes = await fifty_concurrent_hits(limiter)
    assert codes.count(200) == 10
    assert codes.count(429) == 40


WORKER = textwrap.dedent(
    """
    import sys, anyio, httpx
    from fastapi import Depends, FastAPI
    from fastapi_secure.ratelimit import RateLimiter

    url, strategy, prefix = sys.argv[1:4]
    limiter = RateLimiter(url, strategy=strategy, key_prefix=prefix)
    app = FastAPI()

    @app.get("/limited", dependencies=[Depends(limiter.limit("10/day", name="t"))])
    async def limited() -> int:
        return 1

    async def main() -> None:
        transport = httpx.ASGITransport(app=app, client=("203.0.113.1", 4711))
        codes = []
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            async def hit() -> None:
                codes.append((await http.get("/limited")).status_code)
            async with anyio.create_task_group() as group:
                for _ in range(25):
                    group.start_soon(hit)
        await limiter.aclose()
        print(codes.count(200), codes.count(429))

    anyio.run(main)
    """
)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_two_processes_sharing_redis_admit_exactly_ten(
    strategy: str, redis_url: str, redis_prefix: str
) -> None:
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, redis_url, strategy, redis_prefix],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    admitted = refused = 0
    try:
        for worker in workers:
            out, err = worker.communicate(timeout=120)
            assert worker.returncode == 0, err.decode()
            ok, no = (int(n) for n in out.split())
            admitted += ok
            refused += no
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    assert (admitted, refused) == (10, 40)


# --- failure policy -------------------------------------------------------------------------


def refused_url() -> str:
    return f"redis://:hunter2@127.0.0.1:{free_port()}/0"


async def test_refused_fail_closed_answers_503(
    limiters: list[RateLimiter], caplog: pytest.LogCaptureFixture
) -> None:
    limiter = RateLimiter(refused_url(), storage_timeout=TIMEOUT)
    limiters.append(limiter)
    async with client(build_app(limiter, "5/minute")) as http:
        response, took = await timed_get(http, "/limited")
        free, _ = await timed_get(http, "/free")
    assert response.status_code == 503
    assert response.json()["detail"]["code"] == "store_unavailable"
    assert int(response.headers["Retry-After"]) > 0
    assert took < BOUND
    assert free.status_code == 200
    assert "hunter2" not in response.text
    assert "hunter2" not in caplog.text


async def test_refused_fail_open_allows_and_warns_without_secrets(
    limiters: list[RateLimiter], caplog: pytest.LogCaptureFixture
) -> None:
    limiter = RateLimiter(refused_url(), on_storage_error="open", storage_timeout=TIMEOUT)
    limiters.append(limiter)
    with caplog.at_level(logging.WARNING, logger="fastapi_secure.ratelimit"):
        async with client(build_app(limiter, "1/minute")) as http:
            codes = [(await timed_get(http, "/limited"))[0].status_code for _ in range(3)]
    assert codes == [200, 200, 200]
    assert "fail open" in caplog.text
    assert "hunter2" not in caplog.text


async def test_refused_memory_fallback_still_counts(limiters: list[RateLimiter]) -> None:
    limiter = RateLimiter(refused_url(), on_storage_error="memory", storage_timeout=TIMEOUT)
    limiters.append(limiter)
    async with client(build_app(limiter, "2/minute")) as http:
        responses = [(await timed_get(http, "/limited"))[0] for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert responses[0].headers["RateLimit-Policy"] == '"t";q=2;w=60'


POLICY_EXPECTATIONS: list[tuple[StorageErrorPolicy, int]] = [
    ("closed", 503),
    ("open", 200),
    ("memory", 200),
]


async def kill_mid_run(
    limiter: RateLimiter, own_redis: OwnRedis
) -> tuple[httpx.Response, float, httpx.Response]:
    """Two admitted requests, then Redis dies: the next limited answer, how long it
    took, and the answer of a route without limits."""
    async with client(build_app(limiter, "5/minute")) as http:
        before = [(await http.get("/limited")) for _ in range(2)]
        assert [r.status_code for r in before] == [200, 200]
        assert before[1].headers["RateLimit"].startswith('"t";r=3;')
        own_redis.kill()
        after, took = await timed_get(http, "/limited")
        free, _ = await timed_get(http, "/free")
    return after, took, free


@pytest.mark.parametrize(("policy", "expected"), POLICY_EXPECTATIONS)
async def test_redis_killed_mid_run(
    policy: StorageErrorPolicy,
    expected: int,
    own_redis: OwnRedis,
    limiters: list[RateLimiter],
) -> None:
    limiter = RateLimiter(own_redis.url, on_storage_error=policy, storage_timeout=TIMEOUT)
    limiters.append(limiter)
    after, took, free = await kill_mid_run(limiter, own_redis)
    assert after.status_code == expected
    assert took < BOUND
    assert free.status_code == 200
    if policy == "memory":
        # The per-process fallback starts its own count.
        assert after.headers["RateLimit"].startswith('"t";r=4;')


async def test_sentinel_master_killed_fails_closed_within_the_bound(
    own_redis: OwnRedis,
    tmp_path: Path,
    limiters: list[RateLimiter],
    caplog: pytest.LogCaptureFixture,
) -> None:
    sentinel_dir = tmp_path / "sentinel"
    sentinel_dir.mkdir()
    with local_redis_sentinel(sentinel_dir, own_redis.port, password="hunter2") as port:
        url = f"redis+sentinel://:hunter2@127.0.0.1:{port}/{SENTINEL_SERVICE}"
        limiter = RateLimiter(url, storage_timeout=TIMEOUT)
        limiters.append(limiter)
        after, took, free = await kill_mid_run(limiter, own_redis)
    assert after.status_code == 503
    assert after.json()["detail"]["code"] == "store_unavailable"
    assert took < BOUND
    assert free.status_code == 200
    assert "hunter2" not in after.text
    assert "hunter2" not in caplog.text


@pytest.mark.parametrize(("policy", "expected"), POLICY_EXPECTATIONS)
async def test_redis_hung_trips_the_policy_within_the_timeout(
    policy: StorageErrorPolicy,
    expected: int,
    own_redis: OwnRedis,
    limiters: list[RateLimiter],
) -> None:
    limiter = RateLimiter(own_redis.url, on_storage_error=policy, storage_timeout=TIMEOUT)
    limiters.append(limiter)
    async with client(build_app(limiter, "5/minute")) as http:
        assert (await http.get("/limited")).status_code == 200
        own_redis.stop()
        free, free_took = await timed_get(http, "/free")
        with anyio.fail_after(BOUND * 3):  # the test itself never hangs
            hung = [await timed_get(http, "/limited") for _ in range(2)]
    assert free.status_code == 200
    assert free_took < TIMEOUT
    for response, took in hung:
        assert response.status_code == expected
        assert took < BOUND
    # The first request waited for the timeout; the next one went straight to the policy.
    assert hung[1][1] < TIMEOUT


async def test_backoff_skips_the_storage_then_probes_it_again(
    own_redis: OwnRedis,
    limiters: list[RateLimiter],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr(fastapi_secure.ratelimit, "_monotonic", lambda: now[0])
    limiter = RateLimiter(own_redis.url, storage_timeout=TIMEOUT, storage_backoff=5)
    limiters.append(limiter)
    async with client(build_app(limiter, "5/minute")) as http:
        assert (await http.get("/limited")).status_code == 200
        own_redis.stop()
        with caplog.at_level(logging.WARNING, logger="fastapi_secure.ratelimit"):
            first, first_took = await timed_get(http, "/limited")
            now[0] += 3
            second, second_took = await timed_get(http, "/limited")
        own_redis.resume()
        now[0] += 2.5
        probe = await http.get("/limited")
    assert (first.status_code, second.status_code) == (503, 503)
    assert first.headers["Retry-After"] == "5"
    assert second.headers["Retry-After"] == "2"
    assert first_took < BOUND
    assert second_took < TIMEOUT
    assert caplog.text.count("unavailable") == 1
    assert "hunter2" not in caplog.text
    assert probe.status_code == 200
    # 1 before the hang + the hit sent into the hang (Redis applies it on resuming) + the
    # probe; the backed-off request never reached Redis.
    assert probe.headers["RateLimit"].startswith('"t";r=2;')


async def test_redis_storage_keys_live_under_the_prefix(
    redis_url: str, redis_prefix: str, limiters: list[RateLimiter]
) -> None:
    import redis.asyncio

    limiter = RateLimiter(redis_url, key_prefix=redis_prefix)
    limiters.append(limiter)
    async with client(build_app(limiter, "5/minute")) as http:
        assert (await http.get("/limited")).status_code == 200
    inspector = redis.asyncio.Redis.from_url(redis_url)
    try:
        keys = [key async for key in inspector.scan_iter(match=f"{redis_prefix}*")]
    finally:
        await inspector.aclose()
    assert keys
    # The client address is hashed into the key, never stored in clear.
    assert not [key for key in keys if b"203.0.113.1" in key]
