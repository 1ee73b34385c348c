"""Shared builders for the auth and RBAC tests: a real TokenIssuer on a memory store."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpx
from fastapi import FastAPI

from fastapi_secure.testing import FakeClock
from fastapi_secure.tokens.claims import (
    AccessClaims,
    RefreshClaims,
)
from fastapi_secure.tokens.issuer import (
    Grant,
    TokenIssuer,
)
from fastapi_secure.tokens.keys import KeySet
from fastapi_secure.tokens.stores.memory import MemoryTokenStore

SECRET = "test-secret-with-at-least-32-bytes-of-entropy!"
ISSUER = "https://issuer.example.test"
AUDIENCE = "https://api.example.test"
ACCESS_TTL = 900
LEEWAY = 30


async def same_grant(claims: RefreshClaims) -> Grant:
    """Grant loader of the tests: every user stays active with no roles."""
    return Grant()


def make_issuer(clock: FakeClock, **overrides: Any) -> TokenIssuer:
    keys = KeySet.from_secret(SECRET, kid="k1")
    options: dict[str, Any] = {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "access_ttl": ACCESS_TTL,
        "refresh_ttl": 7 * 24 * 3600,
        "leeway": LEEWAY,
        "clock": clock,
        "grant_loader": same_grant,
    }
    options.update(overrides)
    store = options.pop("store", None) or MemoryTokenStore(clock=clock)
    return TokenIssuer(keys, store, **options)


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://testserver")


async def access_token(
    issuer: TokenIssuer,
    subject: str = "alice",
    *,
    roles: Iterable[str] = (),
    scopes: Iterable[str] = (),
    fresh: bool = True,
) -> str:
    pair = await issuer.issue(subject, roles=tuple(roles), scopes=tuple(scopes), fresh=fresh)
    return pair.access_token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def subject_of(claims: AccessClaims | None) -> str | None:
    return None if claims is None else claims.sub
