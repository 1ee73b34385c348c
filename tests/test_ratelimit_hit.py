"""RateLimiter.hit: counting outside a FastAPI dependency (WebSocket messages),
on the same storage, keys and failure policy as the route limits."""

# No `from __future__ import annotations`: FastAPI resolves the endpoints' annotations.

import socket
from typing import Any

import anyio
import pytest
from fastapi import Depends, FastAPI

from fastapi_secure.errors import ConfigurationError
from fastapi_secure.events import SecurityEvent
from fastapi_secure.ratelimit import RateLimiter
from tests.support.auth import client
from tests.support.ratelimit import freeze_memory_windows

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def _windows_frozen_mid_way(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exact counts on the memory storage (see ``freeze_memory_windows``)."""
    if "redis_url" not in request.fixturenames:
        freeze_memory_windows(monkeypatch)


class Collected:
    def __init__(self) -> None:
        self.events: list[SecurityEvent] = []

    async def emit(self, event: SecurityEvent) -> None:
        self.events.append(event)


def refused_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    return f"redis://:hunter2@127.0.0.1:{port}/0"


async def test_exactly_n_hits_pass() -> None:
    limiter = RateLimiter("memory://")
    decisions = [await limiter.hit("5/minute", "10.0.0.1", name="chat") for _ in range(7)]
    assert [bool(decision) for decision in decisions] == [True] * 5 + [False] * 2
    assert decisions[0].retry_after is None
    assert decisions[-1].retry_after is not None
    assert decisions[-1].retry_after >= 1


async def test_keys_and_names_count_apart() -> None:
    limiter = RateLimiter("memory://")
    assert await limiter.hit("1/minute", "alice", name="chat", key_name="subject")
    assert await limiter.hit("1/minute", "bob", name="chat", key_name="subject")
    assert await limiter.hit("1/minute", "alice", name="other", key_name="subject")
    assert await limiter.hit("1/minute", "alice", name="chat", key_name="ip")
    assert not await limiter.hit("1/minute", "alice", name="chat", key_name="subject")


async def test_cost_spends_several_units() -> None:
    limiter = RateLimiter("memory://")
    assert await limiter.hit("3/minute", "k", name="bulk", cost=3)
    assert not await limiter.hit("3/minute", "k", name="bulk")


async def test_shares_the_counter_of_a_named_http_limit() -> None:
    limiter = RateLimiter("memory://")
    app = FastAPI()

    @app.get("/send", dependencies=[Depends(limiter.limit("3/minute", name="chat"))])
    async def send() -> dict[str, str]:
        return {}

    async with client(app) as http:
        assert (await http.get("/send")).status_code == 200
        # httpx's ASGI transport connects from 127.0.0.1: the same client-IP key.
        assert await limiter.hit("3/minute", "127.0.0.1", name="chat")
        assert (await http.get("/send")).status_code == 200
        assert not await limiter.hit("3/minute", "127.0.0.1", name="chat")
        assert (await http.get("/send")).status_code == 429


async def test_a_refusal_is_a_security_event() -> None:
    sink = Collected()
    limiter = RateLimiter("memory://", events=sink)
    await limiter.hit("1/minute", "k", name="chat")
    assert not await limiter.hit("1/minute", "k", name="chat")
    assert [event.type.value for event in sink.events] == ["rate_limited"]


@pytest.mark.parametrize(
    ("policy", "allowed"), [("closed", False), ("open", True), ("memory", True)]
)
async def test_storage_outage_follows_the_failure_policy(policy: Any, allowed: bool) -> None:
    limiter = RateLimiter(refused_url(), on_storage_error=policy, storage_timeout=0.5)
    with anyio.fail_after(10):
        decision = await limiter.hit("1/minute", "k", name="chat")
        # While backing off, the policy applies again without waiting on the storage.
        again = await limiter.hit("1/minute", "k", name="chat")
    assert bool(decision) is allowed
    if policy == "closed":
        assert decision.retry_after is not None
        assert decision.retry_after >= 1
    if policy == "memory":
        assert not again  # counted in process memory: the second hit is over 1/minute
    else:
        assert bool(again) is allowed


async def test_on_real_redis_two_limiters_share_one_budget(
    redis_url: str, redis_prefix: str
) -> None:
    one = RateLimiter(redis_url, key_prefix=redis_prefix.rstrip(":"))
    two = RateLimiter(redis_url, key_prefix=redis_prefix.rstrip(":"))
    try:
        results = [
            bool(await limiter.hit("4/minute", "alice", name="ws", key_name="subject"))
            for limiter in (one, two, one, two, one, two)
        ]
    finally:
        await one.aclose()
        await two.aclose()
    assert results == [True] * 4 + [False] * 2


@pytest.mark.parametrize(
    "arguments",
    [
        {"rates": "nonsense"},
        {"name": "no spaces"},
        {"cost": -1},
    ],
)
async def test_bad_arguments_are_configuration_errors(arguments: dict[str, Any]) -> None:
    limiter = RateLimiter("memory://")
    options: dict[str, Any] = {"rates": "1/minute", "key": "k", "name": "chat", **arguments}
    rates = options.pop("rates")
    key = options.pop("key")
    with pytest.raises(ConfigurationError):
        await limiter.hit(rates, key, **options)
