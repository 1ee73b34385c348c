"""RateLimiter on Redis sends each request's rates and statistics in one call.

The batch (``fastapi_secure._ratelimit_redis``) runs ``limits``' own scripts in
one Lua call: these tests hold it to the answers of the call-by-call path
(the memory storage runs the same ``limits`` strategies) and count the round
trips on a real connection.
"""

from __future__ import annotations

from typing import Any

import httpx
import limits
import pytest
import redis.asyncio
from fastapi import Depends, FastAPI

from fastapi_secure.ratelimit import RateLimiter, Strategy, _digest

pytestmark = [pytest.mark.redis, pytest.mark.anyio]

STRATEGIES: list[Strategy] = ["sliding-window-counter", "fixed-window", "moving-window"]


class CountingConnection(redis.asyncio.Connection):
    """A real connection that counts the writes it sends (one per round trip)."""

    writes = 0

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        type(self).writes += 1
        await super().send_packed_command(command, check_health)


def build_app(limiter: RateLimiter, rates: str) -> FastAPI:
    app = FastAPI()

    @app.get("/limited", dependencies=[Depends(limiter.limit(rates, name="t"))])
    async def limited() -> dict[str, bool]:
        return {"ok": True}

    return app


async def answers(limiter: RateLimiter, rates: str, count: int) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=build_app(limiter, rates), client=("203.0.113.9", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        return [await http.get("/limited") for _ in range(count)]


def summary(responses: list[httpx.Response]) -> list[tuple[int, str | None, str | None]]:
    """Status, remaining quota per policy, and Retry-After: what must not differ."""

    def remaining(response: httpx.Response) -> str | None:
        state = response.headers.get("RateLimit")
        if state is None:
            return None
        return ",".join(part.split(";t=")[0] for part in state.split(", "))

    return [(r.status_code, remaining(r), r.headers.get("Retry-After")) for r in responses]


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("headers", [True, False])
async def test_one_round_trip_per_request_for_every_rate(
    strategy: Strategy, headers: bool, redis_url: str, redis_prefix: str
) -> None:
    CountingConnection.writes = 0
    limiter = RateLimiter(
        redis_url,
        strategy=strategy,
        headers=headers,
        key_prefix=redis_prefix.rstrip(":"),
        storage_options={"connection_class": CountingConnection},
    )
    try:
        # The first request may also load the script (NOSCRIPT, then SCRIPT LOAD).
        await answers(limiter, "100/minute;1000/hour;5000/day", 1)
        before = CountingConnection.writes
        responses = await answers(limiter, "100/minute;1000/hour;5000/day", 10)
    finally:
        await limiter.aclose()
    assert [r.status_code for r in responses] == [200] * 10
    assert CountingConnection.writes - before == 10
    if headers:
        assert responses[-1].headers["RateLimit"].startswith('"t-100-per-60s";r=89;')


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_same_answers_as_the_call_by_call_path(
    strategy: Strategy, redis_url: str, redis_prefix: str
) -> None:
    """Quota, refusal and Retry-After as limits' strategies give them call by call."""
    rates = "3/minute;4/hour"
    batched = RateLimiter(redis_url, strategy=strategy, key_prefix=f"{redis_prefix}batch")
    one_by_one = RateLimiter(redis_url, strategy=strategy, key_prefix=f"{redis_prefix}calls")
    assert batched._batch is not None
    one_by_one._batch = None
    try:
        got = summary(await answers(batched, rates, 5))
        expected = summary(await answers(one_by_one, rates, 5))
    finally:
        await batched.aclose()
        await one_by_one.aclose()
    assert got == expected
    assert [status for status, _, _ in got] == [200, 200, 200, 429, 429]
    assert got[2][1] == '"t-3-per-60s";r=0,"t-4-per-3600s";r=1'


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_a_refusal_stops_the_later_rates(
    strategy: Strategy, redis_url: str, redis_prefix: str
) -> None:
    prefix = redis_prefix.rstrip(":")
    limiter = RateLimiter(redis_url, strategy=strategy, key_prefix=prefix)
    try:
        responses = await answers(limiter, "2/minute;10/hour", 5)
        # Read the hourly counter with limits itself, through the limiter's storage.
        identifier = _digest("t", "ip", "203.0.113.9")
        hourly = limits.parse("10/hour")
        stats = await limiter._strategy.get_window_stats(hourly, prefix, identifier)
    finally:
        await limiter.aclose()
    assert [r.status_code for r in responses] == [200, 200, 429, 429, 429]
    # Only the two admitted requests reached the hourly rate.
    assert stats.remaining == 8
