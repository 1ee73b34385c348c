"""Recovery codes: entropy, digests only, single use under concurrency, new set voids old."""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from fastapi_secure.errors import ConfigurationError
from fastapi_secure.http_errors import status_of
from fastapi_secure.mfa import AttemptLimit, InvalidOTPError, RecoveryCodes, TooManyAttemptsError
from fastapi_secure.mfa.recovery import ALPHABET
from fastapi_secure.mfa.stores import MemoryMFAStore
from fastapi_secure.testing import FakeClock

pytestmark = pytest.mark.anyio

CODE_SHAPE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$")


async def test_ten_codes_of_at_least_50_bits_in_groups(fast_store: Any) -> None:
    codes = RecoveryCodes(fast_store)
    shown = await codes.generate("u")
    assert len(shown) == 10
    assert len(set(shown)) == 10
    assert all(CODE_SHAPE.match(code) for code in shown)
    assert codes.bits == 60
    assert codes.bits >= 50
    assert math.log2(len(ALPHABET)) * 12 == codes.bits
    assert await codes.remaining("u") == 10


async def test_only_digests_are_stored(fake_clock: FakeClock) -> None:
    store = MemoryMFAStore(clock=fake_clock)
    codes = RecoveryCodes(store)
    shown = await codes.generate("u")
    stored = next(iter(store._codes.values()))
    assert len(stored) == 10
    for code in shown:
        assert code not in stored
        assert code.replace("-", "") not in stored
        expected = hmac.new(
            b"fastapi-secure recovery codes v1",
            f"u\x00{code.replace('-', '')}".encode(),
            hashlib.sha256,
        ).hexdigest()
        assert expected in stored


async def test_each_code_works_once(fast_store: Any) -> None:
    codes = RecoveryCodes(fast_store)
    shown = await codes.generate("u")
    assert await codes.verify("u", shown[3]) == 9
    with pytest.raises(InvalidOTPError) as caught:
        await codes.verify("u", shown[3])
    assert caught.value.message == "invalid code"
    assert status_of(caught.value) == 401
    assert await codes.verify("u", shown[4]) == 8


async def test_wrong_code_and_another_accounts_code_are_refused(fast_store: Any) -> None:
    codes = RecoveryCodes(fast_store)
    alice = await codes.generate("alice")
    bob = await codes.generate("bob")
    with pytest.raises(InvalidOTPError):
        await codes.verify("alice", bob[0])
    with pytest.raises(InvalidOTPError):
        await codes.verify("alice", "0000-0000-0000")
    with pytest.raises(InvalidOTPError):
        await codes.verify("nobody", alice[0])
    assert await codes.remaining("alice") == 10


async def test_a_new_set_voids_the_old(fast_store: Any) -> None:
    codes = RecoveryCodes(fast_store)
    old = await codes.generate("u")
    new = await codes.generate("u")
    assert not set(old) & set(new)
    for code in old:
        with pytest.raises(InvalidOTPError):
            await codes.verify("u", code)
    assert await codes.verify("u", new[0]) == 9


async def test_concurrent_reuse_exactly_one_wins(fast_store: Any) -> None:
    codes = RecoveryCodes(fast_store)
    code = (await codes.generate("u"))[0]
    outcomes: list[bool] = []

    async def attempt() -> None:
        try:
            await codes.verify("u", code)
            outcomes.append(True)
        except InvalidOTPError:
            outcomes.append(False)

    async with anyio.create_task_group() as group:
        for _ in range(20):
            group.start_soon(attempt)
    assert sorted(outcomes) == [False] * 19 + [True]
    assert await codes.remaining("u") == 9


@pytest.mark.parametrize(
    "transform",
    [
        lambda c: c.lower(),
        lambda c: c.replace("-", ""),
        lambda c: c.replace("-", " "),
        lambda c: f"  {c}  ",
        lambda c: c.replace("0", "o").replace("1", "l"),
    ],
)
async def test_input_is_forgiving_as_crockford_intends(transform: Any) -> None:
    codes = RecoveryCodes(MemoryMFAStore())
    shown = await codes.generate("u")
    await codes.verify("u", transform(shown[0]))


@pytest.mark.parametrize(
    "code",
    ["", "ABCD", "ABCD-EFGH-JKMN-P", "ABCD-EFGH-JKM!", "ÀBCD-EFGH-JKMN", "U" * 12, "x" * 500],
)
async def test_malformed_codes_are_refused_without_touching_the_store(code: str) -> None:
    store = MemoryMFAStore()
    codes = RecoveryCodes(store)
    await codes.generate("u")
    with pytest.raises(InvalidOTPError) as caught:
        await codes.verify("u", code)
    assert caught.value.reason == "malformed recovery code"
    assert await codes.remaining("u") == 10


async def test_non_string_is_refused() -> None:
    codes = RecoveryCodes(MemoryMFAStore())
    with pytest.raises(InvalidOTPError):
        await codes.verify("u", None)  # type: ignore[arg-type]
    assert codes.digest("u", 12) is None  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_arbitrary_input_never_matches_and_never_raises_anything_else(code: str) -> None:
    async def run() -> None:
        codes = RecoveryCodes(MemoryMFAStore())
        await codes.generate("u")
        with pytest.raises(InvalidOTPError):
            await codes.verify("u", code)

    anyio.run(run)


async def test_pepper_changes_the_digests() -> None:
    plain = RecoveryCodes(MemoryMFAStore())
    peppered = RecoveryCodes(MemoryMFAStore(), pepper=SecretStr("p" * 32))
    assert plain.digest("u", "ABCD-EFGH-JKMN") != peppered.digest("u", "ABCD-EFGH-JKMN")
    assert plain.digest("u", "ABCD-EFGH-JKMN") != plain.digest("v", "ABCD-EFGH-JKMN")
    assert "peppered=True" in repr(peppered)
    assert "p" * 32 not in repr(peppered)
    shown = await peppered.generate("u")
    await peppered.verify("u", shown[0])


async def test_attempts_shared_with_the_limit(fake_clock: FakeClock) -> None:
    store = MemoryMFAStore(clock=fake_clock)
    failures: list[tuple[str, str]] = []

    async def hook(user_id: str, factor: str) -> None:
        failures.append((user_id, factor))

    codes = RecoveryCodes(store, attempts=AttemptLimit(store, max_failures=2, on_failure=hook))
    shown = await codes.generate("u")
    for _ in range(2):
        with pytest.raises(InvalidOTPError):
            await codes.verify("u", "0000-0000-0000")
    assert failures == [("u", "recovery_code")] * 2
    with pytest.raises(TooManyAttemptsError):
        await codes.verify("u", shown[0])
    fake_clock.advance(300)
    assert await codes.verify("u", shown[0]) == 9


async def test_custom_sizes() -> None:
    codes = RecoveryCodes(MemoryMFAStore(), count=4, groups=2, group_size=5)
    shown = await codes.generate("u")
    assert len(shown) == 4
    assert all(len(code) == 11 for code in shown)
    await codes.verify("u", shown[1])


@pytest.mark.parametrize(
    "options",
    [
        {"count": 0},
        {"count": 101},
        {"groups": 2, "group_size": 4},  # 40 bits
        {"groups": 0},
        {"groups": 1.5},
        {"pepper": b"short"},
    ],
)
def test_weak_configuration_is_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        RecoveryCodes(MemoryMFAStore(), **options)
