"""Apply the reference API's Alembic migrations from code.

The run command calls :func:`upgrade_to_head` before serving, so a fresh machine
gets its schema without running ``alembic`` by hand. Inside a running event loop
(an application lifespan) use :func:`aupgrade_to_head` instead.

The URL never goes into the Alembic ``Config`` options, which would both
interpolate ``%`` in an encoded password and show it in Alembic's output; it
travels in ``Config.attributes``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

from fastapi_secure.db import Database

__all__ = [
    "HERE",
    "adowngrade_to_base",
    "alembic_config",
    "aupgrade_to_head",
    "downgrade_to_base",
    "upgrade_to_head",
]

HERE = Path(__file__).resolve().parent


def alembic_config() -> Config:
    """The Alembic configuration of the reference API, wherever the process runs from."""
    config = Config(str(HERE / "alembic.ini"))
    config.set_main_option("script_location", str(HERE / "migrations"))
    return config


def _run(connection: Connection, action: str, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    if action == "upgrade":
        command.upgrade(config, revision)
    else:
        command.downgrade(config, revision)


async def _migrate(url: str, action: str, revision: str) -> None:
    db = Database(url, pool_size=1, max_overflow=0)
    try:
        async with db.engine.begin() as connection:
            await connection.run_sync(_run, action, revision)
    finally:
        await db.dispose()


async def amigrate(url: str, action: str, revision: str) -> None:
    """Run ``alembic upgrade|downgrade <revision>`` (``action``) on the database at ``url``."""
    await _migrate(url, action, revision)


async def aupgrade_to_head(url: str) -> None:
    """Bring the database at ``url`` to the newest revision (idempotent)."""
    await _migrate(url, "upgrade", "head")


async def adowngrade_to_base(url: str) -> None:
    """Undo every revision: the reference API's tables are dropped."""
    await _migrate(url, "downgrade", "base")


def upgrade_to_head(url: str) -> None:
    """:func:`aupgrade_to_head` for code that runs outside an event loop."""
    asyncio.run(aupgrade_to_head(url))


def downgrade_to_base(url: str) -> None:
    """:func:`adowngrade_to_base` for code that runs outside an event loop."""
    asyncio.run(adowngrade_to_base(url))
