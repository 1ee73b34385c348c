"""Ready routers over :class:`~fastapi_secure.accounts.manager.AccountManager`.

Each router is optional, takes the application's prefix, and works with
either transport (:class:`~fastapi_secure.auth.bearer.BearerAuth` or
:class:`~fastapi_secure.auth.cookie.CookieAuth`): routes never branch on it.

* :func:`auth_router`: ``POST /login`` (OAuth2 password form), ``/refresh``,
  ``/logout``, ``/logout-all``; with ``dpop=`` a login or refresh carrying a
  ``DPoP`` proof gets tokens bound to the client's key (RFC 9449);
* :func:`account_router`: ``POST /register``, ``/verify/request``,
  ``/verify/confirm``, ``/password-reset/request``, ``/password-reset/confirm``
  and ``PATCH {me_prefix}/password`` (fresh token required);
* :func:`sessions_router`: ``GET`` the caller's sessions, ``DELETE /{session_id}``,
  ``DELETE /others`` (every session but the current one);
* :func:`identities_router`: ``GET`` the caller's identities at outside
  providers, ``DELETE /{identity_id}`` (never the last way in: ``409``).

Every route lists each status it can answer in OpenAPI. The *request* routes
answer ``202`` whether or not the address has an account, and do the real
work after the response (``BackgroundTasks``), so neither status nor timing
tells an address apart.

The routes that take no access token (login, refresh, registration, the
verification and reset requests and confirmations) mark themselves public
for :func:`fastapi_secure.audit.audit`, each with its reason.
"""

# No ``from __future__ import annotations``: FastAPI must resolve the Annotated
# dependency aliases built inside the router factories at runtime.
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Annotated, Any, TypeVar

from fastapi import (
    APIRouter,
    BackgroundTasks,
    Depends,
    Path,
    Request,
    Response,
    status,
)
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, Field, SecretStr, field_validator

from fastapi_secure._routing import (
    answering,
    client_address,
    documented_responses,
    not_found,
    refuse,
)
from fastapi_secure.accounts.errors import UserExistsError
from fastapi_secure.accounts.identities import AccountIdentityLinker
from fastapi_secure.accounts.manager import MAX_PASSWORD_INPUT, AccountManager, MFARequired
from fastapi_secure.accounts.users import UserRecord, is_email, plausible_login_name
from fastapi_secure.audit import mark_public
from fastapi_secure.auth import ClaimsDependency
from fastapi_secure.auth.cookie import CookieAuth
from fastapi_secure.auth.first_of import FirstOf
from fastapi_secure.auth.guards import require_fresh
from fastapi_secure.auth.transport import Transport
from fastapi_secure.clientip import TrustedProxies
from fastapi_secure.dpop.http import DPoPAuth
from fastapi_secure.errors import ConfigurationError, SecurityError
from fastapi_secure.tokens.claims import AccessClaims

__all__ = [
    "ErrorOut",
    "IdentityOut",
    "MFARequiredOut",
    "SessionOut",
    "UserOut",
    "account_router",
    "auth_router",
    "identities_router",
    "sessions_router",
]


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    """The body of every error answer."""

    detail: ErrorDetail


_DESCRIPTIONS = {
    400: "Malformed body, or an invalid, used or expired token",
    401: "Missing, invalid or expired credentials",
    403: "Not allowed (CSRF or Origin check, unverified email, wrong current password)",
    404: "No such session",
    409: "An account with this email or name already exists",
    422: "Request validation failed (including a password refused by the policy)",
    429: "Too many attempts; see Retry-After",
    503: "A backing store is unavailable; see Retry-After",
}


def _responses(*codes: int, **described: str) -> dict[int | str, dict[str, Any]]:
    return documented_responses(_DESCRIPTIONS, ErrorOut, *codes, **described)


_F = TypeVar("_F", bound=Callable[..., Any])


def _public(reason: str) -> Callable[[_F], _F]:
    """Mark a route that takes no access token public, with why (for the audit)."""

    def mark(endpoint: _F) -> _F:
        return mark_public(endpoint, reason)

    return mark


# -- bodies ----------------------------------------------------------------------

Password = Annotated[SecretStr, Field(min_length=1, max_length=MAX_PASSWORD_INPUT)]


def _check_email(value: str) -> str:
    if not (is_email(value) and plausible_login_name(value)) or any(c.isspace() for c in value):
        raise ValueError("not an email address")
    return value


class EmailIn(BaseModel):
    email: str = Field(max_length=254)

    _email = field_validator("email")(_check_email)


class RegisterIn(BaseModel):
    email: str = Field(max_length=254)
    password: Password
    username: str | None = Field(default=None, min_length=1, max_length=64)

    _email = field_validator("email")(_check_email)

    @field_validator("username")
    @classmethod
    def _username(cls, value: str | None) -> str | None:
        if value is not None and (is_email(value) or not plausible_login_name(value)):
            raise ValueError("a username is printable and holds no '@'")
        return value


class TokenIn(BaseModel):
    token: str = Field(min_length=1, max_length=256)


class ResetConfirmIn(BaseModel):
    token: str = Field(min_length=1, max_length=256)
    new_password: Password


class PasswordChangeIn(BaseModel):
    current_password: Password
    new_password: Password


class RefreshIn(BaseModel):
    refresh_token: str | None = Field(default=None, max_length=8192)


class UserOut(BaseModel):
    id: str
    email: str
    username: str | None
    email_verified: bool
    roles: list[str]


class MFARequiredOut(BaseModel):
    """A correct password for an account with a second factor: the login's second step.

    Send ``mfa_token`` with a code, a recovery code or a passkey assertion to
    ``POST /auth/mfa/verify`` (or ``/auth/passkey/verify``) within ``expires_in``
    seconds; it works once and is never an access token.
    """

    mfa_required: bool = True
    mfa_token: str
    methods: list[str]
    expires_in: int


def mfa_required_out(result: MFARequired) -> dict[str, Any]:
    """The body of a login answer that needs a second step."""
    return MFARequiredOut(
        mfa_token=result.mfa_token, methods=list(result.methods), expires_in=result.expires_in
    ).model_dump()


_LOGIN_OK: dict[int | str, dict[str, Any]] = {
    200: {
        # The transport's token pair, or the second step for an account with a factor.
        "model": MFARequiredOut | dict[str, Any],
        "description": "The token pair (as the transport answers it), or, for an account "
        "with a second factor, the second step (`mfa_required`)",
    }
}


class AcceptedOut(BaseModel):
    status: str = "accepted"


class SessionOut(BaseModel):
    session_id: str
    created_at: datetime
    last_used_at: datetime
    user_agent: str | None
    client_address: str | None
    current: bool


class IdentityOut(BaseModel):
    id: str
    provider: str
    issuer: str
    email: str | None
    linked_at: datetime


def _user_out(user: UserRecord) -> UserOut:
    return UserOut(
        id=user.id,
        email=user.email,
        username=user.username,
        email_verified=user.email_verified,
        roles=list(user.roles),
    )


def _moment(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


# -- routers ---------------------------------------------------------------------


def auth_router(
    manager: AccountManager,
    transport: Transport,
    *,
    prefix: str = "/auth",
    tags: Sequence[str] = ("auth",),
    trusted_proxies: TrustedProxies | None = None,
    dpop: DPoPAuth | None = None,
    dpop_required: bool = False,
    auth: ClaimsDependency | None = None,
) -> APIRouter:
    """Login, refresh, logout and logout everywhere, over ``transport``.

    ``dpop`` (a :class:`~fastapi_secure.dpop.DPoPAuth`) checks the ``DPoP``
    proof of a login or refresh: a valid one binds the session to the
    client's key (``token_type`` ``"DPoP"``, ``cnf.jkt`` in both tokens), a
    bad one is refused (401 ``invalid_dpop_proof``, also when not required:
    the client expects a bound pair). A bound session refreshes only with a
    proof from its key. ``dpop_required=True`` refuses a login or refresh
    without a proof. The logout routes then take DPoP credentials (and, unless
    required, the transport's bearer tokens too). DPoP needs the bearer
    transport: a cookie cannot carry a bound token (``ConfigurationError``).
    ``auth`` replaces whatever authenticates the logout routes.
    """
    if dpop_required and dpop is None:
        raise ConfigurationError("dpop_required=True needs dpop=DPoPAuth(...)")
    if dpop is not None and not isinstance(dpop, DPoPAuth):
        raise ConfigurationError("dpop must be a DPoPAuth")
    if dpop is not None and isinstance(transport, CookieAuth):
        raise ConfigurationError(
            "DPoP-bound tokens travel in the Authorization header; use BearerAuth with dpop="
        )
    router = APIRouter(prefix=prefix, tags=list(tags))
    session_auth: ClaimsDependency = transport
    if auth is not None:
        session_auth = auth
    elif dpop is not None:
        session_auth = dpop if dpop_required else FirstOf(transport, dpop)
    Claims = Annotated[AccessClaims, Depends(session_auth)]  # noqa: N806
    address = client_address(trusted_proxies)
    check_origin: Callable[[Request], None] | None = getattr(transport, "check_origin", None)

    def proof_header() -> dict[str, Any] | None:
        # The DPoP header is read by check_login_proof, not by a Header() parameter:
        # declared in OpenAPI only, so a missing one keeps its 401 (not a 422).
        return dpop.login_proof_openapi(required=dpop_required) if dpop else None

    @router.post(
        "/login",
        responses={**_LOGIN_OK, **_responses(400, 401, 403, 422, 429, 503)},
        openapi_extra=proof_header(),
    )
    @_public("login form")
    async def login(
        request: Request,
        response: Response,
        form: Annotated[OAuth2PasswordRequestForm, Depends()],
    ) -> dict[str, Any]:
        """Exchange a login name (email or username) and password for tokens."""
        # A transport that keeps tokens in cookies must not log a browser into
        # an account chosen by another site's page (login CSRF).
        if check_origin is not None and (
            "origin" in request.headers or "referer" in request.headers
        ):
            with answering():
                check_origin(request)
        # The proof first: a bad one costs no password work and no lockout count.
        jkt = await dpop.check_login_proof(request, required=dpop_required) if dpop else None
        with answering():
            pair = await manager.login(
                form.username,
                form.password,
                user_agent=request.headers.get("user-agent"),
                client_address=address(request),
                dpop_jkt=jkt,
            )
        if isinstance(pair, MFARequired):
            return mfa_required_out(pair)
        return transport.login_response(pair, response)

    @router.post(
        "/refresh", responses=_responses(400, 401, 403, 422, 503), openapi_extra=proof_header()
    )
    @_public("authenticated by the refresh token")
    async def refresh(
        request: Request, response: Response, body: RefreshIn | None = None
    ) -> dict[str, Any]:
        """Rotate the refresh token: a new pair; a reused token ends its session."""
        token = await transport.read_refresh(request, body.refresh_token if body else None)
        jkt = await dpop.check_login_proof(request, required=dpop_required) if dpop else None
        with answering():
            pair = await manager.refresh(token, dpop_jkt=jkt)
        return transport.login_response(pair, response)

    @router.post(
        "/logout",
        status_code=status.HTTP_204_NO_CONTENT,
        responses=_responses(401, 403, 503),
    )
    async def logout(claims: Claims, response: Response) -> None:
        """End the caller's session."""
        with answering():
            await manager.logout(claims.sub, claims.sid)
        transport.logout_response(response)

    @router.post(
        "/logout-all",
        status_code=status.HTTP_204_NO_CONTENT,
        responses=_responses(401, 403, 503),
    )
    async def logout_all(claims: Claims, response: Response) -> None:
        """End every session of the caller, on every device."""
        with answering():
            await manager.logout_all(claims.sub)
        transport.logout_response(response)

    return router


def account_router(
    manager: AccountManager,
    transport: Transport,
    *,
    prefix: str = "/auth",
    me_prefix: str = "/users/me",
    reveal_existing: bool = True,
    fresh_max_age: float | None = 300,
    tags: Sequence[str] = ("account",),
    auth: ClaimsDependency | None = None,
    password_change_auth: ClaimsDependency | None = None,
) -> APIRouter:
    """Registration, email verification, password reset and password change.

    ``reveal_existing`` (default ``True``): registering a taken address answers
    ``409``, which tells anyone whether an address has an account. With
    ``False`` registration always answers ``202`` and the owner of a taken
    address gets a mail instead: no enumeration, at the price of a less direct
    answer for a user who forgot they have an account.

    ``auth`` authenticates the password change instead of ``transport`` (a
    :class:`~fastapi_secure.dpop.DPoPAuth` where DPoP is required).
    ``password_change_auth`` replaces its whole fresh-login requirement, e.g.
    :func:`fastapi_secure.mfa.routers.require_step_up` (a login with the
    second factor, for accounts that have one).
    """
    router = APIRouter(tags=list(tags))
    fresh: ClaimsDependency = (
        password_change_auth
        if password_change_auth is not None
        else require_fresh(
            auth if auth is not None else transport,
            max_age=fresh_max_age,
            clock=manager.issuer.clock,
        )
    )
    Fresh = Annotated[AccessClaims, Depends(fresh)]  # noqa: N806

    if reveal_existing:

        @router.post(
            f"{prefix}/register",
            status_code=status.HTTP_201_CREATED,
            responses=_responses(400, 409, 422, 503),
        )
        @_public("registration form")
        async def register(body: RegisterIn, background: BackgroundTasks) -> UserOut:
            """Create an account; a verification mail follows."""
            with answering():
                user = await manager.register(
                    body.email, body.password.get_secret_value(), username=body.username
                )
            background.add_task(manager.send_verification, user)
            return _user_out(user)

    else:

        @router.post(
            f"{prefix}/register",
            status_code=status.HTTP_202_ACCEPTED,
            responses=_responses(400, 422, 503),
        )
        @_public("registration form")
        async def register_quietly(body: RegisterIn, background: BackgroundTasks) -> AcceptedOut:
            """Create an account, or mail the owner of a taken address; same answer."""
            try:
                user = await manager.register(
                    body.email, body.password.get_secret_value(), username=body.username
                )
            except UserExistsError:
                background.add_task(manager.notify_existing, body.email)
            except SecurityError as error:
                refuse(error)
            else:
                background.add_task(manager.send_verification, user)
            return AcceptedOut()

    @router.post(
        f"{prefix}/verify/request",
        status_code=status.HTTP_202_ACCEPTED,
        responses=_responses(400, 422),
    )
    @_public("same answer for every address")
    async def request_verification(body: EmailIn, background: BackgroundTasks) -> AcceptedOut:
        """Mail a new verification link, if the address has an unverified account."""
        background.add_task(manager.request_verification, body.email)
        return AcceptedOut()

    @router.post(f"{prefix}/verify/confirm", responses=_responses(400, 422, 503))
    @_public("authenticated by the mailed token")
    async def confirm_verification(body: TokenIn) -> UserOut:
        """Verify the email address with the token from the link."""
        with answering():
            user = await manager.confirm_verification(body.token)
        return _user_out(user)

    @router.post(
        f"{prefix}/password-reset/request",
        status_code=status.HTTP_202_ACCEPTED,
        responses=_responses(400, 422),
    )
    @_public("same answer for every address")
    async def request_password_reset(body: EmailIn, background: BackgroundTasks) -> AcceptedOut:
        """Mail a reset link, if the address has an account; the same answer either way."""
        background.add_task(manager.request_password_reset, body.email)
        return AcceptedOut()

    @router.post(
        f"{prefix}/password-reset/confirm",
        status_code=status.HTTP_204_NO_CONTENT,
        responses=_responses(400, 422, 503),
    )
    @_public("authenticated by the mailed token")
    async def confirm_password_reset(body: ResetConfirmIn) -> None:
        """Set a new password with the token from the link; every session ends."""
        with answering():
            await manager.confirm_password_reset(body.token, body.new_password.get_secret_value())

    @router.patch(
        f"{me_prefix}/password",
        status_code=status.HTTP_204_NO_CONTENT,
        responses=_responses(400, 401, 403, 422, 503),
    )
    async def change_password(claims: Fresh, body: PasswordChangeIn) -> None:
        """Change the password (a fresh login is required); other sessions end."""
        with answering():
            await manager.change_password(
                claims.sub,
                body.current_password.get_secret_value(),
                body.new_password.get_secret_value(),
                session_id=claims.sid,
            )

    return router


SessionId = Annotated[
    str, Path(min_length=1, max_length=128, pattern=r"^[0-9a-f]{16}\.[A-Za-z0-9_-]+$")
]


def sessions_router(
    manager: AccountManager,
    transport: Transport,
    *,
    prefix: str = "/users/me/sessions",
    tags: Sequence[str] = ("sessions",),
    auth: ClaimsDependency | None = None,
) -> APIRouter:
    """The caller's sessions: list them, end one, end all others.

    ``auth`` authenticates the routes instead of ``transport`` (a
    :class:`~fastapi_secure.dpop.DPoPAuth` where DPoP is required).
    """
    sessions = manager.sessions
    if sessions is None:
        raise ConfigurationError("sessions_router needs an AccountManager with sessions")
    router = APIRouter(prefix=prefix, tags=list(tags))
    Claims = Annotated[AccessClaims, Depends(auth if auth is not None else transport)]  # noqa: N806

    @router.get("", responses=_responses(401, 403, 503))
    async def list_sessions(claims: Claims) -> list[SessionOut]:
        """The caller's live sessions, newest first; ``current`` marks this one."""
        with answering():
            found = await sessions.list_sessions(claims.sub)
        return [
            SessionOut(
                session_id=s.session_id,
                created_at=_moment(s.created_at),
                last_used_at=_moment(s.last_used_at),
                user_agent=s.user_agent,
                client_address=s.client_address,
                current=s.session_id == claims.sid,
            )
            for s in found
        ]

    # Its own path, declared before "/{session_id}": one path with GET and DELETE
    # routes would answer a third method with an Allow header naming only one.
    @router.delete("/others", responses=_responses(401, 403, 503))
    async def revoke_other_sessions(claims: Claims) -> dict[str, int]:
        """End every session of the caller but this one."""
        with answering():
            ended = await sessions.revoke_others(claims.sub, claims.sid)
        return {"revoked": len(ended)}

    @router.delete(
        "/{session_id}",
        status_code=status.HTTP_204_NO_CONTENT,
        responses=_responses(401, 403, 404, 422, 503),
    )
    async def revoke_session(claims: Claims, session_id: SessionId) -> None:
        """End one of the caller's sessions; its access tokens stop working at once."""
        with answering():
            ended = await sessions.revoke(claims.sub, session_id)
        if not ended:
            not_found("session")

    return router


IdentityId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z_-]+$")]


def identities_router(
    linker: AccountIdentityLinker,
    transport: Transport,
    *,
    prefix: str = "/users/me/identities",
    tags: Sequence[str] = ("identities",),
) -> APIRouter:
    """The caller's identities at outside providers: list them, unlink one.

    Unlinking the last identity of an account without a password answers
    ``409``: the account would have no way in. A password reset (or linking
    another provider) opens the way.
    """
    router = APIRouter(prefix=prefix, tags=list(tags))
    Claims = Annotated[AccessClaims, Depends(transport)]  # noqa: N806

    @router.get("", responses=_responses(401, 403, 503))
    async def list_identities(claims: Claims) -> list[IdentityOut]:
        """The caller's linked identities, oldest first."""
        with answering():
            found = await linker.list_identities(claims.sub)
        return [
            IdentityOut(
                id=link.id,
                provider=link.provider,
                issuer=link.issuer,
                email=link.email,
                linked_at=_moment(link.linked_at),
            )
            for link in found
        ]

    @router.delete(
        "/{identity_id}",
        status_code=status.HTTP_204_NO_CONTENT,
        responses=_responses(
            401,
            403,
            404,
            409,
            422,
            503,
            _404="No such identity",
            _409="The account's last way in: set a password or link another provider first",
        ),
    )
    async def unlink_identity(claims: Claims, identity_id: IdentityId) -> None:
        """Unlink one of the caller's identities (never the account's last way in)."""
        with answering():
            removed = await linker.unlink(claims.sub, identity_id)
        if not removed:
            not_found("identity")

    return router
