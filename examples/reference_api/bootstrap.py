"""The first admin, created from ``ADMIN_EMAIL`` / ``ADMIN_PASSWORD`` at startup
(or by ``python -m examples.reference_api create-admin``)."""

from __future__ import annotations

import logging

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from .deps import Components
from .models import Role, User
from .schemas import POLICY

__all__ = ["bootstrap_admin"]

logger = logging.getLogger("reference_api")


async def bootstrap_admin(c: Components) -> bool:
    """Create the first admin from the settings when no admin exists.

    Returns whether a user was created.
    """
    s = c.settings
    if not s.admin_email or s.admin_password is None:
        return False
    POLICY.validate(s.admin_password, context=[s.admin_email, s.admin_username])
    try:
        async with c.db.transaction() as session:
            admin_role = (
                await session.execute(select(Role).where(Role.name == "admin"))
            ).scalar_one_or_none()
            if admin_role is not None:
                holders = await session.execute(
                    select(func.count()).select_from(User).where(User.roles.contains(admin_role))
                )
                if holders.scalar_one() > 0:
                    return False
            else:
                admin_role = Role(name="admin")
                session.add(admin_role)
            password_hash = await c.hasher.ahash(s.admin_password.get_secret_value())
            user = User(
                email=s.admin_email.lower(),
                username=s.admin_username,
                password_hash=password_hash,
            )
            user.roles.append(admin_role)
            session.add(user)
    except IntegrityError:
        # Worker processes start together on a fresh database: the one that loses the
        # race to create the role or the user finds the other's admin and starts anyway.
        logger.warning(
            "first admin not created: another process created it at the same time, "
            "or the admin email or username is already taken"
        )
        return False
    logger.info("created the first admin user %r", s.admin_username)
    return True
