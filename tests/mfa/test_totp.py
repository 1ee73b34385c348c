"""TOTP: RFC 6238 vectors through the block, enrolment, window, replay, limits, attacks."""

from __future__ import annotations

import base64
import hashlib
import logging
from typing import Any

import anyio
import pyotp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastapi_secure.errors import ConfigurationError
from fastapi_secure.http_errors import http_exception
from fastapi_secure.mfa import (
    TOTP,
    AttemptLimit,
    InvalidOTPError,
    OTPReplayError,
    SecretBox,
    SecretDecryptionError,
    TooManyAttemptsError,
    TOTPAuthenticator,
)
from fastapi_secure.mfa.stores import MemoryMFAStore
from fastapi_secure.testing import FakeClock

pytestmark = pytest.mark.anyio

BOX = SecretBox([SecretBox.generate_key()])

# RFC 6238, Appendix B: seeds per hash, 8 digits, 30-second steps, T0 = 0.
SEEDS = {
    "SHA1": b"12345678901234567890",
    "SHA256": b"12345678901234567890123456789012",
    "SHA512": b"1234567890123456789012345678901234567890123456789012345678901234",
}
RFC6238 = [
    (59, "94287082", "SHA1"),
    (59, "46119246", "SHA256"),
    (59, "90693936", "SHA512"),
    (1111111109, "07081804", "SHA1"),
    (1111111109, "68084774", "SHA256"),
    (1111111109, "25091201", "SHA512"),
    (1111111111, "14050471", "SHA1"),
    (1111111111, "67062674", "SHA256"),
    (1111111111, "99943326", "SHA512"),
    (1234567890, "89005924", "SHA1"),
    (1234567890, "91819424", "SHA256"),
    (1234567890, "93441116", "SHA512"),
    (2000000000, "69279037", "SHA1"),
    (2000000000, "90698825", "SHA256"),
    (2000000000, "38618901", "SHA512"),
    (20000000000, "65353130", "SHA1"),
    (20000000000, "77737706", "SHA256"),
    (20000000000, "47863826", "SHA512"),
]


def make_totp(store: Any, clock: FakeClock, **options: Any) -> TOTP:
    return TOTP(box=BOX, used_codes=store, issuer="Example", clock=clock, **options)


def confirmed(user_id: str, secret: str, clock: FakeClock, **fields: Any) -> TOTPAuthenticator:
    return TOTPAuthenticator(
        user_id=user_id,
        encrypted_secret=BOX.encrypt(secret),
        created_at=clock(),
        confirmed_at=clock(),
        **fields,
    )


def code_at(secret: str, when: float, *, digits: int = 6, algorithm: str = "SHA1") -> str:
    otp = pyotp.TOTP(secret, digits=digits, digest=getattr(hashlib, algorithm.lower()))
    return otp.at(when)


@pytest.mark.parametrize(("when", "expected", "algorithm"), RFC6238)
async def test_rfc6238_appendix_b_vectors(
    when: int, expected: str, algorithm: Any, fake_clock: FakeClock
) -> None:
    fake_clock.set(when)
    store = MemoryMFAStore(clock=fake_clock)
    totp = make_totp(store, fake_clock, digits=8, algorithm=algorithm)
    secret = base64.b32encode(SEEDS[algorithm]).decode()
    record = confirmed("rfc", secret, fake_clock, digits=8, algorithm=algorithm)
    updated = await totp.verify(record, expected)
    assert updated.last_used_at == when
    with pytest.raises(OTPReplayError):
        await totp.verify(record, expected)


async def test_enrolment_gives_secret_uri_and_svg_and_hides_them(fake_clock: FakeClock) -> None:
    totp = make_totp(MemoryMFAStore(clock=fake_clock), fake_clock)
    enrolment = totp.begin_enrolment("user-1", "alice@example.com")
    secret = enrolment.secret.get_secret_value()
    assert len(base64.b32decode(secret)) == 20  # 160 bits for SHA-1
    uri = enrolment.uri.get_secret_value()
    parsed = pyotp.parse_uri(uri)
    assert uri.startswith("otpauth://totp/Example:alice%40example.com?")
    assert parsed.secret == secret
    assert parsed.issuer == "Example"
    assert enrolment.qr_svg.startswith("<svg")
    assert "</svg>" in enrolment.qr_svg
    record = enrolment.authenticator
    assert record.user_id == "user-1"
    assert not record.confirmed
    assert secret not in record.encrypted_secret
    for text in (repr(enrolment), str(enrolment), repr(record)):
        assert secret not in text
        assert record.encrypted_secret not in text


@pytest.mark.parametrize(("algorithm", "size"), [("SHA256", 35), ("SHA512", 65)])
async def test_enrolment_seed_matches_the_hash(
    algorithm: Any, size: int, fake_clock: FakeClock
) -> None:
    totp = make_totp(MemoryMFAStore(clock=fake_clock), fake_clock, algorithm=algorithm, digits=8)
    enrolment = totp.begin_enrolment("u", "alice")
    assert len(base64.b32decode(enrolment.secret.get_secret_value())) == size
    assert f"algorithm={algorithm}" in enrolment.uri.get_secret_value()
    assert "digits=8" in enrolment.uri.get_secret_value()
    code = code_at(enrolment.secret.get_secret_value(), fake_clock(), digits=8, algorithm=algorithm)
    assert (await totp.confirm_enrolment(enrolment.authenticator, code)).confirmed


async def test_enrolment_completes_only_after_a_valid_code(
    fast_store: Any, fake_clock: FakeClock
) -> None:
    totp = make_totp(fast_store, fake_clock)
    enrolment = totp.begin_enrolment("user-1", "alice")
    secret = enrolment.secret.get_secret_value()
    code = code_at(secret, fake_clock())
    with pytest.raises(InvalidOTPError):
        await totp.verify(enrolment.authenticator, code)  # unconfirmed: not a factor yet
    with pytest.raises(InvalidOTPError):
        await totp.confirm_enrolment(
            enrolment.authenticator, "000000" if code != "000000" else "111111"
        )
    record = await totp.confirm_enrolment(enrolment.authenticator, code)
    assert record.confirmed
    assert record.confirmed_at == fake_clock()
    with pytest.raises(OTPReplayError):
        await totp.verify(record, code)  # the enrolment code cannot log in again
    fake_clock.advance(30)
    assert (await totp.verify(record, code_at(secret, fake_clock()))).last_used_at == fake_clock()


async def test_window_is_one_step_each_way(fast_store: Any, fake_clock: FakeClock) -> None:
    totp = make_totp(fast_store, fake_clock)
    secret = pyotp.random_base32()
    record = confirmed("u", secret, fake_clock)
    now = fake_clock()
    for offset in (-30, 0, 30):
        await totp.verify(record, code_at(secret, now + offset))
    for offset in (-60, 60, -90, 90):
        with pytest.raises(InvalidOTPError):
            await totp.verify(record, code_at(secret, now + offset))


async def test_window_zero_accepts_the_current_step_only(fake_clock: FakeClock) -> None:
    totp = make_totp(MemoryMFAStore(clock=fake_clock), fake_clock, window=0)
    secret = pyotp.random_base32()
    record = confirmed("u", secret, fake_clock)
    with pytest.raises(InvalidOTPError):
        await totp.verify(record, code_at(secret, fake_clock() - 30))
    await totp.verify(record, code_at(secret, fake_clock()))


async def test_replayed_code_refused_within_its_window(
    fast_store: Any, fake_clock: FakeClock
) -> None:
    totp = make_totp(fast_store, fake_clock)
    secret = pyotp.random_base32()
    record = confirmed("u", secret, fake_clock)
    code = code_at(secret, fake_clock())
    await totp.verify(record, code)
    for _ in range(2):
        fake_clock.advance(29)  # still inside the ±1 window of its step
        with pytest.raises(OTPReplayError) as caught:
            await totp.verify(record, code)
        assert caught.value.message == "invalid code"  # same answer as a wrong code


async def test_replay_guard_is_per_account(fast_store: Any, fake_clock: FakeClock) -> None:
    totp = make_totp(fast_store, fake_clock)
    secret = pyotp.random_base32()  # two accounts that happen to share a step
    code = code_at(secret, fake_clock())
    await totp.verify(confirmed("alice", secret, fake_clock), code)
    await totp.verify(confirmed("bob", secret, fake_clock), code)


async def test_code_from_another_accounts_secret_is_refused(
    fast_store: Any, fake_clock: FakeClock
) -> None:
    totp = make_totp(fast_store, fake_clock)
    alice, mallory = pyotp.random_base32(), pyotp.random_base32()
    with pytest.raises(InvalidOTPError):
        await totp.verify(confirmed("alice", alice, fake_clock), code_at(mallory, fake_clock()))


async def test_concurrent_uses_of_one_code_exactly_one_accepted(
    fast_store: Any, fake_clock: FakeClock
) -> None:
    totp = make_totp(fast_store, fake_clock)
    secret = pyotp.random_base32()
    record = confirmed("u", secret, fake_clock)
    code = code_at(secret, fake_clock())
    outcomes: list[str] = []

    async def attempt() -> None:
        try:
            await totp.verify(record, code)
            outcomes.append("accepted")
        except OTPReplayError:
            outcomes.append("replay")

    async with anyio.create_task_group() as group:
        for _ in range(20):
            group.start_soon(attempt)
    assert sorted(outcomes) == ["accepted"] + ["replay"] * 19


@pytest.mark.parametrize("spaced", ["{a} {b}", " {a}{b} ", "{a}-{b}"])
async def test_spaces_and_dashes_are_ignored(spaced: str, fake_clock: FakeClock) -> None:
    totp = make_totp(MemoryMFAStore(clock=fake_clock), fake_clock)
    secret = pyotp.random_base32()
    code = code_at(secret, fake_clock())
    await totp.verify(confirmed("u", secret, fake_clock), spaced.format(a=code[:3], b=code[3:]))


@pytest.mark.parametrize(
    "code", ["", "12345", "1234567", "abcdef", "١٢٣٤٥٦", "12345\x00", "1" * 10_000, "+12345"]
)
async def test_malformed_codes_are_refused(code: str, fake_clock: FakeClock) -> None:
    totp = make_totp(MemoryMFAStore(clock=fake_clock), fake_clock)
    with pytest.raises(InvalidOTPError) as caught:
        await totp.verify(confirmed("u", pyotp.random_base32(), fake_clock), code)
    assert caught.value.reason == "malformed code"


async def test_non_string_code_is_refused(fake_clock: FakeClock) -> None:
    totp = make_totp(MemoryMFAStore(clock=fake_clock), fake_clock)
    with pytest.raises(InvalidOTPError):
        await totp.verify(confirmed("u", pyotp.random_base32(), fake_clock), 123456)  # type: ignore[arg-type]


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(code=st.text(max_size=40))
def test_arbitrary_input_is_refused_or_is_a_valid_code(code: str) -> None:
    clock = FakeClock(start=1_800_000_000)
    totp = make_totp(MemoryMFAStore(clock=clock), clock)
    secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    valid = {code_at(secret, clock() + offset) for offset in (-30, 0, 30)}

    async def run() -> None:
        try:
            await totp.verify(confirmed("u", secret, clock), code)
        except InvalidOTPError:
            return
        assert "".join(code.split()).replace("-", "") in valid

    anyio.run(run)


async def test_attempts_are_limited_per_account(fake_clock: FakeClock) -> None:
    store = MemoryMFAStore(clock=fake_clock)
    failures: list[tuple[str, str]] = []

    async def on_failure(user_id: str, factor: str) -> None:
        failures.append((user_id, factor))

    limit = AttemptLimit(store, max_failures=3, window=300, on_failure=on_failure)
    totp = make_totp(store, fake_clock, attempts=limit)
    secret = pyotp.random_base32()
    record = confirmed("u", secret, fake_clock)
    wrong = "000000" if code_at(secret, fake_clock()) != "000000" else "111111"
    for _ in range(3):
        with pytest.raises(InvalidOTPError):
            await totp.verify(record, wrong)
    assert failures == [("u", "totp")] * 3
    with pytest.raises(TooManyAttemptsError) as caught:
        await totp.verify(record, code_at(secret, fake_clock()))  # even the right code
    answer = http_exception(caught.value)
    assert answer.status_code == 429
    assert answer.headers is not None
    assert answer.headers["Retry-After"] == "300"
    # another account is not affected
    await totp.verify(confirmed("v", secret, fake_clock), code_at(secret, fake_clock()))
    fake_clock.advance(301)
    await totp.verify(record, code_at(secret, fake_clock()))


async def test_success_resets_the_failure_count(fake_clock: FakeClock) -> None:
    store = MemoryMFAStore(clock=fake_clock)
    totp = make_totp(store, fake_clock, attempts=AttemptLimit(store, max_failures=2))
    secret = pyotp.random_base32()
    record = confirmed("u", secret, fake_clock)
    with pytest.raises(InvalidOTPError):
        await totp.verify(record, "abc")
    await totp.verify(record, code_at(secret, fake_clock()))
    with pytest.raises(InvalidOTPError):
        await totp.verify(record, "abc")
    fake_clock.advance(30)
    await totp.verify(record, code_at(secret, fake_clock()))  # one failure since the success


async def test_replays_count_as_failures(fake_clock: FakeClock) -> None:
    store = MemoryMFAStore(clock=fake_clock)
    totp = make_totp(store, fake_clock, attempts=AttemptLimit(store, max_failures=2))
    secret = pyotp.random_base32()
    record = confirmed("u", secret, fake_clock)
    code = code_at(secret, fake_clock())
    await totp.verify(record, code)
    for _ in range(2):
        with pytest.raises(OTPReplayError):
            await totp.verify(record, code)
    with pytest.raises(TooManyAttemptsError):
        await totp.verify(record, code)


async def test_a_failing_hook_does_not_change_the_answer(
    fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(user_id: str, factor: str) -> None:
        raise RuntimeError("hook bug")

    store = MemoryMFAStore(clock=fake_clock)
    totp = make_totp(store, fake_clock, attempts=AttemptLimit(store, on_failure=broken))
    with pytest.raises(InvalidOTPError):
        await totp.verify(confirmed("u", pyotp.random_base32(), fake_clock), "000000x")
    assert "on_failure hook raised RuntimeError" in caplog.text


async def test_secret_under_a_retired_key_fails_loudly_without_leaking(
    fake_clock: FakeClock,
) -> None:
    secret = pyotp.random_base32()
    old = SecretBox([SecretBox.generate_key()])
    record = TOTPAuthenticator("u", old.encrypt(secret), confirmed_at=fake_clock())
    totp = make_totp(MemoryMFAStore(clock=fake_clock), fake_clock)  # BOX lacks the old key
    with pytest.raises(SecretDecryptionError) as caught:
        await totp.verify(record, code_at(secret, fake_clock()))
    assert secret not in str(caught.value)
    assert record.encrypted_secret not in repr(caught.value)


async def test_logs_never_carry_the_secret_or_the_code(
    fast_store: Any, fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    totp = make_totp(fast_store, fake_clock)
    enrolment = totp.begin_enrolment("u", "alice")
    secret = enrolment.secret.get_secret_value()
    code = code_at(secret, fake_clock())
    record = await totp.confirm_enrolment(enrolment.authenticator, code)
    with pytest.raises(InvalidOTPError) as caught:
        await totp.verify(record, code)
    assert secret not in caplog.text
    assert code not in caplog.text
    assert code not in str(caught.value)
    assert code not in repr(caught.value)
    assert "Example" in repr(totp)
    assert secret not in repr(totp)


@pytest.mark.parametrize(
    "options",
    [
        {"issuer": ""},
        {"issuer": "Evil:Corp"},
        {"digits": 5},
        {"digits": 9},
        {"period": 10},
        {"period": 121},
        {"algorithm": "MD5"},
        {"window": 3},
        {"window": -1},
    ],
)
def test_unsafe_configuration_is_refused(options: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {"box": BOX, "used_codes": MemoryMFAStore(), "issuer": "Example"}
    arguments.update(options)
    with pytest.raises(ConfigurationError):
        TOTP(**arguments)
