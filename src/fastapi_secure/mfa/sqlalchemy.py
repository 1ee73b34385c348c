"""An :class:`~fastapi_secure.mfa.authenticators.AuthenticatorStore` in the application's tables.

The application declares three tables as usual, each with a ``user_id``
column referring to its users (the type of its user key), and mixes in the
columns the second factors need; table names and the foreign keys stay the
application's::

    class TOTPRow(SQLAlchemyTOTPMixin, Base):
        __tablename__ = "mfa_totp"
        user_id: Mapped[int] = mapped_column(
            sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
        )

    class RecoveryCodeRow(SQLAlchemyRecoveryCodeMixin, Base):
        __tablename__ = "mfa_recovery_codes"
        user_id: Mapped[int] = mapped_column(
            sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
        )

    class PasskeyRow(SQLAlchemyPasskeyMixin, Base):
        __tablename__ = "mfa_passkeys"
        user_id: Mapped[int] = mapped_column(
            sa.ForeignKey("users.id", ondelete="CASCADE"), index=True
        )

    store = SQLAlchemyAuthenticatorStore(
        totp=TOTPRow, recovery_codes=RecoveryCodeRow, passkeys=PasskeyRow,
        sessions=db.transaction,
    )

Every single-use or compare-and-set step is one conditional statement the
database runs atomically: a recovery code is consumed by ``DELETE ... WHERE
user_id = :u AND digest = :d`` (one row, one winner), a passkey's sign count
moves by ``UPDATE ... WHERE sign_count < :new``. Needs the ``sqlalchemy`` extra.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any, ClassVar, Literal, cast

from fastapi_secure._optional import require

require("sqlalchemy", extra="sqlalchemy", feature="SQLAlchemyAuthenticatorStore")

import sqlalchemy as sa  # noqa: E402
from sqlalchemy.engine import CursorResult  # noqa: E402
from sqlalchemy.exc import IntegrityError  # noqa: E402
from sqlalchemy.orm import Mapped, mapped_column  # noqa: E402

from fastapi_secure.accounts.sqlalchemy import (  # noqa: E402
    SessionScope,
    UTCDateTime,
    id_parser,
    is_unique_violation,
)
from fastapi_secure.errors import ConfigurationError, ConflictError  # noqa: E402
from fastapi_secure.mfa.authenticators import PasskeyExistsError  # noqa: E402
from fastapi_secure.mfa.passkeys import PasskeyCredential  # noqa: E402
from fastapi_secure.mfa.totp import TOTPAuthenticator  # noqa: E402

__all__ = [
    "SQLAlchemyAuthenticatorStore",
    "SQLAlchemyPasskeyMixin",
    "SQLAlchemyRecoveryCodeMixin",
    "SQLAlchemyTOTPMixin",
]

MAX_CREDENTIAL_ID = 1023
"""WebAuthn's longest credential id (bytes)."""


class SQLAlchemyTOTPMixin:
    """Columns of one account's TOTP authenticator; the app adds ``user_id`` (primary key)."""

    encrypted_secret: Mapped[str] = mapped_column(sa.String(512))
    digits: Mapped[int] = mapped_column(sa.SmallInteger)
    period: Mapped[int] = mapped_column(sa.SmallInteger)
    algorithm: Mapped[str] = mapped_column(sa.String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(confirmed={self.confirmed_at is not None})"


class SQLAlchemyRecoveryCodeMixin:
    """One recovery-code digest; the app adds ``user_id`` (primary key with ``digest``)."""

    digest: Mapped[str] = mapped_column(sa.String(64), primary_key=True)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class SQLAlchemyPasskeyMixin:
    """Columns of one passkey; the app adds ``user_id`` (indexed, not unique)."""

    credential_id: Mapped[bytes] = mapped_column(
        sa.LargeBinary(MAX_CREDENTIAL_ID), primary_key=True
    )
    user_handle: Mapped[bytes] = mapped_column(sa.LargeBinary(64))
    public_key: Mapped[bytes] = mapped_column(sa.LargeBinary(2048))
    sign_count: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    transports: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    name: Mapped[str] = mapped_column(sa.String(64), default="")
    aaguid: Mapped[str] = mapped_column(sa.String(36), default="")
    backed_up: Mapped[bool] = mapped_column(default=False)
    device_type: Mapped[str] = mapped_column(sa.String(32), default="single_device")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)

    def __repr__(self) -> str:
        # Never the public key or the handle (the handle identifies the account).
        return f"{type(self).__name__}(name={self.name!r})"


def _moment(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=timezone.utc)


def _seconds(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def _refusal(exc: IntegrityError, taken: ConflictError) -> ConflictError:
    """What an insert's integrity error means: ``taken`` for a unique key, else the
    account is gone (a foreign-key violation: a token outlived its account)."""
    if is_unique_violation(exc):
        return taken
    return ConflictError("the account no longer exists", reason="foreign key violation")


def _rows(result: Any) -> int:
    return int(cast(CursorResult[Any], result).rowcount)


class SQLAlchemyAuthenticatorStore:
    """:class:`~fastapi_secure.mfa.authenticators.AuthenticatorStore` over three app models.

    Args:
        totp: model mixing in :class:`SQLAlchemyTOTPMixin`, ``user_id`` its primary key.
        recovery_codes: model mixing in :class:`SQLAlchemyRecoveryCodeMixin`.
        passkeys: model mixing in :class:`SQLAlchemyPasskeyMixin`.
        sessions: opens one committed unit of work per operation
            (``db.transaction`` or ``async_sessionmaker.begin``).
    """

    keyed_by_user_id: ClassVar[bool] = True

    def __init__(
        self,
        *,
        totp: type[SQLAlchemyTOTPMixin],
        recovery_codes: type[SQLAlchemyRecoveryCodeMixin],
        passkeys: type[SQLAlchemyPasskeyMixin],
        sessions: SessionScope,
    ) -> None:
        for model, mixin in (
            (totp, SQLAlchemyTOTPMixin),
            (recovery_codes, SQLAlchemyRecoveryCodeMixin),
            (passkeys, SQLAlchemyPasskeyMixin),
        ):
            if not (isinstance(model, type) and issubclass(model, mixin)):
                raise ConfigurationError(f"{model!r} must be a declarative class mixing in {mixin}")
            if "user_id" not in sa.inspect(model).columns:
                raise ConfigurationError(f"{model.__name__} needs a user_id column")
        self._totp: Any = totp
        self._codes: Any = recovery_codes
        self._passkeys: Any = passkeys
        self._sessions = sessions
        self._parse: Callable[[str], Any] = id_parser(sa.inspect(totp).columns["user_id"].type)

    def __repr__(self) -> str:
        return f"SQLAlchemyAuthenticatorStore({self._totp.__name__}, {self._passkeys.__name__})"

    def _key(self, user_id: object) -> Any:
        return self._parse(user_id) if isinstance(user_id, str) else None

    # -- TOTP ------------------------------------------------------------------

    async def get_totp(self, user_id: str) -> TOTPAuthenticator | None:
        key = self._key(user_id)
        if key is None:
            return None
        async with self._sessions() as session:
            row = await session.get(self._totp, key)
            if row is None:
                return None
            return TOTPAuthenticator(
                user_id=user_id,
                encrypted_secret=row.encrypted_secret,
                digits=row.digits,
                period=row.period,
                algorithm=cast(Literal["SHA1", "SHA256", "SHA512"], row.algorithm),
                created_at=_seconds(row.created_at) or 0.0,
                confirmed_at=_seconds(row.confirmed_at),
                last_used_at=_seconds(row.last_used_at),
            )

    async def save_totp(self, authenticator: TOTPAuthenticator) -> None:
        key = self._key(authenticator.user_id)
        if key is None:
            raise ConfigurationError("not a user id of this store")
        model = self._totp
        try:
            async with self._sessions() as session:
                await session.execute(sa.delete(model).where(model.user_id == key))
                session.add(
                    model(
                        user_id=key,
                        encrypted_secret=authenticator.encrypted_secret,
                        digits=authenticator.digits,
                        period=authenticator.period,
                        algorithm=authenticator.algorithm,
                        created_at=_moment(authenticator.created_at),
                        confirmed_at=_moment(authenticator.confirmed_at),
                        last_used_at=_moment(authenticator.last_used_at),
                    )
                )
        except IntegrityError as exc:
            raise _refusal(exc, ConflictError(reason="concurrent TOTP enrolment")) from None

    async def confirm_totp(self, authenticator: TOTPAuthenticator) -> bool:
        key = self._key(authenticator.user_id)
        if key is None:
            return False
        model = self._totp
        async with self._sessions() as session:
            result = await session.execute(
                sa.update(model)
                .where(
                    model.user_id == key,
                    model.encrypted_secret == authenticator.encrypted_secret,
                )
                .values(
                    confirmed_at=_moment(authenticator.confirmed_at),
                    last_used_at=_moment(authenticator.last_used_at),
                )
            )
            return _rows(result) == 1

    async def record_totp_use(self, authenticator: TOTPAuthenticator) -> bool:
        key = self._key(authenticator.user_id)
        if key is None:
            return False
        model = self._totp
        async with self._sessions() as session:
            result = await session.execute(
                sa.update(model)
                .where(
                    model.user_id == key,
                    model.encrypted_secret == authenticator.encrypted_secret,
                    model.confirmed_at.is_not(None),
                )
                .values(last_used_at=_moment(authenticator.last_used_at))
            )
            return _rows(result) == 1

    async def delete_totp(self, user_id: str) -> bool:
        key = self._key(user_id)
        if key is None:
            return False
        model = self._totp
        async with self._sessions() as session:
            result = await session.execute(sa.delete(model).where(model.user_id == key))
            return _rows(result) > 0

    # -- recovery codes ------------------------------------------------------------

    async def replace(self, user_key: str, digests: Sequence[str]) -> None:
        key = self._key(user_key)
        if key is None:
            raise ConfigurationError("not a user id of this store")
        model = self._codes
        try:
            async with self._sessions() as session:
                await session.execute(sa.delete(model).where(model.user_id == key))
                session.add_all([model(user_id=key, digest=digest) for digest in set(digests)])
        except IntegrityError as exc:
            raise _refusal(exc, ConflictError(reason="concurrent replacement")) from None

    async def consume(self, user_key: str, digest: str) -> bool:
        key = self._key(user_key)
        if key is None or not isinstance(digest, str) or len(digest) > 64:
            return False
        model = self._codes
        async with self._sessions() as session:
            result = await session.execute(
                sa.delete(model).where(model.user_id == key, model.digest == digest)
            )
            return _rows(result) == 1

    async def remaining(self, user_key: str) -> int:
        key = self._key(user_key)
        if key is None:
            return 0
        model = self._codes
        async with self._sessions() as session:
            count = await session.scalar(
                sa.select(sa.func.count()).select_from(model).where(model.user_id == key)
            )
            return int(count or 0)

    # -- passkeys ----------------------------------------------------------------

    def _credential(self, row: Any) -> PasskeyCredential:
        return PasskeyCredential(
            id=bytes(row.credential_id),
            user_id=str(row.user_id),
            user_handle=bytes(row.user_handle),
            public_key=bytes(row.public_key),
            sign_count=int(row.sign_count),
            transports=tuple(row.transports or ()),
            created_at=_seconds(row.created_at) or 0.0,
            last_used_at=_seconds(row.last_used_at),
            aaguid=row.aaguid,
            backed_up=bool(row.backed_up),
            device_type=row.device_type,
            name=row.name,
        )

    async def list_passkeys(self, user_id: str) -> list[PasskeyCredential]:
        key = self._key(user_id)
        if key is None:
            return []
        model = self._passkeys
        async with self._sessions() as session:
            rows = await session.scalars(
                sa.select(model)
                .where(model.user_id == key)
                .order_by(model.created_at, model.credential_id)
            )
            return [self._credential(row) for row in rows]

    async def get_passkey(self, credential_id: bytes) -> PasskeyCredential | None:
        if not isinstance(credential_id, bytes) or not 0 < len(credential_id) <= MAX_CREDENTIAL_ID:
            return None
        async with self._sessions() as session:
            row = await session.get(self._passkeys, credential_id)
            return None if row is None else self._credential(row)

    async def add_passkey(self, credential: PasskeyCredential) -> None:
        key = self._key(credential.user_id)
        if key is None:
            raise ConfigurationError("not a user id of this store")
        try:
            async with self._sessions() as session:
                session.add(
                    self._passkeys(
                        credential_id=credential.id,
                        user_id=key,
                        user_handle=credential.user_handle,
                        public_key=credential.public_key,
                        sign_count=credential.sign_count,
                        transports=list(credential.transports),
                        name=credential.name[:64],
                        aaguid=credential.aaguid[:36],
                        backed_up=credential.backed_up,
                        device_type=credential.device_type[:32],
                        created_at=_moment(credential.created_at),
                        last_used_at=_moment(credential.last_used_at),
                    )
                )
        except IntegrityError as exc:
            raise _refusal(exc, PasskeyExistsError(reason="credential id taken")) from None

    async def record_passkey_use(self, credential: PasskeyCredential) -> bool:
        model = self._passkeys
        new = credential.sign_count
        grows = model.sign_count < new if new > 0 else model.sign_count == 0
        async with self._sessions() as session:
            result = await session.execute(
                sa.update(model)
                .where(model.credential_id == credential.id, grows)
                .values(sign_count=new, last_used_at=_moment(credential.last_used_at))
            )
            return _rows(result) == 1

    async def rename_passkey(
        self, user_id: str, credential_id: bytes, name: str
    ) -> PasskeyCredential | None:
        key = self._key(user_id)
        if key is None or not 0 < len(credential_id) <= MAX_CREDENTIAL_ID:
            return None
        model = self._passkeys
        async with self._sessions() as session:
            result = await session.execute(
                sa.update(model)
                .where(model.user_id == key, model.credential_id == credential_id)
                .values(name=name[:64])
            )
            if _rows(result) != 1:
                return None
            row = await session.get(self._passkeys, credential_id, populate_existing=True)
            return None if row is None else self._credential(row)

    async def delete_passkey(self, user_id: str, credential_id: bytes) -> bool:
        key = self._key(user_id)
        if key is None or not 0 < len(credential_id) <= MAX_CREDENTIAL_ID:
            return False
        model = self._passkeys
        async with self._sessions() as session:
            result = await session.execute(
                sa.delete(model).where(model.user_id == key, model.credential_id == credential_id)
            )
            return _rows(result) == 1

    async def aclose(self) -> None:
        """The database belongs to the application; nothing to release here."""
