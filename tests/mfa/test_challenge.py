"""MFAChallenges: the MFA token of a login attempt, short-lived, single use, bounded attempts."""

from __future__ import annotations

from typing import Any

import anyio
import pyotp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastapi_secure import KeySet, MemoryTokenStore, TokenIssuer
from fastapi_secure.errors import ConfigurationError, InvalidTokenError
from fastapi_secure.http_errors import status_of
from fastapi_secure.mfa import (
    TOTP,
    InvalidOTPError,
    MFAChallenges,
    MFATokenError,
    PendingMFA,
    SecretBox,
    TOTPAuthenticator,
)
from fastapi_secure.mfa.stores import MemoryMFAStore
from fastapi_secure.testing import FakeClock
from fastapi_secure.tokens.issuer import keep_login_grant

pytestmark = pytest.mark.anyio


async def accept(pending: PendingMFA) -> str:
    return pending.user_id


async def refuse(pending: PendingMFA) -> str:
    raise InvalidOTPError(reason="wrong code")


async def test_start_and_complete_once(fast_store: Any, fake_clock: FakeClock) -> None:
    challenges = MFAChallenges(fast_store, clock=fake_clock)
    started = await challenges.start(
        "user-42", ["totp", "recovery_code"], context={"ip": "203.0.113.0/24"}
    )
    assert started.token.startswith("mfa_")
    assert len(started.token) > 40
    assert started.expires_in == 300
    assert started.methods == ("totp", "recovery_code")
    assert started.token not in repr(started)
    pending, result = await challenges.complete(started.token, accept)
    assert result == "user-42"
    assert pending.context == {"ip": "203.0.113.0/24"}
    assert pending.created_at == fake_clock()
    with pytest.raises(MFATokenError) as caught:
        await challenges.complete(started.token, accept)
    assert status_of(caught.value) == 401


async def test_expired_token_is_refused(fake_clock: FakeClock) -> None:
    challenges = MFAChallenges(MemoryMFAStore(clock=fake_clock), clock=fake_clock)
    started = await challenges.start("u", ["totp"])
    fake_clock.advance(300)
    with pytest.raises(MFATokenError):
        await challenges.complete(started.token, accept)


async def test_expiry_is_checked_even_if_the_store_kept_it(fake_clock: FakeClock) -> None:
    store = MemoryMFAStore()  # real time: the store itself would keep the entry
    challenges = MFAChallenges(store, clock=fake_clock)
    started = await challenges.start("u", ["totp"])
    fake_clock.advance(301)
    with pytest.raises(MFATokenError) as caught:
        await challenges.complete(started.token, accept)
    assert caught.value.reason == "expired MFA token"


async def test_wrong_codes_use_up_the_attempts(fast_store: Any, fake_clock: FakeClock) -> None:
    challenges = MFAChallenges(fast_store, max_attempts=3, clock=fake_clock)
    started = await challenges.start("u", ["totp"])
    seen: list[int] = []

    async def refuse_and_record(pending: PendingMFA) -> str:
        seen.append(pending.attempts)
        raise InvalidOTPError(reason="wrong code")

    for _ in range(3):
        with pytest.raises(InvalidOTPError):
            await challenges.complete(started.token, refuse_and_record)
    assert seen == [0, 1, 2]
    with pytest.raises(MFATokenError):  # the third failure was the last one
        await challenges.complete(started.token, accept)


async def test_a_retry_keeps_the_original_expiry(fake_clock: FakeClock) -> None:
    challenges = MFAChallenges(MemoryMFAStore(clock=fake_clock), clock=fake_clock)
    started = await challenges.start("u", ["totp"])
    fake_clock.advance(200)
    with pytest.raises(InvalidOTPError):
        await challenges.complete(started.token, refuse)
    fake_clock.advance(100)
    with pytest.raises(MFATokenError):
        await challenges.complete(started.token, accept)


async def test_other_errors_burn_the_token(fake_clock: FakeClock) -> None:
    challenges = MFAChallenges(MemoryMFAStore(clock=fake_clock), clock=fake_clock)
    started = await challenges.start("u", ["totp"])

    async def crash(pending: PendingMFA) -> str:
        raise RuntimeError("bug")

    with pytest.raises(RuntimeError):
        await challenges.complete(started.token, crash)
    with pytest.raises(MFATokenError):  # fails closed
        await challenges.complete(started.token, accept)


async def test_concurrent_completes_exactly_one_wins(
    fast_store: Any, fake_clock: FakeClock
) -> None:
    challenges = MFAChallenges(fast_store, clock=fake_clock)
    started = await challenges.start("u", ["totp"])
    outcomes: list[str] = []

    async def attempt() -> None:
        try:
            await challenges.complete(started.token, accept)
            outcomes.append("accepted")
        except MFATokenError:
            outcomes.append("refused")

    async with anyio.create_task_group() as group:
        for _ in range(20):
            group.start_soon(attempt)
    assert sorted(outcomes) == ["accepted"] + ["refused"] * 19


async def test_the_login_step_with_a_totp_code(fake_clock: FakeClock) -> None:
    store = MemoryMFAStore(clock=fake_clock)
    box = SecretBox([SecretBox.generate_key()])
    totp = TOTP(box=box, used_codes=store, issuer="Example", clock=fake_clock)
    secret = pyotp.random_base32()
    record = TOTPAuthenticator("u", box.encrypt(secret), confirmed_at=fake_clock())
    challenges = MFAChallenges(store, clock=fake_clock)
    started = await challenges.start("u", ["totp"])
    code = pyotp.TOTP(secret).at(fake_clock())

    async def check(pending: PendingMFA) -> TOTPAuthenticator:
        assert pending.user_id == record.user_id
        return await totp.verify(record, code)

    _, updated = await challenges.complete(started.token, check)
    assert updated.last_used_at == fake_clock()
    again = await challenges.start("u", ["totp"])
    with pytest.raises(InvalidOTPError):  # the same code, a new login: replay refused
        await challenges.complete(again.token, check)


async def test_an_mfa_token_is_useless_as_an_access_token(fake_clock: FakeClock) -> None:
    issuer = TokenIssuer(
        KeySet.generate("EdDSA"),
        MemoryTokenStore(),
        issuer="https://auth.example.com",
        audience="https://api.example.com",
        grant_loader=keep_login_grant,
    )
    started = await MFAChallenges(MemoryMFAStore(clock=fake_clock), clock=fake_clock).start(
        "u", ["totp"]
    )
    with pytest.raises(InvalidTokenError):
        await issuer.verify_access(started.token)


@pytest.mark.parametrize(
    "token", ["", "mfa_", "mfa_unknown", "eyJhbGciOiJub25lIn0.e30.", "mfa_" + "x" * 200, None]
)
async def test_malformed_or_unknown_tokens_are_refused(token: Any) -> None:
    challenges = MFAChallenges(MemoryMFAStore())
    await challenges.start("u", ["totp"])
    with pytest.raises(MFATokenError):
        await challenges.complete(token, accept)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=150))
def test_arbitrary_tokens_are_refused(token: str) -> None:
    async def run() -> None:
        challenges = MFAChallenges(MemoryMFAStore())
        await challenges.start("u", ["totp"])
        with pytest.raises(MFATokenError):
            await challenges.complete(token, accept)

    anyio.run(run)


@pytest.mark.parametrize(
    "options", [{"ttl": 0}, {"ttl": 3601}, {"max_attempts": 0}, {"max_attempts": 2.5}]
)
def test_bad_configuration_is_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        MFAChallenges(MemoryMFAStore(), **options)


@pytest.mark.parametrize("methods", [[], "totp"])
async def test_methods_must_be_a_list(methods: Any) -> None:
    challenges = MFAChallenges(MemoryMFAStore())
    assert repr(challenges) == "MFAChallenges(ttl=300.0, max_attempts=5)"
    with pytest.raises(ConfigurationError):
        await challenges.start("u", methods)


async def test_a_refused_token_says_why_and_whose(fast_store: Any, fake_clock: FakeClock) -> None:
    challenges = MFAChallenges(fast_store, clock=fake_clock)

    async def problem_of(token: str) -> tuple[str, str | None]:
        with pytest.raises(MFATokenError) as refused:
            await challenges.complete(token, ok)
        assert refused.value.message == "invalid or expired MFA token"
        return refused.value.problem, refused.value.user_id

    async def ok(pending: PendingMFA) -> str:
        return pending.user_id

    used = await challenges.start("u1", ["totp"])
    await challenges.complete(used.token, ok)
    assert await problem_of(used.token) == ("reused", "u1")
    assert await problem_of(used.token) == ("reused", "u1")  # every replay
    with pytest.raises(MFATokenError):
        await challenges.peek(used.token)
    late = await challenges.start("u2", ["totp"])
    fake_clock.advance(301)
    assert await problem_of(late.token) == ("expired", "u2")
    assert await problem_of("mfa_" + "x" * 43) == ("unknown", None)
    assert await problem_of("nope") == ("malformed", None)
    if isinstance(fast_store, MemoryMFAStore):  # Redis expires keys on its own clock
        # After one more ttl the marker is gone: an old token is merely unknown.
        fake_clock.advance(300)
        assert await problem_of(used.token) == ("unknown", None)
