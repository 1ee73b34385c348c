"""SQLAlchemy API key store: one table, on SQLite (aiosqlite) or PostgreSQL (asyncpg).

Each operation is one transaction of at most two statements; the ones that
must be atomic are conditional ``UPDATE``s (``WHERE revoked = false AND
rotated_to IS NULL ...``), which PostgreSQL re-checks on the locked row and
SQLite serialises, so of two concurrent rotations exactly one changes a row.

The table lives in its own :class:`~sqlalchemy.MetaData` (``store.metadata``),
created by :meth:`SQLAlchemyAPIKeyStore.create_table` or by your migrations
(for Alembic, include ``store.metadata`` in ``target_metadata``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from fastapi_secure._optional import require
from fastapi_secure.apikeys.stores.base import APIKey, StoredAPIKey
from fastapi_secure.errors import ConfigurationError

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["SQLAlchemyAPIKeyStore"]

DEFAULT_TABLE = "api_keys"


def _engine_of(database: Any) -> AsyncEngine:
    from sqlalchemy.ext.asyncio import AsyncEngine

    # fastapi_secure.db.Database (not imported: it pulls FastAPI in) exposes .engine.
    engine = database if isinstance(database, AsyncEngine) else getattr(database, "engine", None)
    if not isinstance(engine, AsyncEngine):
        raise ConfigurationError("database must be a fastapi_secure.Database or an AsyncEngine")
    return engine


class SQLAlchemyAPIKeyStore:
    """An :class:`~fastapi_secure.apikeys.stores.base.APIKeyStore` in a SQL table.

    Args:
        database: a :class:`fastapi_secure.db.Database` (its engine maps an
            unreachable database to ``DatabaseUnavailableError``) or an
            ``AsyncEngine``.
        table_name: name of the table (``api_keys``).
    """

    def __init__(
        self, database: Any, *, table_name: str = DEFAULT_TABLE, owns_engine: bool = False
    ) -> None:
        sa = require("sqlalchemy", extra="sqlalchemy", feature="SQLAlchemyAPIKeyStore")
        require("sqlalchemy.ext.asyncio", extra="sqlalchemy", feature="SQLAlchemyAPIKeyStore")
        self._sa = sa
        self._database = database
        self._engine = _engine_of(database)
        self._owns_engine = owns_engine
        self.metadata = sa.MetaData()
        self.table: Table = sa.Table(
            table_name,
            self.metadata,
            sa.Column("id", sa.String(32), primary_key=True),
            sa.Column("subject", sa.String(255), nullable=False, index=True),
            sa.Column("name", sa.String(100), nullable=False),
            sa.Column("scopes", sa.Text, nullable=False),
            sa.Column("roles", sa.Text, nullable=False),
            sa.Column("created_at", sa.Double, nullable=False),
            sa.Column("expires_at", sa.Double, nullable=True),
            sa.Column("last_used_at", sa.Double, nullable=True),
            sa.Column("revoked", sa.Boolean, nullable=False),
            sa.Column("rotated_to", sa.String(32), nullable=True),
            sa.Column("secret_digest", sa.String(64), nullable=False),
        )

    async def create_table(self) -> None:
        """Create the table if it does not exist (tests, quick starts; prefer migrations)."""
        async with self._engine.begin() as connection:
            await connection.run_sync(self.metadata.create_all)

    @classmethod
    def from_url(
        cls, url: str, *, table_name: str = DEFAULT_TABLE, **options: Any
    ) -> SQLAlchemyAPIKeyStore:
        """A store over a new :class:`fastapi_secure.db.Database` for ``url``
        (``sqlite+aiosqlite://...``, ``postgresql://...``), closed by :meth:`aclose`.

        ``options`` go to ``Database`` (pool sizes, timeouts).
        """
        from fastapi_secure.db import Database

        return cls(Database(url, **options), table_name=table_name, owns_engine=True)

    async def aclose(self) -> None:
        """Dispose of the engine if this store made it (:meth:`from_url`)."""
        if self._owns_engine:
            await self._engine.dispose()

    @staticmethod
    def _row(key: StoredAPIKey) -> dict[str, Any]:
        record = key.record
        return {
            "id": record.id,
            "subject": record.subject,
            "name": record.name,
            "scopes": " ".join(sorted(record.scopes)),
            "roles": json.dumps(list(record.roles)),
            "created_at": record.created_at,
            "expires_at": record.expires_at,
            "last_used_at": record.last_used_at,
            "revoked": record.revoked,
            "rotated_to": record.rotated_to,
            "secret_digest": key.secret_digest,
        }

    @staticmethod
    def _stored(row: Any) -> StoredAPIKey:
        record = APIKey(
            id=row.id,
            subject=row.subject,
            name=row.name,
            scopes=frozenset(row.scopes.split()),
            roles=tuple(json.loads(row.roles)),
            created_at=row.created_at,
            expires_at=row.expires_at,
            last_used_at=row.last_used_at,
            revoked=bool(row.revoked),
            rotated_to=row.rotated_to,
        )
        return StoredAPIKey(record=record, secret_digest=row.secret_digest)

    async def add(self, key: StoredAPIKey) -> bool:
        try:
            async with self._engine.begin() as connection:
                await connection.execute(self.table.insert().values(**self._row(key)))
        except self._sa.exc.IntegrityError:
            return False
        return True

    async def get(self, key_id: str) -> StoredAPIKey | None:
        async with self._engine.connect() as connection:
            result = await connection.execute(self.table.select().where(self.table.c.id == key_id))
            row = result.first()
        return None if row is None else self._stored(row)

    async def list_for(self, subject: str) -> list[StoredAPIKey]:
        table = self.table
        async with self._engine.connect() as connection:
            result = await connection.execute(
                table.select()
                .where(table.c.subject == subject)
                .order_by(table.c.created_at, table.c.id)
            )
            rows = result.all()
        return [self._stored(row) for row in rows]

    async def revoke(self, key_id: str, subject: str) -> bool:
        table = self.table
        async with self._engine.begin() as connection:
            result = await connection.execute(
                table.update()
                .where(table.c.id == key_id, table.c.subject == subject)
                .values(revoked=True)
            )
        return bool(result.rowcount)

    async def rotate(
        self, key_id: str, subject: str, successor: StoredAPIKey, *, retire_at: float, now: float
    ) -> bool:
        sa, table = self._sa, self.table
        expires = table.c.expires_at
        try:
            async with self._engine.begin() as connection:
                result = await connection.execute(
                    table.update()
                    .where(
                        table.c.id == key_id,
                        table.c.subject == subject,
                        table.c.revoked.is_(False),
                        table.c.rotated_to.is_(None),
                        sa.or_(expires.is_(None), expires > now),
                    )
                    .values(
                        rotated_to=successor.id,
                        expires_at=sa.case(
                            (sa.and_(expires.is_not(None), expires < retire_at), expires),
                            else_=sa.literal(retire_at, sa.Double),
                        ),
                    )
                )
                if not result.rowcount:
                    return False
                await connection.execute(table.insert().values(**self._row(successor)))
        except sa.exc.IntegrityError:
            # The successor's id was taken: the whole transaction rolled back.
            return False
        return True

    async def touch(self, key_id: str, *, now: float, min_interval: float) -> bool:
        sa, table = self._sa, self.table
        used = table.c.last_used_at
        async with self._engine.begin() as connection:
            result = await connection.execute(
                table.update()
                .where(table.c.id == key_id, sa.or_(used.is_(None), used <= now - min_interval))
                .values(last_used_at=now)
            )
        return bool(result.rowcount)
