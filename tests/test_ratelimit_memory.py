"""The memory:// limiter storage: expired entries go away, scans stay paced."""

from __future__ import annotations

import asyncio
import types
from typing import Any

import limits
import limits.aio.storage.memory
import limits.aio.strategies
import pytest

import fastapi_secure._ratelimit_memory
from fastapi_secure._ratelimit_memory import PacedMemoryStorage
from fastapi_secure.ratelimit import RateLimiter
from fastapi_secure.testing import FakeClock

pytestmark = pytest.mark.anyio


@pytest.fixture
def clock(fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """limits' windows and our pacing, both on the fake clock."""
    fake_time = types.SimpleNamespace(time=fake_clock, monotonic=fake_clock)
    for module in (
        limits.aio.storage.memory,
        limits.aio.strategies,
        fastapi_secure._ratelimit_memory,
    ):
        monkeypatch.setattr(module, "time", fake_time)
    return fake_clock


async def finish_pass(storage: PacedMemoryStorage) -> None:
    if storage.timer is not None:
        await storage.timer


def test_memory_uri_opens_the_paced_storage() -> None:
    limiter = RateLimiter("memory://")
    assert isinstance(limiter.storage, PacedMemoryStorage)
    assert isinstance(limiter.storage, limits.aio.storage.MemoryStorage)


@pytest.mark.parametrize("strategy", ["sliding-window-counter", "fixed-window", "moving-window"])
async def test_expired_entries_go_away(clock: FakeClock, strategy: str) -> None:
    storage = PacedMemoryStorage()
    strategy_class: Any = limits.aio.strategies.STRATEGIES[strategy]
    limiter = strategy_class(storage)
    item = limits.parse("5/second")
    for index in range(1000):
        assert await limiter.hit(item, "p", f"client-{index}")
    await finish_pass(storage)
    assert len(storage.storage) + len(storage.events) >= 1000
    clock.advance(5)  # past both windows of the one-second rate
    assert await limiter.hit(item, "p", "late")
    await finish_pass(storage)
    assert len(storage.storage) + len(storage.events) <= 2
    assert len(storage.expirations) <= 2


async def test_passes_run_at_most_once_per_interval(clock: FakeClock) -> None:
    storage = PacedMemoryStorage(interval=1.0)
    limiter = limits.aio.strategies.FixedWindowRateLimiter(storage)
    item = limits.parse("100/minute")
    await limiter.hit(item, "p", "a")
    first = storage.timer
    await finish_pass(storage)
    for _ in range(50):
        await limiter.hit(item, "p", "a")
    # limits would have started a new pass on the first of these hits.
    assert storage.timer is first
    assert not storage.expiry_due()
    clock.advance(1.0)
    await limiter.hit(item, "p", "a")
    assert storage.timer is not first


async def test_many_keys_space_the_passes_out(clock: FakeClock) -> None:
    storage = PacedMemoryStorage(interval=1.0)
    storage.KEYS_PER_SECOND = 100
    limiter = limits.aio.strategies.FixedWindowRateLimiter(storage)
    item = limits.parse("100/minute")
    for index in range(500):
        await limiter.hit(item, "p", f"k{index}")
    await finish_pass(storage)
    clock.advance(1.0)
    await limiter.hit(item, "p", "k0")  # a pass over ~500 keys: the next in 5 s
    await finish_pass(storage)
    clock.advance(4.0)
    assert not storage.expiry_due()
    clock.advance(1.0)
    assert storage.expiry_due()


def test_the_paced_storage_calls_limits_memory_methods_without_error_wrappers() -> None:
    """limits wraps each storage method once per subclass; with wrap_exceptions off
    (ours) a wrapper only re-raises, so the paced storage calls the methods bare."""
    names = ("incr", "get", "acquire_sliding_window_entry", "get_sliding_window", "acquire_entry")
    stock = limits.aio.storage.MemoryStorage
    assert all(fastapi_secure._ratelimit_memory._is_error_wrapper(getattr(stock, n)) for n in names)
    assert not any(
        fastapi_secure._ratelimit_memory._is_error_wrapper(getattr(PacedMemoryStorage, n))
        for n in names
    )
    assert PacedMemoryStorage().wrap_exceptions is False


@pytest.mark.parametrize("strategy", ["sliding-window-counter", "fixed-window", "moving-window"])
async def test_the_paced_storage_answers_as_limits_own(clock: FakeClock, strategy: str) -> None:
    strategy_class: Any = limits.aio.strategies.STRATEGIES[strategy]
    ours = strategy_class(PacedMemoryStorage())
    theirs = strategy_class(limits.aio.storage.MemoryStorage())
    item = limits.parse("3/second")
    answers: list[list[Any]] = [[], []]
    for step in range(12):
        for index, limiter in enumerate((ours, theirs)):
            allowed = await limiter.hit(item, "p", "one", cost=1 + step % 2)
            stats = await limiter.get_window_stats(item, "p", "one")
            answers[index].append((allowed, stats.remaining, round(stats.reset_time, 3)))
        clock.advance(0.3)
    assert answers[0] == answers[1]


async def test_a_pass_gives_the_event_loop_back_between_slices(clock: FakeClock) -> None:
    """limits walked every counter in one go: with a million keys, about a second
    during which no request was served."""
    storage = PacedMemoryStorage()
    limiter = limits.aio.strategies.FixedWindowRateLimiter(storage)
    item = limits.parse("5/second")
    for index in range(4 * PacedMemoryStorage.SLICE):
        await limiter.hit(item, "p", f"client-{index}")
    await finish_pass(storage)
    clock.advance(5)
    storage._next_pass = 0.0
    turns = 0

    async def other_requests() -> None:
        nonlocal turns
        while storage.timer is not None and not storage.timer.done():
            turns += 1
            await asyncio.sleep(0)

    assert await limiter.hit(item, "p", "late")  # starts the pass
    await asyncio.gather(finish_pass(storage), other_requests())
    assert turns >= 4  # served between the slices, not after the whole pass
    assert len(storage.storage) == len(storage.expirations) == 1
