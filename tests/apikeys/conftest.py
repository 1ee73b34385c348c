"""API key store fixtures: one contract, four backends (memory, Redis, SQLite, PostgreSQL).

``store_pair`` gives two independent clients of one shared state (two Redis
connections, two database engines; the memory store is one process, so both
are the same object): what one writes, the other must read at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fastapi_secure.apikeys.stores import api_key_store_from_url
from fastapi_secure.apikeys.stores.base import APIKeyStore
from fastapi_secure.apikeys.stores.memory import MemoryAPIKeyStore

STORE_KINDS = [
    "memory",
    pytest.param("redis", marks=pytest.mark.redis),
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(params=STORE_KINDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """The backend kind and its URL (a fresh Redis prefix or database per test)."""
    kind: str = request.param
    if kind == "memory":
        return kind, ""
    if kind == "redis":
        return kind, request.getfixturevalue("redis_url")
    if kind == "sqlite":
        return kind, f"sqlite+aiosqlite:///{tmp_path / 'keys.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return kind, url


@pytest.fixture
async def store_pair(
    backend: tuple[str, str], request: pytest.FixtureRequest
) -> AsyncIterator[tuple[APIKeyStore, APIKeyStore]]:
    kind, url = backend
    if kind == "memory":
        memory = MemoryAPIKeyStore()
        yield memory, memory
        return
    if kind == "redis":
        from fastapi_secure.apikeys.stores.redis import RedisAPIKeyStore

        prefix = request.getfixturevalue("redis_prefix")
        one = RedisAPIKeyStore.from_url(url, prefix=prefix)
        other = api_key_store_from_url(url, prefix=prefix)
        try:
            yield one, other
        finally:
            await one.aclose()
            await other.aclose()
        return
    from fastapi_secure.apikeys.stores.sqlalchemy import SQLAlchemyAPIKeyStore
    from fastapi_secure.db import Database

    # One store over a Database the test owns, one made from the URL alone.
    database = Database(url)
    first = SQLAlchemyAPIKeyStore(database)
    second = api_key_store_from_url(url)
    await first.create_table()
    try:
        yield first, second
    finally:
        await second.aclose()
        await first.aclose()
        await database.dispose()


@pytest.fixture
def store(store_pair: tuple[APIKeyStore, APIKeyStore]) -> APIKeyStore:
    """Each APIKeyStore backend in turn."""
    return store_pair[0]
