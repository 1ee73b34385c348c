"""Token store fixtures: one contract, three backends (memory, Redis, Redis Cluster).

The cluster comes from the session-scoped ``redis_cluster_url`` fixture in
``tests/conftest.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from fastapi_secure.testing import FakeClock
from fastapi_secure.tokens.stores.base import TokenStore
from fastapi_secure.tokens.stores.memory import MemoryTokenStore

STORE_KINDS = [
    "memory",
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("cluster", marks=pytest.mark.redis),
]


@pytest.fixture(params=STORE_KINDS)
async def store(request: pytest.FixtureRequest, fake_clock: FakeClock) -> AsyncIterator[TokenStore]:
    """Each TokenStore backend in turn; memory runs on ``fake_clock``."""
    kind = request.param
    if kind == "memory":
        yield MemoryTokenStore(clock=fake_clock)
        return
    from fastapi_secure.tokens.stores.redis import RedisTokenStore

    if kind == "redis":
        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")
    else:
        url = request.getfixturevalue("redis_cluster_url")
        prefix = f"fs-test:{uuid.uuid4().hex}:"
    redis_store = RedisTokenStore.from_url(url, prefix=prefix)
    try:
        yield redis_store
    finally:
        await redis_store.aclose()
