"""The account flows, HTTP-free: register, log in, refresh, verify, reset, change.

:class:`AccountManager` composes the blocks (user store, hasher and policy,
issuer, action tokens, lockout, sessions, mail, hooks) into the flows the
routers in :mod:`fastapi_secure.accounts.routers` expose. Every refusal is a
core error of :mod:`fastapi_secure.errors` (or :mod:`.errors`); nothing here
knows HTTP.

Enumeration: :meth:`~AccountManager.authenticate` spends one password
verification whether the account exists or not, and counts the failure under
the name tried either way; the *request* flows (verification, reset) do their
work in the background and answer the same whatever the address.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from fastapi_secure.accounts.action_tokens import ActionPurpose, ActionTokens
from fastapi_secure.accounts.addresses import IPAddress
from fastapi_secure.accounts.errors import AccountLockedError
from fastapi_secure.accounts.hooks import AccountEvent, AccountHooks
from fastapi_secure.accounts.lockout import Lockout
from fastapi_secure.accounts.mail import LinkBuilder, MailMessage, MailSender
from fastapi_secure.accounts.sessions import SessionManager
from fastapi_secure.accounts.users import (
    UserRecord,
    UserStore,
    login_name_digest,
    normalize_login_name,
    plausible_login_name,
)
from fastapi_secure.errors import (
    AuthenticationError,
    ConfigurationError,
    ErrorCode,
    PermissionDeniedError,
    TokenReuseError,
)
from fastapi_secure.events import EventSink, EventType, emit_event
from fastapi_secure.passwords.policy import PasswordPolicy
from fastapi_secure.tokens.issuer import Grant
from fastapi_secure.tokens.stores.base import SessionStore

if TYPE_CHECKING:
    from fastapi_secure.mfa.challenge import PendingMFA
    from fastapi_secure.mfa.factors import FactorCheck, SecondFactors
    from fastapi_secure.passwords.hasher import PasswordHasher
    from fastapi_secure.tokens.claims import RefreshClaims, TokenPair
    from fastapi_secure.tokens.issuer import GrantLoader, TokenIssuer

__all__ = [
    "AccountManager",
    "CurrentPasswordError",
    "EmailNotVerifiedError",
    "InvalidCredentialsError",
    "MFARequired",
    "user_grant_loader",
]

logger = logging.getLogger("fastapi_secure.accounts")

MAX_PASSWORD_INPUT = 1024
"""Longest password looked at during a login: longer input is a failure, unhashed."""


class InvalidCredentialsError(AuthenticationError):
    """Wrong login name or password, or an inactive account (HTTP 401); one answer for all."""

    default_code = ErrorCode.INVALID_CREDENTIALS
    default_message = "incorrect login name or password"


class EmailNotVerifiedError(PermissionDeniedError):
    """The password was right but the email is not verified yet (HTTP 403)."""

    default_message = "verify your email address before logging in"


class CurrentPasswordError(PermissionDeniedError):
    """A password change named the wrong current password (HTTP 403)."""

    default_code = ErrorCode.INVALID_CREDENTIALS
    default_message = "the current password is not correct"


@dataclass(frozen=True)
class MFARequired:
    """What :meth:`AccountManager.login` answers for an account with a second factor.

    The password was right; the login continues with
    :meth:`AccountManager.complete_mfa` and ``mfa_token`` (single use, short-lived,
    bound to this login attempt, never accepted as an access token).
    """

    mfa_token: str = field(repr=False)
    methods: tuple[str, ...]
    expires_in: int


def _stamp_digest(user: UserRecord) -> str:
    # Carried in the MFA token's context (a store entry): a digest, not the stamp.
    return hashlib.sha256(f"mfa-login\x00{user.security_stamp}".encode()).hexdigest()[:32]


def user_grant_loader(users: UserStore) -> GrantLoader:
    """A grant loader for :class:`~fastapi_secure.tokens.issuer.TokenIssuer` that
    reloads the user on each refresh: their current roles, or no new tokens
    (and the session revoked) once the account is gone or inactive."""

    async def load(claims: RefreshClaims) -> Grant | None:
        user = await users.get(claims.sub)
        if user is None or not user.is_active:
            return None
        return Grant(roles=user.roles)

    return load


class AccountManager:
    """The account flows over the blocks an application configured.

    Args:
        users: the application's user store.
        issuer: issues and revokes the tokens.
        hasher: hashes and verifies passwords off the event loop.
        policy: checks new passwords (NIST defaults).
        action_tokens: verification and reset tokens (memory store by default).
        lockout: escalating login lockout (in memory by default; ``None`` is refused:
            pass a ``Lockout`` over a Redis store for several workers).
        sessions: sessions per device; by default over the issuer's store.
        mail: the application's sender; without it no mail is sent.
        links: builds action links from the public base URL (required with ``mail``).
        hooks: lifecycle hooks.
        require_verified_email: refuse logins of unverified accounts (403).
        verify_path: where the application's verification page takes the token
            from the link's ``token`` query parameter.
        reset_path: the same for the password reset page.
        default_roles: roles of a newly registered account.
        mfa: the accounts' second factors; with it, :meth:`login` answers
            :class:`MFARequired` for an account that has one, and second-factor
            failures count in ``lockout`` like wrong passwords.
        events: the security log (:class:`~fastapi_secure.events.SecurityEvents`):
            login failed and succeeded, logout, password changed and reset,
            email verified (see ``docs/events.md`` for each event's fields). A
            ``lockout`` without a sink of its own reports ``lockout_started`` here.
            Independent of ``hooks``: hooks are the application's reactions, events
            the security log; a failing sink or hook never changes an answer.
    """

    def __init__(
        self,
        users: UserStore,
        issuer: TokenIssuer,
        hasher: PasswordHasher,
        *,
        policy: PasswordPolicy | None = None,
        action_tokens: ActionTokens | None = None,
        lockout: Lockout | None = None,
        sessions: SessionManager | None = None,
        mail: MailSender | None = None,
        links: LinkBuilder | None = None,
        hooks: AccountHooks | None = None,
        require_verified_email: bool = False,
        verify_path: str = "/verify-email",
        reset_path: str = "/reset-password",
        default_roles: Sequence[str] = (),
        mfa: SecondFactors | None = None,
        events: EventSink | None = None,
    ) -> None:
        if mail is not None and links is None:
            raise ConfigurationError("sending mail needs links=LinkBuilder(public_base_url)")
        if links is not None:
            links.link(verify_path)  # refuses a path that could leave the base URL
            links.link(reset_path)
        self.users = users
        self.issuer = issuer
        self.hasher = hasher
        self.policy = policy if policy is not None else PasswordPolicy()
        self.hooks = hooks if hooks is not None else AccountHooks(clock=issuer.clock)
        self.action_tokens = (
            action_tokens if action_tokens is not None else ActionTokens(users, clock=issuer.clock)
        )
        self.events = events
        self.lockout = (
            lockout
            if lockout is not None
            else Lockout(hooks=self.hooks, events=events, clock=issuer.clock)
        )
        if self.lockout.events is None:
            self.lockout.events = events
        if sessions is None and isinstance(issuer.store, SessionStore):
            sessions = SessionManager(issuer, hooks=self.hooks)
        self.sessions = sessions
        self.mail = mail
        self.links = links
        self.require_verified_email = bool(require_verified_email)
        self.verify_path = verify_path
        self.reset_path = reset_path
        self.default_roles = tuple(default_roles)
        self.mfa = mfa

    def __repr__(self) -> str:
        return f"AccountManager(users={self.users!r})"

    async def _event(
        self,
        kind: EventType,
        *,
        subject: str | None = None,
        session_id: str | None = None,
        client_address: str | IPAddress | None = None,
        user_agent: str | None = None,
        reason: str | None = None,
        **extra: Any,
    ) -> None:
        await emit_event(
            self.events,
            kind,
            clock=self.issuer.clock,
            subject=subject,
            session_id=session_id,
            client=None if client_address is None else str(client_address),
            user_agent=user_agent,
            reason=reason,
            extra=extra,
        )

    async def _login_failed(
        self,
        reason: str,
        *,
        login_name: str | None,
        subject: str | None = None,
        client_address: str | IPAddress | None = None,
        user_agent: str | None = None,
        **extra: Any,
    ) -> None:
        # Never the name in clear (a password typed into the name field would land
        # in the log): its digest correlates the failures of one name.
        if login_name is not None:
            extra["login_name_digest"] = login_name_digest(login_name)
        await self._event(
            EventType.LOGIN_FAILED,
            subject=subject,
            client_address=client_address,
            user_agent=user_agent,
            reason=reason,
            **extra,
        )

    # -- registration ----------------------------------------------------------

    async def register(
        self, email: str, password: str, *, username: str | None = None
    ) -> UserRecord:
        """Create an account; :class:`UserExistsError` when the email or name is taken.

        The password is checked by the policy (``WeakPasswordError``) and hashed
        before the insert, so a taken address costs the same time as a new one.
        """
        self.policy.validate(password, context=[email, username])
        password_hash = await self.hasher.ahash(password)
        user = await self.users.create(
            email=email, password_hash=password_hash, username=username, roles=self.default_roles
        )
        await self.hooks.emit(AccountEvent.REGISTERED, subject=user.id)
        return user

    async def notify_existing(self, email: str) -> None:
        """Tell the owner of ``email`` that someone tried to register it (when the
        router hides existing accounts)."""
        user = await self.users.find_by_email(email)
        if user is None or self.mail is None:
            return
        await self._send(
            user,
            "Someone tried to register with your address",
            "An account already exists for this address. If that was you, log in "
            "or reset your password; otherwise you can ignore this message.",
        )

    # -- login, refresh, logout ----------------------------------------------

    async def authenticate(
        self,
        login_name: str,
        password: str,
        *,
        client_address: str | IPAddress | None = None,
        user_agent: str | None = None,
    ) -> UserRecord:
        """The account behind ``login_name`` and ``password``, or a refusal.

        ``AccountLockedError`` (429) while locked, before any password work;
        :class:`InvalidCredentialsError` (401) for a wrong name, password or an
        inactive account, after the same hashing work in each case. Each refusal
        is a ``login_failed`` event (``client_address`` and ``user_agent`` go into it).
        """
        name = login_name.strip() if isinstance(login_name, str) else ""
        try:
            await self.lockout.check(name, client_address)
        except AccountLockedError as error:
            await self._login_failed(
                "locked",
                login_name=name,
                client_address=client_address,
                user_agent=user_agent,
                scope="address" if error.reason == "address locked" else "account",
                retry_after=error.retry_after,
            )
            raise
        user = None
        if plausible_login_name(name) and len(password) <= MAX_PASSWORD_INPUT:
            user = await self.users.find_by_login(name)
        if user is None or user.password_hash is None or len(password) > MAX_PASSWORD_INPUT:
            await self.hasher.adummy_verify(
                password if len(password) <= MAX_PASSWORD_INPUT else None
            )
            cause = "unknown_name" if user is None else "no_password"
            if len(password) > MAX_PASSWORD_INPUT:
                cause = "oversized_password"
            await self._failed(name, client_address, None, user_agent, cause)
        valid, new_hash = await self.hasher.averify_and_update(password, user.password_hash)
        if not valid or not user.is_active:
            cause = "wrong_password" if not valid else "inactive_account"
            await self._failed(name, client_address, user.id, user_agent, cause)
        if self.require_verified_email and not user.email_verified:
            await self._login_failed(
                "email not verified",
                login_name=name,
                subject=user.id,
                client_address=client_address,
                user_agent=user_agent,
            )
            raise EmailNotVerifiedError(reason="email not verified")
        # With a second factor the login is not over: failures so far stay counted
        # until the second step succeeds (complete_mfa clears them).
        if self.mfa is None or not await self.mfa.enrolled(user.id):
            await self.lockout.success(name)
        if new_hash is not None:
            await self.users.set_password_hash(user.id, new_hash, rotate_stamp=False)
        return user

    async def _failed(
        self,
        name: str,
        client_address: str | IPAddress | None,
        subject: str | None,
        user_agent: str | None,
        cause: str,
    ) -> NoReturn:
        await self.lockout.failure(name, client_address)
        await self._login_failed(
            "bad credentials",
            login_name=name,
            subject=subject,
            client_address=client_address,
            user_agent=user_agent,
            cause=cause,
        )
        await self.hooks.emit(
            AccountEvent.LOGIN_FAILED,
            subject=subject,
            login_name=normalize_login_name(name)[:254],
        )
        raise InvalidCredentialsError(reason="bad credentials or inactive account")

    async def login(
        self,
        login_name: str,
        password: str,
        *,
        user_agent: str | None = None,
        client_address: str | IPAddress | None = None,
        dpop_jkt: str | None = None,
    ) -> TokenPair | MFARequired:
        """Authenticate, then start a session: a fresh token pair, or
        :class:`MFARequired` when the account has a second factor (with ``mfa``).

        ``dpop_jkt``, the thumbprint of the key that signed the request's
        verified DPoP proof, binds the session to that key (RFC 9449).
        """
        user = await self.authenticate(
            login_name, password, client_address=client_address, user_agent=user_agent
        )
        if self.mfa is not None:
            context = {"login_name": login_name, "stamp": _stamp_digest(user)}
            challenge = await self.mfa.challenge(user.id, context=context)
            if challenge is not None:
                return MFARequired(challenge.token, challenge.methods, challenge.expires_in)
        return await self._start_session(user, ["pwd"], user_agent, client_address, dpop_jkt)

    def _second_factors(self) -> SecondFactors:
        if self.mfa is None:
            raise ConfigurationError("this AccountManager has no mfa=SecondFactors")
        return self.mfa

    async def complete_mfa(
        self,
        mfa_token: str,
        presented: FactorCheck,
        *,
        user_agent: str | None = None,
        client_address: str | IPAddress | None = None,
        dpop_jkt: str | None = None,
    ) -> TokenPair:
        """The second step of a login: the factor for ``mfa_token``, then a session.

        The account lockout is checked first and counts each refused factor
        under the login name of the first step (and the client address), like
        a wrong password. The tokens carry the factor's ``amr``
        (``["pwd", "otp", "mfa"]`` for a code). ``dpop_jkt`` binds the session
        to the key of this request's DPoP proof, as in :meth:`login`.
        """
        mfa = self._second_factors()

        def name_of(pending: PendingMFA) -> str:
            return pending.context.get("login_name", "")

        async def before(pending: PendingMFA) -> None:
            try:
                await self.lockout.check(name_of(pending), client_address)
            except AccountLockedError as error:
                await self._login_failed(
                    "locked",
                    login_name=name_of(pending),
                    subject=pending.user_id,
                    client_address=client_address,
                    user_agent=user_agent,
                    step="mfa",
                    scope="address" if error.reason == "address locked" else "account",
                    retry_after=error.retry_after,
                )
                raise

        async def failed(pending: PendingMFA, error: Exception) -> None:
            if isinstance(error, AuthenticationError):
                await self.lockout.failure(name_of(pending), client_address)
                await self._login_failed(
                    "second factor",
                    login_name=name_of(pending),
                    subject=pending.user_id,
                    client_address=client_address,
                    user_agent=user_agent,
                    step="mfa",
                    method=presented.method,
                )
                await self.hooks.emit(
                    AccountEvent.LOGIN_FAILED,
                    subject=pending.user_id,
                    login_name=normalize_login_name(name_of(pending))[:254],
                    data={"step": "mfa", "method": presented.method},
                )

        result = await mfa.complete(
            mfa_token,
            presented,
            before=before,
            on_failure=failed,
            client=client_address,
            user_agent=user_agent,
        )
        user = await self._account_after_factor(
            result.user_id,
            step="mfa",
            client_address=client_address,
            user_agent=user_agent,
            why="account gone or inactive during the MFA step",
        )
        if result.pending is not None:
            # The password checked at the first step must still be the account's.
            if result.pending.context.get("stamp") != _stamp_digest(user):
                await self._login_failed(
                    "account changed during the login",
                    login_name=None,
                    subject=user.id,
                    client_address=client_address,
                    user_agent=user_agent,
                    step="mfa",
                )
                raise InvalidCredentialsError(reason="account changed during the MFA step")
            await self.lockout.success(name_of(result.pending))
        return await self._start_session(user, result.amr, user_agent, client_address, dpop_jkt)

    async def login_with_passkey(
        self,
        response: str | Mapping[str, Any],
        *,
        user_agent: str | None = None,
        client_address: str | IPAddress | None = None,
        dpop_jkt: str | None = None,
    ) -> TokenPair:
        """A passwordless login with a passkey assertion (user verification required)."""
        result = await self._second_factors().passwordless(
            response, client=client_address, user_agent=user_agent
        )
        user = await self._account_after_factor(
            result.user_id,
            step="passkey",
            client_address=client_address,
            user_agent=user_agent,
            why="account gone or inactive",
        )
        if self.require_verified_email and not user.email_verified:
            await self._login_failed(
                "email not verified",
                login_name=None,
                subject=user.id,
                client_address=client_address,
                user_agent=user_agent,
                step="passkey",
            )
            raise EmailNotVerifiedError(reason="email not verified")
        return await self._start_session(user, result.amr, user_agent, client_address, dpop_jkt)

    async def _account_after_factor(
        self,
        user_id: str,
        *,
        step: str,
        client_address: str | IPAddress | None,
        user_agent: str | None,
        why: str,
    ) -> UserRecord:
        """The account a factor proved, or a refusal when it is gone or inactive."""
        user = await self.users.get(user_id)
        if user is None or not user.is_active:
            await self._login_failed(
                "account gone or inactive",
                login_name=None,
                subject=user_id,
                client_address=client_address,
                user_agent=user_agent,
                step=step,
            )
            raise InvalidCredentialsError(reason=why)
        return user

    async def _start_session(
        self,
        user: UserRecord,
        amr: Sequence[str],
        user_agent: str | None,
        client_address: str | IPAddress | None,
        dpop_jkt: str | None,
    ) -> TokenPair:
        pair = await self.issuer.issue(
            user.id, roles=user.roles, fresh=True, amr=amr, dpop_jkt=dpop_jkt
        )
        if self.sessions is not None:
            await self.sessions.start(
                user.id, pair.session_id, user_agent=user_agent, client_address=client_address
            )
        try:
            await self._end_if_changed_meanwhile(user, pair.session_id)
        except InvalidCredentialsError:
            await self._login_failed(
                "account changed during the login",
                login_name=None,
                subject=user.id,
                client_address=client_address,
                user_agent=user_agent,
            )
            raise
        await self.hooks.emit(
            AccountEvent.LOGIN_SUCCEEDED, subject=user.id, session_id=pair.session_id
        )
        await self._event(
            EventType.LOGIN_SUCCEEDED,
            subject=user.id,
            session_id=pair.session_id,
            client_address=client_address,
            user_agent=user_agent,
            amr=list(amr),
        )
        return pair

    async def _end_if_changed_meanwhile(self, user: UserRecord, session_id: str) -> None:
        """Refuse a login whose password check raced a password change or reset.

        The login read the account, verified the old password and stored its
        session; the change may have run anywhere in between. Read the account
        again now that the session is stored: if the stamp moved, the change
        came first and this session must not live. If it did not move, the
        change has not reached its revocation step yet, which will find this
        session (``revoke_others`` lists it; ``revoke_subject`` covers it).
        """
        current = await self.users.get(user.id)
        if (
            current is not None
            and current.is_active
            and current.security_stamp == user.security_stamp
        ):
            return
        if self.sessions is not None:
            await self.sessions.revoke(
                user.id, session_id, reason="password changed while logging in"
            )
        await self.issuer.revoke_family(session_id)
        raise InvalidCredentialsError(reason="account changed while logging in")

    async def refresh(self, refresh_token: str, *, dpop_jkt: str | None = None) -> TokenPair:
        """Rotate ``refresh_token``; the user's current roles go into the new pair.

        A reused refresh token revokes its family (the issuer does) and fires
        ``refresh_reuse_detected``. ``dpop_jkt`` is the thumbprint of the key
        that signed the request's verified DPoP proof: a session bound to a key
        refuses a refresh without it or from another key, before anything is
        consumed; an unbound session refreshed with one becomes bound.
        """
        seen: list[RefreshClaims] = []
        load = user_grant_loader(self.users)

        async def grant(claims: RefreshClaims) -> Grant | None:
            seen.append(claims)
            return await load(claims)

        try:
            pair = await self.issuer.rotate(refresh_token, grant_loader=grant, dpop_jkt=dpop_jkt)
        except TokenReuseError:
            if seen:
                await self.hooks.emit(
                    AccountEvent.REFRESH_REUSE_DETECTED,
                    subject=seen[0].sub,
                    session_id=seen[0].sid,
                )
                if not self._issuer_reports():
                    await self._event(
                        EventType.REFRESH_REUSE_DETECTED,
                        subject=seen[0].sub,
                        session_id=seen[0].sid,
                        reason="refresh token reused; token family revoked",
                    )
            raise
        if self.sessions is not None and seen:
            await self.sessions.touch(seen[0].sub, pair.session_id)
        return pair

    def _issuer_reports(self) -> bool:
        # The issuer reports reuse and logout-everywhere itself: to the same sink,
        # once is enough.
        return self.issuer.events is not None and self.issuer.events is self.events

    async def logout(self, subject: str, session_id: str) -> None:
        """End the caller's session (its access and refresh tokens)."""
        await self.issuer.revoke_family(session_id)
        await self.hooks.emit(AccountEvent.SESSION_REVOKED, subject=subject, session_id=session_id)
        await self._event(EventType.LOGOUT, subject=subject, session_id=session_id)

    async def logout_all(self, subject: str) -> None:
        """End every session of ``subject``."""
        await self.issuer.revoke_subject(subject)
        await self.hooks.emit(AccountEvent.SESSION_REVOKED, subject=subject, data={"all": "1"})
        if not self._issuer_reports():
            await self._event(EventType.LOGOUT_EVERYWHERE, subject=subject)

    # -- email verification and password reset -----------------------------

    async def request_verification(self, email: str) -> None:
        """Mail a verification link if ``email`` is an active, unverified account.

        Says nothing either way: run it after the response.
        """
        user = await self.users.find_by_email(email)
        if user is None or not user.is_active or user.email_verified:
            return
        await self.send_verification(user)

    async def send_verification(self, user: UserRecord) -> None:
        """Mail ``user`` a fresh verification link (older ones stop working)."""
        if self.mail is None:
            return
        token = await self.action_tokens.issue(ActionPurpose.VERIFY_EMAIL, user)
        await self._send(
            user,
            "Verify your email address",
            "Open this link to verify your email address:",
            self.verify_path,
            token,
        )

    async def confirm_verification(self, token: str, *, subject: str | None = None) -> UserRecord:
        """Consume a verification token and mark the email verified."""
        user = await self.action_tokens.confirm(ActionPurpose.VERIFY_EMAIL, token, subject=subject)
        user = await self.users.mark_email_verified(user.id)
        await self.hooks.emit(AccountEvent.VERIFIED, subject=user.id)
        await self._event(EventType.EMAIL_VERIFIED, subject=user.id)
        return user

    async def request_password_reset(self, email: str) -> None:
        """Mail a reset link if ``email`` is an active account. Says nothing
        either way: run it after the response."""
        user = await self.users.find_by_email(email)
        if user is None or not user.is_active or self.mail is None:
            return
        token = await self.action_tokens.issue(ActionPurpose.RESET_PASSWORD, user)
        await self._event(EventType.PASSWORD_RESET_REQUESTED, subject=user.id)
        minutes = round(self.action_tokens.ttl(ActionPurpose.RESET_PASSWORD) / 60)
        await self._send(
            user,
            "Reset your password",
            f"Open this link within {minutes} minutes to choose a new password. "
            "If you did not ask for it, ignore this message.",
            self.reset_path,
            token,
        )

    async def confirm_password_reset(self, token: str, new_password: str) -> UserRecord:
        """Consume a reset token, set the new password, end every session.

        The policy is checked before the token is consumed, so a refused
        password does not burn the link; the context check (email, name)
        follows once the account is known.
        """
        self.policy.validate(new_password)
        user = await self.action_tokens.confirm(ActionPurpose.RESET_PASSWORD, token)
        self.policy.validate(new_password, context=[user.email, user.username])
        password_hash = await self.hasher.ahash(new_password)
        user = await self.users.set_password_hash(user.id, password_hash)
        await self.issuer.revoke_subject(user.id)
        # The owner proved control of the mailbox: lift a lock an attacker caused.
        await self.lockout.success(user.email)
        if user.username:
            await self.lockout.success(user.username)
        await self.hooks.emit(AccountEvent.PASSWORD_RESET, subject=user.id)
        await self._event(EventType.PASSWORD_RESET, subject=user.id, sessions_ended="all")
        return user

    async def change_password(
        self,
        subject: str,
        current_password: str,
        new_password: str,
        *,
        session_id: str | None = None,
    ) -> UserRecord:
        """Change the password of a signed-in user (the router requires a fresh
        token); other sessions end, ``session_id`` (the caller's) stays."""
        user = await self.users.get(subject)
        if user is None or not user.is_active or user.password_hash is None:
            raise InvalidCredentialsError(reason="account gone or without password")
        if len(current_password) > MAX_PASSWORD_INPUT or not await self.hasher.averify(
            current_password, user.password_hash
        ):
            raise CurrentPasswordError(reason="wrong current password")
        self.policy.validate(new_password, context=[user.email, user.username])
        password_hash = await self.hasher.ahash(new_password)
        user = await self.users.set_password_hash(user.id, password_hash)
        if self.sessions is not None and session_id is not None:
            await self.sessions.revoke_others(user.id, session_id)
        await self.hooks.emit(AccountEvent.PASSWORD_CHANGED, subject=user.id)
        await self._event(
            EventType.PASSWORD_CHANGED,
            subject=user.id,
            session_id=session_id,
            sessions_ended="others" if self.sessions is not None and session_id else "none",
        )
        return user

    async def _send(
        self,
        user: UserRecord,
        subject: str,
        text: str,
        path: str | None = None,
        token: str | None = None,
    ) -> None:
        if self.mail is None:
            return
        link = None
        if path is not None and token is not None and self.links is not None:
            link = self.links.link(path, token=token)
            text = f"{text}\n\n{link}\n"
        try:
            await self.mail.send(MailMessage(to=user.email, subject=subject, text=text, link=link))
        except Exception as exc:
            # Runs after the response: a mail failure must be visible in logs, and
            # its message may hold the link, so only its class is logged.
            logger.error("sending account mail failed: %s", type(exc).__name__)
