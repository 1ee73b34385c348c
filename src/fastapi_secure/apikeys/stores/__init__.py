"""API key stores: the :class:`APIKeyStore` protocol and its backends, chosen by URL.

``RedisAPIKeyStore`` (:mod:`fastapi_secure.apikeys.stores.redis`) and
``SQLAlchemyAPIKeyStore`` (:mod:`fastapi_secure.apikeys.stores.sqlalchemy`) are
imported from their modules (or made by :func:`api_key_store_from_url`), so
that importing this package never imports ``redis`` or ``sqlalchemy``.
"""

from __future__ import annotations

from typing import Any

from fastapi_secure.apikeys.stores.base import APIKey, APIKeyStore, StoredAPIKey
from fastapi_secure.apikeys.stores.memory import MemoryAPIKeyStore
from fastapi_secure.errors import ConfigurationError

__all__ = [
    "API_KEY_STORE_SCHEMES",
    "APIKey",
    "APIKeyStore",
    "MemoryAPIKeyStore",
    "StoredAPIKey",
    "api_key_store_from_url",
]

_REDIS_SCHEMES = ("redis", "rediss", "unix")
_SQL_SCHEMES = ("sqlite", "sqlite+aiosqlite", "postgres", "postgresql", "postgresql+asyncpg")
API_KEY_STORE_SCHEMES = ("memory", *_REDIS_SCHEMES, *_SQL_SCHEMES)
"""The URL schemes :func:`api_key_store_from_url` knows."""


def api_key_store_from_url(url: str, **options: Any) -> APIKeyStore:
    """An API key store for ``url``:

    - ``memory://``: :class:`MemoryAPIKeyStore` (one process);
    - ``redis://``, ``rediss://``, ``unix://``: :meth:`RedisAPIKeyStore.from_url
      <fastapi_secure.apikeys.stores.redis.RedisAPIKeyStore.from_url>`;
    - ``sqlite+aiosqlite://``, ``postgresql://`` and the other URLs of
      :class:`fastapi_secure.db.Database`: :meth:`SQLAlchemyAPIKeyStore.from_url
      <fastapi_secure.apikeys.stores.sqlalchemy.SQLAlchemyAPIKeyStore.from_url>`
      (create its table with ``create_table()`` or your migrations).

    ``options`` go to the backend (``prefix=``, timeouts, pool sizes). Redis
    Cluster is refused: a key's hash and its subject's index would live in
    different slots. For a Sentinel-managed master, give ``RedisAPIKeyStore``
    the client of ``Sentinel.master_for(...)``.
    """
    scheme, sep, _ = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in API_KEY_STORE_SCHEMES:
        known = ", ".join(f"{name}://" for name in API_KEY_STORE_SCHEMES)
        raise ConfigurationError(f"API key store URL must start with one of {known}")
    if scheme == "memory":
        if options:
            raise ConfigurationError("memory:// takes no options")
        return MemoryAPIKeyStore()
    if scheme in _REDIS_SCHEMES:
        from fastapi_secure.apikeys.stores.redis import RedisAPIKeyStore

        return RedisAPIKeyStore.from_url(url, **options)
    from fastapi_secure.apikeys.stores.sqlalchemy import SQLAlchemyAPIKeyStore

    return SQLAlchemyAPIKeyStore.from_url(url, **options)
