"""``headers_on_errors=False``: a plain limit dependency, headers from the middleware.

FastAPI spends about a bare route's cost on each ``yield`` dependency; the limit
needs the ``yield`` only to put its headers on errors raised after it.
"""

from __future__ import annotations

import inspect

import httpx
import pytest
from fastapi import Depends, FastAPI, HTTPException

from fastapi_secure.ratelimit import RateLimiter, RateLimitHeadersMiddleware, by_subject
from fastapi_secure.tokens.claims import AccessClaims
from tests.support.ratelimit import freeze_memory_windows

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def _windows_frozen_mid_way(monkeypatch: pytest.MonkeyPatch) -> None:
    """Exact counts on the memory storage (see ``freeze_memory_windows``)."""
    freeze_memory_windows(monkeypatch)


def app_with(limiter: RateLimiter, *, middleware: bool) -> FastAPI:
    app = FastAPI()
    if middleware:
        app.add_middleware(RateLimitHeadersMiddleware)

    @app.get("/missing", dependencies=[Depends(limiter.limit("2/minute", name="t"))])
    async def missing() -> None:
        raise HTTPException(404)

    @app.get("/ok", dependencies=[Depends(limiter.limit("2/minute", name="t"))])
    async def ok() -> dict[str, bool]:
        return {"ok": True}

    return app


async def get(app: FastAPI, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.5", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        return await http.get(path)


def test_the_dependency_is_plain_without_error_headers_or_without_headers() -> None:
    assert inspect.isasyncgenfunction(RateLimiter().limit("1/second"))
    assert not inspect.iscoroutinefunction(RateLimiter().limit("1/second"))
    for limiter in (RateLimiter(headers_on_errors=False), RateLimiter(headers=False)):
        assert inspect.iscoroutinefunction(limiter.limit("1/second"))
        auth_key = by_subject(lambda: AccessClaims)
        assert inspect.iscoroutinefunction(limiter.limit("1/second", key=auth_key))


async def test_a_plain_limit_still_counts_and_refuses() -> None:
    app = app_with(RateLimiter(headers_on_errors=False), middleware=False)
    answers = [await get(app, "/ok") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[0].headers["RateLimit"].startswith('"t";r=1;')
    assert answers[2].headers["Retry-After"]


async def test_an_error_after_a_plain_limit_has_headers_only_with_the_middleware() -> None:
    bare = await get(app_with(RateLimiter(headers_on_errors=False), middleware=False), "/missing")
    assert bare.status_code == 404
    assert "RateLimit" not in bare.headers
    covered = await get(app_with(RateLimiter(headers_on_errors=False), middleware=True), "/missing")
    assert covered.status_code == 404
    assert covered.headers["RateLimit"].startswith('"t";r=1;')
    # The default keeps putting them on errors by itself.
    default = await get(app_with(RateLimiter(), middleware=False), "/missing")
    assert default.headers["RateLimit"].startswith('"t";r=1;')


async def test_a_plain_limit_keyed_by_a_dependency_counts_per_key() -> None:
    limiter = RateLimiter(headers_on_errors=False)
    app = FastAPI()

    async def who() -> str:
        return "alice"

    @app.get("/", dependencies=[Depends(limiter.limit("1/minute", key=lambda r: who()))])
    async def index() -> dict[str, bool]:
        return {"ok": True}

    assert [(await get(app, "/")).status_code for _ in range(2)] == [200, 429]
