"""Account fixtures: one contract per store over its backends."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fastapi_secure.accounts.action_tokens import ActionTokenStore, MemoryActionTokenStore
from fastapi_secure.accounts.lockout import LockoutStore, MemoryLockoutStore
from fastapi_secure.accounts.sqlalchemy import SQLAlchemyUserStore
from fastapi_secure.accounts.users import MemoryUserStore, UserStore
from fastapi_secure.testing import FakeClock
from tests.conftest import fresh_postgres_database
from tests.support.accounts import AppUser, sql_database

USER_STORE_KINDS = [
    "memory",
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
]

REDIS_KINDS = [
    "memory",
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("cluster", marks=pytest.mark.redis),
]


@pytest.fixture(params=USER_STORE_KINDS)
async def user_store(
    request: pytest.FixtureRequest, fake_clock: FakeClock, tmp_path: Path
) -> AsyncIterator[UserStore]:
    """Each UserStore backend in turn, all on ``fake_clock``."""
    kind = request.param
    if kind == "memory":
        yield MemoryUserStore(clock=fake_clock)
        return
    if kind == "sqlite":
        async with sql_database(f"sqlite+aiosqlite:///{tmp_path / 'users.db'}") as db:
            yield SQLAlchemyUserStore(AppUser, db.transaction, clock=fake_clock)
        return
    async with fresh_postgres_database() as url, sql_database(url) as db:
        yield SQLAlchemyUserStore(AppUser, db.transaction, clock=fake_clock)


def redis_target(request: pytest.FixtureRequest, kind: str) -> tuple[str, str]:
    """URL and key prefix of the single Redis or the local cluster."""
    if kind == "redis":
        return request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
    return request.getfixturevalue("redis_cluster_url"), f"fs-test:{uuid.uuid4().hex}:"


@pytest.fixture(params=REDIS_KINDS)
async def action_store(
    request: pytest.FixtureRequest, fake_clock: FakeClock
) -> AsyncIterator[ActionTokenStore]:
    """Each ActionTokenStore backend in turn; memory runs on ``fake_clock``."""
    if request.param == "memory":
        yield MemoryActionTokenStore(clock=fake_clock)
        return
    from fastapi_secure.accounts.redis import RedisActionTokenStore

    url, prefix = redis_target(request, request.param)
    store = RedisActionTokenStore.from_url(url, prefix=prefix)
    try:
        yield store
    finally:
        await store.aclose()


@pytest.fixture(params=REDIS_KINDS)
async def lockout_store(request: pytest.FixtureRequest) -> AsyncIterator[LockoutStore]:
    """Each LockoutStore backend in turn (time comes from the caller's ``now``)."""
    if request.param == "memory":
        yield MemoryLockoutStore()
        return
    from fastapi_secure.accounts.redis import RedisLockoutStore

    url, prefix = redis_target(request, request.param)
    store = RedisLockoutStore.from_url(url, prefix=prefix)
    try:
        yield store
    finally:
        await store.aclose()
