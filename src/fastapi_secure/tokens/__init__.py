"""Tokens: keys and JWS verification, claims, issuing, rotation and revocation."""

from __future__ import annotations

from fastapi_secure.tokens.jwks import jwks_router
from fastapi_secure.tokens.keys import Key, KeySet, VerifiedJWS

__all__ = [
    "Key",
    "KeySet",
    "VerifiedJWS",
    "jwks_router",
]
