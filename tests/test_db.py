"""Database: engine from a URL, the per-request session dependency, 503 when the database is lost.

Behavioural tests run on a SQLite file and on the real PostgreSQL server. Endpoints
declare the session as a default (``session: AsyncSession = session_dep``): with
postponed annotations FastAPI cannot see an ``Annotated`` alias local to a test.
"""

from __future__ import annotations

import logging

# --- PasswordPolicy: NFKC of attacker-sized input on the event loop ---------------------
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import anyio
import anyio.lowlevel
import httpx
import pytest
import sqlalchemy as sa
from fastapi import Depends, FastAPI, HTTPException
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fastapi_secure.db import Database
from fastapi_secure.errors import (
    ConfigurationError,
    DatabaseUnavailableError,
    ErrorCode,
    MissingDependencyError,
)

FAKE_PASSWORD = "hunter2-not-a-real-secret"
CLOSED_PORT_URL = f"postgresql://app:{FAKE_PASSWORD}@127.0.0.1:1/app"


class Base(DeclarativeBase):
    pass


class Parent(Base):
    __tablename__ = "parents"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(50), unique=True)


class Child(Base):
    __tablename__ = "children"

    id: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int] = mapped_column(sa.ForeignKey("parents.id"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


async def _create_tables(db: Database) -> None:
    async with db.engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url, pool_timeout=5.0)
    await _create_tables(database)
    yield database
    await database.dispose()


async def _names(db: Database) -> list[str]:
    async with db.transaction() as session:
        return list((await session.scalars(sa.select(Parent.name).order_by(Parent.name))).all())


def _client(app: FastAPI, *, raise_app_exceptions: bool = True) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def _writes_app(db: Database) -> FastAPI:
    app = FastAPI()
    session_dep = db.depends()

    @app.post("/parents/{name}")
    async def create(name: str, session: AsyncSession = session_dep) -> dict[str, str]:
        session.add(Parent(name=name))
        await session.flush()
        if name.startswith("http-error"):
            raise HTTPException(status_code=409, detail="refused after the write")
        if name.startswith("crash"):
            raise RuntimeError("bug after the write")
        return {"name": name}

    @app.get("/parents")
    async def names(session: AsyncSession = session_dep) -> list[str]:
        return list((await session.scalars(sa.select(Parent.name).order_by(Parent.name))).all())

    return app


# --- the session dependency: commit, rollback, close --------------------------------


@pytest.mark.anyio
async def test_session_commits_when_the_endpoint_returns(db: Database) -> None:
    async with _client(_writes_app(db)) as client:
        response = await client.post("/parents/ada")
    assert response.status_code == 200
    assert await _names(db) == ["ada"]


@pytest.mark.anyio
async def test_http_exception_after_a_write_rolls_it_back(db: Database) -> None:
    async with _client(_writes_app(db)) as client:
        response = await client.post("/parents/http-error-1")
    assert response.status_code == 409
    assert await _names(db) == []


@pytest.mark.anyio
async def test_unexpected_error_after_a_write_rolls_it_back(db: Database) -> None:
    async with _client(_writes_app(db), raise_app_exceptions=False) as client:
        response = await client.post("/parents/crash-1")
    assert response.status_code == 500
    assert await _names(db) == []


@pytest.mark.anyio
async def test_a_failed_commit_becomes_an_error_response_not_a_lost_write(db: Database) -> None:
    # The duplicate is only flushed by the commit, after the endpoint returned: with
    # db.depends() (scope="function") the client still learns the write failed.
    app = FastAPI()
    session_dep = db.depends()

    @app.post("/late/{name}")
    async def late(name: str, session: AsyncSession = session_dep) -> dict[str, str]:
        session.add(Parent(name=name))
        return {"name": name}

    async with _client(app, raise_app_exceptions=False) as client:
        assert (await client.post("/late/dup")).status_code == 200
        response = await client.post("/late/dup")
    assert response.status_code == 500
    assert await _names(db) == ["dup"]


@pytest.mark.anyio
async def test_default_dependency_scope_would_report_success_for_a_failed_commit(
    db: Database,
) -> None:
    # Why Database.depends() sets scope="function": with FastAPI's default scope the
    # commit runs after the response was sent, so the failure cannot reach the client.
    app = FastAPI()
    default_scope_dep = Depends(db.session)

    @app.post("/late/{name}")
    async def late(name: str, session: AsyncSession = default_scope_dep) -> str:
        session.add(Parent(name=name))
        return name

    async with _client(app, raise_app_exceptions=False) as client:
        assert (await client.post("/late/dup")).status_code == 200
        response = await client.post("/late/dup")
    assert response.status_code == 200
    assert await _names(db) == ["dup"]


@pytest.mark.anyio
async def test_sub_dependencies_share_the_request_session(db: Database) -> None:
    app = FastAPI()
    session_dep = db.depends()

    async def current_name(session: AsyncSession = session_dep) -> AsyncSession:
        return session

    name_dep = Depends(current_name)

    @app.post("/same")
    async def same(
        from_dependency: AsyncSession = name_dep, session: AsyncSession = session_dep
    ) -> bool:
        return from_dependency is session

    async with _client(app) as client:
        assert (await client.post("/same")).json() is True


@pytest.mark.anyio
async def test_concurrent_requests_do_not_see_each_others_uncommitted_writes(
    db: Database,
) -> None:
    app = FastAPI()
    session_dep = db.depends()
    written = anyio.Event()
    release = anyio.Event()

    @app.post("/slow/{name}")
    async def slow(name: str, session: AsyncSession = session_dep) -> str:
        session.add(Parent(name=name))
        await session.flush()
        written.set()
        await release.wait()
        return name

    app.include_router(_writes_app(db).router)
    seen_during: list[str] = []
    async with _client(app) as client:

        async def writer() -> None:
            assert (await client.post("/slow/pending")).status_code == 200

        with anyio.fail_after(20):
            async with anyio.create_task_group() as group:
                group.start_soon(writer)
                await written.wait()
                seen_during = (await client.get("/parents")).json()
                release.set()
        seen_after = (await client.get("/parents")).json()
    assert seen_during == []
    assert seen_after == ["pending"]


@pytest.mark.anyio
async def test_exhausted_pool_answers_503_quickly(db_url: str) -> None:
    db = Database(db_url, pool_size=1, max_overflow=0, pool_timeout=0.3)
    holding = anyio.Event()
    release = anyio.Event()
    app = FastAPI()
    session_dep = db.depends()

    @app.get("/hold")
    async def hold(session: AsyncSession = session_dep) -> int:
        await session.execute(sa.text("SELECT 1"))
        holding.set()
        await release.wait()
        return 1

    @app.get("/quick")
    async def quick(session: AsyncSession = session_dep) -> int:
        return int((await session.execute(sa.text("SELECT 2"))).scalar_one())

    try:
        async with _client(app) as client:

            async def holder() -> None:
                assert (await client.get("/hold")).status_code == 200

            with anyio.fail_after(10):
                async with anyio.create_task_group() as group:
                    group.start_soon(holder)
                    await holding.wait()
                    refused = await client.get("/quick")
                    release.set()
            assert (await client.get("/quick")).json() == 2
    finally:
        await db.dispose()
    assert refused.status_code == 503
    assert refused.json()["detail"]["code"] == ErrorCode.DATABASE_UNAVAILABLE.value
    assert refused.headers["Retry-After"] == "5"


@pytest.mark.anyio
async def test_transaction_commits_and_rolls_back_outside_requests(db: Database) -> None:
    async with db.transaction() as session:
        session.add(Parent(name="kept"))

    async def write_then_fail() -> None:
        async with db.transaction() as session:
            session.add(Parent(name="dropped"))
            await session.flush()
            raise LookupError

    with pytest.raises(LookupError):
        await write_then_fail()
    assert await _names(db) == ["kept"]


@pytest.mark.anyio
async def test_cancelled_work_is_rolled_back_and_its_connection_returned(db: Database) -> None:
    # A client that disconnects cancels the request; the cleanup must still run.
    with anyio.CancelScope() as scope:
        async with db.transaction() as session:
            session.add(Parent(name="cancelled"))
            await session.flush()
            scope.cancel()
            await anyio.lowlevel.checkpoint()
    assert scope.cancelled_caught
    assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert await _names(db) == []


@pytest.mark.anyio
async def test_objects_stay_readable_after_commit(db: Database) -> None:
    async with db.transaction() as session:
        parent = Parent(name="loaded")
        session.add(parent)
    # expire_on_commit=False: no lazy load (which would fail outside the session).
    assert parent.name == "loaded"
    assert parent.id > 0


@pytest.mark.anyio
async def test_check_and_lifespan_pass_on_a_live_database(db: Database) -> None:
    await db.check()
    assert await db.is_available()
    async with db.lifespan(FastAPI()):
        assert await _names(db) == []


# --- a lost database -------------------------------------------------------------------


def _read_app(db: Database) -> FastAPI:
    app = FastAPI()
    session_dep = db.depends()

    @app.get("/read")
    async def read(session: AsyncSession = session_dep) -> int:
        return int((await session.execute(sa.text("SELECT 1"))).scalar_one())

    return app


@pytest.fixture(params=["closed-port", "missing-sqlite-dir"])
def lost_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "closed-port":
        return CLOSED_PORT_URL
    return f"sqlite+aiosqlite:///{tmp_path / 'no-such-dir' / 'app.db'}"


async def _join_aiosqlite_threads() -> None:
    # After a failed connect aiosqlite stops its worker thread without waiting for it;
    # the thread then reports back to the event loop, which must still be running.
    for thread in threading.enumerate():
        if "_connection_worker_thread" in thread.name:
            await anyio.to_thread.run_sync(thread.join, 5.0)


@pytest.mark.anyio
async def test_lost_database_answers_503_without_the_dsn(
    lost_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    db = Database(lost_url, connect_timeout=2.0)
    caplog.set_level(logging.DEBUG)
    try:
        async with _client(_read_app(db)) as client:
            response = await client.get("/read")
        with pytest.raises(DatabaseUnavailableError) as raised:
            await db.check()
        assert not await db.is_available()
    finally:
        await db.dispose()
        await _join_aiosqlite_threads()
    assert response.status_code == 503
    assert response.json() == {
        "detail": {"code": "database_unavailable", "message": "database temporarily unavailable"}
    }
    assert FAKE_PASSWORD not in response.text
    assert "127.0.0.1" not in response.text
    assert "no-such-dir" not in response.text
    assert raised.value.reason
    assert FAKE_PASSWORD not in str(raised.value)
    assert caplog.records, "the outage should be logged"
    for record in caplog.records:
        assert FAKE_PASSWORD not in record.getMessage()


@pytest.mark.anyio
@pytest.mark.postgres
async def test_database_that_does_not_exist_answers_503(postgres_url: str) -> None:
    missing = postgres_url.rsplit("/", 1)[0] + "/fs_test_missing_database"
    db = Database(missing)
    try:
        async with _client(_read_app(db)) as client:
            response = await client.get("/read")
        assert not await db.is_available()
    finally:
        await db.dispose()
    assert response.status_code == 503
    assert "fs_test_missing_database" not in response.text


@pytest.mark.anyio
async def test_lifespan_refuses_to_start_without_the_database() -> None:
    db = Database(CLOSED_PORT_URL)
    try:
        with pytest.raises(DatabaseUnavailableError):
            async with db.lifespan(FastAPI()):
                pytest.fail("started without a database")
    finally:
        await db.dispose()


@pytest.mark.anyio
@pytest.mark.postgres
async def test_statement_timeout_cancels_a_slow_query_with_503(postgres_url: str) -> None:
    db = Database(postgres_url, statement_timeout=0.05)
    app = FastAPI()
    session_dep = db.depends()

    @app.get("/slow")
    async def slow(session: AsyncSession = session_dep) -> str:
        await session.execute(sa.text("SELECT pg_sleep(2)"))
        return "finished"

    try:
        with anyio.fail_after(10):
            async with _client(app) as client:
                response = await client.get("/slow")
    finally:
        await db.dispose()
    assert response.status_code == 503


@pytest.mark.anyio
@pytest.mark.postgres
async def test_pre_ping_replaces_connections_killed_by_the_server(postgres_url: str) -> None:
    db = Database(postgres_url, pool_size=1, max_overflow=0)
    app = _read_app(db)
    try:
        async with _client(app) as client:
            assert (await client.get("/read")).status_code == 200
            admin = Database(postgres_url, pool_size=1, max_overflow=0)
            try:
                async with admin.engine.connect() as connection:
                    killed = await connection.execute(
                        sa.text(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                        )
                    )
                    assert killed.scalars().all() == [True]
            finally:
                await admin.dispose()
            assert (await client.get("/read")).status_code == 200
    finally:
        await db.dispose()


# --- SQLite specifics ------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("memory", [False, True], ids=["file", "memory"])
async def test_sqlite_enforces_foreign_keys(tmp_path: Path, memory: bool) -> None:
    url = "sqlite+aiosqlite://" if memory else f"sqlite+aiosqlite:///{tmp_path / 'fk.db'}"
    db = Database(url)
    try:
        await _create_tables(db)
        with pytest.raises(sa.exc.IntegrityError):
            async with db.transaction() as session:
                session.add(Child(parent_id=12345))
    finally:
        await db.dispose()


@pytest.mark.anyio
async def test_sqlite_file_uses_wal_and_memory_keeps_its_data(tmp_path: Path) -> None:
    file_db = Database(f"sqlite:///{tmp_path / 'wal.db'}")
    memory_db = Database("sqlite+aiosqlite:///:memory:")
    try:
        async with file_db.transaction() as session:
            mode = (await session.execute(sa.text("PRAGMA journal_mode"))).scalar_one()
        assert mode == "wal"
        # The one in-memory connection survives between sessions, so the data does too.
        await _create_tables(memory_db)
        async with memory_db.transaction() as session:
            session.add(Parent(name="remembered"))
        assert await _names(memory_db) == ["remembered"]
    finally:
        await file_db.dispose()
        await memory_db.dispose()


@pytest.mark.anyio
async def test_sqlite_memory_serialises_sessions_instead_of_sharing_a_transaction() -> None:
    db = Database("sqlite+aiosqlite://", pool_timeout=0.2)
    try:
        await _create_tables(db)
        async with db.transaction() as session:
            session.add(Parent(name="uncommitted"))
            await session.flush()
            # A second session cannot borrow the connection mid-transaction (and see
            # or commit the first one's work): it waits, then gets a clear 503.
            with pytest.raises(DatabaseUnavailableError):
                await _names(db)
            await session.rollback()
        assert await _names(db) == []
    finally:
        await db.dispose()


# --- URLs, configuration, secrets --------------------------------------------------------


def test_repr_masks_the_password() -> None:
    db = Database(CLOSED_PORT_URL)
    assert FAKE_PASSWORD not in repr(db)
    assert repr(db) == "Database('postgresql+asyncpg://app:***@127.0.0.1:1/app')"
    assert FAKE_PASSWORD not in repr(db.engine)


@settings(max_examples=60, deadline=None)
@given(password=st.text(min_size=6, max_size=40))
def test_no_password_survives_into_repr_or_errors(password: str) -> None:
    password = "Zq9" + password  # a prefix no repr contains by chance
    encoded = quote(password, safe="")
    db = Database(f"postgres://user:{encoded}@127.0.0.1:1/app")
    shown = repr(db) + repr(db.engine) + str(db.engine.url)
    assert password not in shown
    assert encoded not in shown
    with pytest.raises(ConfigurationError) as raised:
        Database(f"mysql://user:{encoded}@127.0.0.1:1/app")
    assert encoded not in str(raised.value)


@pytest.mark.parametrize(
    ("url", "drivername"),
    [
        ("postgres://u@127.0.0.1/app", "postgresql+asyncpg"),
        ("postgresql://u@127.0.0.1/app", "postgresql+asyncpg"),
        ("postgresql+asyncpg://u@127.0.0.1/app", "postgresql+asyncpg"),
        ("sqlite:///app.db", "sqlite+aiosqlite"),
        ("sqlite+aiosqlite://", "sqlite+aiosqlite"),
    ],
)
def test_sync_style_urls_are_rewritten_to_the_async_drivers(url: str, drivername: str) -> None:
    assert Database(url).engine.url.drivername == drivername


def test_libpq_sslmode_is_translated_for_asyncpg() -> None:
    db = Database("postgresql://u@127.0.0.1/app?sslmode=require")
    assert dict(db.engine.url.query) == {"ssl": "require"}


@pytest.mark.parametrize(
    "url",
    [
        f"mysql://root:{FAKE_PASSWORD}@127.0.0.1/app",
        f"postgresql+psycopg2://root:{FAKE_PASSWORD}@127.0.0.1/app",
        f"no-scheme-{FAKE_PASSWORD}",
        f"postgresql://root:{FAKE_PASSWORD}@127.0.0.1:not-a-port/app",
        f"postgresql://root:{FAKE_PASSWORD}@[::1/app",
    ],
)
def test_unsupported_urls_are_refused_without_echoing_them(url: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        Database(url)
    assert FAKE_PASSWORD not in str(raised.value)


@pytest.mark.parametrize(
    "options",
    [
        {"pool_size": 0},
        {"max_overflow": -1},
        {"pool_timeout": 0},
        {"connect_timeout": -1.0},
        {"statement_timeout": 0},
        {"retry_after": -1},
    ],
)
def test_unsafe_pool_settings_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        Database("postgresql://u@127.0.0.1/app", **options)  # type: ignore[arg-type]


def test_statement_timeout_is_refused_on_sqlite() -> None:
    with pytest.raises(ConfigurationError, match="PostgreSQL only"):
        Database("sqlite+aiosqlite://", statement_timeout=1.0)


def test_engine_options_override_and_merge_connect_args() -> None:
    db = Database(
        "postgresql://u@127.0.0.1/app",
        pool_size=3,
        engine_options={"pool_size": 7, "connect_args": {"command_timeout": 9}},
    )
    assert db.engine.pool.size() == 7  # type: ignore[attr-defined]
    assert db.dialect == "postgresql"


@pytest.mark.parametrize(
    ("url", "missing", "extra"),
    [
        ("postgresql://u@127.0.0.1/app", "asyncpg", "postgres"),
        ("sqlite+aiosqlite://", "aiosqlite", "sqlalchemy"),
        ("sqlite+aiosqlite://", "sqlalchemy", "sqlalchemy"),
    ],
)
def test_missing_extra_names_the_pip_command(
    url: str, missing: str, extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, missing, None)
    with pytest.raises(MissingDependencyError) as raised:
        Database(url)
    assert f'pip install "fastapi-secure[{extra}]"' in str(raised.value)


def test_importing_the_package_does_not_import_sqlalchemy_or_drivers() -> None:
    code = (
        "import sys, fastapi_secure, fastapi_secure.db\n"
        "loaded = {'sqlalchemy', 'aiosqlite', 'asyncpg'} & set(sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


QUERY_PASSWORD = "Qp-hunter2-not-a-real-secret"


@pytest.mark.anyio
async def test_password_in_the_url_query_never_shows(caplog: pytest.LogCaptureFixture) -> None:
    # libpq style "?password=..." reaches asyncpg, and SQLAlchemy masks only user:pw@.
    db = Database(f"postgresql://app@127.0.0.1:1/app?password={QUERY_PASSWORD}&sslmode=disable")
    caplog.set_level(logging.DEBUG)
    try:
        shown = repr(db) + repr(db.engine) + str(db.engine.url)
        assert QUERY_PASSWORD not in shown
        with pytest.raises(DatabaseUnavailableError) as raised:
            await db.check()
    finally:
        await db.dispose()
    assert caplog.records, "the outage should be logged"
    assert QUERY_PASSWORD not in caplog.text
    assert QUERY_PASSWORD not in str(raised.value) + repr(raised.value)


@pytest.mark.postgres
@pytest.mark.anyio
async def test_password_in_the_url_query_still_reaches_the_driver(postgres_url: str) -> None:
    db = Database(f"{postgres_url}?password={QUERY_PASSWORD}")
    try:
        # The test server trusts every password, so ask asyncpg what it was given.
        async with db.engine.connect() as connection:
            raw = await connection.get_raw_connection()
            given_password = raw.driver_connection._params.password  # type: ignore[union-attr]
    finally:
        await db.dispose()
    assert given_password == QUERY_PASSWORD
