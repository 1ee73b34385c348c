"""``/users``: the signed-in user's account and password."""

# No ``from __future__ import annotations``: FastAPI must resolve the Annotated
# dependency aliases built inside router() at runtime.
from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from fastapi.exceptions import RequestValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from examples.reference_api.deps import Components, user_id
from examples.reference_api.errors import BadCredentialsError, responses
from examples.reference_api.models import User
from examples.reference_api.schemas import POLICY, PasswordChangeIn, UserOut
from fastapi_secure import AccessClaims, InvalidTokenError, require_fresh
from fastapi_secure.ratelimit import by_subject

__all__ = ["router"]


def router(c: Components) -> APIRouter:
    """The ``/users`` routes over the components ``c``."""
    db, issuer, transport, hasher = c.db, c.issuer, c.transport, c.hasher
    Session = Annotated[AsyncSession, db.depends()]
    Claims = Annotated[AccessClaims, Depends(transport)]
    FreshClaims = Annotated[AccessClaims, Depends(require_fresh(transport, max_age=300))]
    # Each try of a current password is an argon2 verify, and a stolen fresh token
    # would otherwise allow unlimited guesses while it stays fresh.
    password_change_by_user = c.limiter.limit(
        c.settings.password_change_limits_per_user,
        key=by_subject(transport),
        name="password-user",
    )

    async def active_user(session: AsyncSession, claims: AccessClaims) -> User:
        user = await session.get(User, user_id(claims.sub))
        if user is None or not user.is_active:
            raise InvalidTokenError(reason="user gone or inactive")
        return user

    api = APIRouter(prefix="/users", tags=["users"])

    @api.get("/me", response_model=UserOut, responses=responses(401, 503))
    async def me(claims: Claims, session: Session) -> UserOut:
        return UserOut.of(await active_user(session, claims))

    @api.patch(
        "/me/password",
        response_model=c.token_body,
        dependencies=[Depends(password_change_by_user)],
        responses=responses(400, 401, 413, 422, 429, 503, *c.transport_refusals),
    )
    async def change_password(
        body: PasswordChangeIn, claims: FreshClaims, session: Session, response: Response
    ) -> dict[str, Any]:
        user = await active_user(session, claims)
        # The body model cannot see the account: the context words registration
        # refuses (username, email) are checked here, with the same 422.
        problems = POLICY.check(body.new_password, context=[user.email, user.username])
        if problems:
            raise RequestValidationError(
                [
                    {
                        "type": "weak_password",
                        "loc": ("body", "new_password"),
                        "msg": "; ".join(problems),
                        "input": None,
                    }
                ]
            )
        if not await hasher.averify(body.current_password.get_secret_value(), user.password_hash):
            raise BadCredentialsError("current password is incorrect")
        user.password_hash = await hasher.ahash(body.new_password.get_secret_value())
        user.password_changed_at = datetime.now(timezone.utc)
        # Every other session (and this token) stops working; this client gets a new pair.
        await issuer.revoke_subject(claims.sub)
        pair = await issuer.issue(str(user.id), roles=user.role_names, fresh=True)
        return transport.login_response(pair, response)

    return api
