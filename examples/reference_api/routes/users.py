"""``GET /users/me``: the signed-in user's account."""

# No ``from __future__ import annotations``: FastAPI must resolve the Annotated
# dependency aliases built inside router() at runtime.
from typing import Annotated

from fastapi import APIRouter, Depends

from examples.reference_api.deps import Components
from examples.reference_api.errors import responses
from fastapi_secure import AccessClaims, InvalidTokenError
from fastapi_secure.accounts.routers import UserOut
from fastapi_secure.accounts.users import UserRecord

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
    Claims = Annotated[AccessClaims, Depends(c.transport)]
    api = APIRouter(prefix="/users", tags=["users"])

    @api.get("/me", response_model=UserOut, responses=responses(401, 503))
    async def me(claims: Claims) -> UserOut:
        user = await c.users.get(claims.sub)
        if user is None or not user.is_active:
            raise InvalidTokenError(reason="user gone or inactive")
        return user_out(user)

    return api
