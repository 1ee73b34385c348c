"""One behavioural contract, run on every APIKeyStore: memory, Redis, SQLite, PostgreSQL."""

from __future__ import annotations

import dataclasses

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastapi_secure.apikeys.keys import APIKeyManager
from fastapi_secure.apikeys.stores.base import APIKey, APIKeyStore, StoredAPIKey

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0
DIGEST = "ab" * 32


def key(
    key_id: str = "AAAAAAAAAAAA",
    subject: str = "alice",
    *,
    created_at: float = NOW,
    expires_at: float | None = None,
    digest: str = DIGEST,
    **changes: object,
) -> StoredAPIKey:
    record = APIKey(
        id=key_id,
        subject=subject,
        name="deploy bot",
        scopes=frozenset({"read", "write"}),
        roles=("viewer", "editor"),
        created_at=created_at,
        expires_at=expires_at,
    )
    record = dataclasses.replace(record, **changes)  # type: ignore[arg-type]
    return StoredAPIKey(record=record, secret_digest=digest)


async def test_add_then_get_round_trips_every_field(store: APIKeyStore) -> None:
    stored = key(
        expires_at=NOW + 3600.5,
        name="ünïcode name ✓",
        scopes=frozenset({"a:b", "c"}),
        roles=("z", "a"),
    )
    assert await store.add(stored)
    assert await store.get(stored.id) == stored


async def test_a_taken_id_is_refused_and_the_first_key_kept(store: APIKeyStore) -> None:
    first = key(digest="11" * 32)
    assert await store.add(first)
    assert not await store.add(key(subject="mallory", digest="22" * 32))
    assert await store.get(first.id) == first


async def test_unknown_id_is_none(store: APIKeyStore) -> None:
    assert await store.get("BBBBBBBBBBBB") is None


async def test_list_is_per_subject_and_oldest_first(store: APIKeyStore) -> None:
    newer = key("AAAAAAAAAAA2", created_at=NOW + 10)
    older = key("AAAAAAAAAAA1", created_at=NOW)
    other = key("AAAAAAAAAAA3", subject="bob")
    for stored in (newer, older, other):
        assert await store.add(stored)
    assert await store.list_for("alice") == [older, newer]
    assert await store.list_for("bob") == [other]
    assert await store.list_for("nobody") == []


async def test_revoke_marks_the_key_and_is_seen_by_another_client(
    store_pair: tuple[APIKeyStore, APIKeyStore],
) -> None:
    first, second = store_pair
    assert await first.add(key())
    assert await first.revoke("AAAAAAAAAAAA", "alice")
    seen = await second.get("AAAAAAAAAAAA")
    assert seen is not None
    assert seen.record.revoked
    assert await first.revoke("AAAAAAAAAAAA", "alice")  # idempotent


async def test_revoke_needs_the_owner(store: APIKeyStore) -> None:
    assert await store.add(key())
    assert not await store.revoke("AAAAAAAAAAAA", "mallory")
    assert not await store.revoke("BBBBBBBBBBBB", "alice")
    stored = await store.get("AAAAAAAAAAAA")
    assert stored is not None
    assert not stored.record.revoked


async def test_rotate_retires_the_old_key_and_inserts_the_successor(
    store_pair: tuple[APIKeyStore, APIKeyStore],
) -> None:
    first, second = store_pair
    assert await first.add(key())
    successor = key("CCCCCCCCCCCC", created_at=NOW + 5, digest="cd" * 32)
    assert await first.rotate("AAAAAAAAAAAA", "alice", successor, retire_at=NOW + 3600, now=NOW + 5)
    old = await second.get("AAAAAAAAAAAA")
    assert old is not None
    assert old.record.rotated_to == "CCCCCCCCCCCC"
    assert old.record.expires_at == NOW + 3600
    assert await second.get("CCCCCCCCCCCC") == successor
    assert [k.id for k in await second.list_for("alice")] == ["AAAAAAAAAAAA", "CCCCCCCCCCCC"]


async def test_rotate_keeps_an_earlier_expiry(store: APIKeyStore) -> None:
    assert await store.add(key(expires_at=NOW + 60))
    assert await store.rotate(
        "AAAAAAAAAAAA", "alice", key("CCCCCCCCCCCC"), retire_at=NOW + 3600, now=NOW
    )
    old = await store.get("AAAAAAAAAAAA")
    assert old is not None
    assert old.record.expires_at == NOW + 60


@pytest.mark.parametrize(
    ("existing", "subject", "now"),
    [
        (key(revoked=True), "alice", NOW),
        (key(expires_at=NOW), "alice", NOW),
        (key(rotated_to="DDDDDDDDDDDD"), "alice", NOW),
        (key(), "mallory", NOW),
    ],
    ids=["revoked", "expired", "already-rotated", "not-the-owner"],
)
async def test_rotate_refuses_a_key_that_cannot_be_rotated(
    store: APIKeyStore, existing: StoredAPIKey, subject: str, now: float
) -> None:
    assert await store.add(existing)
    assert not await store.rotate(
        "AAAAAAAAAAAA", subject, key("CCCCCCCCCCCC", subject), retire_at=NOW + 60, now=now
    )
    assert await store.get("AAAAAAAAAAAA") == existing
    assert await store.get("CCCCCCCCCCCC") is None


async def test_rotate_of_an_unknown_key_is_refused(store: APIKeyStore) -> None:
    assert not await store.rotate(
        "AAAAAAAAAAAA", "alice", key("CCCCCCCCCCCC"), retire_at=NOW, now=NOW
    )
    assert await store.get("CCCCCCCCCCCC") is None


async def test_rotate_onto_a_taken_id_changes_nothing(store: APIKeyStore) -> None:
    original = key()
    taken = key("CCCCCCCCCCCC", subject="bob")
    assert await store.add(original)
    assert await store.add(taken)
    assert not await store.rotate(
        "AAAAAAAAAAAA", "alice", key("CCCCCCCCCCCC"), retire_at=NOW + 60, now=NOW
    )
    assert await store.get("AAAAAAAAAAAA") == original
    assert await store.get("CCCCCCCCCCCC") == taken


async def test_concurrent_rotations_give_exactly_one_successor(
    store_pair: tuple[APIKeyStore, APIKeyStore],
) -> None:
    first, second = store_pair
    assert await first.add(key())
    results: list[bool] = []

    async def rotate(index: int) -> None:
        client = first if index % 2 else second
        successor = key(f"S{index:011d}", digest=f"{index:064x}")
        results.append(
            await client.rotate("AAAAAAAAAAAA", "alice", successor, retire_at=NOW + 60, now=NOW)
        )

    async with anyio.create_task_group() as group:
        for index in range(8):
            group.start_soon(rotate, index)
    assert sorted(results) == [False] * 7 + [True]
    assert len(await first.list_for("alice")) == 2


async def test_touch_writes_at_most_once_per_interval(store: APIKeyStore) -> None:
    assert await store.add(key())
    assert await store.touch("AAAAAAAAAAAA", now=NOW, min_interval=60)
    assert not await store.touch("AAAAAAAAAAAA", now=NOW + 59.5, min_interval=60)
    stored = await store.get("AAAAAAAAAAAA")
    assert stored is not None
    assert stored.record.last_used_at == NOW
    assert await store.touch("AAAAAAAAAAAA", now=NOW + 60, min_interval=60)
    stored = await store.get("AAAAAAAAAAAA")
    assert stored is not None
    assert stored.record.last_used_at == NOW + 60


async def test_touch_of_an_unknown_key_writes_nothing(store: APIKeyStore) -> None:
    assert not await store.touch("AAAAAAAAAAAA", now=NOW, min_interval=60)
    assert await store.get("AAAAAAAAAAAA") is None


async def test_concurrent_touches_write_once(
    store_pair: tuple[APIKeyStore, APIKeyStore],
) -> None:
    first, second = store_pair
    assert await first.add(key())
    results: list[bool] = []

    async def touch(index: int) -> None:
        client = first if index % 2 else second
        results.append(await client.touch("AAAAAAAAAAAA", now=NOW + index / 100, min_interval=60))

    async with anyio.create_task_group() as group:
        for index in range(8):
            group.start_soon(touch, index)
    assert sorted(results) == [False] * 7 + [True]


async def test_stored_repr_hides_the_digest(store: APIKeyStore) -> None:
    stored = key(digest="ef" * 32)
    assert await store.add(stored)
    fetched = await store.get(stored.id)
    assert "ef" * 32 not in repr(fetched)
    assert "ef" * 32 not in repr(await store.list_for("alice"))


NAMES = st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=100).filter(
    lambda name: name.isprintable() and name.strip() == name
)
SCOPES = st.lists(
    st.text(
        alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters='"\\'),
        min_size=1,
        max_size=20,
    ),
    max_size=5,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(name=NAMES, scopes=SCOPES, subject=NAMES)
async def test_whatever_a_user_names_a_key_comes_back_unchanged(
    store: APIKeyStore, name: str, scopes: list[str], subject: str
) -> None:
    manager = APIKeyManager(store)
    created = await manager.create(subject, name=name, scopes=scopes)
    # A subject drawn twice already holds keys from earlier examples.
    assert created.record in await manager.list_for(subject)
    assert await manager.verify(created.key) == created.record
