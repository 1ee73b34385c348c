"""Each account's second factors, durably: the :class:`AuthenticatorStore` protocol.

One store holds, per account,

- the TOTP authenticator (:class:`~fastapi_secure.mfa.TOTPAuthenticator`,
  its secret encrypted by a :class:`~fastapi_secure.mfa.SecretBox`), pending
  until confirmed;
- the digests of the current recovery codes, each consumed at most once (the
  store is a :class:`~fastapi_secure.mfa.stores.RecoveryCodeStore` keyed by the
  account id, so :class:`~fastapi_secure.mfa.RecoveryCodes` works on it directly);
- the passkeys (:class:`~fastapi_secure.mfa.PasskeyCredential`), unique by
  credential id across all accounts.

Recovery codes live here rather than in the Redis :class:`~fastapi_secure.mfa.stores.MFAStore`:
they are a long-lived credential, not a short-lived counter, and a Redis flush
must not lock a user out of the only way back into their account. Consuming
one is a single conditional delete (``DELETE ... WHERE user_id AND digest``,
one winner however many race).

:class:`MemoryAuthenticatorStore` is for tests and a single process;
:class:`~fastapi_secure.mfa.sqlalchemy.SQLAlchemyAuthenticatorStore` keeps
them in the application's own tables. Core code: no FastAPI.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from typing import ClassVar, Protocol, runtime_checkable

from fastapi_secure.errors import ConflictError
from fastapi_secure.mfa.passkeys import PasskeyCredential
from fastapi_secure.mfa.totp import TOTPAuthenticator

__all__ = [
    "AuthenticatorStore",
    "MemoryAuthenticatorStore",
    "PasskeyExistsError",
]


class PasskeyExistsError(ConflictError):
    """409: this credential id is already registered (to this or another account)."""

    default_message = "this passkey is already registered"


@runtime_checkable
class AuthenticatorStore(Protocol):
    """The second factors of each account. Ids are the accounts' ids (token subjects).

    Every method takes client-influenced ids without raising for malformed
    ones: an id the backend cannot hold is "no such account".
    """

    keyed_by_user_id: ClassVar[bool]
    """True: :class:`~fastapi_secure.mfa.RecoveryCodes` passes account ids, not digests."""

    # -- TOTP ----------------------------------------------------------------
    async def get_totp(self, user_id: str) -> TOTPAuthenticator | None:
        """The account's TOTP authenticator (confirmed or pending), if any."""
        ...

    async def save_totp(self, authenticator: TOTPAuthenticator) -> None:
        """Insert or replace the account's TOTP authenticator."""
        ...

    async def confirm_totp(self, authenticator: TOTPAuthenticator) -> bool:
        """Store a confirmed authenticator only if the pending one still has its secret.

        False when the pending record was replaced or removed meanwhile (a
        second enrolment started): the caller must not report success.
        """
        ...

    async def record_totp_use(self, authenticator: TOTPAuthenticator) -> bool:
        """Store ``authenticator.last_used_at`` if the account's confirmed TOTP still
        has this secret; False (nothing written) when it was removed or replaced."""
        ...

    async def delete_totp(self, user_id: str) -> bool:
        """Remove the account's TOTP authenticator; True if there was one."""
        ...

    # -- recovery codes (RecoveryCodeStore, keyed by account id) ---------------
    async def replace(self, user_key: str, digests: Sequence[str]) -> None:
        """Atomically make ``digests`` the account's only recovery codes."""
        ...

    async def consume(self, user_key: str, digest: str) -> bool:
        """Remove ``digest``; True for exactly one of any number of concurrent callers."""
        ...

    async def remaining(self, user_key: str) -> int:
        """How many unused recovery codes the account has."""
        ...

    # -- passkeys ----------------------------------------------------------------
    async def list_passkeys(self, user_id: str) -> list[PasskeyCredential]:
        """The account's passkeys, oldest first."""
        ...

    async def get_passkey(self, credential_id: bytes) -> PasskeyCredential | None:
        """The passkey with this credential id, whoever owns it."""
        ...

    async def add_passkey(self, credential: PasskeyCredential) -> None:
        """Store a new passkey; :class:`PasskeyExistsError` if the id is taken."""
        ...

    async def record_passkey_use(self, credential: PasskeyCredential) -> bool:
        """Store a used passkey's new sign count and ``last_used_at``, conditionally.

        Only if the stored count is still below the new one (or both are 0,
        authenticators without a counter): of two concurrent uses presenting
        one count, one wins. False: refuse the sign-in.
        """
        ...

    async def rename_passkey(
        self, user_id: str, credential_id: bytes, name: str
    ) -> PasskeyCredential | None:
        """Give one of the account's passkeys a new ``name``; None if it has none with that id."""
        ...

    async def delete_passkey(self, user_id: str, credential_id: bytes) -> bool:
        """Remove one of the account's passkeys; False if it has none with that id."""
        ...

    async def aclose(self) -> None:
        """Release connections the store owns."""
        ...


@dataclasses.dataclass
class _Account:
    totp: TOTPAuthenticator | None = None
    codes: set[str] = dataclasses.field(default_factory=set)


class MemoryAuthenticatorStore:
    """An :class:`AuthenticatorStore` in dicts (one process; tests, demos)."""

    keyed_by_user_id: ClassVar[bool] = True

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._accounts: dict[str, _Account] = {}
        self._passkeys: dict[bytes, PasskeyCredential] = {}

    def __repr__(self) -> str:
        return "MemoryAuthenticatorStore()"

    def _account(self, user_id: str) -> _Account:
        return self._accounts.setdefault(user_id, _Account())

    async def get_totp(self, user_id: str) -> TOTPAuthenticator | None:
        with self._lock:
            account = self._accounts.get(user_id)
            return None if account is None else account.totp

    async def save_totp(self, authenticator: TOTPAuthenticator) -> None:
        with self._lock:
            self._account(authenticator.user_id).totp = authenticator

    async def confirm_totp(self, authenticator: TOTPAuthenticator) -> bool:
        with self._lock:
            account = self._account(authenticator.user_id)
            current = account.totp
            if current is None or current.encrypted_secret != authenticator.encrypted_secret:
                return False
            account.totp = authenticator
            return True

    async def record_totp_use(self, authenticator: TOTPAuthenticator) -> bool:
        with self._lock:
            account = self._accounts.get(authenticator.user_id)
            current = None if account is None else account.totp
            if (
                account is None
                or current is None
                or not current.confirmed
                or current.encrypted_secret != authenticator.encrypted_secret
            ):
                return False
            account.totp = dataclasses.replace(current, last_used_at=authenticator.last_used_at)
            return True

    async def delete_totp(self, user_id: str) -> bool:
        with self._lock:
            account = self._accounts.get(user_id)
            if account is None or account.totp is None:
                return False
            account.totp = None
            return True

    async def replace(self, user_key: str, digests: Sequence[str]) -> None:
        with self._lock:
            self._account(user_key).codes = set(digests)

    async def consume(self, user_key: str, digest: str) -> bool:
        with self._lock:
            account = self._accounts.get(user_key)
            if account is None or digest not in account.codes:
                return False
            account.codes.discard(digest)
            return True

    async def remaining(self, user_key: str) -> int:
        with self._lock:
            account = self._accounts.get(user_key)
            return 0 if account is None else len(account.codes)

    async def list_passkeys(self, user_id: str) -> list[PasskeyCredential]:
        with self._lock:
            found = [c for c in self._passkeys.values() if c.user_id == user_id]
        return sorted(found, key=lambda c: c.created_at)

    async def get_passkey(self, credential_id: bytes) -> PasskeyCredential | None:
        with self._lock:
            return self._passkeys.get(credential_id)

    async def add_passkey(self, credential: PasskeyCredential) -> None:
        with self._lock:
            if credential.id in self._passkeys:
                raise PasskeyExistsError(reason="credential id taken")
            self._passkeys[credential.id] = credential

    async def record_passkey_use(self, credential: PasskeyCredential) -> bool:
        with self._lock:
            stored = self._passkeys.get(credential.id)
            if stored is None or not _count_grows(stored.sign_count, credential.sign_count):
                return False
            self._passkeys[credential.id] = dataclasses.replace(
                stored, sign_count=credential.sign_count, last_used_at=credential.last_used_at
            )
            return True

    async def rename_passkey(
        self, user_id: str, credential_id: bytes, name: str
    ) -> PasskeyCredential | None:
        with self._lock:
            stored = self._passkeys.get(credential_id)
            if stored is None or stored.user_id != user_id:
                return None
            renamed = dataclasses.replace(stored, name=name)
            self._passkeys[credential_id] = renamed
            return renamed

    async def delete_passkey(self, user_id: str, credential_id: bytes) -> bool:
        with self._lock:
            stored = self._passkeys.get(credential_id)
            if stored is None or stored.user_id != user_id:
                return False
            del self._passkeys[credential_id]
            return True

    async def aclose(self) -> None:
        """Nothing to release; present for the protocol."""


def _count_grows(stored: int, presented: int) -> bool:
    return presented > stored or (presented == 0 and stored == 0)
