"""RateLimiter after its Redis restarts: stale pooled connections cost no 503."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx
import pytest
from fastapi import Depends, FastAPI

from fastapi_secure.ratelimit import RateLimiter
from tests.support.redis_server import private_redis

pytestmark = [pytest.mark.redis, pytest.mark.anyio]

TIMEOUT = 0.5
BOUND = TIMEOUT + 2.5


def build_app(limiter: RateLimiter) -> FastAPI:
    app = FastAPI()

    @app.get("/limited", dependencies=[Depends(limiter.limit("100000/minute", name="t"))])
    async def limited() -> dict[str, bool]:
        return {"ok": True}

    return app


async def burst(http: httpx.AsyncClient, count: int) -> list[int]:
    codes: list[int] = []

    async def hit() -> None:
        codes.append((await http.get("/limited")).status_code)

    async with anyio.create_task_group() as group:
        for _ in range(count):
            group.start_soon(hit)
    return codes


@pytest.mark.parametrize("strategy", ["sliding-window-counter", "fixed-window", "moving-window"])
async def test_no_503_once_a_restarted_redis_answers(tmp_path: Path, strategy: str) -> None:
    with private_redis(tmp_path) as server:
        limiter = RateLimiter(server.url, strategy=strategy, storage_timeout=TIMEOUT)  # type: ignore[arg-type]
        transport = httpx.ASGITransport(app=build_app(limiter), client=("203.0.113.1", 4711))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                # Concurrent requests fill the pool with several connections...
                assert await burst(http, 20) == [200] * 20
                # ...which all go stale when the server dies; the restart is empty.
                server.kill()
                server.start()
                assert server.answers()
                after = await burst(http, 20)
                after += [(await http.get("/limited")).status_code for _ in range(20)]
        finally:
            await limiter.aclose()
    assert after.count(503) == 0
    assert after == [200] * 40


async def test_a_hung_redis_still_answers_within_the_timeout(tmp_path: Path) -> None:
    with private_redis(tmp_path) as server:
        limiter = RateLimiter(server.url, storage_timeout=TIMEOUT)
        transport = httpx.ASGITransport(app=build_app(limiter), client=("203.0.113.1", 4711))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                assert await burst(http, 5) == [200] * 5
                server.hang()
                with anyio.fail_after(BOUND * 3):
                    started = anyio.current_time()
                    response = await http.get("/limited")
                    took = anyio.current_time() - started
        finally:
            server.resume()
            await limiter.aclose()
    assert response.status_code == 503
    # The retry on a fresh connection never doubles the wait past the timeout.
    assert took < BOUND
