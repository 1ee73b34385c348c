"""SQLAlchemyUserStore details beyond the contract: keys, models, errors (SQLite)."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fastapi_secure.accounts.errors import UserNotFoundError
from fastapi_secure.accounts.sqlalchemy import SQLAlchemyUserMixin, SQLAlchemyUserStore, UTCDateTime
from fastapi_secure.db import Database
from fastapi_secure.errors import ConfigurationError
from tests.support.accounts import AppUser, sql_database

pytestmark = pytest.mark.anyio


class Models(DeclarativeBase):
    pass


class UuidUser(SQLAlchemyUserMixin, Models):
    __tablename__ = "uuid_users"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)


class TextUser(SQLAlchemyUserMixin, Models):
    __tablename__ = "text_users"
    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)


class BigUser(SQLAlchemyUserMixin, Models):
    __tablename__ = "big_users"
    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True
    )


class SmallUser(SQLAlchemyUserMixin, Models):
    __tablename__ = "small_users"
    id: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True)


class StrictUser(SQLAlchemyUserMixin, Models):
    """An application column without a default: create() needs extra_fields."""

    __tablename__ = "strict_users"
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant: Mapped[str] = mapped_column(sa.String(20))


class TwoKeyUser(SQLAlchemyUserMixin, Models):
    __tablename__ = "two_key_users"
    a: Mapped[int] = mapped_column(primary_key=True)
    b: Mapped[int] = mapped_column(primary_key=True)


@pytest.fixture
async def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'models.db'}")
    async with database.engine.begin() as connection:
        await connection.run_sync(Models.metadata.create_all)
    return database


async def test_uuid_keys(db: Database) -> None:
    store = SQLAlchemyUserStore(UuidUser, db.transaction)
    user = await store.create(email="u@x.io", password_hash="h")
    assert uuid.UUID(user.id)
    assert await store.get(user.id) == user
    assert await store.get("not-a-uuid") is None
    assert await store.get("0" * 100) is None
    await db.dispose()


async def test_text_keys_need_the_app_to_set_them(db: Database) -> None:
    counter = iter(range(100))
    store = SQLAlchemyUserStore(
        TextUser, db.transaction, extra_fields=lambda: {"id": f"user-{next(counter)}"}
    )
    user = await store.create(email="t@x.io", password_hash="h")
    assert user.id == "user-0"
    assert await store.get("user-0") == user
    assert await store.get("x" * 300) is None
    assert await store.get("bad\x00id") is None
    await db.dispose()


async def test_integer_widths_bound_the_ids(db: Database) -> None:
    big = SQLAlchemyUserStore(BigUser, db.transaction)
    small = SQLAlchemyUserStore(SmallUser, db.transaction)
    assert await big.get(str(2**40)) is None  # accepted as an id, found nothing
    assert await big.get(str(2**63)) is None
    assert await small.get(str(2**15)) is None
    created = await big.create(email="b@x.io", password_hash="h")
    assert await big.get(created.id) == created
    await db.dispose()


async def test_other_integrity_errors_are_not_user_exists(db: Database) -> None:
    store = SQLAlchemyUserStore(StrictUser, db.transaction)
    with pytest.raises(IntegrityError):
        await store.create(email="n@x.io", password_hash="h")
    tenant_store = SQLAlchemyUserStore(
        StrictUser, db.transaction, extra_fields=lambda: {"tenant": "acme"}
    )
    user = await tenant_store.create(email="n@x.io", password_hash="h")
    assert user.email == "n@x.io"
    await db.dispose()


async def test_changes_on_a_malformed_id_raise_not_found(db: Database) -> None:
    store = SQLAlchemyUserStore(UuidUser, db.transaction)
    with pytest.raises(UserNotFoundError):
        await store.set_active("nope", False)
    await db.dispose()


def test_models_are_checked() -> None:
    async def sessions() -> None:  # never called
        raise AssertionError

    with pytest.raises(ConfigurationError, match="SQLAlchemyUserMixin"):
        SQLAlchemyUserStore(Models, sessions)  # type: ignore[arg-type, type-var]
    with pytest.raises(ConfigurationError, match="single-column"):
        SQLAlchemyUserStore(TwoKeyUser, sessions)  # type: ignore[arg-type]


async def test_reprs_show_no_secret(tmp_path: Path) -> None:
    async with sql_database(f"sqlite+aiosqlite:///{tmp_path / 'r.db'}") as database:
        store = SQLAlchemyUserStore(AppUser, database.transaction)
        await store.create(email="r@x.io", password_hash="hash-value")
        async with database.transaction() as session:
            row = (await session.execute(sa.select(AppUser))).scalar_one()
            assert repr(row) == "AppUser(email_key='r@x.io')"
            assert row.security_stamp not in repr(row)
        assert repr(store) == "SQLAlchemyUserStore(AppUser)"


def test_utc_datetime_refuses_naive_values() -> None:
    column = UTCDateTime()
    dialect = sa.create_engine("sqlite://").dialect
    with pytest.raises(ValueError, match="naive"):
        column.process_bind_param(datetime(2030, 1, 1), dialect)
    assert column.process_bind_param(None, dialect) is None
    assert column.process_result_value(None, dialect) is None
    aware = datetime(2030, 1, 1, tzinfo=timezone.utc)
    assert column.process_result_value(aware, dialect) == aware
