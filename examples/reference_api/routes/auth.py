"""``/auth``: register, login, refresh, logout, logout-all.

Login, refresh and logout are written once over the transport (bearer or
cookie, chosen in ``deps.py``): ``transport.login_response`` writes a new
pair, ``transport.read_refresh`` reads the refresh token (the cookie
transport checks Origin and the CSRF header first), ``transport.logout_response``
makes the client forget its tokens.
"""

# No ``from __future__ import annotations``: FastAPI must resolve the Annotated
# dependency aliases built inside router() at runtime.
import contextlib
from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from examples.reference_api.deps import Components
from examples.reference_api.errors import BadCredentialsError, ConflictError, responses
from examples.reference_api.models import User
from examples.reference_api.schemas import LogoutIn, RefreshIn, RegisterIn, UserOut
from fastapi_secure import AccessClaims, InvalidTokenError
from fastapi_secure.audit import Public

__all__ = ["router"]


def plausible_login_name(name: str) -> bool:
    # No username or email holds a control character, and PostgreSQL refuses a NUL
    # in a text parameter with an error (a 500) instead of "no match".
    return 0 < len(name) <= 254 and name.isprintable()


def login_condition(name: str) -> Any:
    # Emails are stored lower-cased (a CHECK constraint), so the unique index on
    # users.email serves this lookup; usernames have a unique index on lower().
    if "@" in name:
        return User.email == name.lower()
    return func.lower(User.username) == name.lower()


def router(c: Components) -> APIRouter:
    """The ``/auth`` routes over the components ``c``."""
    db, issuer, transport, hasher, settings = c.db, c.issuer, c.transport, c.hasher, c.settings
    Session = Annotated[AsyncSession, db.depends()]
    Claims = Annotated[AccessClaims, Depends(transport)]
    refusals = c.transport_refusals

    async def login_account(request: Request) -> str | None:
        # One bucket per account, whether the form names it by username or by email
        # (a bucket per spelling would double an attacker's guesses). Unknown names
        # get a bucket of their own; a request that is no login form is left to the
        # endpoint, which refuses it.
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
            return None
        try:
            raw = (await request.form()).get("username")
        except Exception:  # a malformed body: FastAPI answers 400/422 for it
            return None
        name = raw.strip() if isinstance(raw, str) else ""
        if not plausible_login_name(name):
            return None
        async with db.transaction() as lookup:
            found = (
                await lookup.execute(select(User.id).where(login_condition(name)))
            ).scalar_one_or_none()
        return f"user:{found}" if found is not None else f"name:{name.casefold()}"

    login_by_ip = c.limiter.limit(settings.login_limits_per_ip, name="login-ip")
    login_by_account = c.limiter.limit(
        settings.login_limits_per_username, key=login_account, name="login-user"
    )
    register_by_ip = c.limiter.limit(settings.register_limits_per_ip, name="register-ip")
    refresh_by_ip = c.limiter.limit(settings.refresh_limits_per_ip, name="refresh-ip")

    api = APIRouter(prefix="/auth", tags=["auth"])

    @api.post(
        "/register",
        status_code=status.HTTP_201_CREATED,
        response_model=UserOut,
        dependencies=[Depends(register_by_ip), Depends(Public("registration form"))],
        responses=responses(400, 409, 413, 422, 429, 503),
    )
    async def register(body: RegisterIn, session: Session) -> UserOut:
        password_hash = await hasher.ahash(body.password.get_secret_value())
        user = User(email=body.email.lower(), username=body.username, password_hash=password_hash)
        session.add(user)
        try:
            await session.flush()
        except IntegrityError:
            raise ConflictError() from None
        await session.refresh(user, ["roles"])
        return UserOut.of(user)

    @api.post(
        "/login",
        response_model=c.token_body,
        dependencies=[
            Depends(login_by_ip),
            Depends(login_by_account),
            Depends(c.check_login_origin),
            Depends(Public("login form")),
        ],
        responses=responses(400, 401, 413, 422, 429, 503, *refusals),
    )
    async def login(
        form: Annotated[OAuth2PasswordRequestForm, Depends()],
        session: Session,
        response: Response,
    ) -> dict[str, Any]:
        name = form.username.strip()
        if not plausible_login_name(name) or len(form.password) > 1024:
            await hasher.adummy_verify()
            raise BadCredentialsError()
        user = (
            await session.execute(select(User).where(login_condition(name)))
        ).scalar_one_or_none()
        if user is None:
            await hasher.adummy_verify(form.password)
            raise BadCredentialsError()
        valid, new_hash = await hasher.averify_and_update(form.password, user.password_hash)
        if not valid or not user.is_active:
            raise BadCredentialsError()
        if new_hash is not None:
            user.password_hash = new_hash
        user.last_login_at = datetime.now(timezone.utc)
        pair = await issuer.issue(str(user.id), roles=user.role_names, fresh=True)
        return transport.login_response(pair, response)

    @api.post(
        "/refresh",
        response_model=c.token_body,
        dependencies=[
            Depends(refresh_by_ip),
            Depends(Public("authenticated by the refresh token")),
        ],
        responses=responses(400, 401, 413, 422, 429, 503, *refusals),
    )
    async def refresh(
        request: Request, response: Response, body: RefreshIn | None = None
    ) -> dict[str, Any]:
        presented = body.refresh_token if body is not None else None
        token = await transport.read_refresh(request, presented)
        return transport.login_response(await issuer.rotate(token), response)

    @api.post(
        "/logout",
        status_code=status.HTTP_204_NO_CONTENT,
        responses=responses(400, 401, 413, 422, 503, *refusals),
    )
    async def logout(claims: Claims, response: Response, body: LogoutIn | None = None) -> None:
        await issuer.revoke_family(claims.sid)
        if body is not None and body.refresh_token:
            # An already unusable refresh token still lets the logout succeed.
            with contextlib.suppress(InvalidTokenError):
                await issuer.revoke(body.refresh_token)
        transport.logout_response(response)

    @api.post(
        "/logout-all",
        status_code=status.HTTP_204_NO_CONTENT,
        responses=responses(401, 503, *refusals),
    )
    async def logout_all(claims: Claims, response: Response) -> None:
        await issuer.revoke_subject(claims.sub)
        transport.logout_response(response)

    return api
