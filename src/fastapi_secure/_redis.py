"""What the Redis-backed stores share: client settings and guarded script calls.

Importing this module does not import redis (the core packages import their
Redis stores' modules); redis is imported when a function or class here is used.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import anyio

from fastapi_secure._optional import require
from fastapi_secure.errors import ConfigurationError, StoreUnavailableError

if TYPE_CHECKING:
    import redis.asyncio
    import redis.asyncio.cluster
    from redis.asyncio.retry import Retry
    from redis.commands.core import AsyncScript

    RedisClient = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster

T = TypeVar("T")
StoreT = TypeVar("StoreT", bound="RedisStore")


@contextlib.asynccontextmanager
async def _fail_after(seconds: float) -> AsyncIterator[None]:
    with anyio.fail_after(seconds):
        yield


def deadline(seconds: float) -> contextlib.AbstractAsyncContextManager[Any]:
    """Raise TimeoutError in the block after ``seconds``: for calls on a
    ``redis.asyncio`` client, which only runs on asyncio, so asyncio's own
    deadline (half the cost of anyio's, per request) is the one to use; anyio's
    on Python 3.10, which has no ``asyncio.timeout``."""
    timeout = getattr(asyncio, "timeout", None)
    if timeout is None:  # pragma: no cover - Python 3.10
        return _fail_after(seconds)
    manager: contextlib.AbstractAsyncContextManager[Any] = timeout(seconds)
    return manager


READ_AHEAD_SCOPE_KEY = "fastapi_secure.read_ahead"
"""Where a request's ASGI scope keeps the answers of :class:`PiggybackRead` reads
(a dict from each read's ``key`` to its parsed answer)."""


@dataclass(frozen=True)
class PiggybackRead:
    """A read-only Lua script a store would run, offered to ride in another call.

    The rate limiter runs a request's rates in one script; a token store's
    revocation check on the same Redis can travel in that same call instead
    of its own round trip. ``source`` is a whole script that reads its own
    ``KEYS`` and ``ARGV`` (``keys``, ``args``) and writes nothing; ``parse``
    turns its raw reply into the answer the store would have given (None when
    the reply is not one), kept under ``key`` for the store to find. A read
    that fails, or whose reply does not parse, is simply not delivered: the
    store then asks Redis itself, with its own failure policy.
    """

    client: Any
    source: str
    keys: tuple[str, ...]
    args: tuple[Any, ...]
    key: Hashable
    parse: Callable[[Any], Any]


def _server_identity(client: Any) -> tuple[Any, ...] | None:
    """Where ``client`` connects, when its pool names one server; else None.

    A Sentinel pool finds its server at run time (its arguments name no host:
    two services would look alike), a cluster client has no one server, and
    anything else is not known well enough to prove it is the same.
    """
    from redis.asyncio.connection import BlockingConnectionPool, ConnectionPool, SSLConnection

    pool = getattr(client, "connection_pool", None)
    if type(pool) not in (ConnectionPool, BlockingConnectionPool):
        return None
    kwargs = getattr(pool, "connection_kwargs", None)
    if not isinstance(kwargs, dict) or not (kwargs.get("host") or kwargs.get("path")):
        return None

    return (
        issubclass(pool.connection_class, SSLConnection),  # type: ignore[union-attr]
        *(kwargs.get(name) for name in ("host", "port", "path", "db", "username", "password")),
        id(kwargs.get("credential_provider")) if kwargs.get("credential_provider") else None,
    )


def same_server(first: Any, second: Any) -> bool:
    """Whether two ``redis.asyncio.Redis`` clients talk to the same server,
    database and user (cluster clients never are: their keys may live apart)."""
    if first is second:
        return True
    one, other = _server_identity(first), _server_identity(second)
    return one is not None and one == other


def stale_connection_retry() -> Retry:
    """Retry a command once, at once, on a fresh connection when its connection broke.

    After Redis restarts, every pooled connection is dead; without a retry each
    one would fail one request (a 503) against a healthy server. Timeouts are
    not retried: that would multiply the wait on a hung server, which the
    callers' own deadline then turns into their failure policy.
    """
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError

    return Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))


def client_from_url(
    url: str,
    *,
    feature: str,
    socket_timeout: float = 1.0,
    socket_connect_timeout: float = 1.0,
    cluster: bool = True,
    **client_options: Any,
) -> RedisClient:
    """A ``redis.asyncio`` client for ``redis://``, ``rediss://``, ``unix://`` or, with
    ``cluster``, ``redis+cluster://`` / ``rediss+cluster://`` (any one node), timeouts set.

    ``client_options`` go to the client as they are (``retry`` included: each
    store chooses its own).
    """
    require("redis.asyncio", extra="redis", feature=feature)
    import redis.asyncio
    import redis.asyncio.cluster

    for name, value in (
        ("socket_timeout", socket_timeout),
        ("socket_connect_timeout", socket_connect_timeout),
    ):
        if not (isinstance(value, (int, float)) and value > 0):
            raise ConfigurationError(f"{name} must be a positive number of seconds")
    options: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": socket_connect_timeout,
        **client_options,
    }
    scheme, sep, rest = url.partition("://")
    if cluster and sep and scheme in {"redis+cluster", "rediss+cluster"}:
        return redis.asyncio.cluster.RedisCluster.from_url(
            f"{scheme.removesuffix('+cluster')}://{rest}", **options
        )
    return redis.asyncio.Redis.from_url(url, **options)


class RedisScripts:
    """One store's client, its deadline and its failure mapping.

    Every call runs under ``operation_timeout`` (on top of the client's socket
    timeouts, so even a client set up without them cannot hang a request), and
    any failure becomes :class:`~fastapi_secure.errors.StoreUnavailableError`
    whose ``reason`` is the exception's type name: never its text, which may
    hold a host or a key. Each store holds one and keeps its own reply checks.
    """

    def __init__(
        self,
        client: RedisClient,
        *,
        feature: str,
        label: str,
        logger: logging.Logger,
        operation_timeout: float,
        owns_client: bool,
        warm_up: bool = True,
        fail_closed_on_any_error: bool = True,
    ) -> None:
        """``feature`` names the store in the missing-extra error, ``label`` in logs.

        ``warm_up`` serializes the first call (cluster clients need it); with
        ``fail_closed_on_any_error`` an unexpected exception from the client
        is an outage too, not a 500.
        """
        require("redis.asyncio", extra="redis", feature=feature)
        import redis.exceptions

        if not (isinstance(operation_timeout, (int, float)) and operation_timeout > 0):
            raise ConfigurationError("operation_timeout must be a positive number of seconds")
        self.client = client
        self._label = label
        self._logger = logger
        self._timeout = float(operation_timeout)
        self._owns_client = owns_client
        self._ready = not warm_up
        self._warmup_lock = anyio.Lock()
        self._fail_closed_on_any_error = fail_closed_on_any_error
        self._failures: tuple[type[BaseException], ...] = (
            redis.exceptions.RedisError,
            # Not a RedisError: what the cluster client raises when no node answers.
            redis.exceptions.RedisClusterException,
            OSError,
            TimeoutError,
        )

    def register(self, source: str) -> AsyncScript:
        """Register a Lua script (run by digest, loaded again when Redis lost it)."""
        return self.client.register_script(source)

    async def run(self, script: AsyncScript, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run ``script`` on ``keys`` and ``args``; its raw reply."""
        return await self._guard(lambda: script(keys=keys, args=args))

    async def call(self, operation: Awaitable[T]) -> T:
        """Await one client command, e.g. ``call(client.get(name))``."""
        try:
            return await self._guard(lambda: operation)
        finally:
            # Cut off (the deadline passed waiting for the warm-up lock), the
            # command was never awaited: close it rather than leave a warning.
            if inspect.iscoroutine(operation):
                operation.close()

    async def aclose(self) -> None:
        """Close the client if the store created it (its ``from_url``)."""
        if self._owns_client:
            await self.client.aclose()

    async def _guard(self, operation: Callable[[], Awaitable[T]]) -> T:
        try:
            async with deadline(self._timeout):
                if self._ready:
                    return await operation()
                # redis-py's async cluster client discovers its slots on first
                # use, and concurrent first uses race inside it (AttributeError
                # on a closed writer): the first call goes alone.
                async with self._warmup_lock:
                    result = await operation()
                    self._ready = True
                    return result
        except self._failures as exc:
            self._logger.warning("%s unavailable: %s", self._label, type(exc).__name__)
            raise StoreUnavailableError(reason=type(exc).__name__) from None
        except Exception as exc:
            if not self._fail_closed_on_any_error:
                raise
            # A client's own bug must fail closed as an outage, never as a 500.
            self._logger.error("%s client failed unexpectedly: %s", self._label, type(exc).__name__)
            raise StoreUnavailableError(reason=type(exc).__name__) from None


class RedisStore:
    """What every Redis-backed store shares around its :class:`RedisScripts`.

    A store names itself in ``_feature`` (the missing-extra error), ``_label``
    (logs) and ``_logger``, builds ``_redis`` and ``_prefix`` through this
    ``__init__`` (``script_options`` go to :class:`RedisScripts`) and writes
    its ``from_url`` (its own signature and docstring) on :meth:`_connect`.
    """

    _feature: ClassVar[str]
    _label: ClassVar[str]
    _logger: ClassVar[logging.Logger]

    def __init__(
        self,
        client: RedisClient,
        *,
        prefix: str,
        operation_timeout: float,
        owns_client: bool,
        **script_options: Any,
    ) -> None:
        self._redis = RedisScripts(
            client,
            feature=self._feature,
            label=self._label,
            logger=self._logger,
            operation_timeout=operation_timeout,
            owns_client=owns_client,
            **script_options,
        )
        self._prefix = prefix

    @classmethod
    def _connect(
        cls: type[StoreT],
        url: str,
        *,
        prefix: Any,
        operation_timeout: float,
        **client_options: Any,
    ) -> StoreT:
        """A store owning a new client on ``url`` (``client_options`` go to
        :func:`client_from_url`): the body of each store's ``from_url``."""
        client = client_from_url(url, feature=cls._feature, **client_options)
        return cls(client, prefix=prefix, operation_timeout=operation_timeout, owns_client=True)

    def __repr__(self) -> str:
        # Never the URL: it may hold a password.
        return f"{type(self).__name__}(prefix={self._prefix!r})"

    @property
    def client(self) -> RedisClient:
        """The underlying ``redis.asyncio`` client."""
        return self._redis.client

    async def aclose(self) -> None:
        """Close the client if this store created it (:meth:`from_url`)."""
        await self._redis.aclose()
