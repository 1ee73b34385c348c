"""The account flows report to the security log: each event once, with ids, never a secret."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

import pytest

from fastapi_secure.accounts.errors import AccountLockedError
from fastapi_secure.accounts.hooks import AccountEvent, AccountHooks, HookContext
from fastapi_secure.accounts.lockout import Lockout, LockoutPolicy
from fastapi_secure.accounts.mail import LinkBuilder, MemoryOutbox
from fastapi_secure.accounts.manager import (
    AccountManager,
    EmailNotVerifiedError,
    InvalidCredentialsError,
    MFARequired,
    user_grant_loader,
)
from fastapi_secure.accounts.users import MemoryUserStore, UserRecord
from fastapi_secure.errors import TokenReuseError
from fastapi_secure.events import (
    EventSink,
    EventType,
    SecurityEvent,
    SecurityEvents,
    pseudonymize_login_name,
)
from fastapi_secure.mfa import InvalidOTPError
from fastapi_secure.mfa.factors import FactorCheck
from fastapi_secure.mfa.stores.memory import MemoryMFAStore
from fastapi_secure.passwords.hasher import PasswordHasher
from fastapi_secure.testing import FakeClock, totp_code
from fastapi_secure.tokens.claims import TokenPair
from fastapi_secure.tokens.issuer import TokenIssuer
from fastapi_secure.tokens.keys import KeySet
from fastapi_secure.tokens.stores.memory import MemoryTokenStore
from tests.support.accounts import token_from
from tests.support.mfa import ORIGIN as MFA_ORIGIN
from tests.support.mfa import make_factors
from tests.support.webauthn_authenticator import SoftAuthenticator

pytestmark = pytest.mark.anyio

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a-brand-new-passphrase-9"
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


def one(events: list[SecurityEvent], kind: EventType) -> SecurityEvent:
    assert [event.type for event in events] == [kind], [event.type.value for event in events]
    return events[0]


def build(
    clock: FakeClock,
    events: EventSink | None,
    *,
    issuer_events: EventSink | None = None,
    lockout: Lockout | None = None,
    require_verified_email: bool = False,
    hooks: AccountHooks | None = None,
) -> AccountManager:
    users = MemoryUserStore(clock=clock)
    issuer = TokenIssuer(
        KeySet.from_secret("account-events-test-secret-of-32-bytes!!", kid="k1"),
        MemoryTokenStore(clock=clock),
        issuer="https://app.example.io",
        audience="https://app.example.io",
        clock=clock,
        grant_loader=user_grant_loader(users),
        events=issuer_events,
    )
    return AccountManager(
        users,
        issuer,
        PasswordHasher.insecure_fast_for_tests(),
        mail=MemoryOutbox(),
        links=LinkBuilder("https://app.example.io"),
        lockout=lockout,
        hooks=hooks,
        require_verified_email=require_verified_email,
        events=events,
    )


def sink(recorder: Recorder) -> SecurityEvents:
    return SecurityEvents(hook=recorder, client_address="full", pseudonymize_sessions=False)


def outbox(manager: AccountManager) -> MemoryOutbox:
    assert isinstance(manager.mail, MemoryOutbox)
    return manager.mail


async def login(manager: AccountManager, name: str, password: str = PASSWORD) -> TokenPair:
    pair = await manager.login(name, password, client_address=CLIENT, user_agent=AGENT)
    assert isinstance(pair, TokenPair)
    return pair


def assert_no_secret(secrets: Iterable[str], records: list[logging.LogRecord]) -> None:
    blob = "\n".join(f"{record.getMessage()} {record.__dict__!r}" for record in records)
    assert "security event" in blob  # the records were captured
    for secret in secrets:
        pattern = rf"(?<![0-9A-Za-z]){re.escape(secret)}(?![0-9A-Za-z])"
        assert not re.search(pattern, blob), f"a secret reached a log line: {secret[:4]}..."


async def test_the_account_journey_reports_each_step_once(
    fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    recorder = Recorder()
    manager = build(fake_clock, sink(recorder))
    alice = await manager.register("alice@x.io", PASSWORD, username="alice")
    assert recorder.take() == []  # registering is the hooks' business
    secrets = [PASSWORD, NEW_PASSWORD, "hunter2-typed-in-the-name-field"]

    await manager.request_verification("alice@x.io")
    verify_token = token_from(outbox(manager).messages[-1])
    await manager.confirm_verification(verify_token)
    verified = one(recorder.take(), EventType.EMAIL_VERIFIED)
    assert (verified.subject, dict(verified.extra)) == (alice.id, {})

    with pytest.raises(InvalidCredentialsError):
        await login(manager, "Alice@X.io", "wrong password!")
    failed = one(recorder.take(), EventType.LOGIN_FAILED)
    assert (failed.subject, failed.reason, failed.client, failed.user_agent) == (
        alice.id,
        "bad credentials",
        CLIENT,
        AGENT,
    )
    assert dict(failed.extra) == {
        "cause": "wrong_password",
        "login_name_digest": pseudonymize_login_name("alice@x.io"),
    }
    assert failed.time == fake_clock()

    with pytest.raises(InvalidCredentialsError):
        await login(manager, "hunter2-typed-in-the-name-field")
    unknown = one(recorder.take(), EventType.LOGIN_FAILED)
    assert unknown.subject is None
    assert unknown.extra["cause"] == "unknown_name"
    assert unknown.extra["login_name_digest"] == pseudonymize_login_name(
        "hunter2-typed-in-the-name-field"
    )

    pair = await login(manager, "alice")
    succeeded = one(recorder.take(), EventType.LOGIN_SUCCEEDED)
    assert (succeeded.subject, succeeded.session_id, succeeded.client, succeeded.user_agent) == (
        alice.id,
        pair.session_id,
        CLIENT,
        AGENT,
    )
    assert dict(succeeded.extra) == {"amr": ["pwd"]}

    await manager.change_password(alice.id, PASSWORD, NEW_PASSWORD, session_id=pair.session_id)
    changed = one(recorder.take(), EventType.PASSWORD_CHANGED)
    assert (changed.subject, changed.session_id) == (alice.id, pair.session_id)
    assert dict(changed.extra) == {"sessions_ended": "others"}

    await manager.request_password_reset("alice@x.io")
    requested = one(recorder.take(), EventType.PASSWORD_RESET_REQUESTED)
    assert requested.subject == alice.id
    await manager.request_password_reset("nobody@x.io")
    assert recorder.take() == []  # no account, no mail, nothing to report
    reset_token = token_from(outbox(manager).messages[-1])
    await manager.confirm_password_reset(reset_token, PASSWORD)
    reset = one(recorder.take(), EventType.PASSWORD_RESET)
    assert (reset.subject, dict(reset.extra)) == (alice.id, {"sessions_ended": "all"})

    pair = await login(manager, "alice")
    recorder.take()
    await manager.logout(alice.id, pair.session_id)
    logout = one(recorder.take(), EventType.LOGOUT)
    assert (logout.subject, logout.session_id) == (alice.id, pair.session_id)
    await manager.logout_all(alice.id)
    everywhere = one(recorder.take(), EventType.LOGOUT_EVERYWHERE)
    assert everywhere.subject == alice.id

    secrets += [verify_token, reset_token, pair.access_token, pair.refresh_token]
    assert_no_secret(secrets, caplog.records)


async def test_an_unverified_email_and_an_inactive_account_are_failures_with_their_cause(
    fake_clock: FakeClock,
) -> None:
    recorder = Recorder()
    manager = build(fake_clock, sink(recorder), require_verified_email=True)
    ann = await manager.register("ann@x.io", PASSWORD)
    with pytest.raises(EmailNotVerifiedError):
        await login(manager, "ann@x.io")
    unverified = one(recorder.take(), EventType.LOGIN_FAILED)
    assert (unverified.subject, unverified.reason) == (ann.id, "email not verified")
    await manager.users.set_active(ann.id, False)
    with pytest.raises(InvalidCredentialsError):
        await login(manager, "ann@x.io")
    inactive = one(recorder.take(), EventType.LOGIN_FAILED)
    assert (inactive.reason, inactive.extra["cause"]) == ("bad credentials", "inactive_account")
    with pytest.raises(InvalidCredentialsError):
        await login(manager, "ann@x.io", "x" * 2000)
    oversized = one(recorder.take(), EventType.LOGIN_FAILED)
    assert oversized.extra["cause"] == "oversized_password"


async def test_a_lockout_starts_once_and_locked_logins_say_so(fake_clock: FakeClock) -> None:
    recorder = Recorder()
    manager = build(fake_clock, sink(recorder))
    await manager.register("bob@x.io", PASSWORD)
    for _ in range(5):
        with pytest.raises(InvalidCredentialsError):
            await login(manager, "bob@x.io", "not his password")
    batch = recorder.take()
    # The failure is counted (and the lock starts) before the failure is reported.
    assert [event.type for event in batch] == [EventType.LOGIN_FAILED] * 4 + [
        EventType.LOCKOUT_STARTED,
        EventType.LOGIN_FAILED,
    ]
    started = batch[-2]
    assert (started.subject, started.client, started.reason) == (None, CLIENT, "account locked")
    assert dict(started.extra) == {
        "scope": "account",
        "retry_after": 60,
        "login_name_digest": pseudonymize_login_name("bob@x.io"),
    }
    with pytest.raises(AccountLockedError):
        await login(manager, "bob@x.io")  # the right password, but locked
    locked = one(recorder.take(), EventType.LOGIN_FAILED)
    assert (locked.subject, locked.reason) == (None, "locked")
    assert dict(locked.extra) == {
        "scope": "account",
        "retry_after": 60,
        "login_name_digest": pseudonymize_login_name("bob@x.io"),
    }


async def test_an_address_lockout_names_the_client_and_no_account(fake_clock: FakeClock) -> None:
    recorder = Recorder()
    # The application's own lockout, without a sink: it reports to the manager's.
    lockout = Lockout(address=LockoutPolicy(threshold=3), clock=fake_clock)
    manager = build(fake_clock, sink(recorder), lockout=lockout)
    assert lockout.events is manager.events
    for name in ("a@x.io", "b@x.io", "c@x.io"):
        with pytest.raises(InvalidCredentialsError):
            await login(manager, name)
    started = recorder.take()[-2]
    assert started.type is EventType.LOCKOUT_STARTED
    assert (started.client, started.reason) == (CLIENT, "address locked")
    assert dict(started.extra) == {"scope": "address", "retry_after": 60}
    with pytest.raises(AccountLockedError):
        await login(manager, "d@x.io")
    locked = one(recorder.take(), EventType.LOGIN_FAILED)
    assert (locked.reason, locked.extra["scope"]) == ("locked", "address")


async def test_a_lockout_with_a_sink_of_its_own_keeps_it(fake_clock: FakeClock) -> None:
    mine, theirs = Recorder(), Recorder()
    lockout = Lockout(events=sink(theirs), clock=fake_clock)
    manager = build(fake_clock, sink(mine), lockout=lockout)
    assert lockout.events is not manager.events
    for _ in range(5):
        with pytest.raises(InvalidCredentialsError):
            await login(manager, "nobody@x.io")
    assert [event.type for event in theirs.events] == [EventType.LOCKOUT_STARTED]
    assert EventType.LOCKOUT_STARTED not in [event.type for event in mine.events]


async def test_refresh_reuse_and_logout_everywhere_are_reported_once_per_sink(
    fake_clock: FakeClock,
) -> None:
    # The issuer reports to the same sink: the manager does not repeat it.
    recorder = Recorder()
    shared = sink(recorder)
    manager = build(fake_clock, shared, issuer_events=shared)
    alice = await manager.register("alice@x.io", PASSWORD)
    pair = await login(manager, "alice@x.io")
    await manager.refresh(pair.refresh_token)
    recorder.take()
    with pytest.raises(TokenReuseError):
        await manager.refresh(pair.refresh_token)
    reuse = one(recorder.take(), EventType.REFRESH_REUSE_DETECTED)
    assert (reuse.subject, reuse.session_id) == (alice.id, pair.session_id)
    await manager.logout_all(alice.id)
    one(recorder.take(), EventType.LOGOUT_EVERYWHERE)

    # An issuer without a sink: the manager reports both.
    recorder = Recorder()
    manager = build(fake_clock, sink(recorder))
    alice = await manager.register("alice@x.io", PASSWORD)
    pair = await login(manager, "alice@x.io")
    await manager.refresh(pair.refresh_token)
    recorder.take()
    with pytest.raises(TokenReuseError):
        await manager.refresh(pair.refresh_token)
    reuse = one(recorder.take(), EventType.REFRESH_REUSE_DETECTED)
    assert (reuse.subject, reuse.session_id) == (alice.id, pair.session_id)
    assert reuse.reason == "refresh token reused; token family revoked"
    await manager.logout_all(alice.id)
    one(recorder.take(), EventType.LOGOUT_EVERYWHERE)


class BrokenSink:
    """An EventSink that fails on every event."""

    async def emit(self, event: SecurityEvent) -> None:
        raise RuntimeError("sink down")


@pytest.mark.parametrize("kind", ["hook", "sink"])
async def test_a_failing_sink_or_hook_never_changes_a_login(
    kind: str, fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken_hook(event: SecurityEvent) -> None:
        raise RuntimeError("hook down")

    events: EventSink = BrokenSink() if kind == "sink" else SecurityEvents(hook=broken_hook)
    manager = build(fake_clock, events)
    alice = await manager.register("alice@x.io", PASSWORD)
    with pytest.raises(InvalidCredentialsError):
        await login(manager, "alice@x.io", "wrong!")
    pair = await login(manager, "alice@x.io")
    assert (await manager.issuer.verify_access(pair.access_token)).sub == alice.id
    await manager.logout(alice.id, pair.session_id)
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(failures) == 3  # each event's failure logged, none raised


async def test_account_hooks_are_unchanged_beside_the_events(fake_clock: FakeClock) -> None:
    recorder = Recorder()
    hooks = AccountHooks(clock=fake_clock)
    seen: list[HookContext] = []

    async def record(context: HookContext) -> None:
        seen.append(context)

    for event in AccountEvent:
        hooks.add(event, record)
    manager = build(fake_clock, sink(recorder), hooks=hooks)
    alice = await manager.register("alice@x.io", PASSWORD)
    with pytest.raises(InvalidCredentialsError):
        await login(manager, "alice@x.io", "wrong!")
    pair = await login(manager, "alice@x.io")
    await manager.logout(alice.id, pair.session_id)
    assert [(c.event, c.subject) for c in seen] == [
        (AccountEvent.REGISTERED, alice.id),
        (AccountEvent.LOGIN_FAILED, alice.id),
        (AccountEvent.LOGIN_SUCCEEDED, alice.id),
        (AccountEvent.SESSION_REVOKED, alice.id),
    ]
    assert seen[1].login_name == "alice@x.io"  # hooks keep the name; events never do
    assert [event.type for event in recorder.events] == [
        EventType.LOGIN_FAILED,
        EventType.LOGIN_SUCCEEDED,
        EventType.LOGOUT,
    ]


async def test_without_events_nothing_is_reported(fake_clock: FakeClock) -> None:
    manager = build(fake_clock, None)
    assert manager.events is None
    assert manager.lockout.events is None
    await manager.register("alice@x.io", PASSWORD)
    await login(manager, "alice@x.io")


# -- the second step -------------------------------------------------------------------------


async def enrolled(
    fake_clock: FakeClock, recorder: Recorder
) -> tuple[AccountManager, UserRecord, str, list[str]]:
    events = sink(recorder)
    manager = build(fake_clock, events)
    manager.mfa = make_factors(MemoryMFAStore(clock=fake_clock), fake_clock, events=events)
    user = await manager.register("ann@x.io", PASSWORD, username="ann")
    enrolment = await manager.mfa.begin_totp(user.id, "ann@x.io")
    secret = enrolment.secret.get_secret_value()
    codes = await manager.mfa.confirm_totp(user.id, totp_code(secret, clock=fake_clock))
    fake_clock.advance(30)
    recorder.take()
    return manager, user, secret, codes


async def second_step(manager: AccountManager) -> MFARequired:
    step = await manager.login("ann", PASSWORD, client_address=CLIENT, user_agent=AGENT)
    assert isinstance(step, MFARequired)
    return step


async def test_the_second_step_reports_the_login_outcome(
    fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    recorder = Recorder()
    manager, user, secret, codes = await enrolled(fake_clock, recorder)
    step = await second_step(manager)
    assert recorder.take() == []  # the password was right, the login is not over
    wrong = "000000" if totp_code(secret, clock=fake_clock) != "000000" else "111111"
    with pytest.raises(InvalidOTPError):
        await manager.complete_mfa(
            step.mfa_token, FactorCheck(code=wrong), client_address=CLIENT, user_agent=AGENT
        )
    batch = recorder.take()
    assert [event.type for event in batch] == [EventType.MFA_FAILED, EventType.LOGIN_FAILED]
    failed = batch[1]
    assert (failed.subject, failed.reason, failed.client, failed.user_agent) == (
        user.id,
        "second factor",
        CLIENT,
        AGENT,
    )
    assert dict(failed.extra) == {
        "step": "mfa",
        "method": "totp",
        "login_name_digest": pseudonymize_login_name("ann"),
    }
    code = totp_code(secret, clock=fake_clock)
    pair = await manager.complete_mfa(
        step.mfa_token, FactorCheck(code=code), client_address=CLIENT, user_agent=AGENT
    )
    batch = recorder.take()
    assert [event.type for event in batch] == [EventType.MFA_SUCCEEDED, EventType.LOGIN_SUCCEEDED]
    assert (batch[1].subject, batch[1].session_id) == (user.id, pair.session_id)
    assert dict(batch[1].extra) == {"amr": ["pwd", "otp", "mfa"]}
    assert_no_secret(
        [secret, code, wrong, *codes, step.mfa_token, pair.access_token, pair.refresh_token],
        caplog.records,
    )


async def test_a_locked_second_step_and_a_changed_account_are_failures(
    fake_clock: FakeClock,
) -> None:
    recorder = Recorder()
    manager, user, _, codes = await enrolled(fake_clock, recorder)
    steps = [await second_step(manager) for _ in range(2)]
    for _ in range(5):
        await manager.lockout.failure("ann", CLIENT)
    recorder.take()
    with pytest.raises(AccountLockedError):
        await manager.complete_mfa(
            steps[0].mfa_token, FactorCheck(recovery_code=codes[0]), client_address=CLIENT
        )
    locked = one(recorder.take(), EventType.LOGIN_FAILED)
    assert (locked.subject, locked.reason) == (user.id, "locked")
    assert (locked.extra["step"], locked.extra["scope"]) == ("mfa", "account")

    await manager.lockout.success("ann")
    await manager.change_password(user.id, PASSWORD, NEW_PASSWORD)
    recorder.take()
    with pytest.raises(InvalidCredentialsError):
        await manager.complete_mfa(steps[1].mfa_token, FactorCheck(recovery_code=codes[1]))
    batch = recorder.take()
    changed = batch[-1]
    assert (changed.type, changed.subject, changed.reason) == (
        EventType.LOGIN_FAILED,
        user.id,
        "account changed during the login",
    )

    step = await manager.login("ann", NEW_PASSWORD)
    assert isinstance(step, MFARequired)
    await manager.users.set_active(user.id, False)
    recorder.take()
    with pytest.raises(InvalidCredentialsError):
        await manager.complete_mfa(step.mfa_token, FactorCheck(recovery_code=codes[2]))
    gone = recorder.take()[-1]
    assert (gone.type, gone.reason) == (EventType.LOGIN_FAILED, "account gone or inactive")


async def test_a_login_that_lost_a_race_with_a_password_change_is_a_failure(
    fake_clock: FakeClock,
) -> None:
    recorder = Recorder()
    manager = build(fake_clock, sink(recorder))
    alice = await manager.register("alice@x.io", PASSWORD)
    stale = await manager.authenticate("alice@x.io", PASSWORD)
    await manager.change_password(alice.id, PASSWORD, NEW_PASSWORD)
    recorder.take()
    with pytest.raises(InvalidCredentialsError):
        # The session of a login that read the account before the change.
        await manager._start_session(stale, ["pwd"], AGENT, CLIENT, None)
    failed = one(recorder.take(), EventType.LOGIN_FAILED)
    assert (failed.subject, failed.reason) == (alice.id, "account changed during the login")


async def test_a_passkey_login_reports_its_outcome(fake_clock: FakeClock) -> None:
    recorder = Recorder()
    events = sink(recorder)
    manager = build(fake_clock, events)
    factors = make_factors(MemoryMFAStore(clock=fake_clock), fake_clock, events=events)
    manager.mfa = factors
    user = await manager.register("ann@x.io", PASSWORD)
    device = SoftAuthenticator(origin=MFA_ORIGIN)
    options = await factors.passkey_registration_options(user.id, "ann@x.io")
    await factors.register_passkey(user.id, device.create(options.public_key), name="key")
    recorder.take()

    async def passkey_login() -> TokenPair:
        assertion = device.get((await factors.passwordless_options()).public_key)
        return await manager.login_with_passkey(assertion, client_address=CLIENT, user_agent=AGENT)

    pair = await passkey_login()
    # As for a second step: the factor's event, then the login's.
    factor, succeeded = recorder.take()
    assert (factor.type, factor.subject, factor.extra["first_factor"]) == (
        EventType.MFA_SUCCEEDED,
        user.id,
        True,
    )
    assert succeeded.type is EventType.LOGIN_SUCCEEDED
    assert (succeeded.subject, succeeded.session_id, succeeded.client) == (
        user.id,
        pair.session_id,
        CLIENT,
    )
    assert "mfa" in succeeded.extra["amr"]

    manager.require_verified_email = True
    with pytest.raises(EmailNotVerifiedError):
        await passkey_login()
    unverified = recorder.take()[-1]
    assert (unverified.type, unverified.reason, unverified.extra["step"]) == (
        EventType.LOGIN_FAILED,
        "email not verified",
        "passkey",
    )
    manager.require_verified_email = False
    await manager.users.set_active(user.id, False)
    with pytest.raises(InvalidCredentialsError):
        await passkey_login()
    inactive = recorder.take()[-1]
    assert (inactive.type, inactive.subject, inactive.reason) == (
        EventType.LOGIN_FAILED,
        user.id,
        "account gone or inactive",
    )
