"""Tokens: keys and JWS verification, claims, issuing, rotation and revocation."""

from __future__ import annotations

from fastapi_secure.tokens.claims import AccessClaims, RefreshClaims, TokenPair
from fastapi_secure.tokens.issuer import Grant, GrantLoader, TokenIssuer
from fastapi_secure.tokens.keys import Key, KeySet, VerifiedJWS
from fastapi_secure.tokens.stores.base import TokenState, TokenStore
from fastapi_secure.tokens.stores.memory import MemoryTokenStore
from fastapi_secure.tokens.stores.redis import RedisTokenStore

__all__ = [
    "AccessClaims",
    "Grant",
    "GrantLoader",
    "Key",
    "KeySet",
    "MemoryTokenStore",
    "RedisTokenStore",
    "RefreshClaims",
    "TokenIssuer",
    "TokenPair",
    "TokenState",
    "TokenStore",
    "VerifiedJWS",
]
