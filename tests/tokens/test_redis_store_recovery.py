"""RedisTokenStore after its Redis restarts or hangs: no 503 once it answers, none held."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from fastapi_secure.errors import StoreUnavailableError
from fastapi_secure.tokens.stores.base import TokenState, new_family_id
from tests.support.redis_server import private_redis

pytestmark = [pytest.mark.redis, pytest.mark.anyio]

TIMEOUT = 0.5


async def create_and_check(store: object, count: int) -> list[TokenState]:
    """``count`` concurrent sessions, each created then checked: their states."""
    from fastapi_secure.tokens.stores.redis import RedisTokenStore

    assert isinstance(store, RedisTokenStore)
    states: list[TokenState] = []

    async def one(index: int) -> None:
        subject = f"user-{index}"
        family = new_family_id(subject)
        await store.create_family(subject, family, refresh_jti="r", ttl=60)
        states.append(await store.check_access(subject, family, jti="a"))

    async with anyio.create_task_group() as group:
        for index in range(count):
            group.start_soon(one, index)
    return states


async def test_no_503_once_a_restarted_redis_answers(tmp_path: Path) -> None:
    from fastapi_secure.tokens.stores.redis import RedisTokenStore

    with private_redis(tmp_path) as server:
        store = RedisTokenStore.from_url(server.url, prefix="fs-test:")
        try:
            # Concurrent calls fill the pool; the kill makes every pooled connection stale.
            assert await create_and_check(store, 20) == [TokenState.ACTIVE] * 20
            server.kill()
            server.start()
            assert server.answers()
            after = await create_and_check(store, 20)
            after += await create_and_check(store, 1)
        finally:
            await store.aclose()
    assert after == [TokenState.ACTIVE] * 21


async def test_a_hung_redis_answers_503_within_the_operation_timeout(tmp_path: Path) -> None:
    from fastapi_secure.tokens.stores.redis import RedisTokenStore

    with private_redis(tmp_path) as server:
        store = RedisTokenStore.from_url(
            server.url,
            prefix="fs-test:",
            socket_timeout=TIMEOUT,
            socket_connect_timeout=TIMEOUT,
            operation_timeout=TIMEOUT * 2,
        )
        subject = "alice"
        family = new_family_id(subject)
        try:
            await store.create_family(subject, family, refresh_jti="r", ttl=60)
            server.hang()
            started = anyio.current_time()
            with anyio.fail_after(10), pytest.raises(StoreUnavailableError):
                await store.check_access(subject, family, jti="a")
            took = anyio.current_time() - started
        finally:
            server.resume()
            await store.aclose()
    # Bounded by operation_timeout (plus scheduling slack on a busy machine).
    assert took < TIMEOUT * 2 + 1.5
