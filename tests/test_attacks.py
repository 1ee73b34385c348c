"""Attacks found in the security review, each written from the attacker's side.

Each section holds the attack, which succeeded before its fix, and guards that
the fix still accepts what it should. Findings still open are described in the
review report, not here.
"""

from __future__ import annotations

import logging
import traceback
import types
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from fastapi import Depends, FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st

from fastapi_secure.auth import BearerAuth
from fastapi_secure.db import Database
from fastapi_secure.errors import (
    ConfigurationError,
    DatabaseUnavailableError,
    StoreUnavailableError,
)
from fastapi_secure.passwords import PasswordPolicy
from fastapi_secure.passwords import policy as password_policy
from fastapi_secure.ratelimit import RateLimiter
from fastapi_secure.testing import FakeClock
from fastapi_secure.tokens.claims import AccessClaims
from fastapi_secure.tokens.stores.base import new_family_id
from fastapi_secure.tokens.stores.redis import RedisTokenStore
from tests.auth_helpers import bearer, client, make_issuer
from tests.examples.test_reference_api import ALICE_PASSWORD, _serve, make_settings

# --- PasswordPolicy: NFKC of attacker-sized input on the event loop ---------------------

# U+FDFA normalizes (NFKC) to 18 code points: a 1 MiB request body of it took the
# policy about 0.35 s of CPU on the event loop before the length was even looked at.
EXPANDING = "\ufdfa"
# Characters whose NFKC differs in length from the input: expanding ligatures and
# squared words, and base letters with combining marks that compose (shrinking).
NFKC_TRICKY = st.sampled_from(
    [
        *(EXPANDING, "\u3300", "\ufb01"),  # expand
        *("a", "e", "\u03b1", "\u0301", "\u0313", "\u0342", "\u0345"),  # compose
        *("\u1100", "\u1161", "\u11a8", " "),  # Hangul jamo compose into syllables
    ]
)


def test_oversized_password_is_refused_without_normalizing_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    normalized_lengths: list[int] = []

    def spy(form: Any, text: str) -> str:
        normalized_lengths.append(len(text))
        return unicodedata.normalize(form, text)

    monkeypatch.setattr(password_policy, "unicodedata", types.SimpleNamespace(normalize=spy))
    policy = PasswordPolicy()

    problems = policy.check(EXPANDING * (1024 * 1024 // 3))

    assert problems == [f"password must be at most {policy.max_length} characters long"]
    assert max(normalized_lengths, default=0) <= 4 * policy.max_length


@settings(max_examples=300, deadline=None)
@given(st.text(NFKC_TRICKY, max_size=320))
def test_length_bounds_hold_as_typed_and_after_normalization(password: str) -> None:
    # The published JSON schema counts characters as typed; the policy's rules see the
    # NFKC form. Both must be within the bounds, or the schema would lie (schemathesis).
    policy = PasswordPolicy(min_length=8, max_length=64, use_common_passwords=False)
    normalized = unicodedata.normalize("NFKC", password)
    too_long = max(len(password), len(normalized)) > policy.max_length
    too_short = min(len(password), len(normalized)) < policy.min_length
    problems = policy.check(password)
    assert (f"password must be at most {policy.max_length} characters long" in problems) is (
        too_long
    )
    assert (f"password must be at least {policy.min_length} characters long" in problems) is (
        too_short
    )


def test_a_password_that_expands_past_min_length_is_still_too_short() -> None:
    policy = PasswordPolicy(min_length=8)
    typed = "\u3300\u3300"  # 2 characters as typed, 8 after NFKC
    assert len(unicodedata.normalize("NFKC", typed)) >= 8
    assert "password must be at least 8 characters long" in policy.check(typed)


def test_a_password_longer_than_max_as_typed_is_refused_even_if_it_composes() -> None:
    letters = ["\u1f87", "\u1f97", "\u1fa7", "\u1f8f", "\u1f9f", "\u1faf"]
    composed = "".join(letters[(i * i + i // 3) % 6] for i in range(64))
    decomposed = unicodedata.normalize("NFD", composed)
    policy = PasswordPolicy(max_length=64)
    assert policy.check(composed) == []
    assert policy.check(decomposed) == ["password must be at most 64 characters long"]


def test_huge_context_word_is_not_normalized(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []

    def spy(form: Any, text: str) -> str:
        seen.append(len(text))
        return unicodedata.normalize(form, text)

    monkeypatch.setattr(password_policy, "unicodedata", types.SimpleNamespace(normalize=spy))
    problems = PasswordPolicy().check("correct-horse-battery", context=["\ufdfa" * 350_000])
    assert problems == []
    assert max(seen) <= 4 * 128


def test_no_code_point_decomposes_to_more_than_four() -> None:
    """The bound the early refusal rests on, for this Python's Unicode database."""
    longest = max(
        len(unicodedata.normalize("NFD", chr(point)))
        for point in range(0x110000)
        if not 0xD800 <= point <= 0xDFFF
    )
    assert longest == password_policy._MAX_NFKC_SHRINK


# --- RedisTokenStore on a Redis Cluster that does not answer ------------------------------

# Loopback port 1: nothing listens, the connection is refused at once.
DEAD_CLUSTER_URL = "redis+cluster://127.0.0.1:1"


@pytest.mark.anyio
async def test_dead_redis_cluster_is_store_unavailable_not_a_crash(fake_clock: FakeClock) -> None:
    # redis-py raises RedisClusterException, which is no RedisError: it escaped the
    # store, so login and refresh answered 500.
    store = RedisTokenStore.from_url(DEAD_CLUSTER_URL, socket_connect_timeout=0.5)
    issuer = make_issuer(fake_clock, store=store)
    try:
        with pytest.raises(StoreUnavailableError):
            await issuer.issue("alice")
        with pytest.raises(StoreUnavailableError):
            await store.check_access("alice", new_family_id("alice"), jti="j")
        with pytest.raises(StoreUnavailableError):
            await issuer.revoke_subject("alice")
    finally:
        await store.aclose()


@pytest.mark.anyio
async def test_dead_redis_cluster_answers_bearer_requests_with_503(fake_clock: FakeClock) -> None:
    # A token signed by the same keys, issued while the store still worked.
    token = (await make_issuer(fake_clock).issue("alice")).access_token
    store = RedisTokenStore.from_url(DEAD_CLUSTER_URL, socket_connect_timeout=0.5)
    auth = BearerAuth(make_issuer(fake_clock, store=store))
    app = FastAPI()

    @app.get("/me")
    async def me(claims: AccessClaims = Depends(auth)) -> dict[str, str]:  # noqa: B008
        return {"sub": claims.sub}

    try:
        async with client(app) as http:
            response = await http.get("/me", headers=bearer(token))
    finally:
        await store.aclose()
    assert response.status_code == 503
    assert response.json()["detail"]["code"] == "store_unavailable"


# --- Database: a password given as a URL query parameter ----------------------------------

QUERY_PASSWORD = "Qp-hunter2-not-a-real-secret"


@pytest.mark.anyio
async def test_password_in_the_url_query_never_shows(caplog: pytest.LogCaptureFixture) -> None:
    # libpq style "?password=..." reaches asyncpg, and SQLAlchemy masks only user:pw@.
    db = Database(f"postgresql://app@127.0.0.1:1/app?password={QUERY_PASSWORD}&sslmode=disable")
    caplog.set_level(logging.DEBUG)
    try:
        shown = repr(db) + repr(db.engine) + str(db.engine.url)
        assert QUERY_PASSWORD not in shown
        with pytest.raises(DatabaseUnavailableError) as raised:
            await db.check()
    finally:
        await db.dispose()
    assert caplog.records, "the outage should be logged"
    assert QUERY_PASSWORD not in caplog.text
    assert QUERY_PASSWORD not in str(raised.value) + repr(raised.value)


@pytest.mark.postgres
@pytest.mark.anyio
async def test_password_in_the_url_query_still_reaches_the_driver(postgres_url: str) -> None:
    db = Database(f"{postgres_url}?password={QUERY_PASSWORD}")
    try:
        # The test server trusts every password, so ask asyncpg what it was given.
        async with db.engine.connect() as connection:
            raw = await connection.get_raw_connection()
            given_password = raw.driver_connection._params.password  # type: ignore[union-attr]
    finally:
        await db.dispose()
    assert given_password == QUERY_PASSWORD


# --- RateLimiter: a mistyped storage URI -------------------------------------------------


def test_mistyped_storage_uri_keeps_its_password_out_of_the_traceback() -> None:
    secret = "Rl-s3cr3t-not-a-real-password"
    with pytest.raises(ConfigurationError) as raised:
        RateLimiter(f"redis+clustr://:{secret}@127.0.0.1:6379")
    printed = "".join(traceback.format_exception(raised.value))
    assert "redis+clustr" in printed
    assert secret not in printed


# --- Reference API in cookie mode: the refresh route acts on a cookie ---------------------


@pytest.mark.anyio
async def test_cookie_refresh_from_a_foreign_origin_is_refused(tmp_path: Path) -> None:
    # CookieAuth's docs: routes that act on cookies without the dependency (the
    # refresh route) must call check_origin. A page on a sibling subdomain is
    # same-site, so even the SameSite=Strict refresh cookie goes with its POST.
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'api.db'}", auth_transport="cookie")
    async for api in _serve(settings):
        registered = await api.register("alice@example.com", "alice", ALICE_PASSWORD)
        assert registered.status_code == 201, registered.text
        await api.login("alice", ALICE_PASSWORD)
        assert "refresh_token" in api.client.cookies

        forged = await api.client.post(
            "/auth/refresh", headers={"Origin": "http://evil.127.0.0.1.nip.io"}
        )
        assert forged.status_code == 403, forged.text
        assert forged.json()["detail"]["code"] == "csrf_failed"

        own = await api.client.post("/auth/refresh", headers={"Origin": "http://127.0.0.1:8000"})
        assert own.status_code == 200, own.text
