"""Alembic environment of the reference API, on an async engine.

Two ways in:

- ``migrate.py`` hands over an open connection in ``config.attributes["connection"]``
  (the app's own ``Database`` engine), and the migrations run on it.
- The ``alembic`` command line gives nothing; the URL comes from ``DATABASE_URL`` or
  ``sqlalchemy.url``, and a short-lived ``Database`` engine is opened here.
"""

from __future__ import annotations

import asyncio
import os
from logging.config import fileConfig

from alembic import context
from examples.reference_api.models import Base
from sqlalchemy.engine import Connection

from fastapi_secure.db import Database

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = (
        config.attributes.get("database_url")
        or os.environ.get("DATABASE_URL")
        or config.get_main_option("sqlalchemy.url")
    )
    if not url:
        raise RuntimeError("no database URL: set DATABASE_URL or sqlalchemy.url")
    return str(url)


def _configure(**options: object) -> None:
    context.configure(
        target_metadata=target_metadata,
        compare_type=True,
        # SQLite cannot ALTER most things in place; batch mode copies the table instead.
        render_as_batch=True,
        **options,  # type: ignore[arg-type]
    )


def run_on_connection(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


async def run_with_own_engine() -> None:
    db = Database(_url(), pool_size=1, max_overflow=0)
    try:
        async with db.engine.begin() as connection:
            await connection.run_sync(run_on_connection)
    finally:
        await db.dispose()


def main() -> None:
    if context.is_offline_mode():
        _configure(url=_url(), literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = config.attributes.get("connection")
    if connection is not None:
        run_on_connection(connection)
        return
    if config.config_file_name is not None:
        # Only from the command line: a host application keeps its own logging setup.
        fileConfig(config.config_file_name, disable_existing_loggers=False)
    asyncio.run(run_with_own_engine())


main()
