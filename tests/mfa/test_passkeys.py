"""Passkeys: both ceremonies end to end with a software authenticator, and the attacks."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastapi_secure.errors import ConfigurationError
from fastapi_secure.http_errors import status_of
from fastapi_secure.mfa import (
    ChallengeError,
    PasskeyCredential,
    PasskeyError,
    Passkeys,
    SignCountError,
)
from fastapi_secure.mfa.stores import MemoryMFAStore
from fastapi_secure.testing import FakeClock
from tests.support.webauthn_authenticator import SoftAuthenticator, b64url, unb64url

pytestmark = pytest.mark.anyio

RP_ID = "example.com"
ORIGIN = "https://example.com"


def make_passkeys(store: Any, clock: FakeClock, **options: Any) -> Passkeys:
    arguments: dict[str, Any] = {
        "rp_id": RP_ID,
        "rp_name": "Example",
        "origins": [ORIGIN, "https://login.example.com"],
        "challenges": store,
        "clock": clock,
    }
    arguments.update(options)
    return Passkeys(**arguments)


class Credentials:
    """The application's credential table, in a dict."""

    def __init__(self) -> None:
        self.by_id: dict[bytes, PasskeyCredential] = {}

    def add(self, credential: PasskeyCredential) -> None:
        self.by_id[credential.id] = credential

    async def find(self, credential_id: bytes) -> PasskeyCredential | None:
        return self.by_id.get(credential_id)


async def register(
    passkeys: Passkeys, device: SoftAuthenticator, table: Credentials, user_id: str = "alice"
) -> PasskeyCredential:
    options = await passkeys.registration_options(user_id, f"{user_id}@example.com")
    credential = await passkeys.verify_registration(user_id, device.create(options.public_key))
    table.add(credential)
    return credential


async def test_register_then_sign_in_passwordless_and_as_second_factor(
    fast_store: Any, fake_clock: FakeClock
) -> None:
    passkeys = make_passkeys(fast_store, fake_clock)
    device, table = SoftAuthenticator(origin=ORIGIN), Credentials()
    credential = await register(passkeys, device, table)
    assert credential.user_id == "alice"
    assert credential.id == device.credential_id
    assert credential.sign_count == 0
    assert credential.transports == ("internal",)
    assert credential.created_at == fake_clock()
    assert credential.user_handle == device.user_handle
    assert len(credential.user_handle) == 32
    assert credential.public_key.hex() not in repr(credential)
    assert credential.id_b64 == b64url(device.credential_id)

    fake_clock.advance(10)
    options = await passkeys.authentication_options()  # passwordless
    assert options.public_key["userVerification"] == "required"
    assert options.public_key["allowCredentials"] == []
    assertion = await passkeys.verify_authentication(
        device.get(options.public_key), find_credential=table.find
    )
    assert assertion.user_id == "alice"
    assert assertion.user_verified
    assert assertion.credential.sign_count == 1
    assert assertion.credential.last_used_at == fake_clock()
    table.add(assertion.credential)

    options = await passkeys.authentication_options("alice", [credential])  # second factor
    assert options.public_key["userVerification"] == "preferred"
    assert options.public_key["allowCredentials"][0]["id"] == credential.id_b64
    assertion = await passkeys.verify_authentication(
        device.get(options.public_key), find_credential=table.find, user_id="alice"
    )
    assert assertion.credential.sign_count == 2


async def test_registration_options_come_from_configuration(fake_clock: FakeClock) -> None:
    passkeys = make_passkeys(MemoryMFAStore(clock=fake_clock), fake_clock)
    options = (await passkeys.registration_options("alice", "alice@example.com")).public_key
    assert options["rp"] == {"id": RP_ID, "name": "Example"}
    assert options["user"]["name"] == "alice@example.com"
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["timeout"] == 300_000
    assert len(unb64url(options["challenge"])) == 64
    assert "alice" not in unb64url(options["user"]["id"]).decode("latin-1")
    assert "Passkeys(rp_id='example.com'" in repr(passkeys)


async def test_existing_credentials_are_excluded_and_keep_the_user_handle(
    fake_clock: FakeClock,
) -> None:
    passkeys = make_passkeys(MemoryMFAStore(clock=fake_clock), fake_clock)
    table = Credentials()
    first = await register(passkeys, SoftAuthenticator(origin=ORIGIN), table)
    options = await passkeys.registration_options("alice", "alice", existing=[first])
    assert options.public_key["excludeCredentials"] == [
        {"id": first.id_b64, "type": "public-key", "transports": ["internal"]}
    ]
    assert unb64url(options.public_key["user"]["id"]) == first.user_handle
    second = await passkeys.verify_registration(
        "alice", SoftAuthenticator(origin=ORIGIN).create(options.public_key)
    )
    assert second.user_handle == first.user_handle


async def test_replayed_registration_response_is_refused(fake_clock: FakeClock) -> None:
    passkeys = make_passkeys(MemoryMFAStore(clock=fake_clock), fake_clock)
    options = await passkeys.registration_options("alice", "alice")
    response = SoftAuthenticator(origin=ORIGIN).create(options.public_key)
    await passkeys.verify_registration("alice", response)
    with pytest.raises(ChallengeError) as caught:
        await passkeys.verify_registration("alice", response)
    assert status_of(caught.value) == 401
    assert caught.value.message == "passkey verification failed"


async def test_replayed_assertion_is_refused(fast_store: Any, fake_clock: FakeClock) -> None:
    passkeys = make_passkeys(fast_store, fake_clock)
    device, table = SoftAuthenticator(origin=ORIGIN), Credentials()
    await register(passkeys, device, table)
    options = await passkeys.authentication_options()
    response = device.get(options.public_key)
    await passkeys.verify_authentication(response, find_credential=table.find)
    with pytest.raises(ChallengeError):
        await passkeys.verify_authentication(response, find_credential=table.find)


async def test_concurrent_presentations_of_one_assertion_exactly_one_accepted(
    fast_store: Any, fake_clock: FakeClock
) -> None:
    passkeys = make_passkeys(fast_store, fake_clock)
    device, table = SoftAuthenticator(origin=ORIGIN), Credentials()
    await register(passkeys, device, table)
    response = device.get((await passkeys.authentication_options()).public_key)
    outcomes: list[str] = []

    async def attempt() -> None:
        try:
            await passkeys.verify_authentication(response, find_credential=table.find)
            outcomes.append("accepted")
        except ChallengeError:
            outcomes.append("refused")

    async with anyio.create_task_group() as group:
        for _ in range(20):
            group.start_soon(attempt)
    assert sorted(outcomes) == ["accepted"] + ["refused"] * 19


async def test_expired_challenge_is_refused(fake_clock: FakeClock) -> None:
    passkeys = make_passkeys(MemoryMFAStore(clock=fake_clock), fake_clock, challenge_ttl=60)
    options = await passkeys.registration_options("alice", "alice")
    fake_clock.advance(61)
    with pytest.raises(ChallengeError):
        await passkeys.verify_registration(
            "alice", SoftAuthenticator(origin=ORIGIN).create(options.public_key)
        )


async def test_challenge_from_another_ceremony_is_refused(fake_clock: FakeClock) -> None:
    passkeys = make_passkeys(MemoryMFAStore(clock=fake_clock), fake_clock)
    device, table = SoftAuthenticator(origin=ORIGIN), Credentials()
    await register(passkeys, device, table)
    # An authentication challenge answered as a registration...
    login = await passkeys.authentication_options()
    fake_options = {
        **(await passkeys.registration_options("alice", "alice")).public_key,
        "challenge": login.challenge,
    }
    with pytest.raises(ChallengeError):
        await passkeys.verify_registration(
            "alice", SoftAuthenticator(origin=ORIGIN).create(fake_options)
        )
    # ... and a registration challenge answered as an authentication.
    enrol = await passkeys.registration_options("alice", "alice")
    with pytest.raises(ChallengeError):
        await passkeys.verify_authentication(
            device.get({"challenge": enrol.challenge, "rpId": RP_ID}), find_credential=table.find
        )


async def test_challenge_swapped_between_accounts_is_refused(fake_clock: FakeClock) -> None:
    passkeys = make_passkeys(MemoryMFAStore(clock=fake_clock), fake_clock)
    options = await passkeys.registration_options("alice", "alice")
    with pytest.raises(ChallengeError):
        await passkeys.verify_registration(
            "mallory", SoftAuthenticator(origin=ORIGIN).create(options.public_key)
        )
    device, table = SoftAuthenticator(origin=ORIGIN), Credentials()
    credential = await register(passkeys, device, table, "mallory")
    alice_login = await passkeys.authentication_options("alice", [])
    with pytest.raises(ChallengeError):  # mallory answers alice's second-factor challenge
        await passkeys.verify_authentication(
            device.get(alice_login.public_key), find_credential=table.find, user_id="mallory"
        )
    passwordless = await passkeys.authentication_options()
    with pytest.raises(ChallengeError):  # a passwordless challenge is not a second factor
        await passkeys.verify_authentication(
            device.get(passwordless.public_key), find_credential=table.find, user_id="mallory"
        )
    second_factor = await passkeys.authentication_options("alice", [credential])
    with pytest.raises(PasskeyError):  # alice's challenge, mallory's credential
        await passkeys.verify_authentication(
            device.get(second_factor.public_key), find_credential=table.find, user_id="alice"
        )


@pytest.mark.parametrize(
    ("device", "cause"),
    [
        (SoftAuthenticator(origin="https://evil.example"), "origin"),
        (SoftAuthenticator(origin="http://example.com"), "origin"),
        (SoftAuthenticator(origin=ORIGIN, rp_id="evil.example"), "RP ID hash"),
    ],
    ids=["other-origin", "http-origin", "other-rp-id"],
)
async def test_another_origin_or_rp_id_is_refused(
    device: SoftAuthenticator, cause: str, fake_clock: FakeClock
) -> None:
    passkeys = make_passkeys(MemoryMFAStore(clock=fake_clock), fake_clock)
    options = await passkeys.registration_options("alice", "alice")
    with pytest.raises(PasskeyError) as caught:
        await passkeys.verify_registration("alice", device.create(options.public_key))
    assert cause in (caught.value.reason or "")
    # The same attacker device, registered legitimately, still cannot assert from elsewhere.
    honest = SoftAuthenticator(origin=ORIGIN, key=device.key, credential_id=device.credential_id)
    table = Credentials()
    await register(passkeys, honest, table)
    device.user_handle = honest.user_handle
    with pytest.raises(PasskeyError) as caught:
        await passkeys.verify_authentication(
            device.get((await passkeys.authentication_options()).public_key),
            find_credential=table.find,
        )
    assert cause in (caught.value.reason or "")


async def test_tampered_client_data_is_refused(fake_clock: FakeClock) -> None:
    passkeys = make_passkeys(MemoryMFAStore(clock=fake_clock), fake_clock)
    device, table = SoftAuthenticator(origin=ORIGIN), Credentials()
    await register(passkeys, device, table)
    options = await passkeys.authentication_options()
    response = device.get(options.public_key)
    client_data = json.loads(unb64url(response["response"]["clientDataJSON"]))
    client_data["crossOrigin"] = True  # any change after signing
    response["response"]["clientDataJSON"] = b64url(json.dumps(client_data).encode())
    with pytest.raises(PasskeyError) as caught:
        await passkeys.verify_authentication(response, find_credential=table.find)
    assert "signature" in (caught.value.reason or "")


async def test_passwordless_requires_user_verification(fake_clock: FakeClock) -> None:
    passkeys = make_passkeys(
        MemoryMFAStore(clock=fake_clock),
        fake_clock,
        require_user_verification_at_registration=False,
    )
    device, table = SoftAuthenticator(origin=ORIGIN, user_verified=False), Credentials()
    credential = await register(passkeys, device, table)
    with pytest.raises(PasskeyError) as caught:
        await passkeys.verify_authentication(
            device.get((await passkeys.authentication_options()).public_key),
            find_credential=table.find,
        )
    assert "verif" in (caught.value.reason or "")
    # As a second factor (after a password), presence is enough by default.
    options = await passkeys.authentication_options("alice", [credential])
    assertion = await passkeys.verify_authentication(
        device.get(options.public_key), find_credential=table.find, user_id="alice"
    )
    assert not assertion.user_verified


async def test_second_factor_can_require_user_verification(fake_clock: FakeClock) -> None:
    store = MemoryMFAStore(clock=fake_clock)
    lax = make_passkeys(store, fake_clock, require_user_verification_at_registration=False)
    strict = make_passkeys(store, fake_clock, second_factor_user_verification=True)
    device, table = SoftAuthenticator(origin=ORIGIN, user_verified=False), Credentials()
    credential = await register(lax, device, table)
    options = await strict.authentication_options("alice", [credential])
    assert options.public_key["userVerification"] == "required"
    with pytest.raises(PasskeyError):
        await strict.verify_authentication(
            device.get(options.public_key), find_credential=table.find, user_id="alice"
        )


async def test_registration_requires_user_verification_by_default(fake_clock: FakeClock) -> None:
    passkeys = make_passkeys(MemoryMFAStore(clock=fake_clock), fake_clock)
    options = await passkeys.registration_options("alice", "alice")
    with pytest.raises(PasskeyError):
        await passkeys.verify_registration(
            "alice",
            SoftAuthenticator(origin=ORIGIN, user_verified=False).create(options.public_key),
        )


async def test_cloned_credential_is_refused_and_reported(fake_clock: FakeClock) -> None:
    reports: list[tuple[bytes, int, int]] = []

    async def on_regression(stored: PasskeyCredential, presented: int) -> None:
        reports.append((stored.id, stored.sign_count, presented))

    passkeys = make_passkeys(
        MemoryMFAStore(clock=fake_clock), fake_clock, on_sign_count_regression=on_regression
    )
    device, table = SoftAuthenticator(origin=ORIGIN), Credentials()
    await register(passkeys, device, table)
    clone = device.clone()
    for _ in range(2):
        assertion = await passkeys.verify_authentication(
            device.get((await passkeys.authentication_options()).public_key),
            find_credential=table.find,
        )
        table.add(assertion.credential)
    with pytest.raises(SignCountError):
        await passkeys.verify_authentication(
            clone.get((await passkeys.authentication_options()).public_key),
            find_credential=table.find,
        )
    assert reports == [(device.credential_id, 2, 1)]


async def test_a_forged_assertion_cannot_raise_a_clone_report(fake_clock: FakeClock) -> None:
    reports: list[int] = []

    async def on_regression(stored: PasskeyCredential, presented: int) -> None:
        reports.append(presented)

    passkeys = make_passkeys(
        MemoryMFAStore(clock=fake_clock), fake_clock, on_sign_count_regression=on_regression
    )
    device, table = SoftAuthenticator(origin=ORIGIN), Credentials()
    await register(passkeys, device, table)
    table.add(
        (
            await passkeys.verify_authentication(
                device.get((await passkeys.authentication_options()).public_key),
                find_credential=table.find,
            )
        ).credential
    )
    forger = SoftAuthenticator(origin=ORIGIN, credential_id=device.credential_id)
    forger.user_handle = device.user_handle  # right id and handle, wrong key, low counter
    with pytest.raises(PasskeyError) as caught:
        await passkeys.verify_authentication(
            forger.get((await passkeys.authentication_options()).public_key),
            find_credential=table.find,
        )
    assert not isinstance(caught.value, SignCountError)
    assert reports == []


async def test_a_failing_regression_hook_still_refuses(
    fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(stored: PasskeyCredential, presented: int) -> None:
        raise RuntimeError("hook bug")

    passkeys = make_passkeys(
        MemoryMFAStore(clock=fake_clock), fake_clock, on_sign_count_regression=broken
    )
    device, table = SoftAuthenticator(origin=ORIGIN, sign_count=5), Credentials()
    await register(passkeys, device, table)
    device.sign_count = 3
    with pytest.raises(SignCountError):
        await passkeys.verify_authentication(
            device.get((await passkeys.authentication_options()).public_key),
            find_credential=table.find,
        )
    assert "hook raised RuntimeError" in caplog.text


async def test_authenticators_without_a_counter_keep_working(fake_clock: FakeClock) -> None:
    passkeys = make_passkeys(MemoryMFAStore(clock=fake_clock), fake_clock)
    device, table = SoftAuthenticator(origin=ORIGIN), Credentials()
    await register(passkeys, device, table)
    for _ in range(2):
        device.sign_count = -1  # get() adds one: the counter stays 0, as synced passkeys do
        assertion = await passkeys.verify_authentication(
            device.get((await passkeys.authentication_options()).public_key),
            find_credential=table.find,
        )
        assert assertion.credential.sign_count == 0


async def test_unknown_credential_and_wrong_user_handle_are_refused(
    fake_clock: FakeClock,
) -> None:
    passkeys = make_passkeys(MemoryMFAStore(clock=fake_clock), fake_clock)
    device, table = SoftAuthenticator(origin=ORIGIN), Credentials()
    await register(passkeys, device, table)
    stranger = SoftAuthenticator(origin=ORIGIN)
    stranger.user_handle = device.user_handle
    with pytest.raises(PasskeyError):
        await passkeys.verify_authentication(
            stranger.get((await passkeys.authentication_options()).public_key),
            find_credential=table.find,
        )
    device.user_handle = b"someone else"
    with pytest.raises(PasskeyError):
        await passkeys.verify_authentication(
            device.get((await passkeys.authentication_options()).public_key),
            find_credential=table.find,
        )


MALFORMED: list[Any] = [
    "",
    "not json",
    "[]",
    "{}",
    {"id": "x"},
    {"id": "AA", "rawId": "AA", "type": "public-key", "response": {}},
    {
        "id": "AA",
        "rawId": "AA",
        "type": "public-key",
        "response": {
            "clientDataJSON": b64url(b"{}"),
            "attestationObject": "AA",
            "authenticatorData": "AA",
            "signature": "AA",
        },
    },
    {
        "id": "AA",
        "rawId": "AA",
        "type": "public-key",
        "response": {
            "clientDataJSON": b64url(b'{"type":"webauthn.get","challenge":"","origin":"x"}'),
            "attestationObject": "AA",
            "authenticatorData": "AA",
            "signature": "AA",
        },
    },
    {"bad": {1, 2}},  # not JSON-serializable
    "x" * 70_000,
]


@pytest.mark.parametrize("response", MALFORMED)
async def test_malformed_responses_are_refused(response: Any, fake_clock: FakeClock) -> None:
    passkeys = make_passkeys(MemoryMFAStore(clock=fake_clock), fake_clock)
    with pytest.raises(PasskeyError):
        await passkeys.verify_registration("alice", response)
    with pytest.raises(PasskeyError):
        await passkeys.verify_authentication(response, find_credential=Credentials().find)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(
    response=st.fixed_dictionaries(
        {},
        optional={
            "id": st.text(max_size=20),
            "rawId": st.text(max_size=20),
            "type": st.sampled_from(["public-key", "x"]),
            "response": st.dictionaries(
                st.sampled_from(
                    ["clientDataJSON", "attestationObject", "authenticatorData", "signature"]
                ),
                st.text(max_size=40) | JSON_VALUES,
            ),
        },
    )
    | JSON_VALUES
)
def test_arbitrary_responses_only_ever_raise_passkey_error(response: Any) -> None:
    async def run() -> None:
        clock = FakeClock()
        passkeys = make_passkeys(MemoryMFAStore(clock=clock), clock)
        text = json.dumps(response)
        with pytest.raises(PasskeyError):
            await passkeys.verify_registration("alice", text)
        with pytest.raises(PasskeyError):
            await passkeys.verify_authentication(text, find_credential=Credentials().find)

    anyio.run(run)


@pytest.mark.parametrize(
    "options",
    [
        {"rp_id": ""},
        {"rp_id": "https://example.com"},
        {"rp_id": "Example.com"},
        {"origins": []},
        {"origins": "https://example.com"},
        {"origins": ["example.com"]},
        {"origins": ["https://example.com/path"]},
        {"origins": ["http://example.com"]},
        {"origins": ["https://evil.example"]},
        {"origins": ["https://notexample.com"]},
        {"challenge_ttl": 0},
        {"challenge_ttl": 7200},
    ],
)
def test_unsafe_configuration_is_refused(options: dict[str, Any]) -> None:
    clock = FakeClock()
    with pytest.raises(ConfigurationError):
        make_passkeys(MemoryMFAStore(clock=clock), clock, **options)


def test_localhost_over_http_is_allowed_for_development() -> None:
    clock = FakeClock()
    passkeys = make_passkeys(
        MemoryMFAStore(clock=clock), clock, rp_id="localhost", origins=["http://localhost:8000"]
    )
    assert passkeys.origins == ("http://localhost:8000",)


async def test_a_credential_id_registered_before_is_refused(fake_clock: FakeClock) -> None:
    passkeys = make_passkeys(MemoryMFAStore(clock=fake_clock), fake_clock)
    device, table = SoftAuthenticator(origin=ORIGIN), Credentials()
    await register(passkeys, device, table, "alice")
    options = await passkeys.registration_options("mallory", "mallory")
    # Mallory replays alice's credential id with a key of her own.
    thief = SoftAuthenticator(origin=ORIGIN, credential_id=device.credential_id)
    with pytest.raises(PasskeyError) as caught:
        await passkeys.verify_registration(
            "mallory", thief.create(options.public_key), find_credential=table.find
        )
    assert caught.value.reason == "credential id already registered"


async def test_an_overlong_credential_id_is_refused(fake_clock: FakeClock) -> None:
    passkeys = make_passkeys(MemoryMFAStore(clock=fake_clock), fake_clock)
    options = await passkeys.registration_options("alice", "alice")
    device = SoftAuthenticator(origin=ORIGIN, credential_id=b"x" * 1024)
    with pytest.raises(PasskeyError) as caught:
        await passkeys.verify_registration("alice", device.create(options.public_key))
    assert caught.value.reason == "credential id longer than 1023 bytes"
