"""The served reference API, on SQLite + memory stores and on real PostgreSQL + Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import fresh_postgres_database
from tests.support.reference_api import Api, make_settings, serve


@pytest.fixture(
    params=[
        "sqlite-memory",
        pytest.param("postgres-redis", marks=[pytest.mark.postgres, pytest.mark.redis]),
    ]
)
async def api(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Api]:
    if request.param == "sqlite-memory":
        settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'api.db'}")
    else:
        redis_url: str = request.getfixturevalue("redis_url")
        prefix: str = request.getfixturevalue("redis_prefix")
        async with fresh_postgres_database() as postgres_url:
            settings = make_settings(postgres_url, redis_url, redis_key_prefix=prefix)
            async for served in serve(settings):
                yield served
        return
    async for served in serve(settings):
        yield served
