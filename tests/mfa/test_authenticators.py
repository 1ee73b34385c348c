"""The AuthenticatorStore contract over memory, SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fastapi_secure.accounts.sqlalchemy import SQLAlchemyUserStore
from fastapi_secure.errors import ConfigurationError, ConflictError
from fastapi_secure.mfa import PasskeyCredential, RecoveryCodes, TOTPAuthenticator
from fastapi_secure.mfa.authenticators import (
    AuthenticatorStore,
    MemoryAuthenticatorStore,
    PasskeyExistsError,
)
from fastapi_secure.mfa.sqlalchemy import SQLAlchemyAuthenticatorStore, SQLAlchemyTOTPMixin
from tests.conftest import fresh_postgres_database
from tests.support.accounts import AppUser, sql_database
from tests.support.mfa_models import AppPasskey, AppRecoveryCode, authenticator_store

pytestmark = pytest.mark.anyio


@dataclasses.dataclass
class World:
    store: AuthenticatorStore
    alice: str
    bob: str


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    if request.param == "memory":
        yield World(MemoryAuthenticatorStore(), "alice", "bob")
        return

    async def on(url: str) -> AsyncIterator[World]:
        async with sql_database(url) as db:
            users = SQLAlchemyUserStore(AppUser, db.transaction)
            alice = await users.create(email="alice@x.io", password_hash="h")
            bob = await users.create(email="bob@x.io", password_hash="h")
            yield World(authenticator_store(db.transaction), alice.id, bob.id)

    if request.param == "sqlite":
        async for made in on(f"sqlite+aiosqlite:///{tmp_path / 'mfa.db'}"):
            yield made
        return
    async with fresh_postgres_database() as url:
        async for made in on(url):
            yield made


def _totp(user_id: str, secret: str = "ciphertext-1") -> TOTPAuthenticator:
    return TOTPAuthenticator(user_id=user_id, encrypted_secret=secret, created_at=1000.0)


def _passkey(user_id: str, cid: bytes = b"cred-1", count: int = 0) -> PasskeyCredential:
    return PasskeyCredential(
        id=cid,
        user_id=user_id,
        user_handle=b"h" * 32,
        public_key=b"cose-key",
        sign_count=count,
        transports=("internal", "hybrid"),
        created_at=1000.0,
        name="laptop",
    )


async def test_totp_pending_then_confirmed_then_deleted(world: World) -> None:
    store = world.store
    assert await store.get_totp(world.alice) is None
    pending = _totp(world.alice)
    await store.save_totp(pending)
    assert await store.get_totp(world.alice) == pending
    assert await store.get_totp(world.bob) is None
    confirmed = dataclasses.replace(pending, confirmed_at=1010.0, last_used_at=1010.0)
    assert await store.confirm_totp(confirmed)
    assert await store.get_totp(world.alice) == confirmed
    assert await store.delete_totp(world.alice)
    assert not await store.delete_totp(world.alice)
    assert await store.get_totp(world.alice) is None


async def test_a_confirmation_of_a_replaced_enrolment_is_refused(world: World) -> None:
    first = _totp(world.alice, "first")
    await world.store.save_totp(first)
    await world.store.save_totp(_totp(world.alice, "second"))
    assert not await world.store.confirm_totp(dataclasses.replace(first, confirmed_at=1.0))
    stored = await world.store.get_totp(world.alice)
    assert stored is not None
    assert not stored.confirmed
    await world.store.delete_totp(world.alice)
    assert not await world.store.confirm_totp(dataclasses.replace(first, confirmed_at=1.0))


async def test_recovery_codes_replace_consume_once_per_account(world: World) -> None:
    store = world.store
    await store.replace(world.alice, ["a" * 64, "b" * 64])
    await store.replace(world.bob, ["a" * 64])
    assert await store.remaining(world.alice) == 2
    assert not await store.consume(world.alice, "c" * 64)
    assert await store.consume(world.alice, "a" * 64)
    assert not await store.consume(world.alice, "a" * 64)
    assert await store.remaining(world.alice) == 1
    assert await store.remaining(world.bob) == 1  # bob's equal digest is his own
    await store.replace(world.alice, ["d" * 64])
    assert not await store.consume(world.alice, "b" * 64)  # the old set is void
    assert await store.remaining(world.alice) == 1


async def test_concurrent_consumes_of_one_code_have_one_winner(world: World) -> None:
    await world.store.replace(world.alice, ["e" * 64])
    wins: list[bool] = []

    async def use() -> None:
        wins.append(await world.store.consume(world.alice, "e" * 64))

    async with anyio.create_task_group() as group:
        for _ in range(12):
            group.start_soon(use)
    assert wins.count(True) == 1


async def test_recovery_codes_block_on_the_store(world: World) -> None:
    codes = RecoveryCodes(world.store)
    shown = await codes.generate(world.alice)
    assert await codes.remaining(world.alice) == 10
    assert await codes.verify(world.alice, shown[0]) == 9
    with pytest.raises(Exception, match="invalid code"):
        await codes.verify(world.bob, shown[1])
    with pytest.raises(Exception, match="invalid code"):
        await codes.verify(world.alice, shown[0])


async def test_passkeys_add_list_use_delete(world: World) -> None:
    store = world.store
    key = _passkey(world.alice)
    await store.add_passkey(key)
    with pytest.raises(PasskeyExistsError):
        await store.add_passkey(_passkey(world.bob))  # the same credential id, anyone
    other = dataclasses.replace(_passkey(world.alice, b"cred-2"), created_at=2000.0)
    await store.add_passkey(other)
    assert [p.id for p in await store.list_passkeys(world.alice)] == [b"cred-1", b"cred-2"]
    assert await store.list_passkeys(world.bob) == []
    assert await store.get_passkey(b"cred-1") == key
    assert await store.get_passkey(b"nope") is None
    assert await store.get_passkey(b"x" * 5000) is None
    used = dataclasses.replace(key, sign_count=5, last_used_at=3000.0)
    assert await store.record_passkey_use(used)
    assert not await store.record_passkey_use(used)  # the same count again: a clone
    assert not await store.record_passkey_use(dataclasses.replace(key, sign_count=4))
    stored = await store.get_passkey(b"cred-1")
    assert stored is not None
    assert (stored.sign_count, stored.last_used_at) == (5, 3000.0)
    assert not await store.delete_passkey(world.bob, b"cred-1")  # not bob's
    assert await store.delete_passkey(world.alice, b"cred-1")
    assert not await store.delete_passkey(world.alice, b"cred-1")


async def test_a_counterless_passkey_stays_at_zero(world: World) -> None:
    await world.store.add_passkey(_passkey(world.alice))
    assert await world.store.record_passkey_use(_passkey(world.alice))
    assert await world.store.record_passkey_use(_passkey(world.alice))


async def test_concurrent_uses_presenting_one_count_have_one_winner(world: World) -> None:
    await world.store.add_passkey(_passkey(world.alice, count=1))
    wins: list[bool] = []

    async def use() -> None:
        wins.append(await world.store.record_passkey_use(_passkey(world.alice, count=2)))

    async with anyio.create_task_group() as group:
        for _ in range(8):
            group.start_soon(use)
    assert wins.count(True) == 1


@pytest.mark.parametrize("bad", ["", "abc", "-1", "9" * 30, "1\x00", "🙂"])
async def test_malformed_user_ids_are_no_account(world: World, bad: str) -> None:
    store = world.store
    assert await store.get_totp(bad) is None
    assert not await store.delete_totp(bad)
    assert not await store.consume(bad, "a" * 64)
    assert await store.remaining(bad) == 0
    assert await store.list_passkeys(bad) == []
    assert not await store.delete_passkey(bad, b"cred-1")
    assert await store.rename_passkey(bad, b"cred-1", "x") is None
    assert not await store.record_totp_use(dataclasses.replace(_totp(bad), last_used_at=1.0))


async def test_totp_use_is_recorded_only_on_the_confirmed_authenticator(world: World) -> None:
    store = world.store
    pending = _totp(world.alice)
    used = dataclasses.replace(pending, confirmed_at=1100.0, last_used_at=1500.0)
    assert not await store.record_totp_use(used)  # nothing stored yet
    await store.save_totp(pending)
    assert not await store.record_totp_use(used)  # still pending
    assert await store.confirm_totp(dataclasses.replace(used, last_used_at=1100.0))
    assert await store.record_totp_use(used)
    stored = await store.get_totp(world.alice)
    assert stored is not None
    assert stored.last_used_at == 1500.0
    # A use that raced a new enrolment or a removal writes nothing, resurrects nothing.
    await store.save_totp(_totp(world.alice, "ciphertext-2"))
    assert not await store.record_totp_use(dataclasses.replace(used, last_used_at=1600.0))
    assert await store.delete_totp(world.alice)
    assert not await store.record_totp_use(dataclasses.replace(used, last_used_at=1700.0))
    assert await store.get_totp(world.alice) is None
    assert not await store.record_totp_use(dataclasses.replace(used, user_id=world.bob))


async def test_a_passkey_is_renamed_only_by_its_account(world: World) -> None:
    store = world.store
    await store.add_passkey(_passkey(world.alice))
    assert await store.rename_passkey(world.bob, b"cred-1", "mine now") is None
    assert await store.rename_passkey(world.alice, b"cred-2", "nope") is None
    assert await store.rename_passkey(world.alice, b"", "nope") is None
    renamed = await store.rename_passkey(world.alice, b"cred-1", "work laptop")
    assert renamed is not None
    assert (renamed.name, renamed.sign_count, renamed.public_key) == ("work laptop", 0, b"cose-key")
    [listed] = await store.list_passkeys(world.alice)
    assert listed.name == "work laptop"


def test_the_sql_store_refuses_models_without_the_mixins() -> None:
    with pytest.raises(ConfigurationError):
        SQLAlchemyAuthenticatorStore(
            totp=AppUser,  # type: ignore[arg-type]
            recovery_codes=AppRecoveryCode,
            passkeys=AppPasskey,
            sessions=None,  # type: ignore[arg-type]
        )


def test_reprs_show_no_secret() -> None:
    assert "cose" not in repr(_passkey("u"))
    assert "ciphertext" not in repr(_totp("u"))
    assert repr(AppPasskey(name="n")) == "AppPasskey(name='n')"


@pytest.mark.parametrize("bad", ["", "abc", "9" * 30])
async def test_sql_writes_for_malformed_ids_are_configuration_errors(
    tmp_path: Path, bad: str
) -> None:
    async with sql_database(f"sqlite+aiosqlite:///{tmp_path / 'mfa.db'}") as db:
        store = authenticator_store(db.transaction)
        with pytest.raises(ConfigurationError):
            await store.save_totp(_totp(bad))
        with pytest.raises(ConfigurationError):
            await store.replace(bad, ["a" * 64])
        with pytest.raises(ConfigurationError):
            await store.add_passkey(_passkey(bad))
        assert not await store.confirm_totp(_totp(bad))


@pytest.mark.postgres
async def test_writes_for_a_deleted_account_are_409_not_500() -> None:
    async with fresh_postgres_database() as url, sql_database(url) as db:
        store = authenticator_store(db.transaction)
        gone = "424242"  # a well-formed id without a row: a token that outlived its account
        for write in (
            store.save_totp(_totp(gone)),
            store.replace(gone, ["a" * 64]),
            store.add_passkey(_passkey(gone)),
        ):
            with pytest.raises(ConflictError) as refused:
                await write
            assert refused.value.message == "the account no longer exists"


async def test_concurrent_enrolments_leave_one_pending(world: World) -> None:
    outcomes: list[str] = []

    async def enrol(n: int) -> None:
        try:
            await world.store.save_totp(_totp(world.alice, f"secret-{n}"))
            outcomes.append("saved")
        except ConflictError:
            outcomes.append("conflict")

    async with anyio.create_task_group() as group:
        for n in range(6):
            group.start_soon(enrol, n)
    assert "saved" in outcomes
    stored = await world.store.get_totp(world.alice)
    assert stored is not None
    assert stored.encrypted_secret.startswith("secret-")


class Other(DeclarativeBase):
    pass


class NoUser(SQLAlchemyTOTPMixin, Other):
    __tablename__ = "no_user"
    id: Mapped[int] = mapped_column(primary_key=True)


def test_the_sql_store_needs_user_id_columns() -> None:
    with pytest.raises(ConfigurationError, match="user_id"):
        SQLAlchemyAuthenticatorStore(
            totp=NoUser,
            recovery_codes=AppRecoveryCode,
            passkeys=AppPasskey,
            sessions=None,  # type: ignore[arg-type]
        )
    assert repr(NoUser()) == "NoUser(confirmed=False)"
