"""Token stores: the :class:`TokenStore` protocol and its backends.

``RedisTokenStore`` is imported from :mod:`fastapi_secure.tokens.stores.redis`
so that importing this package never imports ``redis``.
"""

from fastapi_secure.tokens.stores.base import TokenState, TokenStore, new_family_id
from fastapi_secure.tokens.stores.memory import MemoryTokenStore

__all__ = ["MemoryTokenStore", "TokenState", "TokenStore", "new_family_id"]
