"""Rotation under concurrency, reuse, revoke_subject and store outages, on every store."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest
from fastapi import Depends, FastAPI, Header

from fastapi_secure.errors import (
    InvalidTokenError,
    RevokedTokenError,
    StoreUnavailableError,
    TokenReuseError,
)
from fastapi_secure.http_errors import install_error_handlers, status_of
from fastapi_secure.testing import FakeClock
from fastapi_secure.tokens.claims import (
    AccessClaims,
    RefreshClaims,
    TokenPair,
)
from fastapi_secure.tokens.issuer import (
    Grant,
    TokenIssuer,
)
from fastapi_secure.tokens.keys import KeySet
from fastapi_secure.tokens.stores.base import TokenStore

pytestmark = pytest.mark.anyio

CONCURRENCY = 50


async def _grant(claims: RefreshClaims) -> Grant:
    return Grant(roles=("user",))


def _issuer(store: TokenStore, clock: FakeClock, **options: Any) -> TokenIssuer:
    return TokenIssuer(
        KeySet.from_secret("s" * 64, kid="k1"),
        store,
        issuer="https://auth.example.test",
        audience="api",
        clock=clock,
        grant_loader=_grant,
        **options,
    )


async def _race(
    rotate: Callable[[str], Any], token: str, count: int = CONCURRENCY
) -> tuple[list[TokenPair], list[BaseException]]:
    wins: list[TokenPair] = []
    losses: list[BaseException] = []

    async def attempt() -> None:
        try:
            wins.append(await rotate(token))
        except InvalidTokenError as exc:
            losses.append(exc)

    async with anyio.create_task_group() as tasks:
        for _ in range(count):
            tasks.start_soon(attempt)
    return wins, losses


async def test_concurrent_rotations_exactly_one_succeeds(
    store: TokenStore, fake_clock: FakeClock
) -> None:
    issuer = _issuer(store, fake_clock)
    pair = await issuer.issue("alice")
    wins, losses = await _race(issuer.rotate, pair.refresh_token)
    assert len(wins) == 1
    assert len(losses) == CONCURRENCY - 1
    assert any(isinstance(exc, TokenReuseError) for exc in losses)
    # the losers were reuse: the family, the winner's tokens included, is revoked
    with pytest.raises(RevokedTokenError):
        await issuer.verify_access(wins[0].access_token)
    with pytest.raises(RevokedTokenError):
        await issuer.rotate(wins[0].refresh_token)


@pytest.mark.redis
async def test_concurrent_rotations_across_two_workers(
    redis_url: str, redis_prefix: str, fake_clock: FakeClock
) -> None:
    from fastapi_secure.tokens.stores.redis import RedisTokenStore

    # two stores, two connection pools: two processes sharing one Redis
    first = RedisTokenStore.from_url(redis_url, prefix=redis_prefix)
    second = RedisTokenStore.from_url(redis_url, prefix=redis_prefix)
    try:
        issuers = [_issuer(first, fake_clock), _issuer(second, fake_clock)]
        pair = await issuers[0].issue("alice")
        results = []
        async with anyio.create_task_group() as tasks:

            async def race(issuer: TokenIssuer) -> None:
                results.append(await _race(issuer.rotate, pair.refresh_token, 25))

            for issuer in issuers:
                tasks.start_soon(race, issuer)
        assert sum(len(wins) for wins, _ in results) == 1
        assert sum(len(losses) for _, losses in results) == 49
    finally:
        await first.aclose()
        await second.aclose()


async def test_sequential_chain_of_rotations_stays_valid(
    store: TokenStore, fake_clock: FakeClock
) -> None:
    issuer = _issuer(store, fake_clock)
    pair = await issuer.issue("alice")
    for _ in range(5):
        fake_clock.advance(60)
        pair = await issuer.rotate(pair.refresh_token)
        assert (await issuer.verify_access(pair.access_token)).roles == ("user",)


async def test_reuse_revokes_the_family_and_its_access_tokens(
    store: TokenStore, fake_clock: FakeClock
) -> None:
    issuer = _issuer(store, fake_clock)
    stolen = await issuer.issue("alice")
    other_session = await issuer.issue("alice")
    legit = await issuer.rotate(stolen.refresh_token)
    with pytest.raises(TokenReuseError):
        await issuer.rotate(stolen.refresh_token)  # the attacker replays
    for token in (stolen.access_token, legit.access_token):
        with pytest.raises(RevokedTokenError):
            await issuer.verify_access(token)
    with pytest.raises(RevokedTokenError):
        await issuer.rotate(legit.refresh_token)
    await issuer.verify_access(other_session.access_token)


async def test_revoke_subject_kills_every_token_of_the_subject(
    store: TokenStore, fake_clock: FakeClock
) -> None:
    issuer = _issuer(store, fake_clock)
    pairs = [await issuer.issue("alice") for _ in range(3)]
    pairs[0] = await issuer.rotate(pairs[0].refresh_token)
    bob = await issuer.issue("bob")
    await issuer.revoke_subject("alice")
    for pair in pairs:
        with pytest.raises(RevokedTokenError):
            await issuer.verify_access(pair.access_token)
        with pytest.raises(RevokedTokenError):
            await issuer.rotate(pair.refresh_token)
    await issuer.verify_access(bob.access_token)
    again = await issuer.issue("alice")  # same clock instant as the revocation
    await issuer.verify_access(again.access_token)


async def test_revoke_access_token_on_every_store(store: TokenStore, fake_clock: FakeClock) -> None:
    issuer = _issuer(store, fake_clock)
    pair = await issuer.issue("alice")
    await issuer.revoke(pair.access_token)
    with pytest.raises(RevokedTokenError):
        await issuer.verify_access(pair.access_token)
    rotated = await issuer.rotate(pair.refresh_token)
    await issuer.verify_access(rotated.access_token)
    await issuer.revoke(rotated.refresh_token)
    with pytest.raises(RevokedTokenError):
        await issuer.verify_access(rotated.access_token)


async def test_concurrent_retries_within_grace_share_one_successor(
    store: TokenStore, fake_clock: FakeClock
) -> None:
    issuer = _issuer(store, fake_clock, reuse_grace=5)
    pair = await issuer.issue("alice")
    wins, losses = await _race(issuer.rotate, pair.refresh_token)
    assert losses == []
    successors = {issuer.keys.verify(w.refresh_token).claims()["jti"] for w in wins}
    assert len(successors) == 1
    await issuer.rotate(wins[-1].refresh_token)
    fake_clock.advance(6)  # past the grace window of that rotation
    with pytest.raises(TokenReuseError):
        await issuer.rotate(wins[0].refresh_token)


# -- store outage ----------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def down_issuer(fake_clock: FakeClock) -> Any:
    pytest.importorskip("redis")
    from fastapi_secure.tokens.stores.memory import MemoryTokenStore
    from fastapi_secure.tokens.stores.redis import RedisTokenStore

    store = RedisTokenStore.from_url(f"redis://127.0.0.1:{_closed_port()}/0")
    issuer = _issuer(store, fake_clock)
    # tokens minted while the store was up (same keys, a working store)
    pair = await _issuer(MemoryTokenStore(clock=fake_clock), fake_clock).issue("alice")
    yield issuer, pair
    await store.aclose()


async def test_store_outage_fails_closed_quickly(down_issuer: Any) -> None:
    issuer, pair = down_issuer
    started = time.monotonic()
    for call in (
        issuer.verify_access(pair.access_token),
        issuer.verify_refresh(pair.refresh_token),
        issuer.rotate(pair.refresh_token),
        issuer.issue("alice"),
        issuer.revoke(pair.access_token),
        issuer.revoke_subject("alice"),
    ):
        with pytest.raises(StoreUnavailableError) as caught:
            await call
        assert status_of(caught.value) == 503
    assert time.monotonic() - started < 5


async def test_store_outage_is_a_503_through_a_route(down_issuer: Any) -> None:
    issuer, pair = down_issuer

    async def current(authorization: str = Header()) -> AccessClaims:
        claims: AccessClaims = await issuer.verify_access(authorization.removeprefix("Bearer "))
        return claims

    app = FastAPI()
    # The route's own dependency lets the core error escape: the handlers answer it.
    install_error_handlers(app)

    @app.get("/me")
    async def me(claims: AccessClaims = Depends(current)) -> dict[str, str]:  # noqa: B008
        return {"sub": claims.sub}

    from fastapi_secure.auth import BearerAuth

    bearer = BearerAuth(issuer)

    @app.get("/bearer")
    async def bearer_me(claims: AccessClaims = Depends(bearer)) -> dict[str, str]:  # noqa: B008
        return {"sub": claims.sub}

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        for path in ("/me", "/bearer"):
            response = await client.get(
                path, headers={"Authorization": f"Bearer {pair.access_token}"}
            )
            assert response.status_code == 503, path
            assert response.json()["detail"]["code"] == "store_unavailable"
            assert pair.access_token not in response.text


async def test_concurrent_first_use_of_a_fresh_store(
    store: TokenStore, fake_clock: FakeClock
) -> None:
    """The first requests after startup arrive together: none may fail.

    redis-py's async cluster client discovers its slots on first use, and
    concurrent first uses raced inside the client (AttributeError, a 500).
    """
    issuer = _issuer(store, fake_clock)
    pairs: list[TokenPair] = []

    async def login(index: int) -> None:
        pairs.append(await issuer.issue(f"user-{index}"))

    async with anyio.create_task_group() as tasks:
        for index in range(CONCURRENCY):
            tasks.start_soon(login, index)
    assert len(pairs) == CONCURRENCY
    claims = [await issuer.verify_access(pair.access_token) for pair in pairs]
    assert {c.sub for c in claims} == {f"user-{i}" for i in range(CONCURRENCY)}
