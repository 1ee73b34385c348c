"""SQLAlchemy 2 models of the reference API: its users, their outside identities and
their second factors.

The account columns (normalized email and username keys under unique
constraints, password hash, email verified, roles, security stamp) come from
:class:`~fastapi_secure.accounts.sqlalchemy.SQLAlchemyUserMixin`; the table, its
integer key and the timestamps below stay the example's own. The second factors
(TOTP authenticator, recovery-code digests, passkeys) are three tables whose
columns come from the mixins of :mod:`fastapi_secure.mfa.sqlalchemy`, each row
deleted with its user. The schema is
created by the Alembic migrations in ``migrations/`` (see ``migrate.py``), never
by ``create_all`` in the running app.
"""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fastapi_secure.accounts.sqlalchemy import (
    SQLAlchemyIdentityMixin,
    SQLAlchemyUserMixin,
    UTCDateTime,
)
from fastapi_secure.mfa.sqlalchemy import (
    SQLAlchemyPasskeyMixin,
    SQLAlchemyRecoveryCodeMixin,
    SQLAlchemyTOTPMixin,
)

__all__ = ["MFATOTP", "Base", "Identity", "MFAPasskey", "MFARecoveryCode", "UTCDateTime", "User"]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# Constraint names are fixed so migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class User(SQLAlchemyUserMixin, Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class MFATOTP(SQLAlchemyTOTPMixin, Base):
    """A user's TOTP authenticator (secret encrypted), pending until confirmed."""

    __tablename__ = "mfa_totp"

    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )


class MFARecoveryCode(SQLAlchemyRecoveryCodeMixin, Base):
    """One digest of a user's current recovery codes (deleted when used)."""

    __tablename__ = "mfa_recovery_codes"

    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )


class MFAPasskey(SQLAlchemyPasskeyMixin, Base):
    """A user's passkey (WebAuthn credential)."""

    __tablename__ = "mfa_passkeys"

    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)


class Identity(SQLAlchemyIdentityMixin, Base):
    """An identity at an OpenID provider linked to a user; ``(issuer, subject)`` unique."""

    __tablename__ = "identities"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
