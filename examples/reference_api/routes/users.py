"""``GET /users/me`` (a token or an ``X-API-Key``) and ``/users/me/api-keys``."""

# No ``from __future__ import annotations``: FastAPI must resolve the Annotated
# dependency aliases built inside router() at runtime.
from typing import Annotated

from fastapi import APIRouter, Depends

from examples.reference_api.deps import Components
from examples.reference_api.errors import responses
from fastapi_secure import AccessClaims, InvalidTokenError
from fastapi_secure.accounts.routers import UserOut
from fastapi_secure.accounts.users import UserRecord
from fastapi_secure.apikeys.router import api_keys_router
from fastapi_secure.mfa.routers import require_step_up

__all__ = ["router", "user_out"]


def user_out(user: UserRecord) -> UserOut:
    """What the API shows of an account: never the hash or the stamp."""
    return UserOut(
        id=user.id,
        email=user.email,
        username=user.username,
        email_verified=user.email_verified,
        roles=list(user.roles),
    )


def router(c: Components) -> APIRouter:
    """The ``/users`` routes over the components ``c``."""
    Claims = Annotated[AccessClaims, Depends(c.token_or_key)]
    api = APIRouter(prefix="/users", tags=["users"])

    @api.get("/me", response_model=UserOut, responses=responses(401, 503))
    async def me(claims: Claims) -> UserOut:
        user = await c.users.get(claims.sub)
        if user is None or not user.is_active:
            raise InvalidTokenError(reason="user gone or inactive")
        return user_out(user)

    # Creating and rotating a key ask for a recent login (with the second factor when
    # the account has one); a request made with an API key is refused on all of these
    # routes (a leaked key cannot mint more).
    fresh = require_step_up(
        c.auth, c.factors, max_age=c.settings.mfa_step_up_max_age, clock=c.issuer.clock
    )
    api.include_router(
        api_keys_router(c.api_keys, auth=c.token_or_key, manage_auth=fresh, prefix="/me/api-keys"),
        responses=responses(400, 413),
    )
    return api
