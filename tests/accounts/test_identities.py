"""Identities linked to accounts: the linker over the UserStore, and each IdentityStore."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from fastapi_secure.accounts.identities import (
    AccountIdentityLinker,
    IdentityStore,
    LastWayInError,
    MemoryIdentityStore,
)
from fastapi_secure.accounts.sqlalchemy import (
    SQLAlchemyIdentityMixin,
    SQLAlchemyIdentityStore,
    SQLAlchemyUserStore,
)
from fastapi_secure.accounts.users import MemoryUserStore, UserStore
from fastapi_secure.errors import ConfigurationError, PermissionDeniedError
from fastapi_secure.oidc.errors import OIDCLoginError
from fastapi_secure.oidc.linking import IdentityConflictError, IdentityLinker, OIDCIdentity
from fastapi_secure.testing import FakeClock
from tests.conftest import fresh_postgres_database
from tests.support.accounts import AppIdentity, AppUser, sql_database

pytestmark = pytest.mark.anyio

ISSUER = "https://idp.example"


def identity(
    subject: str = "sub-1",
    email: str | None = "alice@example.test",
    verified: bool = True,
    *,
    issuer: str = ISSUER,
) -> OIDCIdentity:
    return OIDCIdentity(
        provider="idp", issuer=issuer, subject=subject, email=email, email_verified=verified
    )


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def linker(
    request: pytest.FixtureRequest, fake_clock: FakeClock, tmp_path: Path
) -> AsyncIterator[AccountIdentityLinker]:
    """The linker over each backend: users and identities in one database."""
    if request.param == "memory":
        yield AccountIdentityLinker(
            MemoryUserStore(clock=fake_clock), MemoryIdentityStore(clock=fake_clock)
        )
        return
    if request.param == "sqlite":
        async with sql_database(f"sqlite+aiosqlite:///{tmp_path / 'ids.db'}") as db:
            yield AccountIdentityLinker(
                SQLAlchemyUserStore(AppUser, db.transaction, clock=fake_clock),
                SQLAlchemyIdentityStore(AppIdentity, db.transaction, clock=fake_clock),
            )
        return
    async with fresh_postgres_database() as url, sql_database(url) as db:
        yield AccountIdentityLinker(
            SQLAlchemyUserStore(AppUser, db.transaction, clock=fake_clock),
            SQLAlchemyIdentityStore(AppIdentity, db.transaction, clock=fake_clock),
        )


def _users(linker: AccountIdentityLinker) -> UserStore:
    return linker.users


async def test_a_first_sign_in_creates_an_account_without_password(
    linker: AccountIdentityLinker,
) -> None:
    assert isinstance(linker, IdentityLinker)
    assert isinstance(linker.identities, IdentityStore)
    user, result = await linker.sign_in(identity())
    assert result.how == "created"
    assert (user.email, user.email_verified, user.password_hash) == (
        "alice@example.test",
        True,
        None,
    )
    again, second = await linker.sign_in(identity(email="renamed@example.test"))
    assert (again.id, second.how, second.linked.id) == (user.id, "linked", result.linked.id)
    listed = await linker.list_identities(user.id)
    assert [(link.issuer, link.subject, link.provider) for link in listed] == [
        (ISSUER, "sub-1", "idp")
    ]


async def test_the_email_counts_as_verified_only_when_the_provider_vouches(
    linker: AccountIdentityLinker,
) -> None:
    loose = AccountIdentityLinker(linker.users, linker.identities, create_unverified=True)
    user, _ = await loose.sign_in(identity("bob", "bob@example.test", verified=False))
    assert not user.email_verified


async def test_the_same_subject_at_another_issuer_is_another_identity(
    linker: AccountIdentityLinker,
) -> None:
    first, _ = await linker.sign_in(identity("s", "one@example.test"))
    other, result = await linker.sign_in(
        identity("s", "two@example.test", issuer="https://other.example")
    )
    assert result.how == "created"
    assert other.id != first.id


async def _password_account(
    linker: AccountIdentityLinker, *, verified: bool = True, active: bool = True
) -> str:
    user = await _users(linker).create(
        email="Alice@Example.test", password_hash="h", email_verified=verified, is_active=active
    )
    return user.id


async def test_an_email_of_an_account_is_never_linked_unless_the_app_allows_it(
    linker: AccountIdentityLinker,
) -> None:
    await _password_account(linker)
    with pytest.raises(IdentityConflictError) as caught:
        await linker.sign_in(identity())
    assert "sign in with your password" in caught.value.message
    assert await linker.find(ISSUER, "sub-1") is None


async def test_linking_by_email_needs_the_provider_and_the_account_to_vouch(
    linker: AccountIdentityLinker,
) -> None:
    owner = await _password_account(linker)
    loose = AccountIdentityLinker(linker.users, linker.identities, create_unverified=True)
    with pytest.raises(IdentityConflictError):
        await loose.sign_in(identity(verified=False), link_by_email=True)
    with pytest.raises(OIDCLoginError):
        await linker.sign_in(identity(verified=False), link_by_email=True)
    user, result = await linker.sign_in(identity(), link_by_email=True)
    assert (user.id, result.how) == (owner, "email")


async def test_an_account_with_an_unverified_email_is_never_linked(
    linker: AccountIdentityLinker,
) -> None:
    # Account pre-hijacking: someone registered the victim's address first.
    await _password_account(linker, verified=False)
    with pytest.raises(IdentityConflictError):
        await linker.sign_in(identity(), link_by_email=True)


async def test_a_disabled_account_cannot_sign_in(linker: AccountIdentityLinker) -> None:
    await _password_account(linker, active=False)
    with pytest.raises(IdentityConflictError):
        await linker.sign_in(identity(), link_by_email=True)
    user, _ = await linker.sign_in(identity("other", "other@example.test"))
    await _users(linker).set_active(user.id, False)
    with pytest.raises(PermissionDeniedError):
        await linker.sign_in(identity("other", "other@example.test"))


@pytest.mark.parametrize(
    ("email", "subject", "issuer"),
    [
        (None, "s", ISSUER),
        ("", "s", ISSUER),
        ("not-an-address", "s", ISSUER),
        ("x" * 300 + "@example.test", "s", ISSUER),
        ("ok@example.test", "s" * 256, ISSUER),
        ("ok@example.test", "s", "https://" + "i" * 600),
    ],
)
async def test_identities_no_account_can_hold_are_refused(
    linker: AccountIdentityLinker, email: str | None, subject: str, issuer: str
) -> None:
    with pytest.raises(OIDCLoginError):
        await linker.sign_in(identity(subject, email, issuer=issuer))


async def test_the_last_way_in_cannot_be_unlinked(linker: AccountIdentityLinker) -> None:
    user, first = await linker.sign_in(identity("a", "alice@example.test"))
    with pytest.raises(LastWayInError) as caught:
        await linker.unlink(user.id, first.linked.id)
    assert caught.value.message.startswith("this is the only way to sign in")
    second = await linker.link(user.id, identity("b", "alice@example.test", issuer="https://b"))
    assert await linker.unlink(user.id, first.linked.id)
    with pytest.raises(LastWayInError):
        await linker.unlink(user.id, second.id)
    await _users(linker).set_password_hash(user.id, "new-hash")
    assert await linker.unlink(user.id, second.id)
    assert await linker.list_identities(user.id) == []


async def test_unlink_names_only_the_callers_own_identities(
    linker: AccountIdentityLinker,
) -> None:
    alice, linked = await linker.sign_in(identity("a", "alice@example.test"))
    mallory, _ = await linker.sign_in(identity("m", "mallory@example.test"))
    await _users(linker).set_password_hash(mallory.id, "h")
    assert not await linker.unlink(mallory.id, linked.linked.id)
    for bad in ("", "0", "-1", "99999999999999999999", "x" * 300, "\x00"):
        assert not await linker.unlink(alice.id, bad)
        assert not await linker.unlink(bad, linked.linked.id)
        assert await linker.list_identities(bad) == []
    assert len(await linker.list_identities(alice.id)) == 1


async def test_concurrent_first_sign_ins_of_one_identity_make_one_account(
    linker: AccountIdentityLinker,
) -> None:
    outcomes: list[str] = []

    async def sign_in() -> None:
        try:
            user, _ = await linker.sign_in(identity())
        except IdentityConflictError:
            outcomes.append("conflict")
        else:
            outcomes.append(user.id)

    async with anyio.create_task_group() as group:
        for _ in range(12):
            group.start_soon(sign_in)
    accounts = {outcome for outcome in outcomes if outcome != "conflict"}
    assert len(accounts) == 1
    user = await _users(linker).find_by_email("alice@example.test")
    assert user is not None
    assert accounts == {user.id}
    assert len(await linker.list_identities(user.id)) == 1
    # Afterwards every sign-in finds it.
    again, result = await linker.sign_in(identity())
    assert (again.id, result.how) == (user.id, "linked")


async def test_concurrent_unlinks_of_the_last_two_ways_in_leave_one(
    linker: AccountIdentityLinker,
) -> None:
    user, first = await linker.sign_in(identity("a"))
    second = await linker.link(user.id, identity("b", issuer="https://b"))
    outcomes: list[str] = []

    async def unlink(identity_id: str) -> None:
        try:
            removed = await linker.unlink(user.id, identity_id)
        except LastWayInError:
            outcomes.append("refused")
        else:
            outcomes.append("removed" if removed else "missing")

    async with anyio.create_task_group() as group:
        group.start_soon(unlink, first.linked.id)
        group.start_soon(unlink, second.id)
    assert sorted(outcomes) == ["refused", "removed"]
    assert len(await linker.list_identities(user.id)) == 1


async def test_a_concurrent_link_of_a_linked_identity_returns_the_first_link(
    linker: AccountIdentityLinker,
) -> None:
    user, result = await linker.sign_in(identity())
    other = await _users(linker).create(email="o@example.test", password_hash="h")
    kept = await linker.link(other.id, identity())
    assert (kept.id, kept.user_id) == (result.linked.id, user.id)


class _Base(DeclarativeBase):
    pass


class _NoUser(SQLAlchemyIdentityMixin, _Base):
    __tablename__ = "no_user"
    id: Mapped[int] = mapped_column(primary_key=True)


def test_identity_models_are_checked(tmp_path: Path) -> None:
    async def sessions() -> None:  # never opened
        raise AssertionError

    with pytest.raises(ConfigurationError):
        SQLAlchemyIdentityStore(AppUser, sessions)  # type: ignore[type-var,arg-type]
    with pytest.raises(ConfigurationError):
        SQLAlchemyIdentityStore(_NoUser, sessions)  # type: ignore[arg-type]
    table = AppIdentity.__table__
    assert isinstance(table, sa.Table)
    unique = {
        constraint.name: [column.name for column in constraint.columns]
        for constraint in table.constraints
        if isinstance(constraint, sa.UniqueConstraint)
    }
    assert unique == {"uq_app_identities_issuer_subject": ["issuer", "subject"]}
    assert repr(AppIdentity(provider="idp")) == "AppIdentity(provider='idp')"
    assert repr(MemoryIdentityStore()) == "MemoryIdentityStore(links=0)"


async def test_concurrent_first_sign_ins_linking_by_email_make_one_link(
    linker: AccountIdentityLinker,
) -> None:
    owner = await _password_account(linker)
    seen: list[tuple[str, str]] = []

    async def sign_in() -> None:
        user, result = await linker.sign_in(identity(), link_by_email=True)
        seen.append((user.id, result.linked.id))

    async with anyio.create_task_group() as group:
        for _ in range(12):
            group.start_soon(sign_in)
    assert len(seen) == 12
    assert {user for user, _ in seen} == {owner}
    assert len({link for _, link in seen}) == 1
    assert len(await linker.list_identities(owner)) == 1


async def test_accounts_for_unverified_emails_are_refused_by_default(
    linker: AccountIdentityLinker,
) -> None:
    with pytest.raises(OIDCLoginError) as caught:
        await linker.sign_in(identity("bob", "bob@example.test", verified=False))
    assert caught.value.message == "the identity provider has not verified your email address"
    assert await _users(linker).find_by_email("bob@example.test") is None
    user, result = await linker.sign_in(identity())
    assert (result.how, user.email_verified) == ("created", True)
