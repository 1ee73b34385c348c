"""The first admin, created from ``ADMIN_EMAIL`` / ``ADMIN_PASSWORD`` at startup
(or by ``python -m examples.reference_api create-admin``)."""

from __future__ import annotations

import logging

from fastapi_secure.accounts.errors import UserExistsError

from .deps import Components
from .schemas import POLICY

__all__ = ["bootstrap_admin"]

logger = logging.getLogger("reference_api")


async def bootstrap_admin(c: Components) -> bool:
    """Create the first admin from the settings when its email has no account yet.

    Returns whether a user was created.
    """
    s = c.settings
    if not s.admin_email or s.admin_password is None:
        return False
    POLICY.validate(s.admin_password, context=[s.admin_email, s.admin_username])
    existing = await c.users.find_by_email(s.admin_email)
    if existing is not None:
        return False
    password_hash = await c.hasher.ahash(s.admin_password.get_secret_value())
    try:
        await c.users.create(
            email=s.admin_email,
            username=s.admin_username,
            password_hash=password_hash,
            roles=["admin"],
            email_verified=True,
        )
    except UserExistsError:
        # Worker processes start together on a fresh database: the one that loses the
        # race finds the other's admin and starts anyway.
        logger.warning(
            "first admin not created: another process created it at the same time, "
            "or the admin username is already taken"
        )
        return False
    logger.info("created the first admin user %r", s.admin_username)
    return True
