"""SecretBox: secrets at rest under MultiFernet, rotation, and no leaks."""

from __future__ import annotations

import base64
import logging

import pytest
from cryptography.fernet import Fernet
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from fastapi_secure.errors import ConfigurationError
from fastapi_secure.mfa import SecretBox, SecretDecryptionError

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def test_round_trip_and_ciphertext_hides_the_secret() -> None:
    box = SecretBox([SecretBox.generate_key()])
    token = box.encrypt(SECRET)
    assert SECRET not in token
    assert box.decrypt_text(token) == SECRET
    assert box.decrypt(token.encode()) == SECRET.encode()
    # Fernet is randomized: the same secret never gives the same token twice.
    assert box.encrypt(SECRET) != token


def test_key_rotation_first_encrypts_all_decrypt_then_old_key_retired() -> None:
    old, new = SecretBox.generate_key(), SecretBox.generate_key()
    token_old = SecretBox([old]).encrypt(SECRET)

    rotating = SecretBox([new, old])
    assert rotating.decrypt_text(token_old) == SECRET  # old values still readable
    token_new = rotating.encrypt(SECRET)
    assert SecretBox([new]).decrypt_text(token_new) == SECRET  # new values use the first key
    with pytest.raises(SecretDecryptionError):
        SecretBox([old]).decrypt(token_new)

    rotated = rotating.rotate(token_old)
    after = SecretBox([new])  # the old key is dropped
    assert after.decrypt_text(rotated) == SECRET
    with pytest.raises(SecretDecryptionError):
        after.decrypt(token_old)  # a value nobody rotated is now unreadable


def test_rotate_refuses_a_token_no_key_authenticates() -> None:
    box = SecretBox([SecretBox.generate_key()])
    foreign = SecretBox([SecretBox.generate_key()]).encrypt(SECRET)
    with pytest.raises(SecretDecryptionError):
        box.rotate(foreign)
    with pytest.raises(SecretDecryptionError):
        box.rotate("é-not-ascii")


def test_tampered_ciphertext_is_refused() -> None:
    box = SecretBox([SecretBox.generate_key()])
    raw = bytearray(base64.urlsafe_b64decode(box.encrypt(SECRET)))
    raw[40] ^= 0x01  # one bit of the ciphertext
    tampered = base64.urlsafe_b64encode(bytes(raw)).decode()
    with pytest.raises(SecretDecryptionError) as caught:
        box.decrypt(tampered)
    assert SECRET not in str(caught.value)
    assert tampered not in str(caught.value)
    assert tampered not in repr(caught.value)


@pytest.mark.parametrize("token", ["", "x", "gAAAAA", "é", "A" * 1000, "\x00"])
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(SecretDecryptionError):
        SecretBox([SecretBox.generate_key()]).decrypt(token)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_arbitrary_input_never_decrypts_and_never_raises_anything_else(token: str | bytes) -> None:
    box = SecretBox([Fernet.generate_key()])
    with pytest.raises(SecretDecryptionError):
        box.decrypt(token)


def test_decrypt_text_refuses_non_utf8_plaintext() -> None:
    box = SecretBox([SecretBox.generate_key()])
    with pytest.raises(SecretDecryptionError):
        box.decrypt_text(box.encrypt(b"\xff\xfe"))


def test_from_settings_takes_secretstr_and_never_shows_keys(
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = SecretBox.generate_key()
    caplog.set_level(logging.DEBUG)
    box = SecretBox.from_settings([SecretStr(key), SecretStr(SecretBox.generate_key())])
    assert repr(box) == "SecretBox(keys=2)"
    assert key not in repr(box)
    assert key not in str(box)
    token = box.encrypt(SECRET)
    assert box.decrypt_text(token) == SECRET
    assert key not in caplog.text
    assert SECRET not in caplog.text


@pytest.mark.parametrize("keys", [[], "one-string-not-a-list", b"bytes", SecretStr("x")])
def test_needs_a_list_of_keys(keys: object) -> None:
    with pytest.raises(ConfigurationError):
        SecretBox(keys)  # type: ignore[arg-type]


def test_a_bad_key_is_named_by_position_never_echoed() -> None:
    bad = "definitely-not-a-fernet-key-but-a-secret"
    with pytest.raises(ConfigurationError) as caught:
        SecretBox([SecretBox.generate_key(), SecretStr(bad)])
    assert "#1" in str(caught.value)
    assert bad not in str(caught.value)
