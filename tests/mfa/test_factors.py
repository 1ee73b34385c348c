"""SecondFactors and the MFA step of AccountManager, without HTTP (memory and Redis stores)."""

from __future__ import annotations

import dataclasses
from typing import Any

import anyio
import pytest

from fastapi_secure.accounts.errors import AccountLockedError
from fastapi_secure.accounts.hooks import AccountEvent, HookContext
from fastapi_secure.accounts.manager import (
    EmailNotVerifiedError,
    InvalidCredentialsError,
    MFARequired,
)
from fastapi_secure.errors import ConfigurationError
from fastapi_secure.events import SecurityEvent, SecurityEvents
from fastapi_secure.mfa import (
    InvalidOTPError,
    MFATokenError,
    PasskeyError,
)
from fastapi_secure.mfa.factors import FactorCheck, NoSecondFactorError, SecondFactors, passkey_amr
from fastapi_secure.testing import FakeClock, totp_code
from fastapi_secure.tokens.claims import TokenPair
from tests.support.accounts import AccountsApp, build_accounts_app
from tests.support.mfa import ORIGIN, make_factors
from tests.support.webauthn_authenticator import SoftAuthenticator

pytestmark = pytest.mark.anyio

PASSWORD = "violet-kettle-harbour-17"


@pytest.fixture
def factors(fast_store: Any, fake_clock: FakeClock) -> SecondFactors:
    return make_factors(fast_store, fake_clock)


async def enrol(
    factors: SecondFactors, clock: FakeClock, user_id: str = "u1"
) -> tuple[str, list[str]]:
    enrolment = await factors.begin_totp(user_id, f"{user_id}@x.io")
    secret = enrolment.secret.get_secret_value()
    codes = await factors.confirm_totp(user_id, totp_code(secret, clock=clock))
    clock.advance(30)
    return secret, codes


async def add_passkey(
    factors: SecondFactors, user_id: str = "u1"
) -> tuple[SoftAuthenticator, list[str]]:
    device = SoftAuthenticator(origin=ORIGIN)
    options = await factors.passkey_registration_options(user_id, f"{user_id}@x.io")
    credential, codes = await factors.register_passkey(
        user_id, device.create(options.public_key), name="  key  "
    )
    assert credential.name == "key"
    return device, codes


async def test_methods_follow_what_the_account_has(
    factors: SecondFactors, fake_clock: FakeClock
) -> None:
    assert await factors.methods("u1") == ()
    assert await factors.challenge("u1") is None
    await factors.begin_totp("u1", "u1@x.io")
    assert await factors.methods("u1") == ()  # pending is not a factor
    _, codes = await enrol(factors, fake_clock)
    assert await factors.methods("u1") == ("totp", "recovery_code")
    _, more = await add_passkey(factors)
    assert more == []  # not the first factor: the codes stay
    assert await factors.methods("u1") == ("totp", "passkey", "recovery_code")
    assert await factors.remove_totp("u1")
    assert await factors.methods("u1") == ("passkey", "recovery_code")
    [stored] = await factors.list_passkeys("u1")
    assert not await factors.delete_passkey("u2", stored.id)
    assert await factors.delete_passkey("u1", stored.id)
    assert await factors.methods("u1") == ()
    assert await factors.store.remaining("u1") == 0  # no factor: the codes are void
    assert not await factors.remove_totp("u1")
    assert codes


async def test_enrolment_conflicts(factors: SecondFactors, fake_clock: FakeClock) -> None:
    with pytest.raises(NoSecondFactorError):
        await factors.confirm_totp("u1", "123456")
    with pytest.raises(NoSecondFactorError):
        await factors.new_recovery_codes("u1")
    first = await factors.begin_totp("u1", "u1@x.io")
    with pytest.raises(InvalidOTPError):
        await factors.confirm_totp("u1", "000000")
    # A second enrolment replaces the first while the first is being confirmed.
    pending = await factors.store.get_totp("u1")
    assert pending is not None
    await factors.begin_totp("u1", "u1@x.io")
    confirmed = dataclasses.replace(pending, confirmed_at=1.0)
    assert not await factors.store.confirm_totp(confirmed)
    with pytest.raises(InvalidOTPError):
        await factors.confirm_totp(
            "u1", totp_code(first.secret.get_secret_value(), clock=fake_clock)
        )
    await enrol(factors, fake_clock, "u2")
    with pytest.raises(NoSecondFactorError):
        await factors.begin_totp("u2", "u2@x.io")
    with pytest.raises(NoSecondFactorError):
        await factors.confirm_totp("u2", "123456")
    assert len(await factors.new_recovery_codes("u2")) == 10


def test_factor_check_takes_exactly_one() -> None:
    assert FactorCheck(code="1").method == "totp"
    assert FactorCheck(recovery_code="1").method == "recovery_code"
    assert FactorCheck(passkey={}).method == "passkey"
    for bad in (FactorCheck(), FactorCheck(code="1", recovery_code="2")):
        with pytest.raises(InvalidOTPError):
            _ = bad.method
    assert "1" not in repr(FactorCheck(code="1"))


async def test_the_login_step(factors: SecondFactors, fake_clock: FakeClock) -> None:
    secret, codes = await enrol(factors, fake_clock)
    started = await factors.challenge("u1", context={"login_name": "u1@x.io"})
    assert started is not None
    # A passkey was not offered for this login: refused without using the token up.
    with pytest.raises(InvalidOTPError):
        await factors.complete(started.token, FactorCheck(passkey={"id": "x"}))
    with pytest.raises(MFATokenError):
        await factors.passkey_options_for(started.token)
    done = await factors.complete(
        started.token, FactorCheck(code=totp_code(secret, clock=fake_clock))
    )
    assert (done.user_id, done.method, done.amr) == ("u1", "totp", ("pwd", "otp", "mfa"))
    assert done.pending is not None
    assert done.pending.context == {"login_name": "u1@x.io"}
    with pytest.raises(MFATokenError):
        await factors.complete(started.token, FactorCheck(recovery_code=codes[0]))

    again = await factors.challenge("u1")
    assert again is not None
    rescued = await factors.complete(again.token, FactorCheck(recovery_code=codes[0]))
    assert rescued.remaining_recovery_codes == 9

    # TOTP removed while a login waits for its second step.
    waiting = await factors.challenge("u1")
    assert waiting is not None
    await factors.remove_totp("u1")
    with pytest.raises(InvalidOTPError):
        await factors.complete(waiting.token, FactorCheck(code=totp_code(secret, clock=fake_clock)))


async def test_concurrent_second_steps_with_one_token_have_one_winner(
    factors: SecondFactors, fake_clock: FakeClock
) -> None:
    _, codes = await enrol(factors, fake_clock)
    started = await factors.challenge("u1")
    assert started is not None
    outcomes: list[str] = []

    async def attempt(code: str) -> None:
        try:
            await factors.complete(started.token, FactorCheck(recovery_code=code))
            outcomes.append("ok")
        except (MFATokenError, InvalidOTPError):
            outcomes.append("refused")

    async with anyio.create_task_group() as group:
        for code in codes[:8]:
            group.start_soon(attempt, code)
    assert outcomes.count("ok") == 1


async def test_peek_refuses_like_complete(factors: SecondFactors, fake_clock: FakeClock) -> None:
    await add_passkey(factors)
    started = await factors.challenge("u1")
    assert started is not None
    for bad in ("", "nope", "mfa_" + "x" * 200, "mfa_unknown"):
        with pytest.raises(MFATokenError):
            await factors.challenges.peek(bad)
    assert (await factors.challenges.peek(started.token)).user_id == "u1"
    options = await factors.passkey_options_for(started.token)
    assert options.public_key["allowCredentials"]
    fake_clock.advance(301)
    with pytest.raises(MFATokenError):
        await factors.challenges.peek(started.token)


async def test_passkeys_as_second_factor_and_passwordless(
    factors: SecondFactors, fake_clock: FakeClock
) -> None:
    device, codes = await add_passkey(factors)
    assert len(codes) == 10  # the first factor brings recovery codes
    started = await factors.challenge("u1")
    assert started is not None
    options = await factors.passkey_options_for(started.token)
    done = await factors.complete(
        started.token, FactorCheck(passkey=device.get(options.public_key))
    )
    assert done.amr[0] == "pwd"
    assert done.amr[2] == "mfa"

    options = await factors.passwordless_options()
    result = await factors.passwordless(device.get(options.public_key))
    assert result.user_id == "u1"
    assert result.amr[1] == "mfa"
    [stored] = await factors.list_passkeys("u1")
    assert stored.sign_count == device.sign_count
    assert passkey_amr(stored) in ("hwk", "swk")
    assert passkey_amr(dataclasses.replace(stored, backed_up=True)) == "swk"
    assert (
        passkey_amr(dataclasses.replace(stored, device_type="single_device", backed_up=False))
        == "hwk"
    )

    # The store refuses a count already recorded (a racing clone): refused.
    clone = device.clone()
    options = await factors.passwordless_options()
    await factors.passwordless(device.get(options.public_key))
    clone.sign_count = device.sign_count - 1
    options = await factors.passwordless_options()
    with pytest.raises(PasskeyError):
        await factors.passwordless(clone.get(options.public_key))


async def test_without_passkeys(fast_store: Any, fake_clock: FakeClock) -> None:
    factors = make_factors(fast_store, fake_clock, passkeys=False)
    with pytest.raises(ConfigurationError):
        await factors.passwordless_options()
    with pytest.raises(ConfigurationError):
        SecondFactors(fast_store, totp=factors.totp, challenges=factors.challenges)
    assert "passkeys=False" in repr(factors)


# -- AccountManager's MFA step ---------------------------------------------------------------


@pytest.fixture
async def world(fast_store: Any, fake_clock: FakeClock) -> AccountsApp:
    app = build_accounts_app(fake_clock)
    app.manager.mfa = make_factors(fast_store, fake_clock)
    await app.manager.register("ann@x.io", PASSWORD, username="ann")
    return app


async def test_login_answers_mfa_required_then_complete_gives_tokens(
    world: AccountsApp, fake_clock: FakeClock
) -> None:
    manager = world.manager
    assert manager.mfa is not None
    user = await world.users.find_by_email("ann@x.io")
    assert user is not None
    first = await manager.login("ann", PASSWORD)
    assert isinstance(first, TokenPair)  # no factor yet
    secret, _ = await enrol(manager.mfa, fake_clock, user.id)
    result = await manager.login("ANN@x.io", PASSWORD)
    assert isinstance(result, MFARequired)
    assert result.methods == ("totp", "recovery_code")
    assert result.mfa_token not in repr(result)
    pair = await manager.complete_mfa(
        result.mfa_token, FactorCheck(code=totp_code(secret, clock=fake_clock))
    )
    claims = await manager.issuer.verify_access(pair.access_token)
    assert claims.amr == ("pwd", "otp", "mfa")
    assert claims.fresh


async def test_second_step_failures_lock_the_login_name(
    world: AccountsApp, fake_clock: FakeClock
) -> None:
    manager = world.manager
    assert manager.mfa is not None
    seen: list[HookContext] = []

    async def record(context: HookContext) -> None:
        seen.append(context)

    world.hooks.add(AccountEvent.LOGIN_FAILED, record)
    user = await world.users.find_by_email("ann@x.io")
    assert user is not None
    await enrol(manager.mfa, fake_clock, user.id)
    for _ in range(5):
        step = await manager.login("ann", PASSWORD)
        assert isinstance(step, MFARequired)
        with pytest.raises(InvalidOTPError):
            await manager.complete_mfa(step.mfa_token, FactorCheck(code="000000"))
    assert [dict(c.data) for c in seen] == [{"step": "mfa", "method": "totp"}] * 5
    assert {c.subject for c in seen} == {user.id}
    with pytest.raises(AccountLockedError):
        await manager.login("ann", PASSWORD)


async def test_an_account_deactivated_during_the_second_step_gets_no_tokens(
    world: AccountsApp, fake_clock: FakeClock
) -> None:
    manager = world.manager
    assert manager.mfa is not None
    user = await world.users.find_by_email("ann@x.io")
    assert user is not None
    _, codes = await enrol(manager.mfa, fake_clock, user.id)
    step = await manager.login("ann", PASSWORD)
    assert isinstance(step, MFARequired)
    await world.users.set_active(user.id, False)
    with pytest.raises(InvalidCredentialsError):
        await manager.complete_mfa(step.mfa_token, FactorCheck(recovery_code=codes[0]))


async def test_passwordless_login_checks_the_account(
    world: AccountsApp, fake_clock: FakeClock
) -> None:
    manager = world.manager
    assert manager.mfa is not None
    user = await world.users.find_by_email("ann@x.io")
    assert user is not None
    device, _ = await add_passkey(manager.mfa, user.id)
    options = await manager.mfa.passwordless_options()
    pair = await manager.login_with_passkey(device.get(options.public_key))
    assert "mfa" in (await manager.issuer.verify_access(pair.access_token)).amr
    manager.require_verified_email = True
    options = await manager.mfa.passwordless_options()
    with pytest.raises(EmailNotVerifiedError):
        await manager.login_with_passkey(device.get(options.public_key))
    manager.require_verified_email = False
    await world.users.set_active(user.id, False)
    options = await manager.mfa.passwordless_options()
    with pytest.raises(InvalidCredentialsError):
        await manager.login_with_passkey(device.get(options.public_key))


async def test_mfa_steps_need_second_factors(fake_clock: FakeClock) -> None:
    manager = build_accounts_app(fake_clock).manager
    with pytest.raises(ConfigurationError):
        await manager.complete_mfa("mfa_x", FactorCheck(code="1"))
    with pytest.raises(ConfigurationError):
        await manager.login_with_passkey({})


async def test_a_password_change_during_the_second_step_voids_it(
    world: AccountsApp, fake_clock: FakeClock
) -> None:
    manager = world.manager
    assert manager.mfa is not None
    user = await world.users.find_by_email("ann@x.io")
    assert user is not None
    _, codes = await enrol(manager.mfa, fake_clock, user.id)
    step = await manager.login("ann", PASSWORD)
    assert isinstance(step, MFARequired)
    await manager.change_password(user.id, PASSWORD, "a-brand-new-passphrase-9")
    with pytest.raises(InvalidCredentialsError):
        await manager.complete_mfa(step.mfa_token, FactorCheck(recovery_code=codes[0]))


async def test_the_second_step_reports_to_hooks_and_security_events(
    world: AccountsApp, fake_clock: FakeClock
) -> None:
    """The login step's outcome goes to AccountHooks (login_failed / login_succeeded,
    from the manager) and to SecurityEvents (mfa_failed / mfa_succeeded, from the block),
    the latter with the client and user agent the manager was given."""
    manager = world.manager
    assert manager.mfa is not None
    events: list[SecurityEvent] = []
    hooks: list[HookContext] = []

    async def to_list(event: SecurityEvent) -> None:
        events.append(event)

    async def record(context: HookContext) -> None:
        hooks.append(context)

    manager.mfa.events = SecurityEvents(hook=to_list, client_address="full")
    world.hooks.add(AccountEvent.LOGIN_FAILED, record)
    world.hooks.add(AccountEvent.LOGIN_SUCCEEDED, record)
    user = await world.users.find_by_email("ann@x.io")
    assert user is not None
    secret, _ = await enrol(manager.mfa, fake_clock, user.id)
    events.clear()
    step = await manager.login("ann", PASSWORD)
    assert isinstance(step, MFARequired)
    with pytest.raises(InvalidOTPError):
        await manager.complete_mfa(
            step.mfa_token, FactorCheck(code="000000"), client_address="198.51.100.4"
        )
    await manager.complete_mfa(
        step.mfa_token,
        FactorCheck(code=totp_code(secret, clock=fake_clock)),
        client_address="198.51.100.4",
        user_agent="agent/2",
    )
    assert [(e.type.value, e.subject, e.client) for e in events] == [
        ("mfa_failed", user.id, "198.51.100.4"),
        ("mfa_succeeded", user.id, "198.51.100.4"),
    ]
    assert events[1].user_agent == "agent/2"
    assert [(h.event, h.subject) for h in hooks] == [
        (AccountEvent.LOGIN_FAILED, user.id),
        (AccountEvent.LOGIN_SUCCEEDED, user.id),
    ]
