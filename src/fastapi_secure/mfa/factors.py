"""An account's second factors as one block: :class:`SecondFactors`.

It joins the factor blocks (:class:`~fastapi_secure.mfa.TOTP`,
:class:`~fastapi_secure.mfa.RecoveryCodes`, :class:`~fastapi_secure.mfa.Passkeys`)
to the durable :class:`~fastapi_secure.mfa.authenticators.AuthenticatorStore`
and to the MFA step of a login (:class:`~fastapi_secure.mfa.MFAChallenges`):

- enrolment: :meth:`~SecondFactors.begin_totp` stores a pending authenticator,
  :meth:`~SecondFactors.confirm_totp` confirms it with a first code and returns
  a new set of recovery codes; a first passkey also comes with recovery codes;
- removal: removing the last factor voids the recovery codes too (they are a
  way back to a second factor, not a factor of their own);
- the login step: :meth:`~SecondFactors.challenge` (an MFA token when the
  account has a factor, else None) and :meth:`~SecondFactors.complete` (the
  code, recovery code or passkey assertion for that token: the account and
  its ``amr``);
- passwordless sign-in with a passkey (user verification required).

``amr`` values (RFC 8176): a TOTP or recovery code adds ``otp``; a passkey
``hwk`` (bound to one device) or ``swk`` (synced, backed up); every
completed second step adds ``mfa``. A passwordless passkey login counts as
multi-factor (``[key, "mfa"]``): the authenticator verified the user (PIN or
biometrics) on top of proving possession of the key.

Security events (``events=``, a :class:`~fastapi_secure.events.SecurityEvents`):
``mfa_added`` (a TOTP confirmed, a passkey registered), ``mfa_removed``,
``recovery_codes_regenerated``, ``mfa_failed`` (which method, why; never what
was presented), ``mfa_succeeded``, ``recovery_code_used`` (how many remain),
``passkey_clone_suspected`` (a sign count that did not grow) and
``mfa_token_refused`` (an MFA token presented again after its use, or after
it expired). Each carries the account as ``subject`` and ids and counts only.

Core code: no FastAPI. :mod:`fastapi_secure.mfa.routers` is the HTTP side.
"""

from __future__ import annotations

import base64
import dataclasses
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from fastapi_secure.clock import Clock, system_clock
from fastapi_secure.errors import ConfigurationError, ConflictError, SecurityError
from fastapi_secure.events import EventSink, EventType, emit_event
from fastapi_secure.mfa.authenticators import AuthenticatorStore
from fastapi_secure.mfa.challenge import MFAChallenge, MFAChallenges, MFATokenError, PendingMFA
from fastapi_secure.mfa.errors import ChallengeError, InvalidOTPError, SignCountError
from fastapi_secure.mfa.passkeys import (
    PasskeyAssertion,
    PasskeyCredential,
    PasskeyOptions,
    Passkeys,
)
from fastapi_secure.mfa.recovery import RecoveryCodes
from fastapi_secure.mfa.totp import TOTP, TOTPEnrolment

__all__ = [
    "MAX_PASSKEY_NAME",
    "PASSKEY_NAME_PATTERN",
    "FactorCheck",
    "MFAMethod",
    "NoSecondFactorError",
    "SecondFactorResult",
    "SecondFactors",
]

MFAMethod = str
"""``"totp"``, ``"recovery_code"`` or ``"passkey"``."""

TOTP_METHOD = "totp"
RECOVERY_METHOD = "recovery_code"
PASSKEY_METHOD = "passkey"

MAX_PASSKEY_NAME = 64
"""Longest passkey name (characters)."""

# Control characters (C0, DEL, C1), zero-width and bidi controls, line and paragraph
# separators, the BOM: nothing that can hide text or forge a line where a name is shown.
_NAME_FORBIDDEN = r"\x00-\x1F\x7F-\x9F\u200B-\u200F\u2028-\u202E\u2060-\u2064\u2066-\u2069\uFEFF"
PASSKEY_NAME_PATTERN = rf"^[^{_NAME_FORBIDDEN}]*[^\s{_NAME_FORBIDDEN}][^{_NAME_FORBIDDEN}]*$"
"""What a passkey name may be: something besides spaces, and none of the characters above."""
_NAME = re.compile(PASSKEY_NAME_PATTERN)
_NAME_STRIP = re.compile(f"[{_NAME_FORBIDDEN}]")


def passkey_name(name: str) -> str:
    """``name`` trimmed; ValueError when it is blank, longer than :data:`MAX_PASSKEY_NAME`
    or holds a control, zero-width or bidi character."""
    if not isinstance(name, str) or len(name) > MAX_PASSKEY_NAME or not _NAME.fullmatch(name):
        raise ValueError(
            f"a passkey name has 1 to {MAX_PASSKEY_NAME} characters, not all spaces, "
            "and no control characters"
        )
    return name.strip()


class NoSecondFactorError(ConflictError):
    """409: the operation needs a second factor the account does not have (or already has)."""

    default_message = "not possible with the account's current second factors"


@dataclass(frozen=True)
class SecondFactorResult:
    """A completed second step: whose login, which method, and the ``amr`` it earned."""

    user_id: str
    method: MFAMethod
    amr: tuple[str, ...]
    pending: PendingMFA | None = None
    remaining_recovery_codes: int | None = None


@dataclass(frozen=True)
class FactorCheck:
    """What the client presented for a second step: exactly one of the three."""

    code: str | None = field(default=None, repr=False)
    recovery_code: str | None = field(default=None, repr=False)
    passkey: Mapping[str, Any] | None = field(default=None, repr=False)

    @property
    def method(self) -> MFAMethod:
        given = [
            name
            for name, value in (
                (TOTP_METHOD, self.code),
                (RECOVERY_METHOD, self.recovery_code),
                (PASSKEY_METHOD, self.passkey),
            )
            if value is not None
        ]
        if len(given) != 1:
            raise InvalidOTPError(reason="give exactly one of code, recovery_code, passkey")
        return given[0]


def passkey_amr(credential: PasskeyCredential) -> str:
    """``hwk`` for a device-bound passkey, ``swk`` for a synced one (RFC 8176)."""
    return (
        "hwk" if credential.device_type == "single_device" and not credential.backed_up else "swk"
    )


class SecondFactors:
    """The second factors of accounts over one :class:`AuthenticatorStore`.

    Args:
        store: the durable per-account store.
        totp: the TOTP block (its replay guard and attempt limit are shared via Redis).
        challenges: MFA tokens of the login step.
        recovery_codes: over ``store`` (``RecoveryCodes(store)`` when omitted).
        passkeys: the passkey block; without it no passkey method is offered.
        events: where security events go (see the module docs); None: nowhere.
        clock: time of the events.
    """

    def __init__(
        self,
        store: AuthenticatorStore,
        *,
        totp: TOTP,
        challenges: MFAChallenges,
        recovery_codes: RecoveryCodes | None = None,
        passkeys: Passkeys | None = None,
        events: EventSink | None = None,
        clock: Clock = system_clock,
    ) -> None:
        if not getattr(store, "keyed_by_user_id", False):
            raise ConfigurationError("store must be an AuthenticatorStore (keyed by account id)")
        self.store = store
        self.totp = totp
        self.challenges = challenges
        self.recovery_codes = recovery_codes if recovery_codes is not None else RecoveryCodes(store)
        self.passkeys = passkeys
        self.events = events
        self._clock = clock

    def __repr__(self) -> str:
        return f"SecondFactors(store={self.store!r}, passkeys={self.passkeys is not None})"

    async def _emit(
        self,
        kind: EventType,
        user_id: str | None,
        client: str | IPv4Address | IPv6Address | None = None,
        user_agent: str | None = None,
        reason: str | None = None,
        **extra: Any,
    ) -> None:
        await emit_event(
            self.events,
            kind,
            clock=self._clock,
            subject=user_id,
            client=None if client is None else str(client),
            user_agent=user_agent,
            reason=reason,
            extra=extra,
        )

    # -- what an account has ---------------------------------------------------

    async def methods(self, user_id: str) -> tuple[MFAMethod, ...]:
        """The second-step methods ``user_id`` can use now (empty: no second factor)."""
        found: list[MFAMethod] = []
        totp = await self.store.get_totp(user_id)
        if totp is not None and totp.confirmed:
            found.append(TOTP_METHOD)
        if self.passkeys is not None and await self.store.list_passkeys(user_id):
            found.append(PASSKEY_METHOD)
        if found and await self.store.remaining(user_id) > 0:
            found.append(RECOVERY_METHOD)
        return tuple(found)

    async def enrolled(self, user_id: str) -> bool:
        """Whether ``user_id`` has a second factor (a confirmed TOTP or a passkey)."""
        return bool(await self.methods(user_id))

    async def _void_codes_without_factor(self, user_id: str) -> None:
        totp = await self.store.get_totp(user_id)
        has_totp = totp is not None and totp.confirmed
        if not has_totp and not await self.store.list_passkeys(user_id):
            await self.store.replace(user_id, [])

    # -- TOTP ------------------------------------------------------------------

    async def begin_totp(self, user_id: str, account_name: str) -> TOTPEnrolment:
        """Start (or restart) TOTP enrolment; :class:`NoSecondFactorError` if one is confirmed."""
        current = await self.store.get_totp(user_id)
        if current is not None and current.confirmed:
            raise NoSecondFactorError(
                "a TOTP authenticator is already set up; remove it first",
                reason="confirmed TOTP exists",
            )
        enrolment = self.totp.begin_enrolment(user_id, account_name)
        await self.store.save_totp(enrolment.authenticator)
        return enrolment

    async def confirm_totp(self, user_id: str, code: str) -> list[str]:
        """Confirm the pending authenticator with a first code; returns new recovery codes.

        Raises :class:`~fastapi_secure.mfa.errors.InvalidOTPError` for a wrong
        code and :class:`NoSecondFactorError` without a pending enrolment.
        """
        pending = await self.store.get_totp(user_id)
        if pending is None or pending.confirmed:
            raise NoSecondFactorError(
                "no TOTP enrolment in progress", reason="nothing pending to confirm"
            )
        confirmed = await self.totp.confirm_enrolment(pending, code)
        if not await self.store.confirm_totp(confirmed):
            raise NoSecondFactorError(
                "the enrolment was replaced; start again", reason="pending record changed"
            )
        codes = await self.recovery_codes.generate(user_id)
        await self._emit(EventType.MFA_ADDED, user_id, method=TOTP_METHOD)
        return codes

    async def remove_totp(self, user_id: str) -> bool:
        """Remove the TOTP authenticator (pending or confirmed); False if there was none."""
        removed = await self.store.delete_totp(user_id)
        await self._void_codes_without_factor(user_id)
        if removed:
            await self._emit(EventType.MFA_REMOVED, user_id, method=TOTP_METHOD)
        return removed

    async def new_recovery_codes(self, user_id: str) -> list[str]:
        """A new set of recovery codes (the old set stops working); needs a second factor."""
        if not await self.enrolled(user_id):
            raise NoSecondFactorError(
                "set up a second factor first", reason="recovery codes without a factor"
            )
        codes = await self.recovery_codes.generate(user_id)
        await self._emit(EventType.RECOVERY_CODES_REGENERATED, user_id, remaining=len(codes))
        return codes

    # -- passkeys ----------------------------------------------------------------

    def _passkeys(self) -> Passkeys:
        if self.passkeys is None:
            raise ConfigurationError("SecondFactors was built without passkeys=")
        return self.passkeys

    async def passkey_registration_options(
        self, user_id: str, user_name: str, *, display_name: str | None = None
    ) -> PasskeyOptions:
        """Options for ``navigator.credentials.create()`` (the account's passkeys excluded)."""
        existing = await self.store.list_passkeys(user_id)
        return await self._passkeys().registration_options(
            user_id, user_name, display_name=display_name, existing=existing
        )

    async def register_passkey(
        self, user_id: str, response: str | Mapping[str, Any], *, name: str = ""
    ) -> tuple[PasskeyCredential, list[str]]:
        """Verify and store a new passkey; returns it, and recovery codes if it is the
        account's first second factor (else an empty list)."""
        first = not await self.enrolled(user_id)
        credential = await self._passkeys().verify_registration(
            user_id, response, find_credential=self.store.get_passkey
        )
        cleaned = _NAME_STRIP.sub("", name).strip()
        credential = dataclasses.replace(
            credential, name=cleaned.strip()[:MAX_PASSKEY_NAME] or "passkey"
        )
        await self.store.add_passkey(credential)
        codes = await self.recovery_codes.generate(user_id) if first else []
        await self._emit(
            EventType.MFA_ADDED, user_id, method=PASSKEY_METHOD, credential_id=credential.id_b64
        )
        return credential, codes

    async def list_passkeys(self, user_id: str) -> list[PasskeyCredential]:
        """The account's passkeys, oldest first."""
        return await self.store.list_passkeys(user_id)

    async def delete_passkey(self, user_id: str, credential_id: bytes) -> bool:
        """Remove one of the account's passkeys; False if it has none with that id."""
        removed = await self.store.delete_passkey(user_id, credential_id)
        if removed:
            await self._void_codes_without_factor(user_id)
            await self._emit(
                EventType.MFA_REMOVED,
                user_id,
                method=PASSKEY_METHOD,
                credential_id=_b64url(credential_id),
            )
        return removed

    async def rename_passkey(
        self, user_id: str, credential_id: bytes, name: str
    ) -> PasskeyCredential | None:
        """Rename one of the account's passkeys; None if it has none with that id.

        ``name`` is trimmed; ValueError as :func:`passkey_name` says.
        """
        return await self.store.rename_passkey(user_id, credential_id, passkey_name(name))

    async def _use_passkey(
        self,
        response: str | Mapping[str, Any],
        user_id: str | None,
        client: str | IPv4Address | IPv6Address | None = None,
        user_agent: str | None = None,
    ) -> PasskeyAssertion:
        try:
            assertion = await self._passkeys().verify_authentication(
                response, find_credential=self.store.get_passkey, user_id=user_id
            )
            if not await self.store.record_passkey_use(assertion.credential):
                # Two assertions with one counter value raced: the second is a clone's.
                used = assertion.credential
                raise SignCountError(
                    reason="sign count already used",
                    user_id=used.user_id,
                    credential_id=used.id_b64,
                    presented_count=used.sign_count,
                )
        except SignCountError as error:
            await self._emit(
                EventType.PASSKEY_CLONE_SUSPECTED,
                error.user_id,
                client,
                user_agent,
                reason="sign count did not grow",
                credential_id=error.credential_id,
                stored_count=error.stored_count,
                presented_count=error.presented_count,
            )
            raise
        return assertion

    async def passwordless_options(self) -> PasskeyOptions:
        """Options for a passwordless sign-in (any discoverable credential, UV required)."""
        return await self._passkeys().authentication_options()

    async def passwordless(
        self,
        response: str | Mapping[str, Any],
        *,
        client: str | IPv4Address | IPv6Address | None = None,
        user_agent: str | None = None,
    ) -> SecondFactorResult:
        """Verify a passwordless passkey assertion; the account and its ``amr``.

        ``client`` and ``user_agent`` go into a ``passkey_clone_suspected`` event.
        """
        assertion = await self._use_passkey(response, None, client, user_agent)
        amr = (passkey_amr(assertion.credential), "mfa")
        await self._emit(
            EventType.MFA_SUCCEEDED,
            assertion.user_id,
            method=PASSKEY_METHOD,
            amr=list(amr),
            first_factor=True,
            client=client,
            user_agent=user_agent,
        )
        return SecondFactorResult(user_id=assertion.user_id, method=PASSKEY_METHOD, amr=amr)

    # -- the login step ----------------------------------------------------------------

    async def challenge(
        self, user_id: str, *, context: Mapping[str, str] | None = None
    ) -> MFAChallenge | None:
        """An MFA token for this login of ``user_id``, or None when it has no second factor."""
        methods = await self.methods(user_id)
        if not methods:
            return None
        return await self.challenges.start(user_id, methods, context=context)

    async def passkey_options_for(self, token: str) -> PasskeyOptions:
        """Passkey options for the login behind an MFA token (its account's credentials)."""
        pending = await self.challenges.peek(token)
        if PASSKEY_METHOD not in pending.methods:
            raise MFATokenError(reason="passkey not offered for this login")
        credentials = await self.store.list_passkeys(pending.user_id)
        return await self._passkeys().authentication_options(pending.user_id, credentials)

    async def complete(
        self,
        token: str,
        presented: FactorCheck,
        *,
        before: Callable[[PendingMFA], Awaitable[None]] | None = None,
        on_failure: Callable[[PendingMFA, SecurityError], Awaitable[None]] | None = None,
        client: str | IPv4Address | IPv6Address | None = None,
        user_agent: str | None = None,
    ) -> SecondFactorResult:
        """Check the second factor for an MFA token; the token is used up on success.

        ``before(pending)`` runs first (a lockout check: raise to refuse);
        ``on_failure(pending, error)`` after a refused factor (count it).
        A refused factor leaves the token usable for its remaining attempts
        (:class:`~fastapi_secure.mfa.MFAChallenges`). ``client`` and
        ``user_agent`` go into the events.
        """
        method = presented.method
        seen: dict[str, Any] = {"client": client, "user_agent": user_agent}

        async def verify(pending: PendingMFA) -> SecondFactorResult:
            if before is not None:
                await before(pending)
            try:
                return await self._check(pending, method, presented, seen)
            except SecurityError as error:
                await self._emit(
                    EventType.MFA_FAILED,
                    pending.user_id,
                    reason=_reason_of(error),
                    method=method,
                    attempt=pending.attempts + 1,
                    error=type(error).__name__,
                    **seen,
                )
                if on_failure is not None:
                    await on_failure(pending, error)
                raise

        try:
            pending, result = await self.challenges.complete(token, verify)
        except MFATokenError as error:
            if error.problem in ("reused", "expired"):
                await self._emit(
                    EventType.MFA_TOKEN_REFUSED,
                    error.user_id,
                    reason=f"MFA token {error.problem}",
                    problem=error.problem,
                    method=method,
                    **seen,
                )
            raise
        await self._emit(
            EventType.MFA_SUCCEEDED,
            result.user_id,
            method=result.method,
            amr=list(result.amr),
            **seen,
        )
        if result.remaining_recovery_codes is not None:
            await self._emit(
                EventType.RECOVERY_CODE_USED,
                result.user_id,
                remaining=result.remaining_recovery_codes,
                **seen,
            )
        return SecondFactorResult(
            user_id=result.user_id,
            method=result.method,
            amr=result.amr,
            pending=pending,
            remaining_recovery_codes=result.remaining_recovery_codes,
        )

    async def _check(
        self,
        pending: PendingMFA,
        method: MFAMethod,
        presented: FactorCheck,
        seen: Mapping[str, Any],
    ) -> SecondFactorResult:
        user_id = pending.user_id
        if method not in pending.methods:
            raise InvalidOTPError(reason=f"{method} was not offered for this login")
        if method == TOTP_METHOD:
            authenticator = await self.store.get_totp(user_id)
            if authenticator is None:
                raise InvalidOTPError(reason="TOTP removed since the login started")
            used = await self.totp.verify(authenticator, presented.code or "")
            await self.store.record_totp_use(used)
            return SecondFactorResult(user_id, method, ("pwd", "otp", "mfa"))
        if method == RECOVERY_METHOD:
            left = await self.recovery_codes.verify(user_id, presented.recovery_code or "")
            return SecondFactorResult(
                user_id, method, ("pwd", "otp", "mfa"), remaining_recovery_codes=left
            )
        if self.passkeys is None or presented.passkey is None:
            raise ChallengeError(reason="passkeys are not configured")
        assertion = await self._use_passkey(presented.passkey, user_id, **seen)
        return SecondFactorResult(
            user_id, method, ("pwd", passkey_amr(assertion.credential), "mfa")
        )


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _reason_of(error: SecurityError) -> str | None:
    reason = getattr(error, "reason", None)
    return reason if isinstance(reason, str) else None
