"""``/auth`` and the account routes: the accounts block's ready routers.

``auth_router`` (login, refresh, logout, logout-all), ``account_router``
(register, email verification, password reset, password change) and
``sessions_router`` (``/users/me/sessions``) over the transport chosen in
``deps.py``; none of them branches on it. Failed logins are counted by the
accounts lockout (per account and per client address, shared by workers on
Redis); a rate limit per client IP sits on top of each router.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from examples.reference_api.deps import Components
from examples.reference_api.errors import responses
from fastapi_secure.accounts.routers import account_router, auth_router, sessions_router

__all__ = ["routers"]


def routers(c: Components) -> list[APIRouter]:
    """The account routers over the components ``c``."""
    settings = c.settings
    auth_by_ip = c.limiter.limit(settings.auth_limits_per_ip, name="auth-ip")
    account_by_ip = c.limiter.limit(settings.account_limits_per_ip, name="account-ip")
    auth = APIRouter(dependencies=[Depends(auth_by_ip)])
    auth.include_router(
        auth_router(c.manager, c.transport, prefix="/auth"), responses=responses(429)
    )
    account = APIRouter(dependencies=[Depends(account_by_ip)])
    account.include_router(
        account_router(c.manager, c.transport, prefix="/auth", me_prefix="/users/me"),
        responses=responses(429),
    )
    sessions = sessions_router(c.manager, c.transport, prefix="/users/me/sessions")
    return [auth, account, sessions]
