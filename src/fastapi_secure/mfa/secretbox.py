"""Secrets at rest: :class:`SecretBox` encrypts second-factor secrets with keys you give it.

TOTP seeds must be stored in a form the server can read back (unlike
passwords, they cannot be hashed), so they are encrypted with Fernet
(AES-128-CBC + HMAC-SHA256, from ``cryptography``) under a
:class:`~cryptography.fernet.MultiFernet`: the first key encrypts, every key
decrypts. Rotation is three steps: put a new key first, re-encrypt the stored
values with :meth:`SecretBox.rotate` (a background job), then drop the old
key. A value encrypted under a dropped key, or altered in the database,
raises :class:`~fastapi_secure.mfa.errors.SecretDecryptionError`.

Neither a key nor a plaintext ever appears in a ``repr``, a log line or an
error message.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from fastapi_secure._optional import require
from fastapi_secure.errors import ConfigurationError
from fastapi_secure.mfa.errors import SecretDecryptionError

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet

__all__ = ["SecretBox"]

KeyLike = str | bytes | SecretStr


def _fernet_module() -> Any:
    return require("cryptography.fernet", extra="mfa", feature="SecretBox")


def _raw(key: KeyLike) -> bytes:
    if isinstance(key, SecretStr):
        key = key.get_secret_value()
    if isinstance(key, str):
        key = key.encode("ascii", "replace")
    return key


class SecretBox:
    """Encrypts and decrypts small secrets under a list of Fernet keys.

    ``keys``: url-safe base64 Fernet keys (32 bytes each; make one with
    :meth:`generate_key`), as ``str``, ``bytes`` or pydantic ``SecretStr``.
    The first key encrypts; all of them decrypt.
    """

    def __init__(self, keys: Sequence[KeyLike]) -> None:
        fernet = _fernet_module()
        if isinstance(keys, (str, bytes, SecretStr)) or not keys:
            raise ConfigurationError("SecretBox needs a non-empty list of Fernet keys")
        instances = []
        for position, key in enumerate(keys):
            try:
                instances.append(fernet.Fernet(_raw(key)))
            except (ValueError, TypeError):
                # Never echo the key: say only which one is wrong.
                raise ConfigurationError(
                    f"SecretBox key #{position} is not a Fernet key "
                    "(32 url-safe base64-encoded bytes; see SecretBox.generate_key())"
                ) from None
        self._count = len(instances)
        self._box: MultiFernet = fernet.MultiFernet(instances)
        self._invalid: type[Exception] = fernet.InvalidToken

    @classmethod
    def from_settings(cls, keys: Sequence[SecretStr]) -> SecretBox:
        """Build from settings values (``list[SecretStr]``, newest key first)."""
        return cls(list(keys))

    @staticmethod
    def generate_key() -> str:
        """A fresh random Fernet key, as text to put in your settings."""
        key: bytes = _fernet_module().Fernet.generate_key()
        return key.decode("ascii")

    def __repr__(self) -> str:
        return f"SecretBox(keys={self._count})"

    def encrypt(self, plaintext: str | bytes) -> str:
        """Encrypt under the first key; returns an ASCII token safe to store."""
        data = plaintext.encode("utf-8") if isinstance(plaintext, str) else plaintext
        return self._box.encrypt(data).decode("ascii")

    def decrypt(self, token: str | bytes) -> bytes:
        """Decrypt with any key; raises SecretDecryptionError when no key authenticates it."""
        try:
            raw = token.encode("ascii") if isinstance(token, str) else token
            return self._box.decrypt(raw)
        except (self._invalid, UnicodeEncodeError, TypeError, ValueError):
            raise SecretDecryptionError("no key authenticates this token") from None

    def decrypt_text(self, token: str | bytes) -> str:
        """:meth:`decrypt`, decoded as UTF-8."""
        try:
            return self.decrypt(token).decode("utf-8")
        except UnicodeDecodeError:
            raise SecretDecryptionError("plaintext is not UTF-8") from None

    def rotate(self, token: str | bytes) -> str:
        """Re-encrypt ``token`` under the first key (it may be under any current key)."""
        try:
            raw = token.encode("ascii") if isinstance(token, str) else token
            return self._box.rotate(raw).decode("ascii")
        except (self._invalid, UnicodeEncodeError, TypeError, ValueError):
            raise SecretDecryptionError("no key authenticates this token") from None
