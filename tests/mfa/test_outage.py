"""Redis down: every factor refuses with StoreUnavailableError (503), never accepts."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pyotp
import pytest

from fastapi_secure.errors import StoreUnavailableError
from fastapi_secure.http_errors import status_of
from fastapi_secure.mfa import (
    TOTP,
    AttemptLimit,
    MFAChallenges,
    Passkeys,
    RecoveryCodes,
    SecretBox,
    TOTPAuthenticator,
)

pytestmark = pytest.mark.anyio

pytest.importorskip("redis")
from fastapi_secure.mfa.stores.redis import RedisMFAStore  # noqa: E402


@pytest.fixture
async def dead_store() -> AsyncIterator[RedisMFAStore]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = RedisMFAStore.from_url(
        f"redis://127.0.0.1:{port}/0", socket_connect_timeout=0.2, socket_timeout=0.2
    )
    yield store
    await store.aclose()


async def test_totp_with_the_store_down(dead_store: RedisMFAStore) -> None:
    box = SecretBox([SecretBox.generate_key()])
    secret = pyotp.random_base32()
    record = TOTPAuthenticator("u", box.encrypt(secret), confirmed_at=1.0)
    for attempts in (None, AttemptLimit(dead_store)):
        totp = TOTP(box=box, used_codes=dead_store, issuer="x", attempts=attempts)
        with pytest.raises(StoreUnavailableError) as caught:
            await totp.verify(record, pyotp.TOTP(secret).now())  # the right code
        assert status_of(caught.value) == 503


async def test_recovery_codes_with_the_store_down(dead_store: RedisMFAStore) -> None:
    codes = RecoveryCodes(dead_store)
    with pytest.raises(StoreUnavailableError):
        await codes.generate("u")
    with pytest.raises(StoreUnavailableError):
        await codes.verify("u", "ABCD-EFGH-JKMN")


async def test_passkeys_and_mfa_tokens_with_the_store_down(dead_store: RedisMFAStore) -> None:
    passkeys = Passkeys(
        rp_id="example.com", rp_name="x", origins=["https://example.com"], challenges=dead_store
    )
    with pytest.raises(StoreUnavailableError):
        await passkeys.registration_options("u", "u")
    with pytest.raises(StoreUnavailableError):
        await passkeys.authentication_options()
    with pytest.raises(StoreUnavailableError):
        await MFAChallenges(dead_store).start("u", ["totp"])
