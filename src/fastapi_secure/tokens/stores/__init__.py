"""Token stores: the :class:`TokenStore` protocol and its backends, chosen by URI.

``RedisTokenStore`` is imported from :mod:`fastapi_secure.tokens.stores.redis`
(or made by :func:`token_store_from_url`) so that importing this package never
imports ``redis``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from fastapi_secure.errors import ConfigurationError
from fastapi_secure.tokens.stores.base import TokenState, TokenStore, new_family_id
from fastapi_secure.tokens.stores.memory import MemoryTokenStore

__all__ = [
    "TOKEN_STORE_SCHEMES",
    "MemoryTokenStore",
    "TokenState",
    "TokenStore",
    "new_family_id",
    "token_store_from_url",
]

TOKEN_STORE_SCHEMES = (
    "memory",
    "redis",
    "rediss",
    "unix",
    "redis+cluster",
    "rediss+cluster",
    "redis+sentinel",
)
"""The URI schemes :func:`token_store_from_url` knows, the same as the rate limiter's."""


def token_store_from_url(url: str, **options: Any) -> TokenStore:
    """A token store for ``url``, as the rate limiter takes its storage:

    - ``memory://``: :class:`MemoryTokenStore` (one process);
    - ``redis://``, ``rediss://``, ``unix://``, ``redis+cluster://`` (any one
      node): :meth:`RedisTokenStore.from_url
      <fastapi_secure.tokens.stores.redis.RedisTokenStore.from_url>`;
    - ``redis+sentinel://[:password@]host:port[,host:port...]/service[/db]``:
      the master of ``service`` as the Sentinels name it, found again after a
      failover.

    ``options`` go to the backend's constructor (``prefix=``, timeouts,
    ``clock=`` for memory). Another scheme is a :class:`ConfigurationError`.
    """
    scheme, sep, _ = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in TOKEN_STORE_SCHEMES:
        known = ", ".join(f"{name}://" for name in TOKEN_STORE_SCHEMES)
        raise ConfigurationError(f"token store URL must start with one of {known}")
    if scheme == "memory":
        return MemoryTokenStore(**options)
    from fastapi_secure.tokens.stores.redis import RedisTokenStore

    if scheme == "redis+sentinel":
        return _sentinel_store(url, **options)
    return RedisTokenStore.from_url(url, **options)


def _sentinel_store(url: str, **options: Any) -> TokenStore:
    from fastapi_secure._optional import require

    require("redis.asyncio", extra="redis", feature="RedisTokenStore")
    import redis.asyncio.sentinel

    from fastapi_secure.tokens.stores.redis import RedisTokenStore

    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    if not segments:
        raise ConfigurationError("redis+sentinel:// URL needs the service name as its path")
    service = unquote(segments[0])
    db = int(segments[1]) if len(segments) > 1 and segments[1].isdigit() else 0
    hosts: list[tuple[str, int]] = []
    for node in parts.netloc.rpartition("@")[2].split(","):
        host, _, port = node.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigurationError("redis+sentinel:// URL needs host:port for each Sentinel")
        hosts.append((host.strip("[]"), int(port)))
    password = unquote(parts.password) if parts.password else None
    timeout = float(options.pop("socket_timeout", 1.0))
    connect_timeout = float(options.pop("socket_connect_timeout", 1.0))
    sentinel = redis.asyncio.sentinel.Sentinel(  # type: ignore[no-untyped-call]
        hosts,
        socket_timeout=timeout,
        socket_connect_timeout=connect_timeout,
    )
    client = sentinel.master_for(
        service,
        db=db,
        password=password,
        socket_timeout=timeout,
        socket_connect_timeout=connect_timeout,
    )
    return RedisTokenStore(client, owns_client=True, **options)
