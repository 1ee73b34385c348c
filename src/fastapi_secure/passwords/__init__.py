"""Password hashing and password policy.

:class:`PasswordHasher` (:mod:`fastapi_secure.passwords.hasher`) hashes with
argon2id (argon2-cffi) by default, verifies legacy bcrypt hashes, and upgrades
old or weaker hashes at login through :meth:`PasswordHasher.verify_and_update`.
Its async twins (``ahash``, ``averify``, ``averify_and_update``,
``adummy_verify``) run the work in worker threads under a dedicated capacity
limit, so the event loop never blocks and memory stays bounded.

The schemes live one per module: :class:`Argon2Scheme`
(:mod:`fastapi_secure.passwords.argon2`) and :class:`BcryptScheme`
(:mod:`fastapi_secure.passwords.bcrypt`), both implementing the
:class:`PasswordScheme` protocol (:mod:`fastapi_secure.passwords.base`).

:class:`PasswordPolicy` (:mod:`fastapi_secure.passwords.policy`) decides which
new passwords to accept (NIST SP 800-63B-4: length first, a blocklist of
common passwords, no surprise composition rules) and doubles as pydantic
metadata: ``password: Annotated[SecretStr, PasswordPolicy()]``. A rejected
password gives a validation error (422 in FastAPI) whose body never contains
the password.

Profiles (argon2id, memory in KiB):

| Profile | t | m | p |
| --- | --- | --- | --- |
| :meth:`PasswordHasher.recommended` (RFC 9106 low-memory, the default) | 3 | 65536 | 4 |
| :meth:`PasswordHasher.owasp_minimum` | 2 | 19456 | 1 |

Parameters below the OWASP Password Storage Cheat Sheet floor raise
:class:`~fastapi_secure.errors.ConfigurationError` unless a scheme is built
with ``allow_weak_parameters=True``; :meth:`PasswordHasher.insecure_fast_for_tests`
does that for test suites.

This package is core: it imports neither FastAPI nor Starlette.
"""

from __future__ import annotations

from fastapi_secure.passwords.argon2 import Argon2Scheme
from fastapi_secure.passwords.base import PasswordScheme
from fastapi_secure.passwords.bcrypt import BcryptScheme
from fastapi_secure.passwords.hasher import PasswordHasher
from fastapi_secure.passwords.policy import PasswordPolicy, StrongPassword

__all__ = [
    "Argon2Scheme",
    "BcryptScheme",
    "PasswordHasher",
    "PasswordPolicy",
    "PasswordScheme",
    "StrongPassword",
]
