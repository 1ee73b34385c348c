"""The service fixtures themselves: isolation and cleanup against real servers."""

from __future__ import annotations

import uuid

import pytest

from fastapi_secure.testing import FakeClock


def test_fake_clock_moves_only_when_told(fake_clock: FakeClock) -> None:
    start = fake_clock()
    assert fake_clock() == start
    assert fake_clock.advance(1.5) == start + 1.5
    fake_clock.set(10)
    assert fake_clock() == 10.0
    with pytest.raises(ValueError, match="only moves forward"):
        fake_clock.advance(-1)
    assert "10.0" in repr(fake_clock)


@pytest.mark.redis
@pytest.mark.anyio
async def test_redis_prefix_is_unique_and_cleaned(redis_url: str) -> None:
    import redis as sync_redis

    from tests.conftest import redis_prefix as prefix_fixture

    generator = prefix_fixture.__wrapped__(redis_url)  # type: ignore[attr-defined]
    prefix = next(generator)
    client = sync_redis.Redis.from_url(redis_url)
    try:
        client.set(f"{prefix}a", "1")
        client.set(f"{prefix}b", "2")
        outside = f"fs-test-outside:{uuid.uuid4().hex}"
        client.set(outside, "3")
        with pytest.raises(StopIteration):
            next(generator)
        assert client.exists(f"{prefix}a", f"{prefix}b") == 0
        assert client.get(outside) == b"3"
        client.delete(outside)
    finally:
        client.close()


@pytest.mark.postgres
@pytest.mark.anyio
async def test_postgres_database_is_fresh(postgres_url: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(postgres_url)
    try:
        name = await connection.fetchval("select current_database()")
        tables = await connection.fetchval(
            "select count(*) from information_schema.tables where table_schema = 'public'"
        )
    finally:
        await connection.close()
    assert str(name).startswith("fs_test_")
    assert tables == 0
