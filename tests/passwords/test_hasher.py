"""PasswordHasher: profiles, verify that never raises, migration, bounds, async twins.

Everything runs on ``PasswordHasher.insecure_fast_for_tests()`` (argon2id
t=1 m=8 KiB, bcrypt cost 4) except the few tests about the real profiles.
Scheme-specific cases are in ``test_argon2.py`` and ``test_bcrypt.py``.
"""

from __future__ import annotations

import logging
import os
import threading
import unicodedata

import anyio
import argon2
import pytest
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from fastapi_secure.errors import (
    ConfigurationError,
    PasswordTooLongError,
)
from fastapi_secure.passwords import (
    Argon2Scheme,
    BcryptScheme,
    PasswordHasher,
    PasswordScheme,
)
from fastapi_secure.settings import SecuritySettings
from tests.support.password_schemes import (
    FAST,
    RecordingScheme,
    cheap_argon2,
    cheap_bcrypt,
    legacy_bcrypt_hash,
)

# -- profiles and configuration -----------------------------------------------------


def test_default_is_argon2id_rfc9106_low_memory() -> None:
    hasher = PasswordHasher()
    stored = hasher.hash("correct horse battery staple")  # the one 64 MiB hash of the suite
    params = argon2.extract_parameters(stored)
    assert params.type is argon2.Type.ID
    assert (params.time_cost, params.memory_cost, params.parallelism) == (3, 65536, 4)
    assert params == argon2.profiles.RFC_9106_LOW_MEMORY
    assert isinstance(hasher.schemes[1], BcryptScheme), "bcrypt verifies legacy hashes"


def test_recommended_is_the_default_profile() -> None:
    scheme = PasswordHasher.recommended().current
    assert isinstance(scheme, Argon2Scheme)
    assert scheme.parameters == argon2.profiles.RFC_9106_LOW_MEMORY


def test_owasp_minimum_profile() -> None:
    stored = PasswordHasher.owasp_minimum().hash("correct horse battery staple")
    params = argon2.extract_parameters(stored)
    assert params.type is argon2.Type.ID
    assert (params.time_cost, params.memory_cost, params.parallelism) == (2, 19456, 1)


def test_from_settings_picks_the_named_profile() -> None:
    owasp = PasswordHasher.from_settings(SecuritySettings(password_profile="owasp_minimum"))
    default = PasswordHasher.from_settings(SecuritySettings(), max_concurrency=2)
    assert isinstance(owasp.current, Argon2Scheme)
    assert owasp.current.parameters.memory_cost == 19456
    assert isinstance(default.current, Argon2Scheme)
    assert default.current.parameters == argon2.profiles.RFC_9106_LOW_MEMORY
    assert default.max_concurrency == 2


@pytest.mark.parametrize(
    "kwargs",
    [
        {"schemes": []},
        {"schemes": [object()]},
        {"normalize": "NFX"},
        {"max_length": 63},
        {"max_concurrency": 0},
    ],
)
def test_hasher_configuration_mistakes(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        PasswordHasher(**kwargs)  # type: ignore[arg-type]


def test_insecure_fast_for_tests_is_weak_on_purpose() -> None:
    stored = FAST.hash("x" * 8)
    params = argon2.extract_parameters(stored)
    assert (params.time_cost, params.memory_cost) == (1, 8)
    assert isinstance(FAST.schemes[1], BcryptScheme)
    assert FAST.schemes[1].rounds == 4
    assert "Argon2Scheme(time_cost=1, memory_cost=8" in repr(FAST)


# -- hash and verify ------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(password=st.text(max_size=200))
def test_hash_then_verify_round_trips_for_any_text(password: str) -> None:
    stored = FAST.hash(password)
    assert FAST.verify(password, stored)
    assert not FAST.verify(password + "x", stored)


def test_lone_surrogates_hash_and_verify_without_raising() -> None:
    password = "pass\ud800word"  # valid in JSON, not encodable as UTF-8
    stored = FAST.hash(password)
    assert FAST.verify(password, stored)
    assert not FAST.verify("pass\ud801word", stored)


def test_wrong_password_is_false() -> None:
    stored = FAST.hash("correct horse battery staple")
    assert not FAST.verify("correct horse battery stapl", stored)
    assert not FAST.verify("", stored)
    assert FAST.verify_and_update("Correct horse battery staple", stored) == (False, None)


def test_hash_rejects_non_text() -> None:
    with pytest.raises(TypeError):
        FAST.hash(b"bytes")  # type: ignore[arg-type]


def test_verify_non_text_password_is_false() -> None:
    stored = FAST.hash("secret")
    assert not FAST.verify(b"secret", stored)  # type: ignore[arg-type]
    assert not FAST.verify(None, stored)  # type: ignore[arg-type]


def test_stored_hash_as_bytes_is_accepted() -> None:
    stored = FAST.hash("correct horse")
    assert FAST.verify("correct horse", stored.encode())


@settings(max_examples=150, deadline=None)
@given(stored=st.one_of(st.text(max_size=120), st.binary(max_size=120)))
def test_verify_with_arbitrary_text_as_hash_never_raises(stored: str | bytes) -> None:
    assert FAST.verify("password", stored) is False
    assert FAST.verify_and_update("password", stored) == (False, None)
    assert FAST.needs_rehash(stored) is True


@settings(max_examples=80, deadline=None)
@given(suffix=st.text(max_size=40), cut=st.integers(min_value=0, max_value=120))
def test_verify_with_damaged_real_hashes_never_raises(suffix: str, cut: int) -> None:
    for stored in (FAST.hash("password"), legacy_bcrypt_hash(b"password")):
        damaged = stored[:cut] + suffix
        result = FAST.verify("password", damaged)
        assert result is (damaged == stored)


def _malformed_hashes() -> list[str]:
    good_argon2 = FAST.hash("hunter2-hunter2")
    good_bcrypt = legacy_bcrypt_hash(b"hunter2-hunter2")
    return [
        "",
        "not a hash",
        good_argon2[:-10],
        "$argon2id$v=19$m=8,t=1,p=1$!!!!$!!!!",
        "$argon2x$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
        good_bcrypt[:-5],
        good_bcrypt[:7] + "!" * 53,
        good_bcrypt.replace("$04$", "$99$"),
        "$2x$" + good_bcrypt[4:],
        "$1$saltsalt$hashhashhashhashhash",
    ]


@pytest.mark.parametrize("index", range(len(_malformed_hashes())))
def test_malformed_hash_is_false_and_logged_without_secrets(
    index: int, caplog: pytest.LogCaptureFixture
) -> None:
    stored = _malformed_hashes()[index]
    password = "hunter2-hunter2"
    with caplog.at_level(logging.DEBUG, logger="fastapi_secure"):
        assert FAST.verify(password, stored) is False
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings, "a malformed stored hash must be reported"
    for record in caplog.records:
        text = record.getMessage()
        assert password not in text
        assert not stored or stored not in text
        assert "$argon2" not in text
        assert "$2" not in text


def test_custom_scheme_failure_is_false_and_logged_without_secrets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Exploding(RecordingScheme):
        def verify(self, secret: bytes, hash: str) -> bool:
            raise RuntimeError(f"boom {secret!r} {hash}")

    hasher = PasswordHasher([Exploding()])
    stored = hasher.hash("hunter2-hunter2")
    with caplog.at_level(logging.DEBUG, logger="fastapi_secure"):
        assert hasher.verify("hunter2-hunter2", stored) is False
    assert [r.levelno for r in caplog.records] == [logging.ERROR]
    assert "RuntimeError" in caplog.records[0].getMessage()
    assert "hunter2" not in caplog.text
    assert stored not in caplog.text


# -- rehash ---------------------------------------------------------------------------


def test_needs_rehash_of_a_damaged_current_hash_is_true() -> None:
    assert FAST.needs_rehash(FAST.hash("pw")[:20])
    assert PasswordHasher([cheap_bcrypt()]).needs_rehash("$2b$04$tooshort")


# -- bounds ----------------------------------------------------------------------------


def test_over_max_length_is_refused_before_any_hashing() -> None:
    scheme = RecordingScheme()
    hasher = PasswordHasher([scheme])
    assert hasher.max_length == 1024
    hasher.hash("a" * 1024)
    with pytest.raises(PasswordTooLongError) as caught:
        hasher.hash("a" * 1025)
    assert (caught.value.limit, caught.value.unit) == (1024, "characters")
    assert len(scheme.hashed) == 1


def test_verify_of_an_over_long_password_is_false_without_hashing() -> None:
    scheme = RecordingScheme()
    hasher = PasswordHasher([scheme], max_length=64)
    stored = hasher.hash("a" * 64)
    assert hasher.verify("a" * 64, stored)
    assert not hasher.verify("a" * 65, stored)
    hasher.dummy_verify("a" * 65)
    assert len(scheme.verified) == 1, "over-long input must not reach the scheme"


@pytest.mark.anyio
async def test_ahash_refuses_over_long_password_on_the_loop() -> None:
    with pytest.raises(PasswordTooLongError):
        await FAST.ahash("a" * 1025)


# -- normalization -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "stored_as"),
    [
        ("\ufb01ne print", "fine print"),  # ligature fi
        ("\uff50\uff41\uff53\uff53", "pass"),  # full-width letters
        ("Cafe\u0301-latte", "Café-latte"),  # decomposed vs composed
        ("\u2460\u2461\u2462", "123"),  # circled digits
    ],
)
def test_nfkc_equivalent_passwords_verify(typed: str, stored_as: str) -> None:
    assert unicodedata.normalize("NFKC", typed) == unicodedata.normalize("NFKC", stored_as)
    stored = FAST.hash(stored_as)
    assert FAST.verify(typed, stored)
    assert FAST.verify_and_update(typed, stored) == (True, None)


def test_normalization_can_be_turned_off() -> None:
    hasher = PasswordHasher([cheap_argon2()], normalize=None)
    stored = hasher.hash("fine print")
    assert not hasher.verify("\ufb01ne print", stored)


def test_hash_made_without_normalization_still_verifies_and_migrates() -> None:
    unnormalized = PasswordHasher([cheap_argon2()], normalize=None)
    typed = "\ufb01ne print, \uff50\uff41\uff53\uff53"
    stored = unnormalized.hash(typed)
    valid, upgraded = FAST.verify_and_update(typed, stored)
    assert valid
    assert upgraded is not None, "matched only as typed: store the normalized form"
    assert FAST.verify(unicodedata.normalize("NFKC", typed), upgraded)
    assert FAST.verify(typed, upgraded)
    strict = PasswordHasher([cheap_argon2()], verify_unnormalized=False)
    assert not strict.verify(typed, stored)


def test_unnormalized_fallback_costs_the_same_for_unknown_users() -> None:
    scheme = RecordingScheme()
    hasher = PasswordHasher([scheme])
    stored = hasher.hash("something else")
    scheme.verified.clear()
    hasher.verify("\ufb01ne print", stored)
    real = len(scheme.verified)
    scheme.verified.clear()
    hasher.dummy_verify("\ufb01ne print")
    assert real == len(scheme.verified) == 2


# -- dummy verify --------------------------------------------------------------------


def test_dummy_verify_does_a_real_verify_with_current_parameters() -> None:
    scheme = RecordingScheme(cheap_argon2(time_cost=2, memory_cost=16))
    hasher = PasswordHasher([scheme, cheap_bcrypt()])
    hasher.dummy_verify("whatever the user typed")
    hasher.dummy_verify()
    assert len(scheme.hashed) == 1, "the dummy hash is made once"
    assert len(scheme.verified) == 2
    dummy_hashes = {stored for _, stored in scheme.verified}
    assert len(dummy_hashes) == 1
    (dummy,) = dummy_hashes
    params = argon2.extract_parameters(dummy)
    assert (params.time_cost, params.memory_cost) == (2, 16)
    assert scheme.verified[0][0] == b"whatever the user typed"


def test_dummy_verify_spends_the_work_of_a_wrong_password_for_a_real_user() -> None:
    scheme = RecordingScheme()
    hasher = PasswordHasher([scheme])
    stored = hasher.hash("real password")
    scheme.verified.clear()
    hasher.verify("guess", stored)
    hasher.dummy_verify("guess")
    (real_secret, real_hash), (dummy_secret, dummy_hash) = scheme.verified
    assert real_secret == dummy_secret
    assert argon2.extract_parameters(real_hash) == argon2.extract_parameters(dummy_hash)


def test_malformed_hash_spends_a_dummy_verify() -> None:
    scheme = RecordingScheme()
    hasher = PasswordHasher([scheme])
    assert not hasher.verify("guess", "garbage")
    assert len(scheme.verified) == 1


@pytest.mark.anyio
async def test_adummy_verify_uses_the_same_dummy_hash() -> None:
    scheme = RecordingScheme()
    hasher = PasswordHasher([scheme])
    await hasher.adummy_verify("guess")
    hasher.dummy_verify("guess")
    assert len(scheme.hashed) == 1
    assert len({stored for _, stored in scheme.verified}) == 1


# -- async twins ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_async_twins_match_the_sync_api() -> None:
    stored = await FAST.ahash("correct horse")
    assert await FAST.averify("correct horse", stored)
    assert not await FAST.averify("wrong", stored)
    assert await FAST.averify("x", "garbage") is False
    assert await FAST.averify_and_update("correct horse", stored) == (True, None)
    valid, upgraded = await FAST.averify_and_update("pw", legacy_bcrypt_hash(b"pw"))
    assert valid
    assert upgraded is not None
    assert upgraded.startswith("$argon2id$")


@pytest.mark.anyio
async def test_async_twins_do_not_run_on_the_event_loop_thread() -> None:
    loop_thread = threading.get_ident()
    seen: list[int] = []

    class ThreadProbe(RecordingScheme):
        def verify(self, secret: bytes, hash: str) -> bool:
            seen.append(threading.get_ident())
            return super().verify(secret, hash)

        def hash(self, secret: bytes) -> str:
            seen.append(threading.get_ident())
            return super().hash(secret)

    hasher = PasswordHasher([ThreadProbe()])
    stored = await hasher.ahash("pw")
    await hasher.averify("pw", stored)
    await hasher.averify_and_update("pw", stored)
    await hasher.adummy_verify("pw")
    assert len(seen) >= 4
    assert loop_thread not in seen


class ConcurrencyProbe(RecordingScheme):
    """Counts the verifications running at once; each holds its thread until released."""

    def __init__(self) -> None:
        super().__init__()
        self.active = 0
        self.peak = 0
        self.release = threading.Event()

    def _hold(self) -> None:
        with self._lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            if not self.release.wait(timeout=10):
                raise TimeoutError("the test never released the probe")
        finally:
            with self._lock:
                self.active -= 1

    def verify(self, secret: bytes, hash: str) -> bool:
        self._hold()
        return super().verify(secret, hash)

    def hash(self, secret: bytes) -> str:
        self._hold()
        return super().hash(secret)


async def hold_until_saturated(hasher: PasswordHasher, probe: ConcurrencyProbe, total: int) -> None:
    """Wait until ``limit`` verifications run and every other one is queued on the limiter.

    Only then is the peak meaningful: the rest are provably waiting, not late.
    Without the hasher's own limiter, ``tasks_waiting`` never gets there.
    """
    limit = hasher.max_concurrency
    with anyio.fail_after(10):
        # Nothing signals "the limiter queue is full", so poll (the reason for the noqa).
        while not (  # noqa: ASYNC110
            probe.active == limit and hasher.limiter.statistics().tasks_waiting == total - limit
        ):
            await anyio.sleep(0.001)
    assert probe.peak == limit
    probe.release.set()


@pytest.mark.anyio
@pytest.mark.parametrize("limit", [1, 2, 3])
async def test_capacity_limit_bounds_concurrent_hashing_threads(limit: int) -> None:
    probe = ConcurrencyProbe()
    hasher = PasswordHasher([probe], max_concurrency=limit)
    stored = probe.inner.hash(b"pw")
    results: list[bool] = []
    total = limit * 4

    async def login() -> None:
        results.append(await hasher.averify("pw", stored))

    async with anyio.create_task_group() as tg:
        for _ in range(total):
            tg.start_soon(login)
        await hold_until_saturated(hasher, probe, total)
    assert results == [True] * total
    assert probe.peak == limit


@pytest.mark.anyio
async def test_every_async_twin_shares_the_capacity_limit() -> None:
    probe = ConcurrencyProbe()
    hasher = PasswordHasher([probe], max_concurrency=2)
    stored = probe.inner.hash(b"pw")
    probe.release.set()
    hasher.dummy_verify()  # make the dummy hash before the probe starts holding
    probe.release.clear()
    probe.peak = 0
    async with anyio.create_task_group() as tg:
        for _ in range(2):
            tg.start_soon(hasher.ahash, "pw")
            tg.start_soon(hasher.averify, "pw", stored)
            tg.start_soon(hasher.averify_and_update, "pw", stored)
            tg.start_soon(hasher.adummy_verify, "pw")
        await hold_until_saturated(hasher, probe, 8)
    assert probe.peak == 2


@pytest.mark.parametrize(("cpus", "expected"), [(None, 1), (1, 1), (2, 1), (4, 3), (64, 4)])
def test_default_capacity_leaves_one_core_to_the_event_loop(
    monkeypatch: pytest.MonkeyPatch, cpus: int | None, expected: int
) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    assert PasswordHasher([cheap_argon2()]).max_concurrency == expected


def test_schemes_satisfy_the_protocol() -> None:
    assert isinstance(cheap_argon2(), PasswordScheme)
    assert isinstance(cheap_bcrypt(), PasswordScheme)
    assert isinstance(RecordingScheme(), PasswordScheme)


def test_one_hasher_serves_successive_event_loops() -> None:
    hasher = PasswordHasher.insecure_fast_for_tests(max_concurrency=1)
    stored = anyio.run(hasher.ahash, "correct horse")
    assert anyio.run(hasher.averify, "correct horse", stored)
    assert anyio.run(hasher.averify, "correct horse", stored)


class Login(BaseModel):
    username: str
    password: str


def test_login_route_through_fastapi() -> None:
    hasher = PasswordHasher.insecure_fast_for_tests()
    users = {"ada": legacy_bcrypt_hash(b"analytical engine")}
    app = FastAPI()

    @app.post("/login")
    async def login(body: Login) -> dict[str, bool]:
        stored = users.get(body.username)
        if stored is None:
            await hasher.adummy_verify(body.password)
            raise HTTPException(401)
        valid, new_hash = await hasher.averify_and_update(body.password, stored)
        if not valid:
            raise HTTPException(401)
        if new_hash is not None:
            users[body.username] = new_hash
        return {"upgraded": new_hash is not None}

    with TestClient(app) as client:
        ok = client.post("/login", json={"username": "ada", "password": "analytical engine"})
        assert ok.json() == {"upgraded": True}
        assert users["ada"].startswith("$argon2id$")
        again = client.post("/login", json={"username": "ada", "password": "analytical engine"})
        assert again.json() == {"upgraded": False}
        for body in (
            {"username": "ada", "password": "wrong"},
            {"username": "nobody", "password": "analytical engine"},
            {"username": "ada", "password": "x" * 5000},
        ):
            assert client.post("/login", json=body).status_code == 401
    users["ada"] = "$2b$12$damaged"
    with TestClient(app) as client:
        damaged = client.post("/login", json={"username": "ada", "password": "analytical engine"})
        assert damaged.status_code == 401


def test_a_nul_appended_to_a_real_hash_is_malformed_not_the_same_hash() -> None:
    # Found by the property test above: argon2's C library reads up to the NUL.
    stored = FAST.hash("password")
    for damaged in (stored + "\x00", stored + "\x00junk", stored.encode() + b"\x00"):
        assert FAST.verify("password", damaged) is False
        assert FAST.needs_rehash(damaged) is True
