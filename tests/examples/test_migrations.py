"""The reference API's Alembic migrations, on a SQLite file and on real PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import anyio
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from examples.reference_api.migrate import (
    adowngrade_to_base,
    alembic_config,
    amigrate,
    aupgrade_to_head,
    upgrade_to_head,
)
from examples.reference_api.models import Base, Identity, User, UTCDateTime

from fastapi_secure.accounts.errors import UserExistsError
from fastapi_secure.accounts.identities import AccountIdentityLinker
from fastapi_secure.accounts.sqlalchemy import SQLAlchemyIdentityStore, SQLAlchemyUserStore
from fastapi_secure.db import Database
from fastapi_secure.oidc.linking import OIDCIdentity

ROOT = Path(__file__).resolve().parents[2]
APP_TABLES = {"users", "identities", "mfa_totp", "mfa_recovery_codes", "mfa_passkeys"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'reference.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


async def _tables(url: str) -> set[str]:
    db = Database(url)
    try:
        async with db.engine.connect() as connection:
            names: Iterable[str] = await connection.run_sync(
                lambda sync: sa.inspect(sync).get_table_names()
            )
            return set(names)
    finally:
        await db.dispose()


async def _version(url: str) -> list[str]:
    db = Database(url)
    try:
        async with db.engine.connect() as connection:
            rows = await connection.execute(sa.text("SELECT version_num FROM alembic_version"))
            return [str(row[0]) for row in rows]
    finally:
        await db.dispose()


def test_revisions_form_a_single_line() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert script.get_heads() == ["0004"]
    assert [rev.revision for rev in script.walk_revisions()] == ["0004", "0003", "0002", "0001"]


@pytest.mark.anyio
async def test_upgrade_head_creates_the_tables_and_downgrade_base_drops_them(db_url: str) -> None:
    assert await _tables(db_url) == set()
    # The sync entry point is what the run command calls (outside any event loop).
    await anyio.to_thread.run_sync(upgrade_to_head, db_url)
    assert await _tables(db_url) == APP_TABLES | {"alembic_version"}
    assert await _version(db_url) == ["0004"]

    await aupgrade_to_head(db_url)  # a second run changes nothing
    assert await _version(db_url) == ["0004"]

    await adowngrade_to_base(db_url)
    assert await _tables(db_url) == {"alembic_version"}
    assert await _version(db_url) == []


@pytest.mark.anyio
@pytest.mark.filterwarnings(
    # SQLite reflection cannot read expression indexes; the test below checks that one.
    "ignore:Skipped unsupported reflection of expression-based index:sqlalchemy.exc.SAWarning",
    "ignore:autogenerate skipping metadata-specified expression-based index:UserWarning",
)
async def test_models_match_the_migrated_schema(db_url: str) -> None:
    await aupgrade_to_head(db_url)
    db = Database(db_url)
    try:
        async with db.engine.connect() as connection:
            differences = await connection.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
            )
    finally:
        await db.dispose()
    assert differences == []


@pytest.mark.anyio
async def test_migrated_schema_enforces_the_model_rules(db_url: str) -> None:
    await aupgrade_to_head(db_url)
    db = Database(db_url)
    users = SQLAlchemyUserStore(User, db.transaction)
    try:
        alice = await users.create(
            email="Alice@Example.com", username="Alice", password_hash="$argon2id$x"
        )
        assert alice.roles == ()
        assert (await users.set_roles(alice.id, ["admin"])).roles == ("admin",)
        async with db.transaction() as session:
            loaded = await session.get(User, int(alice.id))
            assert loaded is not None
            assert loaded.is_active
            assert not loaded.email_verified
            assert loaded.created_at.utcoffset() == timedelta(0)
            assert "argon2" not in repr(loaded)
        # The unique normalized keys, whatever the spelling.
        for email, username in (
            ("other@example.com", "ALICE"),
            ("alice@EXAMPLE.com", "bob"),
        ):
            with pytest.raises(UserExistsError):
                await users.create(email=email, username=username, password_hash="h")
    finally:
        await db.dispose()


@pytest.mark.anyio
async def test_0002_carries_users_and_roles_over_and_back(db_url: str) -> None:
    await amigrate(db_url, "upgrade", "0001")
    db = Database(db_url)
    try:
        async with db.transaction() as session:
            await session.execute(
                sa.text(
                    "INSERT INTO users (id, email, username, password_hash, is_active, "
                    "created_at, updated_at, password_changed_at) VALUES (7, 'carol@example.com', "
                    "'Carol', 'h', true, :now, :now, :now)"
                ).bindparams(sa.bindparam("now", type_=UTCDateTime())),
                {"now": datetime(2026, 11, 25, 10, tzinfo=timezone.utc)},
            )
            await session.execute(sa.text("INSERT INTO roles (id, name) VALUES (1, 'admin')"))
            await session.execute(
                sa.text("INSERT INTO user_roles VALUES (7, 1, '2026-11-25 10:00:00+00:00')")
            )
        await aupgrade_to_head(db_url)
        carol = await SQLAlchemyUserStore(User, db.transaction).find_by_login("carol")
        assert carol is not None
        assert (carol.id, carol.roles, carol.email_verified) == ("7", ("admin",), True)

        await amigrate(db_url, "downgrade", "0001")
        async with db.transaction() as session:
            held = await session.execute(
                sa.text(
                    "SELECT users.username, roles.name FROM users JOIN user_roles "
                    "ON user_roles.user_id = users.id JOIN roles ON roles.id = user_roles.role_id"
                )
            )
            assert [tuple(row) for row in held] == [("Carol", "admin")]
    finally:
        await db.dispose()


def test_alembic_command_line_uses_database_url(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    env = {**os.environ, "DATABASE_URL": url}
    ini = str(ROOT / "examples" / "reference_api" / "alembic.ini")
    for args in (["upgrade", "head"], ["current"]):
        result = subprocess.run(
            [sys.executable, "-m", "alembic", "-c", ini, *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
    assert "0004 (head)" in result.stdout
    assert (tmp_path / "cli.db").exists()


@pytest.mark.anyio
async def test_0004_keeps_one_link_per_identity_and_goes_back(db_url: str) -> None:
    await aupgrade_to_head(db_url)
    db = Database(db_url)
    try:
        users = SQLAlchemyUserStore(User, db.transaction)
        linker = AccountIdentityLinker(users, SQLAlchemyIdentityStore(Identity, db.transaction))
        alice, first = await linker.sign_in(
            OIDCIdentity(
                provider="idp",
                issuer="https://idp.example",
                subject="s",
                email="a@x.io",
                email_verified=True,
            )
        )
        other = await users.create(email="o@x.io", password_hash="h")
        same = OIDCIdentity(provider="renamed", issuer="https://idp.example", subject="s")
        assert (await linker.link(other.id, same)).id == first.linked.id
        async with db.transaction() as session:
            await session.execute(
                sa.text("DELETE FROM users WHERE id = :id"), {"id": int(alice.id)}
            )
        assert await linker.find("https://idp.example", "s") is None  # removed with its user
        await amigrate(db_url, "downgrade", "0003")
        tables = await _tables(db_url)
        assert "identities" not in tables
        assert "mfa_totp" in tables  # 0003's tables stay
    finally:
        await db.dispose()
