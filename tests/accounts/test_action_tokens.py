"""Single-use action tokens: one contract over memory, Redis and Redis Cluster."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastapi_secure.accounts.action_tokens import (
    ActionPurpose,
    ActionTokens,
    ActionTokenStore,
    MemoryActionTokenStore,
)
from fastapi_secure.accounts.errors import InvalidActionTokenError
from fastapi_secure.accounts.users import MemoryUserStore, UserRecord
from fastapi_secure.errors import ConfigurationError, StoreUnavailableError
from fastapi_secure.http_errors import status_of
from fastapi_secure.testing import FakeClock

pytestmark = pytest.mark.anyio

RESET = ActionPurpose.RESET_PASSWORD
VERIFY = ActionPurpose.VERIFY_EMAIL


@pytest.fixture
def users(fake_clock: FakeClock) -> MemoryUserStore:
    return MemoryUserStore(clock=fake_clock)


@pytest.fixture
def tokens(
    users: MemoryUserStore, action_store: ActionTokenStore, fake_clock: FakeClock
) -> ActionTokens:
    return ActionTokens(users, action_store, clock=fake_clock)


async def _user(users: MemoryUserStore, email: str = "a@x.io") -> UserRecord:
    return await users.create(email=email, password_hash="h")


async def _refused(tokens: ActionTokens, purpose: ActionPurpose, token: str, **kw: str) -> str:
    with pytest.raises(InvalidActionTokenError) as caught:
        await tokens.confirm(purpose, token, **kw)
    assert status_of(caught.value) == 400
    if len(token) > 8:
        assert token not in str(caught.value)
        assert token not in repr(caught.value)
    return caught.value.reason or ""


async def test_confirm_returns_the_account(tokens: ActionTokens, users: MemoryUserStore) -> None:
    user = await _user(users)
    token = await tokens.issue(RESET, user)
    assert len(token.split(".")[1]) == 43  # 256 bits, url-safe
    assert (await tokens.confirm(RESET, token)) == user


async def test_a_token_works_once(tokens: ActionTokens, users: MemoryUserStore) -> None:
    token = await tokens.issue(RESET, await _user(users))
    await tokens.confirm(RESET, token)
    assert "used" in await _refused(tokens, RESET, token)


async def test_expired_tokens_are_refused(
    tokens: ActionTokens, users: MemoryUserStore, fake_clock: FakeClock
) -> None:
    user = await _user(users)
    reset = await tokens.issue(RESET, user)
    verify = await tokens.issue(VERIFY, user)
    fake_clock.advance(30 * 60 + 1)
    await _refused(tokens, RESET, reset)
    assert (await tokens.confirm(VERIFY, verify)) == user  # 24 hours
    verify = await tokens.issue(VERIFY, user)
    fake_clock.advance(24 * 3600 + 1)
    await _refused(tokens, VERIFY, verify)


async def test_a_token_just_before_expiry_works(
    tokens: ActionTokens, users: MemoryUserStore, fake_clock: FakeClock
) -> None:
    token = await tokens.issue(RESET, await _user(users))
    fake_clock.advance(30 * 60 - 1)
    await tokens.confirm(RESET, token)


async def test_a_newer_request_supersedes_older_tokens(
    tokens: ActionTokens, users: MemoryUserStore
) -> None:
    user = await _user(users)
    older = await tokens.issue(RESET, user)
    newer = await tokens.issue(RESET, user)
    await _refused(tokens, RESET, older)
    assert (await tokens.confirm(RESET, newer)) == user


async def test_a_password_change_kills_outstanding_tokens(
    tokens: ActionTokens, users: MemoryUserStore
) -> None:
    user = await _user(users)
    token = await tokens.issue(RESET, user)
    await users.set_password_hash(user.id, "new-hash")
    assert "changed" in await _refused(tokens, RESET, token)


async def test_a_verify_token_is_no_reset_token(
    tokens: ActionTokens, users: MemoryUserStore
) -> None:
    user = await _user(users)
    verify = await tokens.issue(VERIFY, user)
    await _refused(tokens, RESET, verify)
    # the failed attempt did not consume it for its own purpose
    assert (await tokens.confirm(VERIFY, verify)) == user


async def test_purposes_do_not_supersede_each_other(
    tokens: ActionTokens, users: MemoryUserStore
) -> None:
    user = await _user(users)
    verify = await tokens.issue(VERIFY, user)
    reset = await tokens.issue(RESET, user)
    await tokens.confirm(VERIFY, verify)
    await tokens.confirm(RESET, reset)


async def test_a_token_for_a_never_acts_on_b(tokens: ActionTokens, users: MemoryUserStore) -> None:
    alice = await _user(users, "alice@x.io")
    bob = await _user(users, "bob@x.io")
    token = await tokens.issue(VERIFY, alice)
    assert "another account" in await _refused(tokens, VERIFY, token, subject=bob.id)
    # refused without being consumed, and it still acts on alice only
    confirmed = await tokens.confirm(VERIFY, token, subject=alice.id)
    assert confirmed.id == alice.id


async def test_tokens_of_two_accounts_are_independent(
    tokens: ActionTokens, users: MemoryUserStore
) -> None:
    alice = await _user(users, "alice@x.io")
    bob = await _user(users, "bob@x.io")
    for_alice = await tokens.issue(RESET, alice)
    for_bob = await tokens.issue(RESET, bob)
    assert (await tokens.confirm(RESET, for_bob)).id == bob.id
    assert (await tokens.confirm(RESET, for_alice)).id == alice.id


async def test_inactive_accounts_cannot_use_tokens(
    tokens: ActionTokens, users: MemoryUserStore
) -> None:
    user = await _user(users)
    token = await tokens.issue(RESET, user)
    await users.set_active(user.id, False)
    await _refused(tokens, RESET, token)


async def test_a_verification_token_is_bound_to_the_address(
    action_store: ActionTokenStore, users: MemoryUserStore, fake_clock: FakeClock
) -> None:
    tokens = ActionTokens(users, action_store, clock=fake_clock)
    user = await _user(users)
    token = await tokens.issue(VERIFY, user)
    moved = UserRecord(**{**user.__dict__, "email": "elsewhere@x.io"})
    other = ActionTokens(_FixedUsers(moved), action_store, clock=fake_clock)
    await _refused(other, VERIFY, token)


class _FixedUsers(MemoryUserStore):
    def __init__(self, user: UserRecord) -> None:
        super().__init__()
        self._user = user

    async def get(self, user_id: str) -> UserRecord | None:
        return self._user if user_id == self._user.id else None


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1],
        lambda t: t + "A",
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),
        lambda t: ("0" if t[0] != "0" else "1") + t[1:],
        lambda t: t.upper(),
        lambda t: t.split(".")[1],
        lambda t: t.replace(".", ":"),
        lambda t: " " + t,
        lambda t: t + "\x00",
        lambda t: "",
        lambda t: t * 100,
    ],
)
async def test_tampered_and_truncated_tokens_are_refused(
    tokens: ActionTokens, users: MemoryUserStore, mangle: object
) -> None:
    assert callable(mangle)
    user = await _user(users)
    token = await tokens.issue(RESET, user)
    mangled = mangle(token)
    assert mangled != token
    await _refused(tokens, RESET, mangled)
    assert (await tokens.confirm(RESET, token)) == user


async def test_concurrent_confirms_have_exactly_one_winner(
    tokens: ActionTokens, users: MemoryUserStore
) -> None:
    token = await tokens.issue(RESET, await _user(users))
    outcomes: list[bool] = []

    async def confirm() -> None:
        try:
            await tokens.confirm(RESET, token)
        except InvalidActionTokenError:
            outcomes.append(False)
        else:
            outcomes.append(True)

    async with anyio.create_task_group() as group:
        for _ in range(20):
            group.start_soon(confirm)
    assert outcomes.count(True) == 1
    assert len(outcomes) == 20


async def test_only_digests_are_stored(users: MemoryUserStore, fake_clock: FakeClock) -> None:
    store = MemoryActionTokenStore(clock=fake_clock)
    tokens = ActionTokens(users, store, clock=fake_clock)
    token = await tokens.issue(RESET, await _user(users))
    secret = token.split(".")[1]
    dumped = repr(store.__dict__)
    assert secret not in dumped
    assert store.size() == 2


@pytest.mark.redis
async def test_redis_keeps_only_digests(
    users: MemoryUserStore, fake_clock: FakeClock, redis_url: str, redis_prefix: str
) -> None:
    from fastapi_secure.accounts.redis import RedisActionTokenStore

    store = RedisActionTokenStore.from_url(redis_url, prefix=redis_prefix)
    try:
        tokens = ActionTokens(users, store, clock=fake_clock)
        token = await tokens.issue(RESET, await _user(users))
        secret = token.split(".")[1]
        keys = [key async for key in store.client.scan_iter(match=f"{redis_prefix}*")]
        assert len(keys) == 2
        for key in keys:
            assert secret.encode() not in key
            value = await store.client.get(key)
            assert value is not None
            assert secret.encode() not in value
        ttl = await store.client.pttl(keys[0])
        assert 0 < ttl <= 30 * 60 * 1000
    finally:
        await store.aclose()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(garbage=st.text(max_size=200))
async def test_arbitrary_input_is_a_clean_refusal(
    tokens: ActionTokens, users: MemoryUserStore, garbage: str
) -> None:
    with pytest.raises(InvalidActionTokenError):
        await tokens.confirm(RESET, garbage)


async def test_configuration_is_checked(users: MemoryUserStore) -> None:
    with pytest.raises(ConfigurationError):
        ActionTokens(users, ttls={"Bad Purpose": 60})
    with pytest.raises(ConfigurationError):
        ActionTokens(users, ttls={"reset_password": 0})
    with pytest.raises(ConfigurationError):
        ActionTokens(users, ttls={"reset_password": 10**9})
    tokens = ActionTokens(users, ttls={"change_email": 600, "reset_password": 900})
    assert tokens.ttl("change_email") == 600
    assert tokens.ttl(RESET) == 900
    assert tokens.ttl(VERIFY) == 24 * 3600
    with pytest.raises(ConfigurationError):
        await tokens.issue("unknown_purpose", await _user(users))
    assert "reset_password" in repr(tokens)


async def test_a_custom_purpose_works(users: MemoryUserStore, fake_clock: FakeClock) -> None:
    tokens = ActionTokens(users, ttls={"change_email": 600}, clock=fake_clock)
    user = await _user(users)
    token = await tokens.issue("change_email", user)
    await _refused(tokens, RESET, token)
    assert (await tokens.confirm("change_email", token)) == user


async def test_memory_store_sweeps_expired_entries(
    users: MemoryUserStore, fake_clock: FakeClock
) -> None:
    store = MemoryActionTokenStore(clock=fake_clock, prune_interval=10)
    tokens = ActionTokens(users, store, clock=fake_clock)
    await tokens.issue(RESET, await _user(users, "one@x.io"))
    fake_clock.advance(3600)
    await tokens.issue(RESET, await _user(users, "two@x.io"))
    assert store.size() == 2


async def test_a_redis_outage_is_a_store_error_not_a_pass(users: MemoryUserStore) -> None:
    pytest.importorskip("redis")
    from fastapi_secure.accounts.redis import RedisActionTokenStore

    store = RedisActionTokenStore.from_url("redis://127.0.0.1:1/0", operation_timeout=1)
    tokens = ActionTokens(users, store)
    try:
        with pytest.raises(StoreUnavailableError):
            await tokens.issue(RESET, await _user(users))
        with pytest.raises(StoreUnavailableError):
            await tokens.confirm(RESET, "0" * 16 + "." + "A" * 43)
    finally:
        await store.aclose()


@pytest.mark.redis
def test_twenty_confirms_in_two_processes_have_one_winner(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    from fastapi_secure.accounts.redis import RedisActionTokenStore
    from fastapi_secure.accounts.sqlalchemy import SQLAlchemyUserStore
    from tests.support.accounts import AppUser, sql_database

    db_url = f"sqlite+aiosqlite:///{tmp_path / 'users.db'}"

    async def issue() -> str:
        store = RedisActionTokenStore.from_url(redis_url, prefix=redis_prefix)
        try:
            async with sql_database(db_url) as db:
                users = SQLAlchemyUserStore(AppUser, db.transaction)
                user = await users.create(email="race@x.io", password_hash="h")
                return await ActionTokens(users, store).issue(RESET, user)
        finally:
            await store.aclose()

    token = anyio.run(issue)
    go = tmp_path / "go"
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    command = [sys.executable, "-m", "tests.support.confirm_worker", redis_url, redis_prefix]
    workers = [
        subprocess.Popen(
            [*command, db_url, token, str(go), "10"], stdout=subprocess.PIPE, cwd=root, env=env
        )
        for _ in range(2)
    ]
    time.sleep(1.0)  # let both processes start up before the common start signal
    go.touch()
    wins = []
    for worker in workers:
        out, _ = worker.communicate(timeout=60)
        assert worker.returncode == 0
        wins.append(int(out.decode().strip()))
    assert sum(wins) == 1
