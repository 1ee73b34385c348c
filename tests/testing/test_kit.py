"""fastapi_secure.testing: the token factory, the limiter reset and the TOTP helper."""

# No `from __future__ import annotations`: FastAPI resolves the endpoints' annotations.

import sys
from collections.abc import AsyncIterator
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from limits.aio.storage import MemoryStorage

from fastapi_secure import (
    BearerAuth,
    CookieAuth,
    KeySet,
    MemoryTokenStore,
    MissingDependencyError,
    RateLimiter,
    RoleChecker,
    TokenIssuer,
    require_fresh,
)
from fastapi_secure.testing import (
    FakeClock,
    TokenFactory,
    reset_limiter,
    reset_limiter_sync,
    totp_code,
)
from fastapi_secure.tokens.claims import AccessClaims, RefreshClaims
from fastapi_secure.tokens.issuer import Grant, keep_login_grant
from fastapi_secure.tokens.stores.base import TokenStore

ORIGIN = "https://app.example.test"


def make_issuer(store: TokenStore | None = None) -> TokenIssuer:
    return TokenIssuer(
        KeySet.generate("EdDSA"),
        store or MemoryTokenStore(),
        issuer="https://issuer.example.test",
        audience="https://api.example.test",
        grant_loader=keep_login_grant,
    )


def make_app(issuer: TokenIssuer) -> tuple[FastAPI, CookieAuth]:
    bearer = BearerAuth(issuer)
    cookie = CookieAuth(
        issuer,
        csrf_secret="csrf-secret-of-at-least-thirty-two-bytes",
        allowed_origins=[ORIGIN],
    )
    app = FastAPI()

    @app.get("/me")
    async def me(claims: Annotated[AccessClaims, Depends(bearer)]) -> dict[str, object]:
        return {"sub": claims.sub, "roles": sorted(claims.roles), "team": claims.model_extra}

    @app.get("/admin", dependencies=[Depends(RoleChecker(["admin"], auth=bearer))])
    async def admin() -> dict[str, str]:
        return {}

    @app.post("/sensitive", dependencies=[Depends(require_fresh(bearer))])
    async def sensitive() -> dict[str, str]:
        return {}

    @app.post("/cookie")
    async def cookie_route(claims: Annotated[AccessClaims, Depends(cookie)]) -> dict[str, str]:
        return {"sub": claims.sub}

    return app, cookie


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://testserver")


# --- TokenFactory -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_tokens_for_any_claims_through_the_apps_issuer() -> None:
    issuer = make_issuer()
    app, _ = make_app(issuer)
    tokens = TokenFactory(issuer, subject="alice")
    async with client(app) as http:
        assert (await http.get("/me")).status_code == 401
        me = await http.get("/me", headers=await tokens.headers(claims={"team": "blue"}))
        assert me.json()["sub"] == "alice"
        assert (await http.get("/admin", headers=await tokens.headers())).status_code == 403
        admin = await tokens.headers("root", roles=["admin"])
        assert (await http.get("/admin", headers=admin)).status_code == 200
        stale = await tokens.headers(fresh=False)
        assert (await http.post("/sensitive", headers=stale)).status_code == 401
        assert (await http.post("/sensitive", headers=admin)).status_code == 200


@pytest.mark.anyio
async def test_factory_tokens_are_real_they_can_be_revoked() -> None:
    issuer = make_issuer()
    app, _ = make_app(issuer)
    tokens = TokenFactory(issuer)
    headers = await tokens.headers()
    await issuer.revoke_subject("user-1")
    async with client(app) as http:
        assert (await http.get("/me", headers=headers)).status_code == 401
    pair = await tokens.pair()
    assert (await issuer.rotate(pair.refresh_token, grant_loader=_same)).access_token


async def _same(claims: RefreshClaims) -> Grant:
    return Grant()


@pytest.mark.anyio
async def test_cookie_credentials_pass_csrf_and_origin() -> None:
    issuer = make_issuer()
    app, cookie = make_app(issuer)
    tokens = TokenFactory(issuer)
    credentials = await tokens.cookie_credentials(cookie, "carol")
    async with client(app) as http:
        assert (await http.post("/cookie", headers=dict(credentials.headers))).json() == {
            "sub": "carol"
        }
        forged = {**credentials.headers, "X-CSRF-Token": "nonce.mac"}
        assert (await http.post("/cookie", headers=forged)).status_code == 403


def test_sync_twins_in_a_testclient() -> None:
    issuer = make_issuer()
    app, cookie = make_app(issuer)
    tokens = TokenFactory(issuer)
    with TestClient(app, base_url="https://testserver") as http:
        assert http.get("/me", headers=tokens.headers_sync("dave")).json()["sub"] == "dave"
        assert tokens.access_token_sync().count(".") == 2
        assert tokens.pair_sync().token_type.lower() == "bearer"
        credentials = tokens.cookie_credentials_sync(cookie)
        assert http.post("/cookie", headers=dict(credentials.headers)).status_code == 200
    assert repr(tokens) == "TokenFactory(subject='user-1')"


@pytest.mark.anyio
async def test_sync_twins_refuse_to_run_inside_an_event_loop() -> None:
    tokens = TokenFactory(make_issuer())
    with pytest.raises(RuntimeError, match="await the async method"):
        tokens.headers_sync()


def test_factory_refuses_something_that_is_not_an_issuer() -> None:
    with pytest.raises(TypeError, match="TokenIssuer"):
        TokenFactory(object())  # type: ignore[arg-type]


@pytest.mark.redis
def test_sync_twins_through_the_apps_portal_on_redis(redis_url: str, redis_prefix: str) -> None:
    from fastapi_secure.tokens.stores.redis import RedisTokenStore

    store = RedisTokenStore.from_url(redis_url, prefix=redis_prefix)
    issuer = make_issuer(store)
    app, _ = make_app(issuer)
    with TestClient(app, base_url="https://testserver") as http:
        assert http.portal is not None
        tokens = TokenFactory(issuer, portal=http.portal)
        headers = tokens.headers_sync("erin")
        assert http.get("/me", headers=headers).json()["sub"] == "erin"
        http.portal.call(issuer.revoke_subject, "erin")
        assert http.get("/me", headers=headers).status_code == 401
        http.portal.call(store.aclose)


# --- reset_limiter ------------------------------------------------------------------------


def limited_app(limiter: RateLimiter) -> FastAPI:
    app = FastAPI()

    @app.get("/limited", dependencies=[Depends(limiter.limit("2/hour"))])
    async def limited() -> dict[str, str]:
        return {}

    return app


async def statuses(app: FastAPI, count: int) -> list[int]:
    async with client(app) as http:
        return [(await http.get("/limited")).status_code for _ in range(count)]


@pytest.mark.anyio
@pytest.mark.parametrize("strategy", ["fixed-window", "moving-window", "sliding-window-counter"])
async def test_reset_limiter_ends_every_window(strategy: str) -> None:
    limiter = RateLimiter("memory://", strategy=strategy)  # type: ignore[arg-type]
    app = limited_app(limiter)
    assert await statuses(app, 3) == [200, 200, 429]
    await reset_limiter(limiter)
    assert await statuses(app, 3) == [200, 200, 429]


@pytest.fixture
async def redis_limiter(redis_url: str, redis_prefix: str) -> AsyncIterator[RateLimiter]:
    limiter = RateLimiter(redis_url, key_prefix=redis_prefix.replace(":", "-").rstrip("-"))
    yield limiter
    await limiter.aclose()


@pytest.mark.anyio
@pytest.mark.redis
async def test_reset_limiter_on_redis_touches_only_its_keys(
    redis_limiter: RateLimiter, redis_url: str, redis_prefix: str
) -> None:
    import redis.asyncio

    other = redis.asyncio.Redis.from_url(redis_url)
    other_key = f"{redis_prefix}someone-else"
    await other.set(other_key, "kept")
    try:
        app = limited_app(redis_limiter)
        assert await statuses(app, 3) == [200, 200, 429]
        await reset_limiter(redis_limiter)
        assert await statuses(app, 3) == [200, 200, 429]
        assert await other.get(other_key) == b"kept"
    finally:
        await other.aclose()


class FlakyStorage(MemoryStorage):
    """A memory storage that fails while ``down`` is set."""

    down = False

    async def acquire_sliding_window_entry(
        self, key: str, limit: int, expiry: int, amount: int = 1
    ) -> bool:
        if self.down:
            raise ConnectionError("storage down")
        return await super().acquire_sliding_window_entry(key, limit, expiry, amount)


def test_reset_limiter_also_forgets_an_outage_backoff() -> None:
    storage = FlakyStorage()
    limiter = RateLimiter(storage, storage_backoff=3600)
    app = limited_app(limiter)
    with TestClient(app) as http:
        storage.down = True
        assert http.get("/limited").status_code == 503
        storage.down = False
        # Still backing off: the storage is not asked again for an hour.
        assert http.get("/limited").status_code == 503
        reset_limiter_sync(limiter, http.portal)
        assert [http.get("/limited").status_code for _ in range(3)] == [200, 200, 429]


# --- totp_code ------------------------------------------------------------------------------

# RFC 6238 appendix B, SHA-1: the secret is the ASCII "12345678901234567890".
RFC6238_SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"


@pytest.mark.parametrize(
    ("moment", "code"),
    [(59, "94287082"), (1111111109, "07081804"), (1234567890, "89005924")],
)
def test_totp_code_matches_rfc_6238(moment: int, code: str) -> None:
    pytest.importorskip("pyotp")
    assert totp_code(RFC6238_SECRET, at=moment, digits=8) == code


def test_totp_code_follows_a_clock(fake_clock: FakeClock) -> None:
    pyotp = pytest.importorskip("pyotp")
    fake_clock.set(1111111109)
    assert totp_code(RFC6238_SECRET, clock=fake_clock, digits=8) == "07081804"
    now = totp_code(RFC6238_SECRET)
    assert pyotp.TOTP(RFC6238_SECRET).verify(now, valid_window=1)


def test_totp_code_without_pyotp_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyotp", None)
    with pytest.raises(MissingDependencyError, match=r"fastapi-secure\[mfa\]"):
        totp_code(RFC6238_SECRET)
