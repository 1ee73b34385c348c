"""Async SQLAlchemy engine and a per-request session dependency.

``Database(url)`` builds one engine and one session factory from a URL:
SQLite through aiosqlite (the embedded default) or PostgreSQL through asyncpg
(the production target). ``Database.session`` is a FastAPI dependency that
yields an :class:`~sqlalchemy.ext.asyncio.AsyncSession`, commits when the
endpoint returns, rolls back when anything is raised, and always closes.

Use it through :meth:`Database.depends`, which asks FastAPI to run the
dependency with ``scope="function"``: the commit then happens *before* the
response is sent, so a failed commit becomes an error response instead of a
``200`` for a write that never happened.

A database that cannot be reached, or a pool with no free connection within
``pool_timeout``, raises :class:`~fastapi_secure.errors.DatabaseUnavailableError`
(503 + ``Retry-After``). Neither that error, the logs nor ``repr(db)`` contain
the database password.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, cast

import anyio
from fastapi import Depends

from fastapi_secure._optional import require
from fastapi_secure.errors import ConfigurationError, DatabaseUnavailableError
from fastapi_secure.http_errors import http_exception

if TYPE_CHECKING:
    from sqlalchemy.engine import URL
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

    from fastapi_secure.settings import SecuritySettings

__all__ = ["Database"]

logger = logging.getLogger("fastapi_secure.db")

_SQLITE_SCHEMES = {"sqlite", "sqlite+aiosqlite"}
_POSTGRES_SCHEMES = {"postgres", "postgresql", "postgresql+asyncpg"}
# SQLSTATE classes that mean "the server cannot serve this now", not "the query is wrong":
# 08 connection exception, 53 insufficient resources (too many connections),
# 57 operator intervention (shutdown, query_canceled by statement_timeout).
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "57")
# Primary SQLite result codes of the same kind: BUSY, LOCKED, IOERR, FULL, CANTOPEN.
_UNAVAILABLE_SQLITE_CODES = frozenset({5, 6, 10, 13, 14})
# Rolling back and closing a session must finish even when the request was cancelled,
# but must not hang a worker forever on a dead connection.
_CLEANUP_TIMEOUT = 5.0


class Database:
    """An async engine, its session factory and a FastAPI session dependency.

    Args:
        url: ``sqlite+aiosqlite:///path.db``, ``sqlite+aiosqlite://`` (in memory) or
            ``postgresql+asyncpg://user:password@host/db``. ``sqlite://``,
            ``postgresql://`` and ``postgres://`` are rewritten to those async drivers.
        pool_size: connections kept open (PostgreSQL and SQLite files).
        max_overflow: extra connections opened under load beyond ``pool_size``.
        pool_pre_ping: test a pooled connection before handing it out, so a database
            restart costs one reconnect instead of one failed request.
        pool_recycle: seconds after which a pooled connection is replaced.
        pool_timeout: seconds to wait for a free pooled connection before answering 503.
        connect_timeout: seconds to wait for a new connection (PostgreSQL), or for a
            locked SQLite database to become free.
        statement_timeout: PostgreSQL only: seconds after which the server cancels a
            statement (``statement_timeout``); the request then gets 503.
        retry_after: seconds sent in ``Retry-After`` with a 503.
        echo: log every SQL statement (never the URL or its password).
        engine_options: extra keyword arguments for ``create_async_engine``; they
            override the ones above (``connect_args`` is merged).
    """

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 5,
        max_overflow: int = 10,
        pool_pre_ping: bool = True,
        pool_recycle: float = 1800.0,
        pool_timeout: float = 10.0,
        connect_timeout: float = 5.0,
        statement_timeout: float | None = None,
        retry_after: int = 5,
        echo: bool = False,
        engine_options: Mapping[str, Any] | None = None,
    ) -> None:
        if pool_size < 1:
            raise ConfigurationError("pool_size must be at least 1")
        if max_overflow < 0:
            raise ConfigurationError("max_overflow must not be negative")
        if pool_timeout <= 0 or connect_timeout <= 0:
            raise ConfigurationError("pool_timeout and connect_timeout must be positive")
        if statement_timeout is not None and statement_timeout <= 0:
            raise ConfigurationError("statement_timeout must be positive or None")
        if retry_after < 0:
            raise ConfigurationError("retry_after must not be negative")

        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if scheme in _SQLITE_SCHEMES:
            extra, driver = "sqlalchemy", "aiosqlite"
        elif scheme in _POSTGRES_SCHEMES:
            extra, driver = "postgres", "asyncpg"
        else:
            # The URL itself is left out of the message: it may carry a password.
            raise ConfigurationError(
                f"unsupported database URL scheme {scheme!r}: use sqlite+aiosqlite:// "
                "or postgresql+asyncpg:// (sqlite://, postgresql:// and postgres:// "
                "are rewritten to those)"
            )
        feature = "fastapi_secure.Database"
        sa = require("sqlalchemy", extra=extra, feature=feature)
        sa_asyncio = require("sqlalchemy.ext.asyncio", extra=extra, feature=feature)
        require(driver, extra=extra, feature=feature)
        self._sa_exc = sa.exc
        self._select_one = sa.text("SELECT 1")
        self._retry_after = retry_after

        try:
            parsed: URL = sa.engine.make_url(url)
        except (sa.exc.ArgumentError, ValueError):
            # Not chained: the parser's message may quote parts of the URL.
            raise ConfigurationError("the database URL could not be parsed") from None

        options: dict[str, Any] = {
            "echo": echo,
            "pool_pre_ping": pool_pre_ping,
            "pool_timeout": pool_timeout,
        }
        connect_args: dict[str, Any] = {}
        if driver == "aiosqlite":
            if statement_timeout is not None:
                raise ConfigurationError("statement_timeout is supported on PostgreSQL only")
            parsed = parsed.set(drivername="sqlite+aiosqlite")
            in_memory = parsed.database in (None, "", ":memory:") or (
                parsed.query.get("mode") == "memory"
            )
            # sqlite3's timeout is how long a connection waits for another one's lock.
            connect_args["timeout"] = connect_timeout
            options["poolclass"] = sa.pool.AsyncAdaptedQueuePool
            if in_memory:
                # An in-memory database lives in exactly one connection. Handing that one
                # connection to one session at a time keeps transactions isolated (sharing
                # it, as StaticPool does, would interleave them); it is never recycled,
                # which would lose the data.
                options.update(pool_size=1, max_overflow=0, pool_recycle=-1)
            else:
                options.update(
                    pool_size=pool_size, max_overflow=max_overflow, pool_recycle=pool_recycle
                )
        else:
            parsed = parsed.set(drivername="postgresql+asyncpg")
            query_password = parsed.query.get("password")
            if query_password is not None:
                # Out of the URL, which SQLAlchemy prints with its query (reprs, logs);
                # only the user:password@ part is masked there.
                parsed = parsed.difference_update_query(["password"])
                connect_args["password"] = (
                    query_password if isinstance(query_password, str) else query_password[-1]
                )
            sslmode = parsed.query.get("sslmode")
            if isinstance(sslmode, str):
                # libpq spells it sslmode, asyncpg spells it ssl (same values).
                parsed = parsed.difference_update_query(["sslmode"]).update_query_dict(
                    {"ssl": sslmode}
                )
            connect_args["timeout"] = connect_timeout
            if statement_timeout is not None:
                connect_args["server_settings"] = {
                    "statement_timeout": str(max(1, round(statement_timeout * 1000)))
                }
            options.update(
                pool_size=pool_size, max_overflow=max_overflow, pool_recycle=pool_recycle
            )

        for key, value in (engine_options or {}).items():
            if key == "connect_args":
                connect_args.update(value)
            else:
                options[key] = value
        options["connect_args"] = connect_args

        self._safe_url: str = parsed.render_as_string(hide_password=True)
        self._engine: AsyncEngine = sa_asyncio.create_async_engine(parsed, **options)
        self._sessionmaker: async_sessionmaker[AsyncSession] = sa_asyncio.async_sessionmaker(
            self._engine, expire_on_commit=False
        )
        sync_engine = self._engine.sync_engine
        sa.event.listen(sync_engine, "do_connect", self._on_do_connect)
        sa.event.listen(sync_engine, "handle_error", self._on_handle_error)
        if driver == "aiosqlite":
            sa.event.listen(
                sync_engine, "connect", _sqlite_pragmas_wal if not in_memory else _sqlite_pragmas
            )

    @classmethod
    def from_settings(cls, settings: SecuritySettings, **options: Any) -> Database:
        """A database at ``settings.database_url``; ``options`` add the other arguments.

        Settings without a ``database_url`` are a :class:`ConfigurationError`.
        """
        if settings.database_url is None:
            raise ConfigurationError("settings.database_url is not set")
        return cls(settings.database_url.get_secret_value(), **options)

    def __repr__(self) -> str:
        return f"Database({self._safe_url!r})"

    @property
    def engine(self) -> AsyncEngine:
        """The :class:`~sqlalchemy.ext.asyncio.AsyncEngine` (for metadata, migrations)."""
        return self._engine

    @property
    def sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        """The session factory (``expire_on_commit=False``); prefer :meth:`transaction`."""
        return self._sessionmaker

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        name: str = self._engine.dialect.name
        return name

    def depends(self) -> Any:
        """``Depends(db.session, scope="function")``: commit before the response is sent.

        Use it in an ``Annotated`` alias::

            SessionDep = Annotated[AsyncSession, db.depends()]
        """
        return Depends(self.session, scope="function")

    async def session(self) -> AsyncIterator[AsyncSession]:
        """FastAPI dependency: a session committed on success, rolled back on any error.

        Declare it with :meth:`depends` (``scope="function"``). With FastAPI's
        default scope the commit runs after the response has been sent, so a
        failed commit could no longer change a ``200`` into an error.
        """
        async with self.transaction() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """``async with db.transaction() as session``: one unit of work outside a request.

        Commits when the block ends normally; rolls back and re-raises on any
        exception; always closes the session. A database that cannot be reached
        raises :class:`DatabaseUnavailableError`.
        """
        session = self._sessionmaker()
        try:
            yield session
            await session.commit()
        except BaseException as exc:
            await self._close(session, rollback=True)
            unavailable = self._as_unavailable(exc)
            if unavailable is None or unavailable is exc:
                raise
            raise unavailable from exc
        await self._close(session, rollback=False)

    async def check(self) -> None:
        """Open a connection and run ``SELECT 1``; raise :class:`DatabaseUnavailableError` if not.

        Meant for application startup; see also :meth:`is_available` and :meth:`lifespan`.
        """
        try:
            async with self._engine.connect() as connection:
                await connection.execute(self._select_one)
        except Exception as exc:
            unavailable = self._as_unavailable(exc) or self._unavailable(exc)
            if unavailable is exc:
                raise
            raise unavailable from exc

    async def is_available(self) -> bool:
        """:meth:`check` as a bool, for health endpoints."""
        try:
            await self.check()
        except DatabaseUnavailableError:
            return False
        return True

    async def dispose(self) -> None:
        """Close every pooled connection; call it when the application shuts down."""
        await self._engine.dispose()

    def lifespan(self, app: object) -> AbstractAsyncContextManager[None]:
        """A FastAPI ``lifespan``: :meth:`check` at startup, :meth:`dispose` at shutdown.

        ``FastAPI(lifespan=db.lifespan)``, or ``async with db.lifespan(app):``
        inside an application's own lifespan.
        """
        return self._lifespan()

    @asynccontextmanager
    async def _lifespan(self) -> AsyncIterator[None]:
        await self.check()
        try:
            yield
        finally:
            await self.dispose()

    async def _close(self, session: AsyncSession, *, rollback: bool) -> None:
        with anyio.move_on_after(_CLEANUP_TIMEOUT, shield=True):
            try:
                if rollback:
                    await session.rollback()
            except Exception as exc:
                # The original error is what matters; a dead connection also fails to roll back.
                logger.debug("rollback failed: %s", type(exc).__name__)
            try:
                await session.close()
            except Exception as exc:
                logger.debug("session close failed: %s", type(exc).__name__)

    def _unavailable(self, exc: BaseException) -> DatabaseUnavailableError:
        reason = type(exc).__name__
        logger.warning("database %s unavailable: %s", self._safe_url, reason)
        # The HTTP twin: a 503 from a dependency, still a DatabaseUnavailableError.
        error = DatabaseUnavailableError(retry_after=self._retry_after, reason=reason)
        return cast(DatabaseUnavailableError, http_exception(error))

    def _as_unavailable(self, exc: BaseException) -> DatabaseUnavailableError | None:
        """The 503 that ``exc`` stands for, or None when it is not an availability problem."""
        if isinstance(exc, DatabaseUnavailableError):
            return exc
        if isinstance(exc, self._sa_exc.TimeoutError):
            return self._unavailable(exc)
        if not isinstance(exc, self._sa_exc.DBAPIError):
            return None
        if exc.connection_invalidated or isinstance(exc, self._sa_exc.InterfaceError):
            return self._unavailable(exc)
        sqlstate = getattr(exc.orig, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(_UNAVAILABLE_SQLSTATE_CLASSES):
            return self._unavailable(exc)
        sqlite_code = getattr(exc.orig, "sqlite_errorcode", None)
        if isinstance(sqlite_code, int) and sqlite_code & 0xFF in _UNAVAILABLE_SQLITE_CODES:
            return self._unavailable(exc)
        return None

    def _on_do_connect(self, dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        # A refused or timed-out connect surfaces from asyncpg as a bare OSError or
        # TimeoutError, which SQLAlchemy does not wrap; name it for what it is here,
        # where its origin is certain.
        try:
            return dialect.connect(*cargs, **cparams)
        except (OSError, TimeoutError, asyncio.TimeoutError) as exc:
            raise self._unavailable(exc) from exc

    def _on_handle_error(self, context: Any) -> DatabaseUnavailableError | None:
        # No connection yet: the failure happened while connecting (unknown database,
        # refused login, too many clients), so the database is unavailable to us.
        # A failed pre-ping is left alone: the pool recovers from it by reconnecting.
        if context.connection is None and not context.is_pre_ping:
            return self._unavailable(context.original_exception)
        return None


def _sqlite_pragmas(dbapi_connection: Any, record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _sqlite_pragmas_wal(dbapi_connection: Any, record: Any) -> None:
    _sqlite_pragmas(dbapi_connection, record)
    cursor = dbapi_connection.cursor()
    try:
        # WAL lets readers proceed while one writer commits; it persists in the file.
        cursor.execute("PRAGMA journal_mode=WAL")
    finally:
        cursor.close()
