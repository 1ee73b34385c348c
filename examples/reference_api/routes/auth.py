"""``/auth`` and the account routes: the accounts block's ready routers.

``auth_router`` (login, refresh, logout, logout-all), ``account_router``
(register, email verification, password reset, password change) and
``sessions_router`` (``/users/me/sessions``) over the transport chosen in
``deps.py``; none of them branches on it. Failed logins are counted by the
accounts lockout (per account and per client address, shared by workers on
Redis); a rate limit per client IP sits on top of each router, and one per
account on password changes. The routers mark their public routes for the
audit themselves.

With ``DPOP_REQUIRED`` a login or refresh needs a DPoP proof and gets tokens
bound to the client's key, and the routes that take an access token take it
through ``DPoPAuth`` (``c.auth``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Depends, HTTPException, Request

from examples.reference_api.deps import Components
from examples.reference_api.errors import responses
from fastapi_secure import SecurityError
from fastapi_secure.accounts.routers import account_router, auth_router, sessions_router
from fastapi_secure.mfa.routers import require_step_up

__all__ = ["routers"]


PASSWORD_PATH = "/users/me/password"


def _password_change_key(c: Components) -> Callable[[Request], Awaitable[str | None]]:
    async def key(request: Request) -> str | None:
        # Each try of a current password is an argon2 verify, and a stolen fresh token
        # would otherwise allow unlimited guesses while it stays fresh: count the
        # password changes per account. Other routes of the router are not counted,
        # nor is a request without a valid token (the route answers it with 401).
        if request.method != "PATCH" or request.url.path != PASSWORD_PATH:
            return None
        try:
            claims = await c.auth.authenticate(request)
        except (HTTPException, SecurityError):
            return None
        return None if claims is None else f"user:{claims.sub}"

    return key


def routers(c: Components) -> list[APIRouter]:
    """The account routers over the components ``c``."""
    settings = c.settings
    auth_by_ip = c.limiter.limit(settings.auth_limits_per_ip, name="auth-ip")
    account_by_ip = c.limiter.limit(settings.account_limits_per_ip, name="account-ip")
    auth = APIRouter(dependencies=[Depends(auth_by_ip)])
    auth.include_router(
        auth_router(
            c.manager,
            c.transport,
            prefix="/auth",
            dpop=c.dpop,
            dpop_required=settings.dpop_required,
            auth=c.auth,
        ),
        responses=responses(413, 429),
    )
    password_by_user = c.limiter.limit(
        settings.password_change_limits_per_user, key=_password_change_key(c), name="password-user"
    )
    account = APIRouter(dependencies=[Depends(account_by_ip), Depends(password_by_user)])
    # A password change needs a recent login, made with the second factor when there is one.
    step_up = require_step_up(
        c.auth, c.factors, max_age=settings.mfa_step_up_max_age, clock=c.issuer.clock
    )
    account.include_router(
        account_router(
            c.manager,
            c.transport,
            prefix="/auth",
            me_prefix="/users/me",
            auth=c.auth,
            password_change_auth=step_up,
        ),
        responses=responses(413, 429),
    )
    sessions = sessions_router(c.manager, c.transport, prefix="/users/me/sessions", auth=c.auth)
    return [auth, account, sessions]
