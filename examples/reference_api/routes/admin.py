"""``/admin``: user administration, for holders of the ``admin`` role."""

# No ``from __future__ import annotations``: FastAPI must resolve the Annotated
# dependency aliases built inside router() at runtime.
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from examples.reference_api.deps import Components
from examples.reference_api.errors import ConflictError, responses
from examples.reference_api.models import Role, User
from examples.reference_api.schemas import Page, RolesIn, UserOut
from fastapi_secure import AccessClaims, RoleChecker

__all__ = ["router"]

# The users.id column is a 32-bit INTEGER: a larger id must be a 422, not a driver overflow (500).
UserId = Annotated[int, Path(ge=1, le=2**31 - 1)]


async def _target(session: AsyncSession, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise HTTPException(status_code=404, detail="user not found")
    return user


def router(c: Components) -> APIRouter:
    """The ``/admin`` routes over the components ``c``."""
    issuer = c.issuer
    Session = Annotated[AsyncSession, c.db.depends()]
    Claims = Annotated[AccessClaims, Depends(c.transport)]
    admin_only = RoleChecker(["admin"], auth=c.transport)

    api = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(admin_only)])

    @api.get("/users", response_model=Page[UserOut], responses=responses(401, 403, 422, 503))
    async def list_users(
        session: Session,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> Page[UserOut]:
        total = (await session.execute(select(func.count()).select_from(User))).scalar_one()
        rows = await session.execute(select(User).order_by(User.id).offset(offset).limit(limit))
        items = [UserOut.of(user) for user in rows.scalars()]
        return Page[UserOut](items=items, total=total, offset=offset, limit=limit)

    @api.post(
        "/users/{user_id}/roles",
        response_model=UserOut,
        responses=responses(400, 401, 403, 404, 409, 413, 422, 503),
    )
    async def grant_roles(user_id: UserId, body: RolesIn, session: Session) -> UserOut:
        user = await _target(session, user_id)
        for name in sorted(set(body.roles) - set(user.role_names)):
            role = (
                await session.execute(select(Role).where(Role.name == name))
            ).scalar_one_or_none()
            if role is None:
                role = Role(name=name)
                session.add(role)
            user.roles.append(role)
        try:
            await session.flush()
        except IntegrityError:
            # Two admins created the same new role at once: one of them answers 409.
            raise ConflictError("the roles changed concurrently; try again") from None
        # Role changes reach the user's tokens at their next refresh (grant loader).
        return UserOut.of(user)

    @api.post(
        "/users/{user_id}/deactivate",
        response_model=UserOut,
        responses=responses(401, 403, 404, 409, 422, 503),
    )
    async def deactivate(user_id: UserId, session: Session, claims: Claims) -> UserOut:
        if str(user_id) == claims.sub:
            # An admin deactivating themselves could leave nobody able to administer.
            raise ConflictError("you cannot deactivate your own account")
        user = await _target(session, user_id)
        user.is_active = False
        await session.flush()
        await issuer.revoke_subject(str(user.id))
        return UserOut.of(user)

    return api
