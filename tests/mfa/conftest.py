"""MFA store fixtures: one contract, three backends (memory, Redis, Redis Cluster)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from fastapi_secure.mfa.stores import MemoryMFAStore
from fastapi_secure.testing import FakeClock

STORE_KINDS = [
    "memory",
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("cluster", marks=pytest.mark.redis),
]


async def open_store(request: pytest.FixtureRequest, kind: str, clock: FakeClock) -> Any:
    if kind == "memory":
        return MemoryMFAStore(clock=clock)
    from fastapi_secure.mfa.stores.redis import RedisMFAStore

    if kind == "redis":
        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")
    else:
        url = request.getfixturevalue("redis_cluster_url")
        prefix = f"fs-test:{uuid.uuid4().hex}:"
    return RedisMFAStore.from_url(url, prefix=prefix)


@pytest.fixture(params=STORE_KINDS)
async def mfa_store(request: pytest.FixtureRequest, fake_clock: FakeClock) -> AsyncIterator[Any]:
    """Each MFA store backend in turn (it implements every MFA store protocol)."""
    store = await open_store(request, request.param, fake_clock)
    try:
        yield store
    finally:
        await store.aclose()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def fast_store(request: pytest.FixtureRequest, fake_clock: FakeClock) -> AsyncIterator[Any]:
    """Memory and single Redis: for the factor tests (the cluster runs the contract)."""
    store = await open_store(request, request.param, fake_clock)
    try:
        yield store
    finally:
        await store.aclose()
