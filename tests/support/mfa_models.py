"""Application-owned second-factor tables for the tests, beside ``AppUser``."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from fastapi_secure.accounts.sqlalchemy import SessionScope
from fastapi_secure.mfa.sqlalchemy import (
    SQLAlchemyAuthenticatorStore,
    SQLAlchemyPasskeyMixin,
    SQLAlchemyRecoveryCodeMixin,
    SQLAlchemyTOTPMixin,
)
from tests.support.accounts import Base


class AppTOTP(SQLAlchemyTOTPMixin, Base):
    __tablename__ = "app_mfa_totp"
    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("app_users.id", ondelete="CASCADE"), primary_key=True
    )


class AppRecoveryCode(SQLAlchemyRecoveryCodeMixin, Base):
    __tablename__ = "app_mfa_recovery_codes"
    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("app_users.id", ondelete="CASCADE"), primary_key=True
    )


class AppPasskey(SQLAlchemyPasskeyMixin, Base):
    __tablename__ = "app_mfa_passkeys"
    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("app_users.id", ondelete="CASCADE"), index=True
    )


def authenticator_store(sessions: SessionScope) -> SQLAlchemyAuthenticatorStore:
    return SQLAlchemyAuthenticatorStore(
        totp=AppTOTP, recovery_codes=AppRecoveryCode, passkeys=AppPasskey, sessions=sessions
    )
