"""SQLAlchemy 2 models of the reference API: users, roles and who holds which role.

The schema is created by the Alembic migrations in ``migrations/`` (see
``migrate.py``), never by ``create_all`` in the running app. Emails are stored
lower-cased (a CHECK constraint refuses anything else) and usernames are unique
regardless of case, so ``Alice`` cannot register next to ``alice``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = ["Base", "Role", "UTCDateTime", "User", "user_roles"]

EMAIL_MAX = 254  # RFC 5321 path limit
USERNAME_MAX = 32
ROLE_MAX = 32
# Room for any argon2id or bcrypt encoding with generous parameters.
PASSWORD_HASH_MAX = 512


class UTCDateTime(sa.TypeDecorator[datetime]):
    """An aware UTC datetime on every backend.

    PostgreSQL keeps the offset (``timestamptz``); SQLite stores text without one,
    so naive values read back are UTC by construction and get their tzinfo back.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass an aware datetime")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        moment: datetime = value
        if moment.tzinfo is None:
            return moment.replace(tzinfo=timezone.utc)
        return moment.astimezone(timezone.utc)


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


user_roles = sa.Table(
    "user_roles",
    Base.metadata,
    sa.Column(
        "user_id", sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, nullable=False
    ),
    sa.Column(
        "role_id", sa.ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True, nullable=False
    ),
    sa.Column("granted_at", UTCDateTime(), nullable=False, default=utcnow),
)


class Role(Base):
    __tablename__ = "roles"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(ROLE_MAX), unique=True)

    def __repr__(self) -> str:
        return f"Role(id={self.id!r}, name={self.name!r})"


class User(Base):
    __tablename__ = "users"
    __table_args__ = (sa.CheckConstraint("email = lower(email)", name="email_lowercase"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(EMAIL_MAX), unique=True)
    username: Mapped[str] = mapped_column(sa.String(USERNAME_MAX), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(PASSWORD_HASH_MAX))
    is_active: Mapped[bool] = mapped_column(default=True, server_default=sa.true())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)

    # selectin: roles arrive with the user, since an AsyncSession cannot lazy-load later.
    roles: Mapped[list[Role]] = relationship(
        secondary=user_roles, lazy="selectin", order_by=Role.name
    )

    @property
    def role_names(self) -> list[str]:
        return [role.name for role in self.roles]

    def __repr__(self) -> str:
        # Never the password hash: reprs end up in logs and tracebacks.
        return f"User(id={self.id!r}, username={self.username!r}, is_active={self.is_active!r})"


# Case-insensitive uniqueness of usernames (an expression index works on SQLite and PostgreSQL).
sa.Index("uq_users_username_lower", sa.func.lower(User.username), unique=True)
