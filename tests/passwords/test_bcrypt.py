"""BcryptScheme: cost floor, legacy $2a$/$2b$/$2y$ hashes, and 72 bytes without truncation."""

from __future__ import annotations

import logging

import bcrypt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastapi_secure.errors import ConfigurationError, PasswordTooLongError
from fastapi_secure.passwords import Argon2Scheme, BcryptScheme, PasswordHasher
from tests.support.password_schemes import (
    FAST,
    RecordingScheme,
    cheap_argon2,
    cheap_bcrypt,
    legacy_bcrypt_hash,
)


def test_bcrypt_cost_below_12_is_refused_unless_explicitly_allowed() -> None:
    with pytest.raises(ConfigurationError, match="at least 12"):
        BcryptScheme(rounds=11)
    assert BcryptScheme(rounds=4, allow_weak_parameters=True).rounds == 4
    for rounds in (3, 32):
        with pytest.raises(ConfigurationError):
            BcryptScheme(rounds=rounds, allow_weak_parameters=True)


def test_bcrypt_as_current_scheme_uses_2b_and_cost_12() -> None:
    hasher = PasswordHasher([BcryptScheme(), Argon2Scheme.owasp_minimum()])
    stored = hasher.hash("correct horse battery staple")  # one real cost-12 hash
    assert stored.startswith("$2b$12$")
    assert hasher.verify("correct horse battery staple", stored)


@settings(max_examples=40, deadline=None)
@given(
    password=st.text(alphabet=st.characters(codec="utf-8"), max_size=36).filter(
        lambda text: len(text.encode()) <= 72  # four-byte characters fill 72 bytes at 18
    )
)
def test_bcrypt_current_round_trips_within_72_bytes(password: str) -> None:
    hasher = PasswordHasher([cheap_bcrypt()], normalize=None)
    stored = hasher.hash(password)
    assert stored.startswith("$2b$04$")
    assert hasher.verify(password, stored)


def test_legacy_bcrypt_verifies_and_migrates_to_argon2() -> None:
    stored = legacy_bcrypt_hash(b"correct horse battery staple")
    assert FAST.needs_rehash(stored)
    valid, new_hash = FAST.verify_and_update("correct horse battery staple", stored)
    assert valid
    assert new_hash is not None
    assert new_hash.startswith("$argon2id$")
    assert FAST.verify("correct horse battery staple", new_hash)
    assert not FAST.needs_rehash(new_hash)


@pytest.mark.parametrize("prefix", [b"2a", b"2y"])
def test_passlib_style_2a_and_2y_hashes_verify(prefix: bytes) -> None:
    stored = legacy_bcrypt_hash(b"tr0ub4dor&3", prefix=prefix)
    assert stored.startswith(f"${prefix.decode()}$")
    assert FAST.verify("tr0ub4dor&3", stored)


def test_wrong_password_against_legacy_bcrypt_gives_no_new_hash() -> None:
    stored = legacy_bcrypt_hash(b"correct horse battery staple")
    assert FAST.verify_and_update("wrong", stored) == (False, None)


def test_bcrypt_current_rehashes_weaker_cost_and_2a_prefix() -> None:
    hasher = PasswordHasher([cheap_bcrypt(rounds=5)])
    assert hasher.needs_rehash(legacy_bcrypt_hash(b"pw", rounds=4))
    assert hasher.needs_rehash(legacy_bcrypt_hash(b"pw", rounds=5, prefix=b"2a"))
    assert hasher.needs_rehash(legacy_bcrypt_hash(b"pw", rounds=5, prefix=b"2y"))
    assert not hasher.needs_rehash(legacy_bcrypt_hash(b"pw", rounds=5))
    assert not hasher.needs_rehash(legacy_bcrypt_hash(b"pw", rounds=6))
    assert hasher.needs_rehash(FAST.hash("pw")), "another scheme"


def test_bcrypt_current_limits_to_72_utf8_bytes_without_truncation() -> None:
    hasher = PasswordHasher([cheap_bcrypt()])
    stored = hasher.hash("a" * 72)
    assert hasher.verify("a" * 72, stored)
    with pytest.raises(PasswordTooLongError) as caught:
        hasher.hash("a" * 73)
    assert (caught.value.limit, caught.value.unit) == (72, "bytes")
    assert hasher.hash("é" * 36).startswith("$2b$")  # 72 bytes
    with pytest.raises(PasswordTooLongError):
        hasher.hash("é" * 37)  # 37 characters, 74 bytes


def test_bcrypt_scheme_itself_never_truncates() -> None:
    with pytest.raises(PasswordTooLongError):
        cheap_bcrypt().hash(b"a" * 73)


def test_migrating_to_bcrypt_keeps_a_legacy_hash_it_cannot_replace() -> None:
    long_password = "a long passphrase that is well over the bcrypt limit of seventy-two bytes"
    stored = PasswordHasher([cheap_argon2()]).hash(long_password)
    to_bcrypt = PasswordHasher([cheap_bcrypt(), cheap_argon2()])
    assert to_bcrypt.verify_and_update(long_password, stored) == (True, None)


def test_password_over_72_bytes_against_bcrypt_is_false_not_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # passlib truncated silently: this hash is of the first 72 bytes only.
    long_password = "x" * 72 + "-and-the-rest"
    stored = legacy_bcrypt_hash(long_password.encode()[:72])
    with pytest.raises(ValueError, match="72 bytes"):
        bcrypt.checkpw(long_password.encode(), stored.encode())  # what bcrypt 5 does
    with caplog.at_level(logging.DEBUG, logger="fastapi_secure"):
        assert FAST.verify(long_password, stored) is False
        assert FAST.verify_and_update(long_password, stored) == (False, None)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], "not a broken hash"
    assert long_password not in caplog.text
    assert stored not in caplog.text


def test_over_72_bytes_against_bcrypt_spends_the_same_work_as_a_wrong_password() -> None:
    scheme = RecordingScheme()
    hasher = PasswordHasher([scheme, cheap_bcrypt()])
    stored = legacy_bcrypt_hash(b"short")
    assert not hasher.verify("y" * 80, stored)
    assert len(scheme.verified) == 1, "a dummy argon2 verify stands in for the skipped bcrypt"


def test_nfkc_is_applied_before_the_bcrypt_byte_limit() -> None:
    hasher = PasswordHasher([cheap_bcrypt()])
    # 36 ligatures are 108 bytes as typed but 72 bytes after NFKC ("fi" x 36).
    stored = hasher.hash("\ufb01" * 36)
    assert hasher.verify("fi" * 36, stored)
