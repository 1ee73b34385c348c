"""Second factors: ``/users/me/mfa/...``, ``/users/me/passkeys/...``, ``/auth/mfa/verify``
and ``/auth/passkey/...``: the mfa block's ready routers.

A correct password for an account with a second factor answers
``{"mfa_required": true, "mfa_token", "methods"}`` (the accounts ``auth_router``);
``/auth/mfa/verify`` or ``/auth/passkey/verify`` then give the token pair. Adding
or removing a factor and a new set of recovery codes need a recent login made
with the second factor (``require_step_up``). The second step shares the login's
rate limit per client IP; its failures also count in the account lockout.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from examples.reference_api.deps import Components
from examples.reference_api.errors import responses
from fastapi_secure.mfa.routers import mfa_login_router, mfa_router, require_step_up

__all__ = ["routers"]


def routers(c: Components) -> list[APIRouter]:
    """The second-factor routers over the components ``c``."""
    settings = c.settings

    async def account_label(user_id: str) -> str:
        # The name shown in authenticator apps and passkey pickers: the email.
        user = await c.users.get(user_id)
        return user.email if user is not None else user_id

    step_up = require_step_up(
        c.auth, c.factors, max_age=settings.mfa_step_up_max_age, clock=c.issuer.clock
    )
    manage = mfa_router(
        c.factors,
        c.transport,
        step_up=step_up,
        auth=c.auth,
        prefix="/users/me",
        account_label=account_label,
        clock=c.issuer.clock,
    )
    by_ip = c.limiter.limit(settings.auth_limits_per_ip, name="auth-ip")
    login = APIRouter(dependencies=[Depends(by_ip)])
    login.include_router(
        mfa_login_router(
            c.manager,
            c.transport,
            prefix="/auth",
            dpop=c.dpop,
            dpop_required=settings.dpop_required,
        ),
        responses=responses(413, 429),
    )
    outer = APIRouter()
    outer.include_router(manage, responses=responses(413))
    return [outer, login]
