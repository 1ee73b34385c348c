"""A rate limit and a bearer's revocation check on one Redis: one round trip per request.

The limiter runs the token store's revocation read in the script that counts
the request (``PiggybackRead``); the bearer then verifies the token and takes
the answer read ahead instead of asking Redis again. These tests count the
writes on real connections and attack the shortcut: a token revoked between
two requests, a forged token naming a valid session, a failing read, another
Redis, a memory store.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio
from fastapi import Depends, FastAPI
from hypothesis import given
from hypothesis import strategies as st

from fastapi_secure._redis import READ_AHEAD_SCOPE_KEY, same_server
from fastapi_secure.auth.bearer import BearerAuth
from fastapi_secure.auth.guards import RoleChecker
from fastapi_secure.ratelimit import RateLimiter
from fastapi_secure.tokens.claims import AccessClaims
from fastapi_secure.tokens.issuer import TokenIssuer, _unverified_ids, keep_login_grant
from fastapi_secure.tokens.keys import KeySet
from fastapi_secure.tokens.stores.memory import MemoryTokenStore
from fastapi_secure.tokens.stores.redis import RedisTokenStore

SECRET = "read-ahead-test-secret-with-32-bytes-or-more"


class CountingConnection(redis.asyncio.Connection):
    """A real connection that counts the writes it sends (one per round trip)."""

    writes = 0

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        type(self).writes += 1
        await super().send_packed_command(command, check_health)


def issuer_on(store: Any, secret: str = SECRET) -> TokenIssuer:
    return TokenIssuer(
        KeySet.from_secret(secret, kid="k1"),
        store,
        issuer="https://issuer.example.test",
        audience="https://api.example.test",
        grant_loader=keep_login_grant,
    )


def stack(limiter: RateLimiter, issuer: TokenIssuer, rates: str = "100/minute") -> FastAPI:
    """The benchmark's full stack: a limit, then bearer + role check."""
    bearer = BearerAuth(issuer)
    users = RoleChecker(["user"], auth=bearer)
    app = FastAPI()

    @app.get("/", dependencies=[Depends(limiter.limit(rates, name="t"))])
    async def index(claims: AccessClaims = Depends(users)) -> dict[str, Any]:  # noqa: B008
        return {"sub": claims.sub}

    return app


def client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 1))
    return httpx.AsyncClient(transport=transport, base_url="http://t")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def counted(redis_url: str, redis_prefix: str) -> AsyncIterator[tuple[RateLimiter, Any]]:
    """A limiter and a token store on the same Redis, both on counting connections."""
    limiter = RateLimiter(
        redis_url,
        key_prefix=redis_prefix.rstrip(":"),
        storage_options={"connection_class": CountingConnection},
    )
    store = RedisTokenStore.from_url(
        redis_url, prefix=f"{redis_prefix}tokens:", connection_class=CountingConnection
    )
    try:
        yield limiter, store
    finally:
        await limiter.aclose()
        await store.aclose()


pytestmark = pytest.mark.anyio


@pytest.mark.redis
async def test_a_limit_and_a_revocation_check_cost_one_round_trip(
    counted: tuple[RateLimiter, Any],
) -> None:
    limiter, store = counted
    issuer = issuer_on(store)
    pair = await issuer.issue("alice", roles=["user"])
    async with client(stack(limiter, issuer)) as http:
        # The first request may also load the scripts (NOSCRIPT, then SCRIPT LOAD).
        assert (await http.get("/", headers=bearer(pair.access_token))).status_code == 200
        before = CountingConnection.writes
        responses = [await http.get("/", headers=bearer(pair.access_token)) for _ in range(10)]
    assert [r.status_code for r in responses] == [200] * 10
    assert CountingConnection.writes - before == 10
    assert responses[-1].headers["RateLimit"].startswith('"t";r=89;')


@pytest.mark.redis
async def test_a_token_revoked_between_two_requests_is_refused_at_once(
    counted: tuple[RateLimiter, Any], redis_url: str, redis_prefix: str
) -> None:
    limiter, store = counted
    issuer = issuer_on(store)
    pair = await issuer.issue("alice", roles=["user"])
    # Revoked through another process's store: nothing cached in this one.
    other = RedisTokenStore.from_url(redis_url, prefix=f"{redis_prefix}tokens:")
    try:
        async with client(stack(limiter, issuer)) as http:
            assert (await http.get("/", headers=bearer(pair.access_token))).status_code == 200
            await issuer_on(other).revoke(pair.access_token)
            before = CountingConnection.writes
            refused = await http.get("/", headers=bearer(pair.access_token))
    finally:
        await other.aclose()
    assert refused.status_code == 401
    assert refused.json()["detail"]["code"] == "invalid_token"
    assert CountingConnection.writes - before == 1  # the refusal came from the read ahead
    assert refused.headers["RateLimit"].startswith('"t";r=98;')


@pytest.mark.redis
async def test_a_forged_token_naming_a_live_session_gains_nothing_from_the_read(
    counted: tuple[RateLimiter, Any],
) -> None:
    """The read ahead is chosen from the unverified payload; the answer
    'active' must not stand in for the signature check."""
    limiter, store = counted
    issuer = issuer_on(store)
    pair = await issuer.issue("alice", roles=["user"])
    # Same header and claims, signed with another key: sub, sid and jti name a live session.
    forged = await issuer_on(
        MemoryTokenStore(), secret="another-secret-of-32-bytes-or-more!!"
    ).issue("alice", roles=["user"])
    header, _, signature = forged.access_token.split(".")
    payload = pair.access_token.split(".")[1]
    async with client(stack(limiter, issuer)) as http:
        answer = await http.get("/", headers=bearer(f"{header}.{payload}.{signature}"))
    assert answer.status_code == 401
    assert answer.json()["detail"]["code"] == "invalid_token"


@pytest.mark.redis
async def test_a_failing_read_fails_only_the_token_check_not_the_limiter(
    counted: tuple[RateLimiter, Any], redis_url: str, redis_prefix: str
) -> None:
    limiter, store = counted
    issuer = issuer_on(store)
    broken = await issuer.issue("mallory", roles=["user"])
    fine = await issuer.issue("alice", roles=["user"])
    claims = await issuer.verify_access(broken.access_token)
    # The family's hash replaced by a string: its read raises WRONGTYPE inside the script.
    family_key = store._family_key(claims.sid[:16], claims.sid)
    raw = redis.asyncio.Redis.from_url(redis_url)
    try:
        await raw.delete(family_key)
        await raw.set(family_key, "not a hash")
        async with client(stack(limiter, issuer)) as http:
            failed = await http.get("/", headers=bearer(broken.access_token))
            served = await http.get("/", headers=bearer(fine.access_token))
    finally:
        await raw.aclose()
    # The store's own call met the same error: fail closed, as without the read ahead.
    assert failed.status_code == 503
    assert failed.headers["RateLimit"].startswith('"t";r=99;')  # counted all the same
    # The limiter did not take the script's rider error for an outage (no back-off).
    assert served.status_code == 200
    assert served.headers["RateLimit"].startswith('"t";r=98;')


@pytest.mark.redis
async def test_a_refused_request_still_gets_its_429(counted: tuple[RateLimiter, Any]) -> None:
    limiter, store = counted
    issuer = issuer_on(store)
    pair = await issuer.issue("alice", roles=["user"])
    async with client(stack(limiter, issuer, rates="2/minute")) as http:
        statuses = [
            (await http.get("/", headers=bearer(pair.access_token))).status_code for _ in range(3)
        ]
    assert statuses == [200, 200, 429]


@pytest.mark.redis
async def test_a_store_on_another_database_is_asked_on_its_own(
    redis_url: str, redis_prefix: str
) -> None:
    limiter = RateLimiter(
        redis_url,
        key_prefix=redis_prefix.rstrip(":"),
        storage_options={"connection_class": CountingConnection},
    )
    other_db = redis_url.rsplit("/", 1)[0] + "/3"
    store = RedisTokenStore.from_url(
        other_db, prefix=f"{redis_prefix}tokens:", connection_class=CountingConnection
    )
    try:
        issuer = issuer_on(store)
        pair = await issuer.issue("alice", roles=["user"])
        assert not same_server(store.client, limiter._batch.client if limiter._batch else None)
        async with client(stack(limiter, issuer)) as http:
            assert (await http.get("/", headers=bearer(pair.access_token))).status_code == 200
            before = CountingConnection.writes
            ok = await http.get("/", headers=bearer(pair.access_token))
            writes = CountingConnection.writes - before
            await issuer.revoke(pair.access_token)
            refused = await http.get("/", headers=bearer(pair.access_token))
    finally:
        await limiter.aclose()
        keys = [key async for key in store.client.scan_iter(match=f"{redis_prefix}*")]
        if keys:
            await store.client.delete(*keys)
        await store.aclose()
    assert ok.status_code == 200
    assert writes == 2  # the limit, then the revocation check on its own
    assert refused.status_code == 401


@pytest.mark.redis
async def test_a_memory_store_behind_a_redis_limiter_is_asked_as_always(
    redis_url: str, redis_prefix: str
) -> None:
    limiter = RateLimiter(redis_url, key_prefix=redis_prefix.rstrip(":"))
    issuer = issuer_on(MemoryTokenStore())
    pair = await issuer.issue("alice", roles=["user"])
    try:
        async with client(stack(limiter, issuer)) as http:
            ok = await http.get("/", headers=bearer(pair.access_token))
            await issuer.revoke(pair.access_token)
            refused = await http.get("/", headers=bearer(pair.access_token))
    finally:
        await limiter.aclose()
    assert (ok.status_code, refused.status_code) == (200, 401)


@pytest.mark.redis
async def test_nothing_is_read_ahead_for_malformed_or_absent_credentials(
    counted: tuple[RateLimiter, Any],
) -> None:
    limiter, store = counted
    seen: list[Any] = []
    app = stack(limiter, issuer_on(store))

    @app.middleware("http")
    async def keep_scope(request: Any, call_next: Any) -> Any:
        response = await call_next(request)
        seen.append(request.scope.get(READ_AHEAD_SCOPE_KEY))
        return response

    async with client(app) as http:
        answers = [
            await http.get("/"),
            await http.get("/", headers=bearer("not-a-jwt")),
            await http.get("/", headers=bearer("a.%%%.c")),
            await http.get("/", headers={"Authorization": "Basic YTpi"}),
        ]
    assert [r.status_code for r in answers] == [401, 401, 401, 401]
    assert seen == [None, None, None, None]


def _segment(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@given(st.one_of(st.text(max_size=200), st.binary(max_size=200).map(_segment)))
def test_reading_ids_from_any_payload_never_raises(payload: str) -> None:
    assert _unverified_ids(f"e30.{payload}.sig") is None or isinstance(
        _unverified_ids(f"e30.{payload}.sig"), tuple
    )


def test_ids_are_read_only_when_all_three_are_non_empty_strings() -> None:
    def token(claims: object) -> str:
        return f"e30.{_segment(json.dumps(claims).encode())}.sig"

    assert _unverified_ids(token({"sub": "a", "sid": "b", "jti": "c"})) == ("a", "b", "c")
    assert _unverified_ids(token({"sub": "a", "sid": "b"})) is None
    assert _unverified_ids(token({"sub": "a", "sid": "b", "jti": 3})) is None
    assert _unverified_ids(token({"sub": "", "sid": "b", "jti": "c"})) is None
    assert _unverified_ids(token(["sub", "sid", "jti"])) is None
    assert _unverified_ids("only.two") is None


@pytest.mark.redis
async def test_riders_replies_come_back_as_sent_or_as_a_failure(
    redis_url: str, redis_prefix: str
) -> None:
    """What a rider may answer through the limiter's flat reply: a plain string
    or a number as it is; a failure, a table, or text that would break the
    framing as a value no store parses."""
    import limits

    from fastapi_secure._redis import PiggybackRead

    limiter = RateLimiter(redis_url, key_prefix=redis_prefix.rstrip(":"))
    assert limiter._batch is not None

    def rider(source: str) -> PiggybackRead:
        return PiggybackRead(
            client=None,
            source=source,
            keys=(f"{redis_prefix}rider",),
            args=("x",),
            key=source,
            parse=lambda reply: reply,
        )

    sources = [
        "return 'active'",
        "return ARGV[1] .. ',' .. KEYS[1]",
        "return 'two\\nlines'",
        "return 7",
        "return {1, 2}",
        "return redis.call('HGET', KEYS[1], 'f')",  # the key holds a string: WRONGTYPE
    ]
    raw = redis.asyncio.Redis.from_url(redis_url)
    try:
        await raw.set(f"{redis_prefix}rider", "a string")
        results, replies = await limiter._batch.hit(
            [limits.parse("5/minute")],
            redis_prefix.rstrip(":"),
            "who",
            1,
            True,
            [rider(source) for source in sources],
        )
    finally:
        await raw.aclose()
        await limiter.aclose()
    assert replies == ["active", "?", "?", 7, 0, 0]  # 0: failed, or not a string nor a number
    assert [(allowed, stats.remaining if stats else None) for allowed, stats in results] == [
        (True, 4)
    ]


@pytest.mark.redis
async def test_a_cookie_auth_behind_a_limit_costs_one_round_trip_too(
    counted: tuple[RateLimiter, Any],
) -> None:
    from fastapi_secure.auth.cookie import CookieAuth

    limiter, store = counted
    issuer = issuer_on(store)
    cookie = CookieAuth(issuer, csrf_secret=SECRET, allowed_origins=["https://app.example.test"])
    pair = await issuer.issue("alice", roles=["user"])
    app = FastAPI()

    @app.get("/", dependencies=[Depends(limiter.limit("100/minute", name="t"))])
    async def index(claims: AccessClaims = Depends(cookie)) -> dict[str, Any]:  # noqa: B008
        return {"sub": claims.sub}

    jar = {"Cookie": f"{cookie.access_cookie}={pair.access_token}"}
    async with client(app) as http:
        assert (await http.get("/", headers=jar)).status_code == 200
        before = CountingConnection.writes
        answers = [await http.get("/", headers=jar) for _ in range(5)]
        writes = CountingConnection.writes - before
        await issuer.revoke(pair.access_token)
        refused = await http.get("/", headers=jar)
        malformed = await http.get("/", headers={"Cookie": f"{cookie.access_cookie}=not.a"})
    assert [a.status_code for a in answers] == [200] * 5
    assert writes == 5
    assert (refused.status_code, malformed.status_code) == (401, 401)


async def test_same_server_is_proved_only_for_one_named_server() -> None:
    """A read rides along only when both clients reach one server, database and
    user: a Sentinel pool names no host (two services would look alike)."""
    import redis.asyncio.sentinel

    sentinels: Any = redis.asyncio.sentinel.Sentinel  # untyped in redis-py

    def plain(url: str) -> redis.asyncio.Redis:
        return redis.asyncio.Redis.from_url(url)

    base = "redis://127.0.0.1:6379/0"
    assert same_server(plain(base), plain(base))
    assert not same_server(plain(base), plain("redis://127.0.0.1:6379/1"))
    assert not same_server(plain(base), plain("redis://127.0.0.1:6380/0"))
    assert not same_server(plain(base), plain("redis://other:secret@127.0.0.1:6379/0"))
    assert not same_server(plain(base), plain("rediss://127.0.0.1:6379/0"))
    assert same_server(plain("unix:///tmp/r.sock?db=2"), plain("unix:///tmp/r.sock?db=2"))
    sentinel = sentinels([("127.0.0.1", 1)])
    one, two = sentinel.master_for("one"), sentinel.master_for("two")
    assert not same_server(one, two)
    assert not same_server(one, sentinel.master_for("one"))
    assert same_server(one, one)  # the very same client
    assert not same_server(object(), object())
