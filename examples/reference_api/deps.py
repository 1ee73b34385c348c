"""The components of the reference API, built once from :class:`AppSettings`.

Every choice the settings make is made here, at build time: SQLite or
PostgreSQL, memory or Redis, bearer or cookie transport. The routes receive a
:class:`Components` and never ask which backend or transport they run on.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import pathlib
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

import anyio
from pydantic import SecretStr

from fastapi_secure import (
    BearerAuth,
    CookieAuth,
    Database,
    InvalidTokenError,
    KeySet,
    PasswordHasher,
    RateLimiter,
    TokenIssuer,
    token_store_from_url,
)
from fastapi_secure.accounts.action_tokens import ActionTokens, ActionTokenStore
from fastapi_secure.accounts.identities import AccountIdentityLinker
from fastapi_secure.accounts.lockout import Lockout, LockoutStore
from fastapi_secure.accounts.mail import FileOutbox, LinkBuilder, MemoryOutbox
from fastapi_secure.accounts.manager import AccountManager, user_grant_loader
from fastapi_secure.accounts.sqlalchemy import SQLAlchemyIdentityStore, SQLAlchemyUserStore
from fastapi_secure.accounts.users import UserStore
from fastapi_secure.apikeys import APIKey, APIKeyManager, api_key_store_from_url
from fastapi_secure.apikeys.auth import APIKeyAuth
from fastapi_secure.auth import ClaimsDependency, FirstOf
from fastapi_secure.clock import Clock, system_clock
from fastapi_secure.dpop import DPoPAuth, DPoPReplayCache, DPoPVerifier
from fastapi_secure.events import SecurityEvents
from fastapi_secure.mfa import (
    TOTP,
    AttemptLimit,
    MFAChallenges,
    Passkeys,
    RecoveryCodes,
    SecretBox,
)
from fastapi_secure.mfa.factors import SecondFactors
from fastapi_secure.mfa.sqlalchemy import SQLAlchemyAuthenticatorStore
from fastapi_secure.mfa.stores import MFAStore, mfa_store_from_url
from fastapi_secure.oidc.login import OIDCLogin, OIDCProvider
from fastapi_secure.tokens.issuer import Grant
from fastapi_secure.tokens.stores import TokenStore

from .models import MFATOTP, Identity, MFAPasskey, MFARecoveryCode, User
from .schemas import POLICY
from .settings import AppSettings

__all__ = ["Components", "OIDCSetup", "build_components", "user_id"]

logger = logging.getLogger("reference_api")


@dataclass
class OIDCSetup:
    """Sign-in with OpenID providers (only when ``OIDC_PROVIDERS`` is set)."""

    login: OIDCLogin
    """The providers, the state cookie, the code exchange and the ID token checks."""
    linker: AccountIdentityLinker
    """Finds, links or creates the account of an identity; lists and unlinks them."""
    link_by_email: dict[str, bool]
    """Per provider: may a verified email link to an existing account (default no)."""


@dataclass
class Components:
    """What the routes are built from."""

    settings: AppSettings
    db: Database
    hasher: PasswordHasher
    keys: KeySet
    issuer: TokenIssuer
    limiter: RateLimiter
    users: SQLAlchemyUserStore[User]
    manager: AccountManager
    """The account flows (lockout, action tokens, sessions, mail) over ``users``."""
    outbox: FileOutbox | MemoryOutbox
    """Where mail goes: files in ``EMAIL_OUTBOX_DIR``, else a list in memory."""
    transport: BearerAuth | CookieAuth
    """Bearer or cookie (a :class:`~fastapi_secure.auth.transport.Transport`): answers
    login, refresh and logout, and authenticates requests."""
    auth: ClaimsDependency
    """What authenticates an access token on every route that takes one: the
    transport, or with ``DPOP_REQUIRED`` the :class:`~fastapi_secure.dpop.DPoPAuth`."""
    dpop: DPoPAuth | None
    """With ``DPOP_REQUIRED``: checks proofs at login and refresh, and requests."""
    api_keys: APIKeyManager
    """The users' API keys (``/users/me/api-keys``), in Redis or in memory."""
    token_or_key: FirstOf
    """An access token (as ``auth`` takes it) or an ``X-API-Key``: routes that take either."""
    transport_refusals: tuple[int, ...]
    """Statuses the transport adds to unsafe routes: 403 for a failed CSRF check."""
    factors: SecondFactors
    """Second factors (TOTP, recovery codes, passkeys) in the database; their
    short-lived state (replay guard, attempts, MFA tokens, challenges) in ``mfa_store``."""
    mfa_store: MFAStore
    redis_ping: Callable[[], Awaitable[bool]] | None = None
    oidc: OIDCSetup | None = None
    """Sign-in with OpenID providers; None when ``OIDC_PROVIDERS`` is unset."""
    events: SecurityEvents | None = None
    """The security log (logger ``fastapi_secure.events``): the limiter, the issuer,
    the cookie transport, the second factors, the account flows (and their lockout)
    and the API keys report to it."""


def user_id(subject: str) -> int:
    """The users.id of a token subject; anything else is not one of our subjects."""
    # users.id is a 32-bit INTEGER: a larger value would overflow in the driver (a 500).
    if not (subject.isascii() and subject.isdigit()) or len(subject) > 10:
        raise InvalidTokenError(reason="subject is not a user id")
    if int(subject) > 2**31 - 1:
        raise InvalidTokenError(reason="subject is not a user id")
    return int(subject)


def _make_keys(settings: AppSettings) -> KeySet:
    algorithm = settings.signing_key_algorithm
    if settings.signing_key_secret is not None and algorithm is not None:
        secret = settings.signing_key_secret.get_secret_value()
        return KeySet.from_secret(secret, kid="hmac-1", algorithm=algorithm)
    pem = settings.signing_key_pem
    if pem is not None:
        return KeySet.from_pem(pem.get_secret_value().encode(), algorithm=algorithm)
    if settings.signing_key_file is not None:
        data = pathlib.Path(settings.signing_key_file).read_bytes()
        return KeySet.from_pem(data, algorithm=algorithm)
    logger.warning(
        "no SIGNING_KEY_PEM, SIGNING_KEY_FILE or SIGNING_KEY_SECRET: using a fresh EdDSA "
        "key; tokens will not "
        "survive a restart and are not shared between worker processes"
    )
    return KeySet.generate("EdDSA")


def _make_hasher(settings: AppSettings) -> PasswordHasher:
    if settings.password_hash_profile == "test_only_fast":
        return PasswordHasher.insecure_fast_for_tests()
    if settings.password_hash_profile == "owasp_minimum":
        return PasswordHasher.owasp_minimum()
    return PasswordHasher.recommended()


def _redis_ping(store: TokenStore) -> Callable[[], Awaitable[bool]]:
    from fastapi_secure.tokens.stores.redis import RedisTokenStore

    client = cast(RedisTokenStore, store).client

    async def ping() -> bool:
        try:
            with anyio.fail_after(1.0):
                return bool(await client.ping())
        except Exception:  # any failure means "unavailable"; health must not 500
            return False

    return ping


def _prefixed(redis_url: str | None, prefix: str) -> dict[str, Any]:
    return {"prefix": prefix} if redis_url else {}


def _redis_client(store: TokenStore) -> Any:
    from fastapi_secure.tokens.stores.redis import RedisTokenStore

    return cast(RedisTokenStore, store).client


def _action_store(store: TokenStore, prefix: str) -> ActionTokenStore:
    """Single-use tokens in the token store's Redis (shared by workers), else in memory."""
    from fastapi_secure.accounts.redis import RedisActionTokenStore

    return RedisActionTokenStore(_redis_client(store), prefix=f"{prefix}actions:")


def _lockout_store(store: TokenStore, prefix: str) -> LockoutStore:
    """Lockout counters in the token store's Redis (shared by workers), else in memory."""
    from fastapi_secure.accounts.redis import RedisLockoutStore

    return RedisLockoutStore(_redis_client(store), prefix=f"{prefix}lockout:")


def _mfa_keys(settings: AppSettings) -> list[SecretStr]:
    """The keys that encrypt TOTP secrets: MFA_ENCRYPTION_KEYS, else derived from SECRET_KEY."""
    if settings.mfa_encryption_keys:
        return list(settings.mfa_encryption_keys)
    if settings.secret_key is not None:
        material = (
            b"reference-api mfa secrets\x00" + settings.secret_key.get_secret_value().encode()
        )
        return [SecretStr(base64.urlsafe_b64encode(hashlib.sha256(material).digest()).decode())]
    logger.warning(
        "no MFA_ENCRYPTION_KEYS or SECRET_KEY: TOTP secrets are encrypted with a key made up "
        "for this process; enrolled authenticators stop working after a restart"
    )
    return [SecretStr(SecretBox.generate_key())]


def _second_factors(
    settings: AppSettings,
    db: Database,
    mfa_store: MFAStore,
    issuer: TokenIssuer,
    events: SecurityEvents,
) -> SecondFactors:
    authenticators = SQLAlchemyAuthenticatorStore(
        totp=MFATOTP, recovery_codes=MFARecoveryCode, passkeys=MFAPasskey, sessions=db.transaction
    )
    # TOTP and recovery-code failures count together, per account, on top of the lockout.
    attempts = AttemptLimit(mfa_store, max_failures=5, window=300)
    return SecondFactors(
        authenticators,
        totp=TOTP(
            box=SecretBox.from_settings(_mfa_keys(settings)),
            used_codes=mfa_store,
            issuer=settings.mfa_issuer_name,
            attempts=attempts,
            clock=issuer.clock,
        ),
        recovery_codes=RecoveryCodes(authenticators, attempts=attempts),
        challenges=MFAChallenges(mfa_store, clock=issuer.clock),
        passkeys=Passkeys(
            rp_id=settings.webauthn_rp_id,
            rp_name=settings.webauthn_rp_name,
            origins=settings.webauthn_origins,
            challenges=mfa_store,
            clock=issuer.clock,
        ),
        events=events,
        clock=issuer.clock,
    )


def _owner_grant(users: UserStore) -> Callable[[APIKey], Awaitable[Grant | None]]:
    async def grant(record: APIKey) -> Grant | None:
        # A key never outlives its owner's account, nor keeps a role they lost.
        user = await users.get(record.subject)
        return Grant(roles=user.roles) if user is not None and user.is_active else None

    return grant


def _dpop(settings: AppSettings, issuer: TokenIssuer, store: TokenStore) -> DPoPAuth:
    """DPoP for ``DPOP_REQUIRED``: proofs signed for the public URL, their ``jti``
    remembered in the token store's Redis (shared by workers), else in memory."""
    replay: DPoPReplayCache | None = None
    if settings.redis_url:
        from fastapi_secure.dpop import RedisDPoPReplayCache

        prefix = f"{settings.redis_key_prefix}dpop:"
        replay = RedisDPoPReplayCache(_redis_client(store), prefix=prefix)
    verifier = DPoPVerifier(replay_cache=replay, clock=issuer.clock)
    # htu is checked against PUBLIC_BASE_URL, never the request's Host header.
    return DPoPAuth(issuer, verifier, public_url=settings.public_base_url)


def _state_secret(settings: AppSettings) -> bytes:
    if settings.secret_key is None:
        logger.warning(
            "no SECRET_KEY: using a random OIDC state secret; a sign-in started on one "
            "worker process cannot finish on another"
        )
        return secrets.token_bytes(32)
    # A key of its own, derived from SECRET_KEY: the CSRF tokens use SECRET_KEY as is.
    secret = settings.secret_key.get_secret_value().encode()
    return hmac.new(secret, b"reference-api/oidc-state", hashlib.sha256).digest()


def _oidc(settings: AppSettings, db: Database, users: UserStore, clock: Any) -> OIDCSetup | None:
    configured = settings.providers()
    if not configured:
        return None
    base = settings.public_base_url.rstrip("/")
    providers = [
        OIDCProvider(
            name=entry.name,
            issuer=entry.issuer,
            client_id=entry.client_id,
            client_secret=entry.client_secret,
            # Registered at the provider; built from configuration, never from the request.
            redirect_uri=f"{base}/auth/oidc/{entry.name}/callback",
            scopes=entry.scopes,
            allow_insecure_loopback=entry.allow_insecure_loopback,
        )
        for entry in configured
    ]
    return OIDCSetup(
        login=OIDCLogin(
            providers, state_secret=_state_secret(settings), secure=settings.cookie_secure
        ),
        linker=AccountIdentityLinker(
            users, SQLAlchemyIdentityStore(Identity, db.transaction, clock=clock)
        ),
        link_by_email={entry.name: entry.allow_link_by_email for entry in configured},
    )


def build_components(settings: AppSettings, *, clock: Clock = system_clock) -> Components:
    """Build every component the settings describe (no I/O: connections open lazily).

    ``clock``: the time source of every block (tests pass a fake one).
    """
    db = Database.from_settings(settings)
    redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None
    prefix = settings.redis_key_prefix
    store = token_store_from_url(
        redis_url or "memory://", **_prefixed(redis_url, f"{prefix}tokens:")
    )
    # One security log for every block that reports (client addresses cut to /24 or /64).
    events = SecurityEvents()
    limiter = RateLimiter.from_settings(
        settings, strategy="moving-window", key_prefix=f"{prefix}limits", events=events
    )
    keys = _make_keys(settings)
    hasher = _make_hasher(settings)
    users = SQLAlchemyUserStore(User, db.transaction)
    issuer = TokenIssuer.from_settings(
        settings, keys, store, grant_loader=user_grant_loader(users), clock=clock, events=events
    )

    transport: BearerAuth | CookieAuth
    if settings.auth_transport == "cookie":
        secret = settings.secret_key.get_secret_value() if settings.secret_key else None
        if secret is None:
            logger.warning(
                "no SECRET_KEY: using a random CSRF secret; CSRF tokens will not survive a "
                "restart and are not accepted by other worker processes"
            )
        cookie_auth = CookieAuth(
            issuer,
            csrf_secret=secret or secrets.token_urlsafe(32),
            allowed_origins=settings.cors_allow_origins or ["http://127.0.0.1:8000"],
            secure=settings.cookie_secure,
            events=events,
        )
        transport = cookie_auth
        refusals: tuple[int, ...] = (403,)
    else:
        transport = BearerAuth(issuer, token_url="/auth/login", refresh_url="/auth/refresh")
        refusals = ()
    dpop = _dpop(settings, issuer, store) if settings.dpop_required else None
    auth: ClaimsDependency = dpop if dpop is not None else transport
    outbox = FileOutbox(settings.email_outbox_dir) if settings.email_outbox_dir else MemoryOutbox()
    mfa_store = mfa_store_from_url(
        redis_url or "memory://",
        **(_prefixed(redis_url, f"{prefix}mfa:") if redis_url else {"clock": issuer.clock}),
    )
    factors = _second_factors(settings, db, mfa_store, issuer, events)
    manager = AccountManager(
        users,
        issuer,
        hasher,
        policy=POLICY,
        action_tokens=ActionTokens(
            users, _action_store(store, prefix) if redis_url else None, clock=issuer.clock
        ),
        lockout=Lockout(
            _lockout_store(store, prefix) if redis_url else None,
            events=events,
            clock=issuer.clock,
        ),
        mail=outbox,
        links=LinkBuilder(settings.public_base_url),
        require_verified_email=settings.require_verified_email,
        mfa=factors,
        events=events,
    )
    api_keys = APIKeyManager(
        api_key_store_from_url(
            redis_url or "memory://", **_prefixed(redis_url, f"{prefix}apikeys:")
        ),
        pepper=settings.secret_key.get_secret_value() if settings.secret_key else None,
        issuer=settings.token_issuer,
        audience=settings.token_audience,
        grant_loader=_owner_grant(users),
        events=events,
        clock=issuer.clock,
    )
    return Components(
        settings=settings,
        db=db,
        hasher=hasher,
        keys=keys,
        issuer=issuer,
        limiter=limiter,
        users=users,
        manager=manager,
        outbox=outbox,
        transport=transport,
        auth=auth,
        dpop=dpop,
        api_keys=api_keys,
        token_or_key=FirstOf(auth, APIKeyAuth(api_keys)),
        transport_refusals=refusals,
        factors=factors,
        mfa_store=mfa_store,
        redis_ping=_redis_ping(store) if redis_url else None,
        oidc=_oidc(settings, db, users, issuer.clock),
        events=events,
    )
