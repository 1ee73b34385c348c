"""``/admin``: user administration, for holders of the ``admin`` role."""

# No ``from __future__ import annotations``: FastAPI must resolve the Annotated
# dependency aliases built inside router() at runtime.
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from examples.reference_api.deps import Components
from examples.reference_api.errors import ConflictError, responses
from examples.reference_api.models import User
from examples.reference_api.schemas import Page, RolesIn
from fastapi_secure import AccessClaims, RoleChecker
from fastapi_secure.accounts.errors import UserNotFoundError
from fastapi_secure.accounts.routers import UserOut
from fastapi_secure.accounts.users import UserRecord

__all__ = ["router"]

# The users.id column is a 32-bit INTEGER: a larger id must be a 422, not a driver overflow (500).
UserId = Annotated[int, Path(ge=1, le=2**31 - 1)]


class AdminUserOut(UserOut):
    """What an admin sees of an account: also whether it is active."""

    is_active: bool


def _row_out(user: User | UserRecord) -> AdminUserOut:
    return AdminUserOut(
        id=str(user.id),
        email=user.email,
        username=user.username,
        email_verified=user.email_verified,
        roles=list(user.roles),
        is_active=user.is_active,
    )


def _not_found() -> HTTPException:
    return HTTPException(status_code=404, detail="user not found")


def router(c: Components) -> APIRouter:
    """The ``/admin`` routes over the components ``c``."""
    issuer = c.issuer
    Session = Annotated[AsyncSession, c.db.depends()]
    Claims = Annotated[AccessClaims, Depends(c.token_or_key)]
    admin_only = RoleChecker(["admin"], auth=c.token_or_key)

    async def _record(user_id: int) -> UserRecord:
        user = await c.users.get(str(user_id))
        if user is None:
            raise _not_found()
        return user

    api = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(admin_only)])

    @api.get("/users", response_model=Page[AdminUserOut], responses=responses(401, 403, 422, 503))
    async def list_users(
        session: Session,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> Page[AdminUserOut]:
        total = (await session.execute(select(func.count()).select_from(User))).scalar_one()
        rows = await session.execute(select(User).order_by(User.id).offset(offset).limit(limit))
        items = [_row_out(user) for user in rows.scalars()]
        return Page[AdminUserOut](items=items, total=total, offset=offset, limit=limit)

    @api.post(
        "/users/{user_id}/roles",
        response_model=AdminUserOut,
        responses=responses(400, 401, 403, 404, 413, 422, 503),
    )
    async def grant_roles(user_id: UserId, body: RolesIn) -> AdminUserOut:
        user = await _record(user_id)
        try:
            # Role changes reach the user's tokens at their next refresh (grant loader).
            changed = await c.users.set_roles(str(user_id), sorted({*user.roles, *body.roles}))
        except UserNotFoundError:
            raise _not_found() from None
        return _row_out(changed)

    @api.post(
        "/users/{user_id}/deactivate",
        response_model=AdminUserOut,
        responses=responses(401, 403, 404, 409, 422, 503),
    )
    async def deactivate(user_id: UserId, claims: Claims) -> AdminUserOut:
        if str(user_id) == claims.sub:
            # An admin deactivating themselves could leave nobody able to administer.
            raise ConflictError("you cannot deactivate your own account")
        await _record(user_id)
        try:
            user = await c.users.set_active(str(user_id), False)
        except UserNotFoundError:
            raise _not_found() from None
        await issuer.revoke_subject(user.id)
        return _row_out(user)

    return api
