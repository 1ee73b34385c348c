"""What is particular to each API key store backend: configuration, outages, cleanup."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastapi_secure.apikeys.stores import api_key_store_from_url
from fastapi_secure.apikeys.stores.base import APIKey, StoredAPIKey
from fastapi_secure.errors import (
    ConfigurationError,
    DatabaseUnavailableError,
    StoreUnavailableError,
)

pytestmark = pytest.mark.anyio

STORED = StoredAPIKey(
    record=APIKey(id="AAAAAAAAAAAA", subject="alice", name="ci", created_at=1.0),
    secret_digest="ab" * 32,
)


@pytest.mark.parametrize("timeout", [0, -1, "1"])
def test_redis_store_refuses_a_bad_timeout(timeout: object) -> None:
    import redis.asyncio

    from fastapi_secure.apikeys.stores.redis import RedisAPIKeyStore

    client = redis.asyncio.Redis()
    with pytest.raises(ConfigurationError):
        RedisAPIKeyStore(client, operation_timeout=timeout)  # type: ignore[arg-type]


async def test_redis_outage_is_store_unavailable() -> None:
    from fastapi_secure.apikeys.stores.redis import RedisAPIKeyStore

    store = RedisAPIKeyStore.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    try:
        for call in (
            store.get("AAAAAAAAAAAA"),
            store.add(STORED),
            store.revoke("AAAAAAAAAAAA", "alice"),
            store.list_for("alice"),
        ):
            with pytest.raises(StoreUnavailableError):
                await call
    finally:
        await store.aclose()


@pytest.mark.redis
async def test_redis_store_leaves_a_given_client_open_and_skips_lost_keys(
    redis_url: str, redis_prefix: str
) -> None:
    import redis.asyncio

    from fastapi_secure.apikeys.stores.redis import RedisAPIKeyStore

    client = redis.asyncio.Redis.from_url(redis_url)
    store = RedisAPIKeyStore(client, prefix=redis_prefix)
    try:
        assert store.client is client
        assert await store.add(STORED)
        # A key hash lost behind the store's back (an operator's DEL) leaves a stale
        # id in the subject's set: listing skips it.
        await client.delete(f"{redis_prefix}k:AAAAAAAAAAAA")
        assert await store.list_for("alice") == []
        await store.aclose()
        assert await client.ping()
    finally:
        await client.aclose()


def test_sqlalchemy_store_needs_an_engine() -> None:
    from fastapi_secure.apikeys.stores.sqlalchemy import SQLAlchemyAPIKeyStore

    with pytest.raises(ConfigurationError):
        SQLAlchemyAPIKeyStore("sqlite+aiosqlite://")


async def test_sqlalchemy_store_takes_a_bare_engine_and_a_table_name(tmp_path: Path) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    from fastapi_secure.apikeys.stores.sqlalchemy import SQLAlchemyAPIKeyStore

    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'k.db'}")
    store = SQLAlchemyAPIKeyStore(engine, table_name="service_keys")
    try:
        await store.create_table()
        assert await store.add(STORED)
        assert await store.get("AAAAAAAAAAAA") == STORED
        assert "service_keys" in store.metadata.tables
        await store.aclose()
    finally:
        await engine.dispose()


async def test_unreachable_database_is_database_unavailable() -> None:
    from fastapi_secure.apikeys.stores.sqlalchemy import SQLAlchemyAPIKeyStore
    from fastapi_secure.db import Database

    db = Database("postgresql://app@127.0.0.1:1/app", connect_timeout=0.5)
    store = SQLAlchemyAPIKeyStore(db)
    try:
        with pytest.raises(DatabaseUnavailableError):
            await store.get("AAAAAAAAAAAA")
        with pytest.raises(DatabaseUnavailableError):
            await store.add(STORED)
    finally:
        await db.dispose()


# --- chosen by URL -------------------------------------------------------------


async def test_memory_url() -> None:
    from fastapi_secure.apikeys.stores.memory import MemoryAPIKeyStore

    assert isinstance(api_key_store_from_url("memory://"), MemoryAPIKeyStore)
    with pytest.raises(ConfigurationError):
        api_key_store_from_url("memory://", prefix="x")


@pytest.mark.parametrize("url", ["redis://127.0.0.1:1/0", "rediss://127.0.0.1:1/0"])
async def test_redis_urls(url: str) -> None:
    from fastapi_secure.apikeys.stores.redis import RedisAPIKeyStore

    store = api_key_store_from_url(url, prefix="fs-test:never-used:")
    try:
        assert isinstance(store, RedisAPIKeyStore)
    finally:
        await store.aclose()


async def test_sqlite_url_makes_and_closes_its_own_database(tmp_path: Path) -> None:
    from fastapi_secure.apikeys.stores.sqlalchemy import SQLAlchemyAPIKeyStore

    store = api_key_store_from_url(f"sqlite+aiosqlite:///{tmp_path / 'k.db'}")
    assert isinstance(store, SQLAlchemyAPIKeyStore)
    await store.create_table()
    assert await store.add(STORED)
    await store.aclose()
    # Disposed, not broken: the engine opens a new connection when asked again.
    assert await store.get(STORED.id) == STORED
    await store.aclose()


@pytest.mark.parametrize(
    "url",
    ["redis+cluster://127.0.0.1:7000", "redis+sentinel://h:1/m", "http://x", "nonsense", ""],
)
def test_unknown_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigurationError):
        api_key_store_from_url(url)
