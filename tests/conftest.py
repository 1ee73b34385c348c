"""Shared fixtures: fake clock, and isolated real Redis and PostgreSQL.

Backends are tested against the real servers named by
``FASTAPI_SECURE_TEST_REDIS_URL`` and ``FASTAPI_SECURE_TEST_POSTGRES_URL``
(loopback defaults). Without ``CI=true`` a test whose server is unreachable
is skipped with instructions to start it; with ``CI=true`` it fails.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from functools import cache
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from fastapi_secure.testing import FakeClock

if TYPE_CHECKING:
    import redis.asyncio

REDIS_URL = os.environ.get("FASTAPI_SECURE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get(
    "FASTAPI_SECURE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

REDIS_START_HINT = (
    "redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save '' "
    "--appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log"
)
POSTGRES_START_HINT = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"


@cache
def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1.0
        ):
            return True
    except OSError:
        return False


def require_server(name: str, url: str, default_port: int, hint: str) -> None:
    """Skip (locally) or fail (CI=true) when the server behind ``url`` is down."""
    if _reachable(url, default_port):
        return
    message = f"{name} is not reachable at {url}; start it with: {hint}"
    if IN_CI:
        pytest.fail(f"CI=true: {message}")
    pytest.skip(message)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def fake_clock() -> FakeClock:
    """A clock that moves only when the test says so."""
    return FakeClock(start=1_800_000_000.0)


@pytest.fixture
def redis_url() -> str:
    """URL of the real Redis; skips or fails (CI) when it is unreachable."""
    require_server("Redis", REDIS_URL, 6379, REDIS_START_HINT)
    return REDIS_URL


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix unique to this test; every key under it is deleted afterwards."""
    import redis as sync_redis

    prefix = f"fs-test:{uuid.uuid4().hex}:"
    yield prefix
    client = sync_redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    """An async client of the real Redis, closed after the test."""
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        yield client
    finally:
        await client.aclose()


@asynccontextmanager
async def fresh_postgres_database() -> AsyncIterator[str]:
    """Create a uniquely named database; yield its URL; drop it (even when in use)."""
    require_server("PostgreSQL", POSTGRES_URL, 5432, POSTGRES_START_HINT)
    import asyncpg

    name = f"fs_test_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield urlsplit(POSTGRES_URL)._replace(path=f"/{name}").geturl()
    finally:
        admin = await asyncpg.connect(POSTGRES_URL)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """URL (``postgresql://...``) of a fresh database, dropped after the test."""
    async with fresh_postgres_database() as url:
        yield url
