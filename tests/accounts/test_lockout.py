"""Escalating lockout: one contract over memory, Redis and Redis Cluster."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fastapi_secure.accounts.errors import AccountLockedError
from fastapi_secure.accounts.hooks import AccountEvent, AccountHooks, HookContext
from fastapi_secure.accounts.lockout import (
    Lockout,
    LockoutPolicy,
    LockoutStore,
    MemoryLockoutStore,
)
from fastapi_secure.errors import ConfigurationError, StoreUnavailableError
from fastapi_secure.http_errors import http_exception
from fastapi_secure.testing import FakeClock

pytestmark = pytest.mark.anyio


@pytest.fixture
def lockout(lockout_store: LockoutStore, fake_clock: FakeClock) -> Lockout:
    return Lockout(lockout_store, clock=fake_clock)


async def _fail(lockout: Lockout, name: str, times: int, address: str | None = None) -> float:
    started = 0.0
    for _ in range(times):
        started = max(started, await lockout.failure(name, address))
    return started


async def _locked_for(lockout: Lockout, name: str, address: str | None = None) -> int:
    with pytest.raises(AccountLockedError) as caught:
        await lockout.check(name, address)
    answer = http_exception(caught.value)
    assert answer.status_code == 429
    assert answer.headers is not None
    assert answer.headers["Retry-After"] == str(caught.value.retry_after)
    assert caught.value.retry_after is not None
    return caught.value.retry_after


async def test_four_failures_do_not_lock(lockout: Lockout) -> None:
    assert await _fail(lockout, "alice", 4) == 0
    await lockout.check("alice")


async def test_the_fifth_failure_locks_for_a_minute(
    lockout: Lockout, fake_clock: FakeClock
) -> None:
    assert await _fail(lockout, "alice", 5) == 60
    assert await _locked_for(lockout, "alice") == 60
    fake_clock.advance(59.5)
    assert await _locked_for(lockout, "alice") == 1
    fake_clock.advance(0.5)
    await lockout.check("alice")


async def test_locks_double_up_to_the_cap(
    lockout_store: LockoutStore, fake_clock: FakeClock
) -> None:
    policy = LockoutPolicy(threshold=2, base_delay=60, max_delay=300)
    lockout = Lockout(lockout_store, account=policy, address=None, clock=fake_clock)
    lengths = []
    for _ in range(6):
        lengths.append(await _fail(lockout, "alice", 2))
        fake_clock.advance(lengths[-1])
    assert lengths == [60, 120, 240, 300, 300, 300]


async def test_failures_during_a_lock_do_not_extend_it(
    lockout: Lockout, fake_clock: FakeClock
) -> None:
    await _fail(lockout, "alice", 5)
    fake_clock.advance(30)
    assert await _fail(lockout, "alice", 20) == 0
    assert await _locked_for(lockout, "alice") == 30


async def test_success_resets_the_escalation(lockout: Lockout, fake_clock: FakeClock) -> None:
    await _fail(lockout, "alice", 5)
    fake_clock.advance(60)
    await lockout.success("alice")
    assert await _fail(lockout, "alice", 4) == 0
    assert await _fail(lockout, "alice", 1) == 60  # back to the first step


async def test_escalation_falls_back_after_a_quiet_day(
    lockout: Lockout, fake_clock: FakeClock
) -> None:
    await _fail(lockout, "alice", 5)
    fake_clock.advance(60)
    assert await _fail(lockout, "alice", 5) == 120
    fake_clock.advance(120 + 86400 + 1)
    assert await _fail(lockout, "alice", 5) == 60


async def test_old_failures_leave_the_window(lockout: Lockout, fake_clock: FakeClock) -> None:
    await _fail(lockout, "alice", 4)
    fake_clock.advance(901)
    assert await _fail(lockout, "alice", 4) == 0
    await lockout.check("alice")


async def test_unknown_and_known_names_lock_the_same(lockout: Lockout) -> None:
    await _fail(lockout, "alice@example.io", 5)
    await _fail(lockout, "nobody-has-this@example.io", 5)
    assert await _locked_for(lockout, "alice@example.io") == await _locked_for(
        lockout, "nobody-has-this@example.io"
    )


async def test_spellings_of_one_name_share_a_counter(lockout: Lockout) -> None:
    for name in ("Alice@X.io", "alice@x.io", " ALICE@X.IO", "alice@X.io", "\uff41lice@x.io"):
        await lockout.failure(name)
    await _locked_for(lockout, "alice@x.io")


async def test_names_do_not_share_counters(lockout: Lockout) -> None:
    await _fail(lockout, "alice", 5)
    await lockout.check("bob")


async def test_one_address_trying_many_names_is_locked(lockout: Lockout) -> None:
    for index in range(20):
        await lockout.failure(f"user{index}", "203.0.113.7")
    assert await _locked_for(lockout, "fresh-name", "203.0.113.7") == 60
    await lockout.check("fresh-name", "203.0.113.8")  # addresses count one by one


async def test_an_ipv6_slash64_counts_as_one_address(lockout: Lockout) -> None:
    for index in range(20):
        await lockout.failure(f"user{index}", f"2001:db8:1:2::{index + 1:x}")
    await _locked_for(lockout, "fresh-name", "2001:db8:1:2:ffff::1")
    await lockout.check("fresh-name", "2001:db8:1:3::1")


async def test_success_does_not_clear_the_address(lockout: Lockout) -> None:
    for index in range(19):
        await lockout.failure(f"user{index}", "203.0.113.7")
    await lockout.success("attackers-own-account")
    await lockout.failure("user-x", "203.0.113.7")
    await _locked_for(lockout, "anyone", "203.0.113.7")


async def test_malformed_addresses_are_ignored(lockout: Lockout) -> None:
    for address in ("not-an-ip", "", "999.1.1.1", "x" * 500):
        await lockout.failure("alice", address)
        await lockout.check("bob", address)


async def test_a_lock_starts_the_hook_once(
    lockout_store: LockoutStore, fake_clock: FakeClock
) -> None:
    hooks = AccountHooks(clock=fake_clock)
    seen: list[HookContext] = []

    @hooks.on(AccountEvent.LOCKED)
    async def notify(context: HookContext) -> None:
        seen.append(context)

    lockout = Lockout(lockout_store, hooks=hooks, clock=fake_clock)
    await _fail(lockout, " Alice@X.io", 7, "198.51.100.9")
    assert len(seen) == 1
    assert seen[0].login_name == "alice@x.io"
    assert seen[0].retry_after == 60
    assert seen[0].client_address == "198.51.100.9/32"
    assert seen[0].data == {"scope": "account"}


async def test_a_failing_hook_changes_nothing(
    lockout_store: LockoutStore, fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    hooks = AccountHooks(clock=fake_clock)

    @hooks.on(AccountEvent.LOCKED)
    async def broken(context: HookContext) -> None:
        raise RuntimeError("secret-in-message")

    lockout = Lockout(lockout_store, hooks=hooks, clock=fake_clock)
    with caplog.at_level(logging.ERROR, logger="fastapi_secure.accounts"):
        assert await _fail(lockout, "alice", 5) == 60
    await _locked_for(lockout, "alice")
    assert "RuntimeError" in caplog.text
    assert "secret-in-message" not in caplog.text


@pytest.mark.parametrize(
    "kwargs",
    [
        {"threshold": 0},
        {"threshold": True},
        {"window": 0},
        {"base_delay": -1},
        {"max_delay": float("inf")},
        {"factor": 0.5},
        {"base_delay": 600, "max_delay": 60},
        {"max_delay": 30 * 86400},
    ],
)
def test_policies_are_checked(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        LockoutPolicy(**kwargs)  # type: ignore[arg-type]


def test_delays_never_overflow() -> None:
    policy = LockoutPolicy()
    assert policy.delay(0) == 60
    assert policy.delay(10_000) == 3600


async def test_memory_store_drops_expired_counters(fake_clock: FakeClock) -> None:
    store = MemoryLockoutStore(prune_every=2)
    lockout = Lockout(store, address=None, clock=fake_clock)
    await lockout.failure("one")
    fake_clock.advance(86401)
    await lockout.failure("two")
    assert store.size() == 1
    await lockout.check("one")
    assert "Lockout(" in repr(lockout)


async def test_a_redis_outage_is_a_store_error(fake_clock: FakeClock) -> None:
    pytest.importorskip("redis")
    from fastapi_secure.accounts.redis import RedisLockoutStore

    store = RedisLockoutStore.from_url("redis://127.0.0.1:1/0", operation_timeout=1)
    lockout = Lockout(store, clock=fake_clock)
    try:
        with pytest.raises(StoreUnavailableError):
            await lockout.check("alice")
        with pytest.raises(StoreUnavailableError):
            await lockout.failure("alice")
    finally:
        await store.aclose()


@pytest.mark.redis
def test_two_workers_share_the_counters(tmp_path: Path, redis_url: str, redis_prefix: str) -> None:
    go = tmp_path / "go"
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    command = [sys.executable, "-m", "tests.support.lockout_worker", redis_url, redis_prefix]
    workers = [
        subprocess.Popen(
            [*command, "Shared@X.io", "1800000000", str(go), "3"],
            stdout=subprocess.PIPE,
            cwd=root,
            env=env,
        )
        for _ in range(2)
    ]
    time.sleep(1.0)  # let both processes start before the common signal
    go.touch()
    started: list[float] = []
    for worker in workers:
        out, _ = worker.communicate(timeout=60)
        assert worker.returncode == 0
        started += [float(value) for value in out.decode().strip().split(",")]
    # six failures between two workers: exactly one of them started the lock
    assert sorted(started) == [0.0] * 5 + [60.0]


async def test_escalation_falls_back_even_while_the_key_lives(
    lockout_store: LockoutStore, fake_clock: FakeClock
) -> None:
    policy = LockoutPolicy(threshold=2, base_delay=600, max_delay=7200, forget_after=300)
    lockout = Lockout(lockout_store, account=policy, address=None, clock=fake_clock)
    assert await _fail(lockout, "alice", 2) == 600
    fake_clock.advance(600)
    assert await _fail(lockout, "alice", 1) == 0
    fake_clock.advance(301)  # the key lives on (forget_after + delay), the level does not
    assert await _fail(lockout, "alice", 2) == 600


async def test_redis_store_configuration_is_checked() -> None:
    pytest.importorskip("redis")
    import redis.asyncio

    from fastapi_secure.accounts.redis import RedisLockoutStore, redis_client_from_url

    client = redis.asyncio.Redis.from_url("redis://127.0.0.1:1/0")
    try:
        with pytest.raises(ConfigurationError, match="prefix"):
            RedisLockoutStore(client, prefix="bad{tag}")
        with pytest.raises(ConfigurationError, match="operation_timeout"):
            RedisLockoutStore(client, operation_timeout=0)
        with pytest.raises(ConfigurationError, match="socket_timeout"):
            redis_client_from_url("redis://127.0.0.1:1/0", socket_timeout=0)
        store = RedisLockoutStore(client)
        assert store.client is client
        await store.aclose()  # not owned: the client stays open
    finally:
        await client.aclose()
