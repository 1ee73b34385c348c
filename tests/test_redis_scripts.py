"""The guarded Redis client every Redis-backed store holds (fastapi_secure._redis)."""

from __future__ import annotations

import gc
import logging
import subprocess
import sys
import warnings
from collections.abc import AsyncIterator, Awaitable
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from fastapi_secure.errors import ConfigurationError, StoreUnavailableError

if TYPE_CHECKING:
    import redis.asyncio

    from fastapi_secure._redis import RedisScripts

pytestmark = pytest.mark.anyio

logger = logging.getLogger("fastapi_secure.test")


async def _broken_client_call() -> None:
    # What a client's own bug looks like (the cluster warm-up race raised this).
    raise AttributeError("'NoneType' object has no attribute 'write' at secret-host:6379")


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(redis_url)
    yield client
    await client.aclose()


def _scripts(client: redis.asyncio.Redis, **options: object) -> RedisScripts:
    from fastapi_secure._redis import RedisScripts

    settings: dict[str, object] = {
        "feature": "TestStore",
        "label": "test store",
        "logger": logger,
        "operation_timeout": 2.0,
        "owns_client": False,
        **options,
    }
    return RedisScripts(client, **settings)  # type: ignore[arg-type]


def test_importing_the_module_does_not_import_redis() -> None:
    code = "import fastapi_secure._redis, sys; print('redis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("timeout", [0, -1, "2", None])
def test_a_bad_operation_timeout_is_refused(timeout: object) -> None:
    import redis.asyncio

    with pytest.raises(ConfigurationError, match="operation_timeout"):
        _scripts(redis.asyncio.Redis(), operation_timeout=timeout)


@pytest.mark.redis
async def test_scripts_and_commands_run_on_real_redis(
    client: redis.asyncio.Redis, redis_prefix: str
) -> None:
    from fastapi_secure._redis import RedisScripts

    scripts = _scripts(client)
    assert isinstance(scripts, RedisScripts)
    echo = scripts.register("return {KEYS[1], ARGV[1]}")
    assert await scripts.run(echo, [f"{redis_prefix}k"], ["v"]) == [
        f"{redis_prefix}k".encode(),
        b"v",
    ]
    assert await scripts.call(scripts.client.set(f"{redis_prefix}x", b"1", nx=True)) is True
    assert await scripts.call(scripts.client.set(f"{redis_prefix}x", b"1", nx=True)) is None


@pytest.mark.redis
async def test_a_client_bug_fails_closed_without_its_text(
    client: redis.asyncio.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    scripts = _scripts(client)
    with pytest.raises(StoreUnavailableError) as caught:
        await scripts.call(_broken_client_call())
    assert caught.value.reason == "AttributeError"
    assert "secret-host" not in str(caught.value) + repr(caught.value) + caplog.text
    assert "test store client failed unexpectedly: AttributeError" in caplog.text


@pytest.mark.redis
async def test_a_client_bug_propagates_when_asked(client: redis.asyncio.Redis) -> None:
    scripts = _scripts(client, fail_closed_on_any_error=False)
    with pytest.raises(AttributeError):
        await scripts.call(_broken_client_call())


async def test_an_outage_is_store_unavailable_named_by_type(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import redis.asyncio

    unreachable = redis.asyncio.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    scripts = _scripts(unreachable, owns_client=True)
    try:
        with pytest.raises(StoreUnavailableError) as caught:
            await scripts.call(unreachable.get("k"))
        assert caught.value.reason == "ConnectionError"
        assert "127.0.0.1" not in str(caught.value)
        assert "test store unavailable: ConnectionError" in caplog.text
    finally:
        await scripts.aclose()


@pytest.mark.redis
async def test_the_first_call_goes_alone_and_a_cut_off_command_is_closed(
    client: redis.asyncio.Redis, redis_prefix: str
) -> None:
    scripts = _scripts(client, operation_timeout=0.2)
    first_started = anyio.Event()
    never = anyio.Event()

    async def hold_the_warm_up() -> None:
        first_started.set()
        await never.wait()

    outcomes: list[str] = []

    async def attempt(operation: Awaitable[object]) -> None:
        try:
            await scripts.call(operation)
        except StoreUnavailableError as exc:
            outcomes.append(exc.reason or "")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with anyio.create_task_group() as tg:
            tg.start_soon(attempt, hold_the_warm_up())
            await first_started.wait()
            # Queued behind the warm-up lock until the deadline: never awaited.
            tg.start_soon(attempt, scripts.client.get(f"{redis_prefix}k"))
        gc.collect()
    assert outcomes == ["TimeoutError", "TimeoutError"]
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]


@pytest.mark.redis
async def test_a_given_client_stays_open_an_owned_one_is_closed(redis_url: str) -> None:
    import redis.asyncio

    given = redis.asyncio.Redis.from_url(redis_url)
    await _scripts(given).aclose()
    assert await given.ping() is True
    await given.aclose()

    owned = redis.asyncio.Redis.from_url(redis_url)
    await owned.ping()
    connection = await owned.connection_pool.get_connection()  # type: ignore[no-untyped-call]
    await owned.connection_pool.release(connection)
    assert connection.is_connected
    await _scripts(owned, owns_client=True).aclose()
    assert not connection.is_connected


@pytest.mark.parametrize("store", ["mfa", "apikeys", "tokens", "dpop"])
@pytest.mark.parametrize("option", ["socket_timeout", "socket_connect_timeout"])
@pytest.mark.parametrize("value", [0, -1.0, "1"])
def test_every_store_refuses_a_bad_socket_timeout(store: str, option: str, value: object) -> None:
    from fastapi_secure.apikeys.stores.redis import RedisAPIKeyStore
    from fastapi_secure.dpop.replay import RedisDPoPReplayCache
    from fastapi_secure.mfa.stores.redis import RedisMFAStore
    from fastapi_secure.tokens.stores.redis import RedisTokenStore

    stores: dict[str, Any] = {
        "mfa": RedisMFAStore,
        "apikeys": RedisAPIKeyStore,
        "tokens": RedisTokenStore,
        "dpop": RedisDPoPReplayCache,
    }
    with pytest.raises(ConfigurationError, match=option):
        stores[store].from_url("redis://127.0.0.1:6379/0", **{option: value})


def test_a_cluster_url_makes_a_cluster_client_only_where_clusters_are_allowed() -> None:
    import redis.asyncio
    import redis.asyncio.cluster

    from fastapi_secure._redis import client_from_url

    url = "redis+cluster://127.0.0.1:7000/0"
    assert isinstance(client_from_url(url, feature="TestStore"), redis.asyncio.cluster.RedisCluster)
    plain = client_from_url("redis://127.0.0.1:6379/0", feature="TestStore", cluster=False)
    assert isinstance(plain, redis.asyncio.Redis)
    with pytest.raises(ValueError, match="scheme"):
        client_from_url(url, feature="TestStore", cluster=False)


def _redis_stores() -> dict[str, Any]:
    from fastapi_secure.accounts.redis import RedisActionTokenStore, RedisLockoutStore
    from fastapi_secure.apikeys.stores.redis import RedisAPIKeyStore
    from fastapi_secure.dpop.replay import RedisDPoPReplayCache
    from fastapi_secure.mfa.stores.redis import RedisMFAStore
    from fastapi_secure.tokens.stores.redis import RedisTokenStore

    return {
        "RedisMFAStore": RedisMFAStore,
        "RedisAPIKeyStore": RedisAPIKeyStore,
        "RedisTokenStore": RedisTokenStore,
        "RedisDPoPReplayCache": RedisDPoPReplayCache,
        "RedisActionTokenStore": RedisActionTokenStore,
        "RedisLockoutStore": RedisLockoutStore,
    }


_STORE_NAMES = [
    "RedisMFAStore",
    "RedisAPIKeyStore",
    "RedisTokenStore",
    "RedisDPoPReplayCache",
    "RedisActionTokenStore",
    "RedisLockoutStore",
]


@pytest.mark.parametrize("name", _STORE_NAMES)
def test_a_store_repr_names_its_prefix_never_the_url(name: str) -> None:
    store = _redis_stores()[name].from_url(
        "redis://:hunter2secret@127.0.0.1:1/0", prefix="fs-test:repr:"
    )
    assert repr(store) == f"{name}(prefix='fs-test:repr:')"
    assert "hunter2secret" not in repr(store)


@pytest.mark.parametrize(
    ("name", "feature"),
    [
        *((name, name) for name in _STORE_NAMES[:4]),
        ("RedisActionTokenStore", "Redis account stores"),
        ("RedisLockoutStore", "Redis account stores"),
    ],
)
def test_without_the_redis_extra_from_url_names_the_store(
    name: str, feature: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi_secure.errors import MissingDependencyError

    stores = _redis_stores()
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(MissingDependencyError) as caught:
        stores[name].from_url("redis://127.0.0.1:1/0")
    assert caught.value.feature == feature


@pytest.mark.parametrize("name", _STORE_NAMES)
def test_without_the_redis_extra_a_store_on_a_client_names_itself(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import redis.asyncio

    from fastapi_secure.errors import MissingDependencyError

    stores, client = _redis_stores(), redis.asyncio.Redis()
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(MissingDependencyError) as caught:
        stores[name](client)
    assert caught.value.feature == name


@pytest.mark.redis
@pytest.mark.parametrize("name", _STORE_NAMES)
async def test_a_store_closes_the_client_it_made_and_leaves_a_given_one_open(
    name: str, redis_url: str, redis_prefix: str
) -> None:
    import redis.asyncio

    store_class = _redis_stores()[name]
    given = redis.asyncio.Redis.from_url(redis_url)
    store = store_class(given, prefix=redis_prefix)
    assert store.client is given
    await store.aclose()
    assert await given.ping() is True
    await given.aclose()

    owned = store_class.from_url(redis_url, prefix=redis_prefix)
    assert isinstance(owned.client, redis.asyncio.Redis)
    assert await owned.client.ping() is True
    connection = await owned.client.connection_pool.get_connection()  # type: ignore[no-untyped-call]
    await owned.client.connection_pool.release(connection)
    assert connection.is_connected
    await owned.aclose()
    assert not connection.is_connected
