"""Security events of the second factors: each fires once, with ids and counts, never a secret."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

import pytest

from fastapi_secure.events import EventType, SecurityEvent, SecurityEvents
from fastapi_secure.mfa import InvalidOTPError, MFATokenError, PasskeyError
from fastapi_secure.mfa.factors import FactorCheck, SecondFactors
from fastapi_secure.testing import FakeClock, totp_code
from tests.support.mfa import ORIGIN, make_factors
from tests.support.webauthn_authenticator import SoftAuthenticator

pytestmark = pytest.mark.anyio

CLIENT = "203.0.113.7"
AGENT = "pytest-agent/1"


class Recorder:
    def __init__(self) -> None:
        self.events: list[SecurityEvent] = []

    async def __call__(self, event: SecurityEvent) -> None:
        self.events.append(event)

    def take(self) -> list[SecurityEvent]:
        taken, self.events = self.events, []
        return taken


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def factors(fast_store: Any, fake_clock: FakeClock, recorder: Recorder) -> SecondFactors:
    events = SecurityEvents(hook=recorder, client_address="full", pseudonymize_sessions=False)
    return make_factors(fast_store, fake_clock, events=events)


def one(events: list[SecurityEvent], kind: EventType) -> SecurityEvent:
    found = [event for event in events if event.type is kind]
    assert len(found) == 1, [event.type.value for event in events]
    return found[0]


def assert_no_secret(
    secrets: Iterable[str], events: list[SecurityEvent], records: list[logging.LogRecord]
) -> None:
    texts = [repr(event.to_dict()) for event in events]
    for record in records:
        texts.append(record.getMessage())
        texts.append(repr(record.__dict__))
    blob = "\n".join(texts)
    for secret in secrets:
        # A 6-digit code as a whole run of digits (not inside a timestamp).
        pattern = rf"(?<![0-9A-Za-z]){re.escape(secret)}(?![0-9A-Za-z])"
        assert not re.search(pattern, blob), "a secret reached an event or a log line"


async def test_the_totp_journey_reports_each_step_once(
    factors: SecondFactors,
    fake_clock: FakeClock,
    recorder: Recorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[SecurityEvent] = []
    secrets: list[str] = []

    enrolment = await factors.begin_totp("u1", "u1@x.io")
    secret = enrolment.secret.get_secret_value()
    secrets += [secret, enrolment.uri.get_secret_value(), enrolment.authenticator.encrypted_secret]
    assert recorder.take() == []  # pending is not a factor yet
    first = totp_code(secret, clock=fake_clock)
    codes = await factors.confirm_totp("u1", first)
    secrets += [first, *codes]
    batch = recorder.take()
    added = one(batch, EventType.MFA_ADDED)
    assert (len(batch), added.subject, dict(added.extra)) == (1, "u1", {"method": "totp"})
    seen += batch

    codes = await factors.new_recovery_codes("u1")
    secrets += codes
    batch = recorder.take()
    regenerated = one(batch, EventType.RECOVERY_CODES_REGENERATED)
    assert (len(batch), regenerated.subject, dict(regenerated.extra)) == (
        1,
        "u1",
        {"remaining": 10},
    )
    seen += batch

    # The second step: a wrong code, then the right one, then the token again.
    fake_clock.advance(30)
    started = await factors.challenge("u1")
    assert started is not None
    secrets.append(started.token)
    right = totp_code(secret, clock=fake_clock)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    secrets += [right, wrong]
    with pytest.raises(InvalidOTPError):
        await factors.complete(
            started.token, FactorCheck(code=wrong), client=CLIENT, user_agent=AGENT
        )
    batch = recorder.take()
    failed = one(batch, EventType.MFA_FAILED)
    assert len(batch) == 1
    assert (failed.subject, failed.client, failed.user_agent) == ("u1", CLIENT, AGENT)
    assert failed.reason == "wrong code"
    assert dict(failed.extra) == {"method": "totp", "attempt": 1, "error": "InvalidOTPError"}
    seen += batch

    done = await factors.complete(
        started.token, FactorCheck(code=right), client=CLIENT, user_agent=AGENT
    )
    assert done.method == "totp"
    batch = recorder.take()
    succeeded = one(batch, EventType.MFA_SUCCEEDED)
    assert len(batch) == 1
    assert (succeeded.subject, succeeded.client) == ("u1", CLIENT)
    assert dict(succeeded.extra) == {"method": "totp", "amr": ["pwd", "otp", "mfa"]}
    seen += batch

    # Replayed MFA token: refused like any unknown token, reported with its account.
    for _ in range(2):
        with pytest.raises(MFATokenError) as refused:
            await factors.complete(started.token, FactorCheck(recovery_code=codes[0]))
        assert refused.value.message == "invalid or expired MFA token"
        batch = recorder.take()
        reused = one(batch, EventType.MFA_TOKEN_REFUSED)
        assert len(batch) == 1
        assert reused.subject == "u1"
        assert reused.extra["problem"] == "reused"
        seen += batch

    # A recovery code: the step succeeds and says how many remain.
    rescue = await factors.challenge("u1")
    assert rescue is not None
    secrets.append(rescue.token)
    result = await factors.complete(rescue.token, FactorCheck(recovery_code=codes[0]))
    assert result.remaining_recovery_codes == 9
    batch = recorder.take()
    assert [event.type for event in batch] == [
        EventType.MFA_SUCCEEDED,
        EventType.RECOVERY_CODE_USED,
    ]
    assert dict(batch[0].extra)["method"] == "recovery_code"
    assert (batch[1].subject, dict(batch[1].extra)) == ("u1", {"remaining": 9})
    seen += batch

    # An expired MFA token: reported with its account; an unknown one is not reported.
    late = await factors.challenge("u1")
    assert late is not None
    secrets.append(late.token)
    fake_clock.advance(301)
    with pytest.raises(MFATokenError):
        await factors.complete(late.token, FactorCheck(recovery_code=codes[1]))
    batch = recorder.take()
    expired = one(batch, EventType.MFA_TOKEN_REFUSED)
    assert (len(batch), expired.subject, expired.extra["problem"]) == (1, "u1", "expired")
    seen += batch
    for unknown in ("mfa_" + "A" * 43, "not-a-token"):
        with pytest.raises(MFATokenError):
            await factors.complete(unknown, FactorCheck(code="123456"))
    assert recorder.take() == []

    assert await factors.remove_totp("u1")
    assert not await factors.remove_totp("u1")  # nothing removed: no event
    batch = recorder.take()
    removed = one(batch, EventType.MFA_REMOVED)
    assert (len(batch), removed.subject, dict(removed.extra)) == (1, "u1", {"method": "totp"})
    seen += batch

    assert_no_secret(secrets, seen, caplog.records)
    logged = [record for record in caplog.records if record.name == "fastapi_secure.events"]
    assert [record.__dict__["event_type"] for record in logged] == [e.type.value for e in seen]


async def test_an_mfa_token_used_up_by_wrong_codes_is_reported_as_reused(
    factors: SecondFactors, fake_clock: FakeClock, recorder: Recorder
) -> None:
    enrolment = await factors.begin_totp("u1", "u1@x.io")
    await factors.confirm_totp(
        "u1", totp_code(enrolment.secret.get_secret_value(), clock=fake_clock)
    )
    started = await factors.challenge("u1")
    assert started is not None
    recorder.take()
    for _ in range(factors.challenges.max_attempts):
        with pytest.raises(InvalidOTPError):
            await factors.complete(started.token, FactorCheck(code="12345x"))
    assert [event.type for event in recorder.take()] == [EventType.MFA_FAILED] * 5
    with pytest.raises(MFATokenError):
        await factors.complete(started.token, FactorCheck(code="123456"))
    [refused] = recorder.take()
    assert (refused.type, refused.extra["problem"]) == (EventType.MFA_TOKEN_REFUSED, "reused")


async def test_passkey_events_and_a_clone(
    factors: SecondFactors,
    fake_clock: FakeClock,
    recorder: Recorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    device = SoftAuthenticator(origin=ORIGIN)
    options = await factors.passkey_registration_options("u1", "u1@x.io")
    credential, codes = await factors.register_passkey(
        "u1", device.create(options.public_key), name="key"
    )
    batch = recorder.take()
    added = one(batch, EventType.MFA_ADDED)
    assert len(batch) == 1
    assert dict(added.extra) == {"method": "passkey", "credential_id": credential.id_b64}

    # A second step with the passkey, then a clone presenting an old counter.
    clone = device.clone()
    started = await factors.challenge("u1")
    assert started is not None
    options = await factors.passkey_options_for(started.token)
    assertion = device.get(options.public_key)
    await factors.complete(started.token, FactorCheck(passkey=assertion))
    [succeeded] = recorder.take()
    assert dict(succeeded.extra) == {"method": "passkey", "amr": ["pwd", "swk", "mfa"]} or dict(
        succeeded.extra
    ) == {"method": "passkey", "amr": ["pwd", "hwk", "mfa"]}

    started = await factors.challenge("u1")
    assert started is not None
    options = await factors.passkey_options_for(started.token)
    with pytest.raises(PasskeyError):
        await factors.complete(
            started.token,
            FactorCheck(passkey=clone.get(options.public_key)),
            client=CLIENT,
            user_agent=AGENT,
        )
    batch = recorder.take()
    assert sorted(event.type.value for event in batch) == [
        "mfa_failed",
        "passkey_clone_suspected",
    ]
    cloned = one(batch, EventType.PASSKEY_CLONE_SUSPECTED)
    assert (cloned.subject, cloned.client, cloned.user_agent) == ("u1", CLIENT, AGENT)
    assert dict(cloned.extra) == {
        "credential_id": credential.id_b64,
        "stored_count": 1,
        "presented_count": 1,
    }
    assert one(batch, EventType.MFA_FAILED).extra["error"] == "SignCountError"
    clone_records = [
        r for r in caplog.records if r.__dict__.get("event_type") == "passkey_clone_suspected"
    ]
    assert [record.levelno for record in clone_records] == [logging.ERROR]

    # Passwordless: the clone is reported too (no second step, so no mfa_failed).
    clone.sign_count = 0
    options = await factors.passwordless_options()
    with pytest.raises(PasskeyError):
        await factors.passwordless(clone.get(options.public_key), client=CLIENT)
    [again] = recorder.take()
    assert (again.type, again.subject, again.client) == (
        EventType.PASSKEY_CLONE_SUSPECTED,
        "u1",
        CLIENT,
    )

    # Passwordless with the genuine device: one mfa_succeeded, as the first factor.
    options = await factors.passwordless_options()
    await factors.passwordless(device.get(options.public_key), client=CLIENT, user_agent=AGENT)
    [signed_in] = recorder.take()
    assert (signed_in.type, signed_in.subject, signed_in.client) == (
        EventType.MFA_SUCCEEDED,
        "u1",
        CLIENT,
    )
    assert signed_in.extra["first_factor"] is True
    assert signed_in.extra["method"] == "passkey"
    assert signed_in.extra["amr"] in (["swk", "mfa"], ["hwk", "mfa"])

    assert not await factors.delete_passkey("u2", credential.id)  # not u2's: no event
    assert await factors.delete_passkey("u1", credential.id)
    [removed] = recorder.take()
    assert (removed.type, removed.subject, dict(removed.extra)) == (
        EventType.MFA_REMOVED,
        "u1",
        {"method": "passkey", "credential_id": credential.id_b64},
    )
    assert_no_secret([*codes, started.token], [], caplog.records)


async def test_a_broken_event_hook_changes_no_answer(
    fast_store: Any, fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(event: SecurityEvent) -> None:
        raise RuntimeError("the SIEM is down")

    factors = make_factors(fast_store, fake_clock, events=SecurityEvents(hook=broken))
    enrolment = await factors.begin_totp("u1", "u1@x.io")
    secret = enrolment.secret.get_secret_value()
    codes = await factors.confirm_totp("u1", totp_code(secret, clock=fake_clock))
    assert len(codes) == 10
    fake_clock.advance(30)
    started = await factors.challenge("u1")
    assert started is not None
    done = await factors.complete(
        started.token, FactorCheck(code=totp_code(secret, clock=fake_clock))
    )
    assert done.user_id == "u1"
    assert any("hook failed" in record.getMessage() for record in caplog.records)


async def test_a_totp_use_is_saved_as_last_used(
    factors: SecondFactors, fake_clock: FakeClock
) -> None:
    enrolment = await factors.begin_totp("u1", "u1@x.io")
    secret = enrolment.secret.get_secret_value()
    await factors.confirm_totp("u1", totp_code(secret, clock=fake_clock))
    confirmed = await factors.store.get_totp("u1")
    assert confirmed is not None
    assert confirmed.last_used_at == fake_clock()
    fake_clock.advance(3600)
    started = await factors.challenge("u1")
    assert started is not None
    await factors.complete(started.token, FactorCheck(code=totp_code(secret, clock=fake_clock)))
    used = await factors.store.get_totp("u1")
    assert used is not None
    assert used.last_used_at == fake_clock()
