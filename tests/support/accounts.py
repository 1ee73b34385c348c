"""Shared helpers of the account tests: an application-owned user model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fastapi_secure.accounts.sqlalchemy import SQLAlchemyUserMixin
from fastapi_secure.db import Database


class Base(DeclarativeBase):
    pass


class AppUser(SQLAlchemyUserMixin, Base):
    """A model the application owns: its table, its key, an extra column."""

    __tablename__ = "app_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    display_name: Mapped[str] = mapped_column(sa.String(80), default="")


@asynccontextmanager
async def sql_database(url: str, *, create: bool = True) -> AsyncIterator[Database]:
    """A Database at ``url`` (holding the AppUser table when ``create``), disposed afterwards."""
    db = Database(url)
    try:
        if create:
            async with db.engine.begin() as connection:
                await connection.run_sync(Base.metadata.create_all)
        yield db
    finally:
        await db.dispose()
