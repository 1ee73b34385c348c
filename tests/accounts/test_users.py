"""One UserStore contract over memory, SQLite and PostgreSQL."""

from __future__ import annotations

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastapi_secure.accounts.errors import UserExistsError, UserNotFoundError
from fastapi_secure.accounts.users import (
    UserRecord,
    UserStore,
    normalize_login_name,
    plausible_login_name,
)
from fastapi_secure.http_errors import status_of
from fastapi_secure.testing import FakeClock

pytestmark = pytest.mark.anyio


async def _alice(store: UserStore) -> UserRecord:
    return await store.create(email="Alice@Example.io", password_hash="h1", username="Alice")


async def test_create_and_get(user_store: UserStore, fake_clock: FakeClock) -> None:
    user = await _alice(user_store)
    assert user.email == "Alice@Example.io"
    assert user.email_key == "alice@example.io"
    assert user.username == "Alice"
    assert user.is_active
    assert not user.email_verified
    assert user.roles == ()
    assert len(user.security_stamp) == 32
    assert user.created_at == fake_clock()
    assert user.password_changed_at == fake_clock()
    assert await user_store.get(user.id) == user


async def test_lookups_are_normalized(user_store: UserStore) -> None:
    user = await _alice(user_store)
    for name in (
        "alice@example.io",
        " ALICE@EXAMPLE.IO ",
        "\uff41\uff4c\uff49\uff43\uff45@example.io",
    ):
        assert (await user_store.find_by_login(name)) == user, name
        assert (await user_store.find_by_email(name)) == user, name
    for name in ("alice", "ALICE", " Alice ", "\uff41\uff4c\uff49\uff43\uff45"):
        assert (await user_store.find_by_login(name)) == user, name


async def test_unknown_and_malformed_lookups_find_nothing(user_store: UserStore) -> None:
    await _alice(user_store)
    for name in ("bob@example.io", "bob", "", "a\x00b", "x" * 255, "alice\n", "al ice"):
        assert await user_store.find_by_login(name) is None, name
    assert await user_store.find_by_email("alice") is None
    for user_id in ("", "999", "-1", "1.0", "x", "9" * 40, "1\x00", "2147483648", "٣"):
        assert await user_store.get(user_id) is None, user_id


async def test_email_uniqueness_ignores_case_and_width(user_store: UserStore) -> None:
    await _alice(user_store)
    for email in (
        "alice@example.io",
        "ALICE@EXAMPLE.IO",
        " alice@Example.io",
        "\uff41lice@example.io",
    ):
        with pytest.raises(UserExistsError) as caught:
            await user_store.create(email=email, password_hash="h")
        assert status_of(caught.value) == 409


async def test_username_uniqueness_ignores_case(user_store: UserStore) -> None:
    await _alice(user_store)
    with pytest.raises(UserExistsError):
        await user_store.create(email="other@example.io", password_hash="h", username="ALICE")


async def test_users_without_username_coexist(user_store: UserStore) -> None:
    one = await user_store.create(email="one@example.io", password_hash=None)
    two = await user_store.create(email="two@example.io", password_hash=None)
    assert one.id != two.id
    assert one.password_changed_at is None


@pytest.mark.parametrize(
    ("email", "username"),
    [
        ("no-at-sign", None),
        ("", None),
        ("a\x00@x.io", None),
        ("x" * 250 + "@x.io", None),
        ("ok@x.io", "has@at"),
        ("ok@x.io", ""),
        ("ok@x.io", "tab\tname"),
        ("ok@x.io", "   "),
    ],
)
async def test_create_refuses_malformed_names(
    user_store: UserStore, email: str, username: str | None
) -> None:
    with pytest.raises(ValueError, match=r"email|username"):
        await user_store.create(email=email, password_hash="h", username=username)


async def test_create_refuses_empty_roles(user_store: UserStore) -> None:
    with pytest.raises(ValueError, match="roles"):
        await user_store.create(email="r@x.io", password_hash="h", roles=[""])


async def test_concurrent_registrations_of_one_email_leave_one_row(user_store: UserStore) -> None:
    spellings = ["A@x.io", "a@X.io", "A@X.IO", "a@x.io", "\uff21@x.io", " a@x.io"] * 2
    outcomes: list[str] = []

    async def register(email: str) -> None:
        try:
            await user_store.create(email=email, password_hash="h")
        except UserExistsError:
            outcomes.append("exists")
        else:
            outcomes.append("created")

    async with anyio.create_task_group() as group:
        for email in spellings:
            group.start_soon(register, email)
    assert outcomes.count("created") == 1
    assert outcomes.count("exists") == len(spellings) - 1
    found = await user_store.find_by_email("a@x.io")
    assert found is not None


async def test_password_change_rotates_the_stamp(
    user_store: UserStore, fake_clock: FakeClock
) -> None:
    user = await _alice(user_store)
    fake_clock.advance(10)
    changed = await user_store.set_password_hash(user.id, "h2")
    assert changed.password_hash == "h2"
    assert changed.security_stamp != user.security_stamp
    assert changed.password_changed_at == fake_clock()
    assert await user_store.get(user.id) == changed


async def test_rehash_keeps_the_stamp(user_store: UserStore, fake_clock: FakeClock) -> None:
    user = await _alice(user_store)
    fake_clock.advance(10)
    rehashed = await user_store.set_password_hash(user.id, "h1-stronger", rotate_stamp=False)
    assert rehashed.password_hash == "h1-stronger"
    assert rehashed.security_stamp == user.security_stamp
    assert rehashed.password_changed_at == user.password_changed_at


async def test_state_changes(user_store: UserStore) -> None:
    user = await _alice(user_store)
    assert (await user_store.mark_email_verified(user.id)).email_verified
    assert not (await user_store.set_active(user.id, False)).is_active
    assert (await user_store.set_active(user.id, True)).is_active
    assert (await user_store.set_roles(user.id, ["editor", "admin", "editor"])).roles == (
        "admin",
        "editor",
    )
    rotated = await user_store.rotate_security_stamp(user.id)
    assert rotated.security_stamp != user.security_stamp
    final = await user_store.get(user.id)
    assert final is not None
    assert final.email_verified
    assert final.roles == ("admin", "editor")


@pytest.mark.parametrize("user_id", ["999", "", "junk", "9" * 30])
async def test_changes_to_unknown_users_raise(user_store: UserStore, user_id: str) -> None:
    with pytest.raises(UserNotFoundError):
        await user_store.set_password_hash(user_id, "h")
    with pytest.raises(UserNotFoundError):
        await user_store.mark_email_verified(user_id)
    with pytest.raises(UserNotFoundError):
        await user_store.set_roles(user_id, [])


async def test_repr_hides_hash_and_stamp(user_store: UserStore) -> None:
    user = await _alice(user_store)
    assert "h1" not in repr(user)
    assert user.security_stamp not in repr(user)
    assert "h1" not in repr(user_store)


def test_normalization_examples() -> None:
    assert normalize_login_name("  Alice@Example.IO ") == "alice@example.io"
    assert normalize_login_name("STRASSE") == normalize_login_name("straße")
    assert normalize_login_name("\uff42\uff4f\uff42") == "bob"
    assert not plausible_login_name("")
    assert not plausible_login_name("a\x00")
    assert not plausible_login_name("a" * 255)
    assert plausible_login_name("a" * 254)


@given(st.text(max_size=300))
def test_normalization_is_idempotent_and_total(name: str) -> None:
    once = normalize_login_name(name)
    assert normalize_login_name(once) == once
    assert normalize_login_name(name.upper()) == normalize_login_name(name.lower()) or (
        # a few characters have no round trip through upper/lower (e.g. dotless i)
        any(ord(ch) > 127 for ch in name)
    )
