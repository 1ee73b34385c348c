"""Account fixtures: one UserStore contract over memory, SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fastapi_secure.accounts.sqlalchemy import SQLAlchemyUserMixin, SQLAlchemyUserStore
from fastapi_secure.accounts.users import MemoryUserStore, UserStore
from fastapi_secure.db import Database
from fastapi_secure.testing import FakeClock
from tests.conftest import fresh_postgres_database


class Base(DeclarativeBase):
    pass


class AppUser(SQLAlchemyUserMixin, Base):
    """A model the application owns: its table, its key, an extra column."""

    __tablename__ = "app_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    display_name: Mapped[str] = mapped_column(sa.String(80), default="")


@asynccontextmanager
async def sql_database(url: str) -> AsyncIterator[Database]:
    """A Database at ``url`` holding the AppUser table, disposed afterwards."""
    db = Database(url)
    try:
        async with db.engine.begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
        yield db
    finally:
        await db.dispose()


USER_STORE_KINDS = [
    "memory",
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(params=USER_STORE_KINDS)
async def user_store(
    request: pytest.FixtureRequest, fake_clock: FakeClock, tmp_path: Path
) -> AsyncIterator[UserStore]:
    """Each UserStore backend in turn, all on ``fake_clock``."""
    kind = request.param
    if kind == "memory":
        yield MemoryUserStore(clock=fake_clock)
        return
    if kind == "sqlite":
        async with sql_database(f"sqlite+aiosqlite:///{tmp_path / 'users.db'}") as db:
            yield SQLAlchemyUserStore(AppUser, db.transaction, clock=fake_clock)
        return
    async with fresh_postgres_database() as url, sql_database(url) as db:
        yield SQLAlchemyUserStore(AppUser, db.transaction, clock=fake_clock)
