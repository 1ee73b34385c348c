"""API key stores: the :class:`APIKeyStore` protocol and its backends.

``RedisAPIKeyStore`` (:mod:`fastapi_secure.apikeys.stores.redis`) and
``SQLAlchemyAPIKeyStore`` (:mod:`fastapi_secure.apikeys.stores.sqlalchemy`) are
imported from their modules, so that importing this package never imports
``redis`` or ``sqlalchemy``.
"""

from fastapi_secure.apikeys.stores.base import APIKey, APIKeyStore, StoredAPIKey
from fastapi_secure.apikeys.stores.memory import MemoryAPIKeyStore

__all__ = ["APIKey", "APIKeyStore", "MemoryAPIKeyStore", "StoredAPIKey"]
