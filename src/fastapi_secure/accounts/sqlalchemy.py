"""A :class:`~fastapi_secure.accounts.users.UserStore` over the application's own model.

The application declares its user table as usual and mixes in
:class:`SQLAlchemyUserMixin`, which adds the columns the account blocks need;
the table name, the primary key (integer, UUID or string) and any extra
columns stay the application's::

    class User(SQLAlchemyUserMixin, Base):
        __tablename__ = "users"
        id: Mapped[int] = mapped_column(primary_key=True)
        display_name: Mapped[str | None] = mapped_column(default=None)

    users = SQLAlchemyUserStore(User, db.transaction)

Case-insensitive email uniqueness is the database's job: ``email_key`` holds
:func:`~fastapi_secure.accounts.users.normalize_login_name` of the email under
a unique constraint, so two concurrent registrations of ``A@x.io`` and
``a@X.io`` leave one row and the other gets
:class:`~fastapi_secure.accounts.errors.UserExistsError`. (A unique index on
``lower(email)`` would not do: SQLite's ``lower`` folds ASCII only, and the
login keys fold Unicode.)

Needs the ``sqlalchemy`` extra.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timezone
from typing import Any, Generic, TypeVar

from fastapi_secure._optional import require

require("sqlalchemy", extra="sqlalchemy", feature="SQLAlchemyUserStore")

import sqlalchemy as sa  # noqa: E402
from sqlalchemy.exc import IntegrityError  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncSession  # noqa: E402
from sqlalchemy.orm import Mapped, declared_attr, mapped_column  # noqa: E402

from fastapi_secure.accounts.errors import UserExistsError, UserNotFoundError  # noqa: E402
from fastapi_secure.accounts.identities import (  # noqa: E402
    MAX_ISSUER_LENGTH,
    MAX_PROVIDER_LENGTH,
    MAX_SUBJECT_LENGTH,
    LastWayInError,
    check_identity,
    stored_email,
)
from fastapi_secure.accounts.users import (  # noqa: E402
    MAX_EMAIL_LENGTH,
    MAX_LOGIN_NAME_LENGTH,
    UserRecord,
    check_new_user,
    clean_roles,
    is_email,
    new_security_stamp,
    normalize_login_name,
    plausible_login_name,
)
from fastapi_secure.clock import Clock, system_clock  # noqa: E402
from fastapi_secure.errors import ConfigurationError, ConflictError  # noqa: E402
from fastapi_secure.oidc.linking import LinkedIdentity, OIDCIdentity  # noqa: E402

__all__ = [
    "SQLAlchemyIdentityMixin",
    "SQLAlchemyIdentityStore",
    "SQLAlchemyUserMixin",
    "SQLAlchemyUserStore",
    "UTCDateTime",
    "id_parser",
    "is_unique_violation",
]

PASSWORD_HASH_MAX = 512
"""Room for any argon2id or bcrypt encoding with generous parameters."""

# SQLSTATE unique_violation; SQLite's extended codes SQLITE_CONSTRAINT_UNIQUE / _PRIMARYKEY.
_PG_UNIQUE_VIOLATION = "23505"
_SQLITE_UNIQUE_CODES = frozenset({2067, 1555})


class UTCDateTime(sa.TypeDecorator[datetime]):
    """An aware UTC datetime on every backend (SQLite stores it without an offset)."""

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


class SQLAlchemyUserMixin:
    """The columns the account blocks need, for a declarative model the app owns.

    ``email_key`` and ``username_key`` are the normalized forms under unique
    constraints; the store fills them, the application never writes them.
    Override a column in the model to change its type or length.
    """

    email: Mapped[str] = mapped_column(sa.String(MAX_EMAIL_LENGTH))
    email_key: Mapped[str] = mapped_column(sa.String(MAX_EMAIL_LENGTH), unique=True)
    username: Mapped[str | None] = mapped_column(sa.String(MAX_LOGIN_NAME_LENGTH), default=None)
    username_key: Mapped[str | None] = mapped_column(
        sa.String(MAX_LOGIN_NAME_LENGTH), unique=True, default=None
    )
    password_hash: Mapped[str | None] = mapped_column(sa.String(PASSWORD_HASH_MAX), default=None)
    is_active: Mapped[bool] = mapped_column(default=True, server_default=sa.true())
    email_verified: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    roles: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    security_stamp: Mapped[str] = mapped_column(sa.String(64))
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:
        # Never the hash or the stamp: reprs end up in logs and tracebacks.
        return f"{type(self).__name__}(email_key={self.email_key!r})"


_User = TypeVar("_User", bound=SQLAlchemyUserMixin)

SessionScope = Callable[[], AbstractAsyncContextManager[AsyncSession]]
"""A zero-argument callable opening a unit of work that commits when it ends:
:meth:`fastapi_secure.Database.transaction` or ``async_sessionmaker.begin``."""


def _moment(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def _seconds(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def is_unique_violation(exc: IntegrityError) -> bool:
    """Whether ``exc`` is a unique-constraint violation (PostgreSQL or SQLite)."""
    orig = exc.orig
    if getattr(orig, "sqlstate", None) == _PG_UNIQUE_VIOLATION:
        return True
    if getattr(orig, "sqlite_errorcode", None) in _SQLITE_UNIQUE_CODES:
        return True
    return str(orig).startswith("UNIQUE constraint failed")


def id_parser(column_type: sa.types.TypeEngine[Any]) -> Callable[[str], Any]:
    """A parser of ids given as text for a key column of ``column_type``: None when
    the column cannot hold the value."""
    # A token subject is client-controlled text: an id the column cannot hold
    # must be "no such user", not a driver error (a 500).
    if isinstance(column_type, sa.Integer):
        if isinstance(column_type, sa.BigInteger):
            bound = 2**63 - 1
        elif isinstance(column_type, sa.SmallInteger):
            bound = 2**15 - 1
        else:
            bound = 2**31 - 1

        def parse_int(value: str) -> Any:
            if not (value.isascii() and value.isdigit()) or len(value) > 19:
                return None
            number = int(value)
            return number if 0 < number <= bound else None

        return parse_int
    if isinstance(column_type, sa.Uuid):

        def parse_uuid(value: str) -> Any:
            if len(value) > 64:
                return None
            try:
                return uuid.UUID(value)
            except ValueError:
                return None

        return parse_uuid

    def parse_str(value: str) -> Any:
        return value if 0 < len(value) <= 255 and value.isprintable() else None

    return parse_str


class SQLAlchemyUserStore(Generic[_User]):
    """:class:`~fastapi_secure.accounts.users.UserStore` over ``model``.

    Args:
        model: the application's declarative class mixing in :class:`SQLAlchemyUserMixin`,
            with a single-column primary key of integer, UUID or string type.
        sessions: opens one committed unit of work per operation
            (``db.transaction`` or ``async_sessionmaker.begin``).
        clock: time source for ``created_at`` and ``password_changed_at``.
        extra_fields: values for the application's own required columns, given to
            the model's constructor on :meth:`create` (a callable, so each row gets
            fresh values).
    """

    def __init__(
        self,
        model: type[_User],
        sessions: SessionScope,
        *,
        clock: Clock = system_clock,
        extra_fields: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        if not (isinstance(model, type) and issubclass(model, SQLAlchemyUserMixin)):
            raise ConfigurationError(
                "model must be a declarative class mixing in SQLAlchemyUserMixin"
            )
        mapper = sa.inspect(model)
        if len(mapper.primary_key) != 1:
            raise ConfigurationError("the user model needs a single-column primary key")
        self._model = model
        self._pk = mapper.primary_key[0]
        self._sessions = sessions
        self._clock = clock
        self._extra_fields = extra_fields
        self._parse_id = id_parser(self._pk.type)

    def __repr__(self) -> str:
        return f"SQLAlchemyUserStore({self._model.__name__})"

    def _record(self, user: _User) -> UserRecord:
        return UserRecord(
            id=str(getattr(user, self._pk.key)),
            email=user.email,
            username=user.username,
            password_hash=user.password_hash,
            is_active=bool(user.is_active),
            email_verified=bool(user.email_verified),
            roles=tuple(user.roles or ()),
            security_stamp=user.security_stamp,
            password_changed_at=_seconds(user.password_changed_at),
            created_at=_seconds(user.created_at) or 0.0,
        )

    async def _one(self, condition: Any) -> UserRecord | None:
        async with self._sessions() as session:
            user = (
                await session.execute(sa.select(self._model).where(condition))
            ).scalar_one_or_none()
            return None if user is None else self._record(user)

    async def get(self, user_id: str) -> UserRecord | None:
        key = self._parse_id(user_id) if isinstance(user_id, str) else None
        if key is None:
            return None
        async with self._sessions() as session:
            user = await session.get(self._model, key)
            return None if user is None else self._record(user)

    async def find_by_email(self, email: str) -> UserRecord | None:
        if not isinstance(email, str) or not plausible_login_name(email):
            return None
        return await self._one(self._model.email_key == normalize_login_name(email))

    async def find_by_login(self, name: str) -> UserRecord | None:
        if not isinstance(name, str) or not plausible_login_name(name):
            return None
        if is_email(name):
            return await self.find_by_email(name)
        return await self._one(self._model.username_key == normalize_login_name(name))

    async def create(
        self,
        *,
        email: str,
        password_hash: str | None,
        username: str | None = None,
        roles: Iterable[str] = (),
        is_active: bool = True,
        email_verified: bool = False,
    ) -> UserRecord:
        email_key, username_key = check_new_user(email, username)
        now = _moment(self._clock())
        fields: dict[str, Any] = dict(self._extra_fields() if self._extra_fields else {})
        fields.update(
            email=email.strip(),
            email_key=email_key,
            username=username.strip() if username is not None else None,
            username_key=username_key,
            password_hash=password_hash,
            is_active=bool(is_active),
            email_verified=bool(email_verified),
            roles=list(clean_roles(roles)),
            security_stamp=new_security_stamp(),
            password_changed_at=now if password_hash is not None else None,
            created_at=now,
        )
        try:
            async with self._sessions() as session:
                user = self._model(**fields)
                session.add(user)
                await session.flush()
                record = self._record(user)
        except IntegrityError as exc:
            if is_unique_violation(exc):
                raise UserExistsError(reason="unique constraint") from None
            raise
        return record

    async def _change(self, user_id: str, **changes: Any) -> UserRecord:
        key = self._parse_id(user_id) if isinstance(user_id, str) else None
        if key is None:
            raise UserNotFoundError(reason="malformed user id")
        async with self._sessions() as session:
            user = await session.get(self._model, key, with_for_update=True)
            if user is None:
                raise UserNotFoundError()
            for name, value in changes.items():
                setattr(user, name, value)
            await session.flush()
            return self._record(user)

    async def set_password_hash(
        self, user_id: str, password_hash: str, *, rotate_stamp: bool = True
    ) -> UserRecord:
        if not rotate_stamp:
            return await self._change(user_id, password_hash=password_hash)
        return await self._change(
            user_id,
            password_hash=password_hash,
            security_stamp=new_security_stamp(),
            password_changed_at=_moment(self._clock()),
        )

    async def rotate_security_stamp(self, user_id: str) -> UserRecord:
        return await self._change(user_id, security_stamp=new_security_stamp())

    async def mark_email_verified(self, user_id: str) -> UserRecord:
        return await self._change(user_id, email_verified=True)

    async def set_active(self, user_id: str, active: bool) -> UserRecord:
        return await self._change(user_id, is_active=bool(active))

    async def set_roles(self, user_id: str, roles: Iterable[str]) -> UserRecord:
        return await self._change(user_id, roles=list(clean_roles(roles)))


# -- identities at outside providers ---------------------------------------------------


class SQLAlchemyIdentityMixin:
    """The columns of a linked identity, for a declarative model the app owns.

    The application adds its primary key and ``user_id``, a foreign key to its
    user table (of the same type as that table's key)::

        class Identity(SQLAlchemyIdentityMixin, Base):
            __tablename__ = "identities"
            id: Mapped[int] = mapped_column(primary_key=True)
            user_id: Mapped[int] = mapped_column(
                sa.ForeignKey("users.id", ondelete="CASCADE"), index=True
            )

    ``(issuer, subject)`` is unique (constraint ``uq_<table>_issuer_subject``):
    the database, not a read before the write, keeps one link per identity.
    """

    issuer: Mapped[str] = mapped_column(sa.String(MAX_ISSUER_LENGTH))
    subject: Mapped[str] = mapped_column(sa.String(MAX_SUBJECT_LENGTH))
    provider: Mapped[str] = mapped_column(sa.String(MAX_PROVIDER_LENGTH))
    email: Mapped[str | None] = mapped_column(sa.String(MAX_EMAIL_LENGTH), default=None)
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime())

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:  # noqa: N805
        table = getattr(cls, "__tablename__", "identities")
        return (sa.UniqueConstraint("issuer", "subject", name=f"uq_{table}_issuer_subject"),)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(provider={self.provider!r})"


_Identity = TypeVar("_Identity", bound=SQLAlchemyIdentityMixin)


class SQLAlchemyIdentityStore(Generic[_Identity]):
    """:class:`~fastapi_secure.accounts.identities.IdentityStore` over ``model``.

    Args:
        model: the application's class mixing in :class:`SQLAlchemyIdentityMixin`,
            with a single-column primary key and a ``user_id`` column.
        sessions: opens one committed unit of work per operation.
        clock: time source for ``linked_at``.
    """

    def __init__(
        self, model: type[_Identity], sessions: SessionScope, *, clock: Clock = system_clock
    ) -> None:
        if not (isinstance(model, type) and issubclass(model, SQLAlchemyIdentityMixin)):
            raise ConfigurationError(
                "model must be a declarative class mixing in SQLAlchemyIdentityMixin"
            )
        mapper = sa.inspect(model)
        if len(mapper.primary_key) != 1 or "user_id" not in mapper.columns:
            raise ConfigurationError(
                "the identity model needs a single-column primary key and a user_id column"
            )
        self._model = model
        self._pk = mapper.primary_key[0]
        self._user_id = mapper.columns["user_id"]
        self._sessions = sessions
        self._clock = clock
        self._parse_id = id_parser(self._pk.type)
        self._parse_user = id_parser(self._user_id.type)

    def __repr__(self) -> str:
        return f"SQLAlchemyIdentityStore({self._model.__name__})"

    def _record(self, row: _Identity) -> LinkedIdentity:
        return LinkedIdentity(
            id=str(getattr(row, self._pk.key)),
            user_id=str(getattr(row, self._user_id.key)),
            issuer=row.issuer,
            subject=row.subject,
            provider=row.provider,
            email=row.email,
            linked_at=_seconds(row.linked_at) or 0.0,
        )

    async def find(self, issuer: str, subject: str) -> LinkedIdentity | None:
        if len(issuer) > MAX_ISSUER_LENGTH or len(subject) > MAX_SUBJECT_LENGTH:
            return None
        model = self._model
        async with self._sessions() as session:
            row = (
                await session.execute(
                    sa.select(model).where(model.issuer == issuer, model.subject == subject)
                )
            ).scalar_one_or_none()
            return None if row is None else self._record(row)

    async def add(self, user_id: str, identity: OIDCIdentity) -> LinkedIdentity:
        check_identity(identity)
        owner = self._parse_user(user_id) if isinstance(user_id, str) else None
        if owner is None:
            raise ValueError("malformed user id")
        fields: dict[str, Any] = {
            "issuer": identity.issuer,
            "subject": identity.subject,
            "provider": identity.provider,
            "email": stored_email(identity),
            "linked_at": _moment(self._clock()),
            self._user_id.key: owner,
        }
        row = self._model(**fields)
        try:
            async with self._sessions() as session:
                session.add(row)
                await session.flush()
                return self._record(row)
        except IntegrityError as exc:
            if not is_unique_violation(exc):
                raise
        # A concurrent sign-in linked this identity first: the database kept its link.
        existing = await self.find(identity.issuer, identity.subject)
        if existing is None:  # pragma: no cover - only if that link was removed meanwhile
            raise ConflictError(reason="identity linked and unlinked concurrently")
        return existing

    async def list_for(self, user_id: str) -> list[LinkedIdentity]:
        owner = self._parse_user(user_id) if isinstance(user_id, str) else None
        if owner is None:
            return []
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    sa.select(self._model)
                    .where(self._user_id == owner)
                    .order_by(self._model.linked_at, self._pk)
                )
            ).scalars()
            return [self._record(row) for row in rows]

    async def remove(self, user_id: str, identity_id: str, *, keep_last: bool) -> bool:
        owner = self._parse_user(user_id) if isinstance(user_id, str) else None
        key = self._parse_id(identity_id) if isinstance(identity_id, str) else None
        if owner is None or key is None:
            return False
        mine = self._user_id == owner
        async with self._sessions() as session:
            # PostgreSQL: lock the user's links, so a concurrent removal waits and then
            # counts what this one left. SQLite ignores FOR UPDATE, but its writers take
            # turns: the count after the DELETE sees every committed removal.
            await session.execute(sa.select(self._pk).where(mine).with_for_update())
            deleted = await session.execute(sa.delete(self._model).where(mine, self._pk == key))
            if getattr(deleted, "rowcount", 0) != 1:
                return False
            if keep_last:
                left = await session.scalar(
                    sa.select(sa.func.count()).select_from(self._model).where(mine)
                )
                if not left:
                    raise LastWayInError(reason="last identity of an account without a password")
            return True
