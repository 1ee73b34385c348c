"""The blocks that take ``events=`` emit the right security events, and only those."""

# No `from __future__ import annotations`: FastAPI resolves the endpoints' annotations.

import logging
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI, Request, Response
from limits.aio.storage import MemoryStorage

from fastapi_secure.auth import CookieAuth
from fastapi_secure.errors import TokenReuseError
from fastapi_secure.events import EVENTS_LOGGER, EventType, SecurityEvent, SecurityEvents
from fastapi_secure.ratelimit import RateLimiter
from fastapi_secure.testing import FakeClock
from fastapi_secure.tokens.claims import AccessClaims, RefreshClaims
from fastapi_secure.tokens.issuer import Grant, TokenIssuer
from fastapi_secure.tokens.keys import KeySet
from fastapi_secure.tokens.stores.memory import MemoryTokenStore

pytestmark = pytest.mark.anyio

ORIGIN = "https://app.example.test"


class Collector:
    def __init__(self) -> None:
        self.events: list[SecurityEvent] = []

    async def __call__(self, event: SecurityEvent) -> None:
        self.events.append(event)

    @property
    def types(self) -> list[EventType]:
        return [event.type for event in self.events]


async def same_grant(claims: RefreshClaims) -> Grant:
    return Grant()


def make_issuer(clock: FakeClock, sink: SecurityEvents | None) -> TokenIssuer:
    return TokenIssuer(
        KeySet.from_secret("events-test-secret-of-at-least-32-bytes!", kid="k1"),
        MemoryTokenStore(clock=clock),
        issuer="https://issuer.example.test",
        audience="https://api.example.test",
        clock=clock,
        grant_loader=same_grant,
        events=sink,
    )


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://testserver")


# --- TokenIssuer --------------------------------------------------------------------------


async def test_refresh_reuse_is_an_event_with_subject_and_session(fake_clock: FakeClock) -> None:
    hook = Collector()
    issuer = make_issuer(fake_clock, SecurityEvents(hook=hook, pseudonymize_sessions=False))
    pair = await issuer.issue("alice")
    sid = (await issuer.verify_access(pair.access_token)).sid
    await issuer.rotate(pair.refresh_token)
    assert hook.events == []
    with pytest.raises(TokenReuseError):
        await issuer.rotate(pair.refresh_token)
    [event] = hook.events
    assert event.type is EventType.REFRESH_REUSE_DETECTED
    assert event.subject == "alice"
    assert event.session_id == sid
    assert event.reason == "refresh token reused; token family revoked"
    assert event.time == fake_clock()
    assert pair.refresh_token not in repr(event)


async def test_revoke_subject_is_logout_everywhere(fake_clock: FakeClock) -> None:
    hook = Collector()
    issuer = make_issuer(fake_clock, SecurityEvents(hook=hook))
    await issuer.revoke_subject("bob")
    assert hook.types == [EventType.LOGOUT_EVERYWHERE]
    assert hook.events[0].subject == "bob"


async def test_an_issuer_without_events_still_works(fake_clock: FakeClock) -> None:
    issuer = make_issuer(fake_clock, None)
    pair = await issuer.issue("alice")
    await issuer.rotate(pair.refresh_token)
    with pytest.raises(TokenReuseError):
        await issuer.rotate(pair.refresh_token)


async def test_a_broken_sink_does_not_change_the_reuse_answer(
    fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(event: SecurityEvent) -> None:
        raise RuntimeError("SIEM down")

    issuer = make_issuer(fake_clock, SecurityEvents(hook=broken))
    pair = await issuer.issue("alice")
    await issuer.rotate(pair.refresh_token)
    with pytest.raises(TokenReuseError):
        await issuer.rotate(pair.refresh_token)
    assert "hook failed on refresh_reuse_detected" in caplog.text


# --- RateLimiter --------------------------------------------------------------------------


class DeadStorage(MemoryStorage):
    async def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        raise ConnectionError("redis://:hunter2@cache:6379 refused")

    async def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        raise ConnectionError("redis://:hunter2@cache:6379 refused")

    async def acquire_sliding_window_entry(
        self, key: str, limit: int, expiry: int, amount: int = 1
    ) -> bool:
        raise ConnectionError("redis://:hunter2@cache:6379 refused")


async def test_rate_limited_is_an_event_per_refusal(caplog: pytest.LogCaptureFixture) -> None:
    hook = Collector()
    limiter = RateLimiter(events=SecurityEvents(hook=hook))
    app = FastAPI()

    @app.get("/limited", dependencies=[Depends(limiter.limit("2/minute"))])
    async def limited() -> dict[str, str]:
        return {}

    with caplog.at_level(logging.INFO, logger=EVENTS_LOGGER):
        async with client(app) as http:
            statuses = [
                (await http.get("/limited", headers={"User-Agent": "bot/1"})).status_code
                for _ in range(4)
            ]
    assert statuses == [200, 200, 429, 429]
    assert hook.types == [EventType.RATE_LIMITED, EventType.RATE_LIMITED]
    event = hook.events[0]
    assert event.user_agent == "bot/1"
    assert event.reason == "limit 2-per-60s exceeded"
    assert event.extra["retry_after"] >= 1
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.WARNING]


async def test_store_unavailable_is_an_event_once_per_backoff() -> None:
    hook = Collector()
    limiter = RateLimiter(DeadStorage(), events=SecurityEvents(hook=hook), storage_backoff=60)
    app = FastAPI()

    @app.get("/limited", dependencies=[Depends(limiter.limit("2/minute"))])
    async def limited() -> dict[str, str]:
        return {}

    async with client(app) as http:
        statuses = [(await http.get("/limited")).status_code for _ in range(3)]
    assert statuses == [503, 503, 503]
    [event] = hook.events
    assert event.type is EventType.STORE_UNAVAILABLE
    assert event.extra == {"store": "rate_limit", "error": "ConnectionError", "policy": "closed"}
    assert "hunter2" not in repr(event)


# --- CookieAuth ---------------------------------------------------------------------------


def cookie_app(auth: CookieAuth, issuer: TokenIssuer) -> FastAPI:
    app = FastAPI()

    @app.post("/login")
    async def login(response: Response) -> dict[str, str]:
        pair = await issuer.issue("alice")
        return {"csrf": auth.set_cookies(response, pair)}

    @app.post("/act")
    async def act(claims: Annotated[AccessClaims, Depends(auth)]) -> dict[str, str]:
        return {"sub": claims.sub}

    @app.post("/refresh")
    async def refresh(request: Request) -> dict[str, bool]:
        return {"ok": bool(await auth.read_refresh(request))}

    return app


async def test_cookie_auth_reports_origin_and_csrf_refusals(fake_clock: FakeClock) -> None:
    hook = Collector()
    sink = SecurityEvents(hook=hook, client_address="full")
    issuer = make_issuer(fake_clock, None)
    auth = CookieAuth(
        issuer,
        csrf_secret="csrf-secret-of-at-least-thirty-two-bytes",
        allowed_origins=[ORIGIN],
        events=sink,
    )
    async with client(cookie_app(auth, issuer)) as http:
        csrf = (await http.post("/login", headers={"Origin": ORIGIN})).json()["csrf"]
        evil = await http.post("/act", headers={"Origin": "https://evil.example"})
        forged = await http.post("/act", headers={"Origin": ORIGIN, "X-CSRF-Token": "x.y"})
        good = await http.post("/act", headers={"Origin": ORIGIN, "X-CSRF-Token": csrf})
    assert (evil.status_code, forged.status_code, good.status_code) == (403, 403, 200)
    assert hook.types == [EventType.ORIGIN_REFUSED, EventType.CSRF_REFUSED]
    origin_event, csrf_event = hook.events
    assert origin_event.subject is None
    assert origin_event.reason == "Origin or Referer not in allowed_origins"
    assert csrf_event.subject == "alice"
    assert csrf_event.session_id is not None
    assert csrf_event.client == "127.0.0.1"


async def test_cookie_refresh_reports_origin_and_csrf_refusals(fake_clock: FakeClock) -> None:
    hook = Collector()
    issuer = make_issuer(fake_clock, None)
    auth = CookieAuth(
        issuer,
        csrf_secret="csrf-secret-of-at-least-thirty-two-bytes",
        allowed_origins=[ORIGIN],
        events=SecurityEvents(hook=hook),
    )
    async with client(cookie_app(auth, issuer)) as http:
        csrf = (await http.post("/login", headers={"Origin": ORIGIN})).json()["csrf"]
        evil = await http.post("/refresh", headers={"Origin": "https://evil.example"})
        missing = await http.post("/refresh", headers={"Origin": ORIGIN})
        good = await http.post("/refresh", headers={"Origin": ORIGIN, "X-CSRF-Token": csrf})
    assert (evil.status_code, missing.status_code, good.status_code) == (403, 403, 200)
    assert hook.types == [EventType.ORIGIN_REFUSED, EventType.CSRF_REFUSED]
    assert hook.events[1].reason == "CSRF header or cookie missing on refresh"
