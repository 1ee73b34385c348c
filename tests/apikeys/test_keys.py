"""APIKeyManager: format, digests, verify, list, revoke, rotate, claims (memory store)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
import secrets
import statistics
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastapi_secure.apikeys.keys import (
    API_KEY_AMR,
    APIKeyManager,
    APIKeyNotFoundError,
    APIKeyParameterError,
    InvalidAPIKeyError,
    is_api_key_claims,
)
from fastapi_secure.apikeys.stores.base import APIKey, StoredAPIKey
from fastapi_secure.apikeys.stores.memory import MemoryAPIKeyStore
from fastapi_secure.errors import ConfigurationError, StoreUnavailableError
from fastapi_secure.testing import FakeClock
from fastapi_secure.tokens.claims import AccessClaims
from fastapi_secure.tokens.issuer import Grant

pytestmark = pytest.mark.anyio

PEPPER = "pepper-for-tests-with-more-than-32-bytes!"
KEY_SHAPE = re.compile(r"fsk_[0-9A-Za-z]{12}_[0-9A-Za-z]{43}")


class CountingStore(MemoryAPIKeyStore):
    """The real memory store, counting the calls the manager makes."""

    def __init__(self) -> None:
        super().__init__()
        self.gets = 0
        self.touches = 0

    async def get(self, key_id: str) -> StoredAPIKey | None:
        self.gets += 1
        return await super().get(key_id)

    async def touch(self, key_id: str, *, now: float, min_interval: float) -> bool:
        self.touches += 1
        return await super().touch(key_id, now=now, min_interval=min_interval)


class CountingManager(APIKeyManager):
    """The real manager, counting digest computations."""

    digests = 0

    def _digest(self, key_id: str, secret: str) -> str:
        self.digests += 1
        return super()._digest(key_id, secret)


@pytest.fixture
def store() -> CountingStore:
    return CountingStore()


@pytest.fixture
def manager(store: CountingStore, fake_clock: FakeClock) -> CountingManager:
    return CountingManager(store, pepper=PEPPER, clock=fake_clock, issuer="https://api.test")


async def refused(manager: APIKeyManager, key: object) -> str:
    with pytest.raises(InvalidAPIKeyError) as caught:
        await manager.verify(key)  # type: ignore[arg-type]
    assert caught.value.message == "invalid API key"
    return caught.value.reason or ""


# --- create and use -------------------------------------------------------------


async def test_create_returns_the_key_once_and_stores_only_a_digest(
    manager: APIKeyManager, store: CountingStore, fake_clock: FakeClock
) -> None:
    created = await manager.create(
        "alice", name="ci", scopes=["read"], roles=["viewer"], expires_in=3600
    )
    assert KEY_SHAPE.fullmatch(created.key)
    record = created.record
    assert (record.subject, record.name, record.scopes, record.roles) == (
        "alice",
        "ci",
        frozenset({"read"}),
        ("viewer",),
    )
    assert (record.created_at, record.expires_at) == (fake_clock(), fake_clock() + 3600)
    assert created.key.startswith(f"fsk_{record.id}_")
    secret = created.key.split("_")[2]
    stored = await store.get(record.id)
    assert stored is not None
    expected = hmac.new(
        PEPPER.encode(),
        b"fastapi-secure/api-key/v1\x00fsk_\x00" + record.id.encode() + b"\x00" + secret.encode(),
        hashlib.sha256,
    ).hexdigest()
    assert stored.secret_digest == expected
    assert secret not in repr(stored)
    assert created.key not in repr(created)
    assert secret not in repr(created)


async def test_a_key_verifies_into_its_record(manager: APIKeyManager) -> None:
    created = await manager.create("alice", name="ci")
    verified = await manager.verify(created.key)
    assert verified.id == created.record.id
    assert verified.subject == "alice"


async def test_keys_are_unique_and_random(manager: APIKeyManager) -> None:
    made = [await manager.create("alice", name=f"k{i}") for i in range(20)]
    assert len({c.key for c in made}) == 20
    assert len({c.record.id for c in made}) == 20


async def test_without_a_pepper_digests_are_plain_sha256(
    store: CountingStore, fake_clock: FakeClock
) -> None:
    manager = APIKeyManager(store, clock=fake_clock)
    created = await manager.create("alice", name="ci")
    key_id, secret = created.key.split("_")[1:]
    stored = await store.get(key_id)
    assert stored is not None
    message = b"fastapi-secure/api-key/v1\x00fsk_\x00" + key_id.encode() + b"\x00" + secret.encode()
    assert stored.secret_digest == hashlib.sha256(message).hexdigest()
    assert (await manager.verify(created.key)).id == key_id


async def test_another_pepper_refuses_every_key(store: CountingStore) -> None:
    created = await APIKeyManager(store, pepper=PEPPER).create("alice", name="ci")
    other = APIKeyManager(store, pepper="another-pepper-of-more-than-32-bytes!!")
    assert await refused(other, created.key) == "wrong API key secret"


async def test_a_digest_written_into_the_store_does_not_mint_a_key(
    manager: APIKeyManager, store: CountingStore
) -> None:
    # Someone who can write the store but does not know the pepper plants a
    # record whose digest is the plain SHA-256 of a secret of their choosing.
    await manager.create("alice", name="ci", roles=["admin"])
    forged_secret = "F" * 43
    forged_id = "FFFFFFFFFFFF"
    message = (
        b"fastapi-secure/api-key/v1\x00fsk_\x00"
        + forged_id.encode()
        + b"\x00"
        + forged_secret.encode()
    )
    planted = StoredAPIKey(
        record=APIKey(id=forged_id, subject="alice", name="planted", roles=("admin",)),
        secret_digest=hashlib.sha256(message).hexdigest(),
    )
    assert await store.add(planted)
    assert await refused(manager, f"fsk_{forged_id}_{forged_secret}") == "wrong API key secret"


async def test_a_key_with_its_id_swapped_is_refused(manager: APIKeyManager) -> None:
    first = await manager.create("alice", name="one")
    second = await manager.create("mallory", name="two")
    # The digest binds the id: mallory's secret under alice's id is no key.
    swapped = f"fsk_{first.record.id}_{second.key.split('_')[2]}"
    assert await refused(manager, swapped) == "wrong API key secret"


# --- list, revoke ----------------------------------------------------------------


async def test_list_shows_records_without_secrets(
    manager: APIKeyManager, fake_clock: FakeClock
) -> None:
    one = await manager.create("alice", name="one")
    fake_clock.advance(1)
    two = await manager.create("alice", name="two", scopes=["read"])
    await manager.create("bob", name="bob's")
    listed = await manager.list_for("alice")
    assert [r.id for r in listed] == [one.record.id, two.record.id]
    shown = repr(listed)
    for created in (one, two):
        assert created.key.split("_")[2] not in shown
    assert "digest" not in shown
    assert all(not hasattr(record, "secret_digest") for record in listed)


async def test_revoked_key_is_refused_at_once(manager: APIKeyManager) -> None:
    created = await manager.create("alice", name="ci")
    await manager.verify(created.key)
    await manager.revoke(created.record.id, subject="alice")
    assert await refused(manager, created.key) == "revoked API key"
    listed = await manager.list_for("alice")
    assert listed[0].revoked
    await manager.revoke(created.record.id, subject="alice")  # idempotent


@pytest.mark.parametrize("key_id", ["", "short", "!!!!!!!!!!!!", "AAAAAAAAAAAA", "x" * 1000])
async def test_revoke_of_no_such_key_is_not_found(manager: APIKeyManager, key_id: str) -> None:
    with pytest.raises(APIKeyNotFoundError):
        await manager.revoke(key_id, subject="alice")


async def test_a_subject_cannot_revoke_or_read_anothers_key(manager: APIKeyManager) -> None:
    created = await manager.create("alice", name="ci")
    with pytest.raises(APIKeyNotFoundError):
        await manager.revoke(created.record.id, subject="mallory")
    with pytest.raises(APIKeyNotFoundError):
        await manager.get(created.record.id, subject="mallory")
    assert (await manager.verify(created.key)).id == created.record.id
    assert (await manager.get(created.record.id, subject="alice")).name == "ci"


# --- expiry and rotation -----------------------------------------------------------


async def test_expired_key_is_refused(manager: APIKeyManager, fake_clock: FakeClock) -> None:
    created = await manager.create("alice", name="ci", expires_in=60)
    fake_clock.advance(59.9)
    await manager.verify(created.key)
    fake_clock.advance(0.1)
    assert await refused(manager, created.key) == "expired API key"


async def test_rotation_overlap_then_only_the_new_key(
    manager: APIKeyManager, fake_clock: FakeClock
) -> None:
    old = await manager.create("alice", name="ci", scopes=["read"], roles=["bot"])
    fake_clock.advance(10)
    new = await manager.rotate(old.record.id, subject="alice", overlap=3600)
    assert new.key != old.key
    assert (new.record.name, new.record.scopes, new.record.roles) == (
        "ci",
        frozenset({"read"}),
        ("bot",),
    )
    assert new.record.expires_at is None
    fake_clock.advance(3599)
    assert (await manager.verify(old.key)).rotated_to == new.record.id
    assert (await manager.verify(new.key)).id == new.record.id
    fake_clock.advance(1)
    assert await refused(manager, old.key) == "expired API key"
    assert (await manager.verify(new.key)).id == new.record.id


async def test_rotation_without_overlap_stops_the_old_key_at_once(
    manager: APIKeyManager,
) -> None:
    old = await manager.create("alice", name="ci")
    new = await manager.rotate(old.record.id, subject="alice", overlap=0)
    assert await refused(manager, old.key) == "expired API key"
    await manager.verify(new.key)


async def test_a_key_rotates_once(manager: APIKeyManager) -> None:
    old = await manager.create("alice", name="ci")
    await manager.rotate(old.record.id, subject="alice")
    with pytest.raises(APIKeyNotFoundError):
        await manager.rotate(old.record.id, subject="alice")


async def test_rotation_needs_an_active_key_of_the_subject(manager: APIKeyManager) -> None:
    created = await manager.create("alice", name="ci")
    with pytest.raises(APIKeyNotFoundError):
        await manager.rotate(created.record.id, subject="mallory")
    await manager.revoke(created.record.id, subject="alice")
    with pytest.raises(APIKeyNotFoundError):
        await manager.rotate(created.record.id, subject="alice")


async def test_the_successor_keeps_the_lifetime_or_takes_a_new_one(
    manager: APIKeyManager, fake_clock: FakeClock
) -> None:
    old = await manager.create("alice", name="ci", expires_in=1000)
    fake_clock.advance(100)
    same = await manager.rotate(old.record.id, subject="alice", overlap=3600)
    assert same.record.expires_at == fake_clock() + 1000
    # The overlap never extends the old key beyond its own expiry.
    assert (await manager.get(old.record.id, subject="alice")).expires_at == old.record.expires_at
    other = await manager.rotate(same.record.id, subject="alice", expires_in=50)
    assert other.record.expires_at == fake_clock() + 50


@pytest.mark.parametrize("overlap", [-1, float("nan"), float("inf"), True])
async def test_rotation_refuses_a_bad_overlap(manager: APIKeyManager, overlap: float) -> None:
    created = await manager.create("alice", name="ci")
    with pytest.raises(APIKeyParameterError):
        await manager.rotate(created.record.id, subject="alice", overlap=overlap)


# --- malformed keys ---------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "",
        "fsk_",
        "Bearer x",
        "fsk_" + "A" * 56,
        "fsk_AAAAAAAAAAAA-" + "B" * 43,
        "fsk_AAAAAAAAAAAA_" + "B" * 42 + "!",
        "fsk_AAAAAAAAAAAA_" + "B" * 42 + "é",
        "fsk_AAAAAAAAAAAA_" + "B" * 44,
        "FSK_AAAAAAAAAAAA_" + "B" * 43,
        "fsk_AAAAAAAAAAAA_" + "B" * 42 + "\x00",
        "x" * 100_000,
        None,
        b"fsk_AAAAAAAAAAAA_" + b"B" * 43,
        12,
    ],
)
async def test_malformed_keys_are_refused_without_a_lookup(
    manager: CountingManager, store: CountingStore, key: object
) -> None:
    reason = await refused(manager, key)
    assert reason.startswith("malformed")
    assert store.gets == 0


async def test_a_key_of_another_prefix_is_refused(
    store: CountingStore, fake_clock: FakeClock
) -> None:
    theirs = APIKeyManager(store, prefix="acme_", pepper=PEPPER, clock=fake_clock)
    ours = APIKeyManager(store, prefix="fsk_", pepper=PEPPER, clock=fake_clock)
    created = await theirs.create("alice", name="ci")
    assert await refused(ours, created.key) == "malformed API key (length)"
    same_length = APIKeyManager(store, prefix="abc_", pepper=PEPPER, clock=fake_clock)
    assert await refused(same_length, ours.prefix + created.key[len("acme_") :]) != ""
    assert await refused(ours, "abc_" + created.key[len("acme_") :]) == (
        "malformed API key (prefix)"
    )


async def test_a_key_of_another_manager_on_the_same_store_does_not_pass_with_its_prefix_swapped(
    store: CountingStore, fake_clock: FakeClock
) -> None:
    # Sandbox and live keys of one app, in one table, with one pepper: a sandbox
    # key whose prefix is rewritten must not become a live key.
    sandbox = APIKeyManager(store, prefix="acmetest_", pepper=PEPPER, clock=fake_clock)
    live = APIKeyManager(store, prefix="acmelive_", pepper=PEPPER, clock=fake_clock)
    created = await sandbox.create("alice", name="sandbox", scopes=["charges"])
    swapped = "acmelive_" + created.key[len("acmetest_") :]
    assert live.looks_like_key(swapped)
    assert await refused(live, swapped) == "wrong API key secret"
    assert (await sandbox.verify(created.key)).id == created.record.id
    made_live = await live.create("alice", name="live")
    assert (await live.verify(made_live.key)).id == made_live.record.id
    assert await refused(sandbox, "acmetest_" + made_live.key[len("acmelive_") :]) == (
        "wrong API key secret"
    )


# Characters that look like (or normalize to) the ASCII letters and digits of a key.
LOOK_ALIKES = (
    "\u0410\u0412\u0415\u041a\u041c\u041d\u041e\u0420\u0421\u0422"
    "\u0425\u0430\u0435\u043e\u0440\u0441\u0445\u0391\u0392\u0395"
    "\u0396\u0397\u0399\u039a\u039c\u039d\u039f\u03a1\u03a4\u03a7"
    "\uff10\uff11\uff21\uff41\u212a\u017f\u0131\u0660\u06f0\u0966"
    "\u1d00\u24b6\U0001d400"
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.integers(min_value=0, max_value=59), look_alike=st.sampled_from(LOOK_ALIKES))
async def test_a_key_with_one_character_swapped_for_a_look_alike_is_malformed(
    manager: CountingManager, store: CountingStore, position: int, look_alike: str
) -> None:
    key = "fsk_AAAAAAAAAAAA_" + "B" * 43
    forged = key[:position] + look_alike + key[position + 1 :]
    before = store.gets
    assert (await refused(manager, forged)).startswith("malformed")
    assert store.gets == before  # refused before any lookup


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    key=st.one_of(
        st.text(max_size=200),
        st.text(alphabet="0123456789ABCDEFabcdef_-fsk!", min_size=60, max_size=60),
        st.from_regex(r"fsk_[0-9A-Za-z]{12}_[0-9A-Za-z]{43}", fullmatch=True),
        st.binary(max_size=80),
        st.none(),
        st.integers(),
    )
)
async def test_any_input_gives_the_typed_error_and_nothing_else(
    manager: APIKeyManager, key: object
) -> None:
    with pytest.raises(InvalidAPIKeyError):
        await manager.verify(key)  # type: ignore[arg-type]


def test_key_id_of_reads_only_well_formed_keys(manager: APIKeyManager) -> None:
    key = "fsk_AAAAAAAAAAAA_" + "B" * 43
    assert manager.key_id_of(key) == "AAAAAAAAAAAA"
    assert manager.looks_like_key(key)
    assert manager.key_id_of("fsk_nope") is None
    assert not manager.looks_like_key("ghp_" + "A" * 56)


# --- the same work whatever is wrong ----------------------------------------------


async def test_unknown_revoked_expired_and_wrong_keys_do_the_same_work(
    manager: CountingManager,
    store: CountingStore,
    fake_clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    comparisons = 0
    real_compare = hmac.compare_digest

    def counting_compare(a: bytes, b: bytes) -> bool:
        nonlocal comparisons
        comparisons += 1
        return real_compare(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting_compare)
    good = await manager.create("alice", name="good", expires_in=100)
    revoked = await manager.create("alice", name="revoked")
    await manager.revoke(revoked.record.id, subject="alice")
    expired = await manager.create("alice", name="expired", expires_in=1)
    fake_clock.advance(2)
    wrong = good.key[:-1] + ("A" if good.key[-1] != "A" else "B")
    unknown = "fsk_ZZZZZZZZZZZZ_" + good.key.split("_")[2]

    work: dict[str, tuple[int, int, int]] = {}
    for label, key in [
        ("unknown", unknown),
        ("wrong", wrong),
        ("revoked", revoked.key),
        ("expired", expired.key),
    ]:
        before = (manager.digests, comparisons, store.gets)
        await refused(manager, key)
        work[label] = (
            manager.digests - before[0],
            comparisons - before[1],
            store.gets - before[2],
        )
    assert set(work.values()) == {(1, 1, 1)}, work


async def test_unknown_and_wrong_keys_take_comparable_time(manager: APIKeyManager) -> None:
    # The guarantee is the equal work above; this only guards against a gross
    # regression (an early return before the digest, a slow hash on one path), so
    # the bound is generous: the machine running the tests is shared.
    # benchmarks/apikeys.py reports the figures.
    good = await manager.create("alice", name="good")
    wrong = good.key[:-1] + ("A" if good.key[-1] != "A" else "B")
    unknown = "fsk_ZZZZZZZZZZZZ_" + good.key.split("_")[2]

    async def attempt(key: str, times: int = 200) -> None:
        for _ in range(times):
            with contextlib.suppress(InvalidAPIKeyError):
                await manager.verify(key)

    samples: dict[str, list[float]] = {"unknown": [], "wrong": []}
    cases = [("unknown", unknown), ("wrong", wrong)]
    for round_ in range(30):
        # Alternating the order too, so neither case always runs first.
        for label, key in cases if round_ % 2 else cases[::-1]:
            start = time.perf_counter()
            await attempt(key)
            samples[label].append(time.perf_counter() - start)
    unknown_median = statistics.median(samples["unknown"])
    wrong_median = statistics.median(samples["wrong"])
    assert 1 / 3 < unknown_median / wrong_median < 3, (unknown_median, wrong_median)


# --- last used -----------------------------------------------------------------


async def test_last_used_is_written_at_most_once_a_minute(
    manager: APIKeyManager, store: CountingStore, fake_clock: FakeClock
) -> None:
    created = await manager.create("alice", name="ci")
    first_use = fake_clock()
    for _ in range(5):
        await manager.verify(created.key)
    assert store.touches == 1
    fake_clock.advance(59)
    await manager.verify(created.key)
    assert store.touches == 1
    assert (await manager.get(created.record.id, subject="alice")).last_used_at == first_use
    fake_clock.advance(1)
    await manager.verify(created.key)
    assert store.touches == 2
    assert (await manager.get(created.record.id, subject="alice")).last_used_at == fake_clock()


async def test_a_failed_last_used_write_does_not_refuse_the_key(
    fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    class TouchDown(MemoryAPIKeyStore):
        async def touch(self, key_id: str, *, now: float, min_interval: float) -> bool:
            raise StoreUnavailableError(reason="ConnectionError")

    manager = APIKeyManager(TouchDown(), pepper=PEPPER, clock=fake_clock)
    created = await manager.create("alice", name="ci")
    assert (await manager.verify(created.key)).id == created.record.id
    assert "could not record API key use" in caplog.text
    assert created.key not in caplog.text


# --- claims -------------------------------------------------------------------------


async def test_claims_have_the_access_token_shape(
    manager: APIKeyManager, fake_clock: FakeClock
) -> None:
    created = await manager.create(
        "alice", name="ci", scopes=["read", "write"], roles=["editor"], expires_in=7200
    )
    fake_clock.advance(30)
    claims = await manager.authenticate(created.key)
    assert isinstance(claims, AccessClaims)
    now = int(fake_clock())
    assert claims.iss == claims.aud == "https://api.test"
    assert claims.sub == "alice"
    assert (claims.iat, claims.exp) == (now, int(created.record.created_at) + 7200)
    assert claims.jti == claims.sid == created.record.id
    assert claims.auth_time == int(created.record.created_at)
    assert claims.roles == ("editor",)
    assert claims.scopes == {"read", "write"}
    assert claims.fresh is False
    assert claims.amr == (API_KEY_AMR,)
    assert claims.extra_claims == {}
    assert is_api_key_claims(claims)
    assert created.key.split("_")[2] not in claims.model_dump_json()


async def test_a_key_without_expiry_gives_claims_good_for_five_minutes(
    manager: APIKeyManager, fake_clock: FakeClock
) -> None:
    created = await manager.create("alice", name="ci")
    claims = await manager.authenticate(created.key)
    assert claims.exp == int(fake_clock()) + 300


def test_token_claims_are_not_api_key_claims() -> None:
    claims = AccessClaims(iss="i", sub="s", aud="a", exp=2, iat=1, jti="j", sid="s", auth_time=1)
    assert not is_api_key_claims(claims)


async def test_audience_can_differ_from_issuer(store: CountingStore) -> None:
    manager = APIKeyManager(store, issuer="https://issuer.test", audience=["a", "b"])
    claims = await manager.authenticate((await manager.create("alice", name="ci")).key)
    assert (claims.iss, claims.aud) == ("https://issuer.test", ["a", "b"])


# --- parameters and configuration --------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "name", "scopes", "roles", "expires_in"),
    [
        ("", "ci", (), (), None),
        ("s" * 256, "ci", (), (), None),
        ("alice", "", (), (), None),
        ("alice", "n" * 101, (), (), None),
        ("alice", " padded", (), (), None),
        ("alice", "line\nbreak", (), (), None),
        ("alice", "ci", "read write", (), None),
        ("alice", "ci", ["has space"], (), None),
        ("alice", "ci", ['quote"'], (), None),
        ("alice", "ci", [f"s{i}" for i in range(65)], (), None),
        ("alice", "ci", ["s" * 129], (), None),
        ("alice", "ci", (), "admin", None),
        ("alice", "ci", (), ["r" * 129], None),
        ("alice", "ci", (), [f"r{i}" for i in range(65)], None),
        ("alice", "ci", (), ["two words"], None),
        ("alice", "ci", (), [""], None),
        ("alice", "ci", (), (), 0),
        ("alice", "ci", (), (), -5),
        ("alice", "ci", (), (), float("nan")),
        ("alice", "ci", (), (), float("inf")),
        ("alice", "ci", (), (), True),
    ],
)
async def test_create_refuses_bad_parameters(
    manager: APIKeyManager,
    store: CountingStore,
    subject: str,
    name: str,
    scopes: object,
    roles: object,
    expires_in: float | None,
) -> None:
    with pytest.raises(APIKeyParameterError):
        await manager.create(subject, name=name, scopes=scopes, roles=roles, expires_in=expires_in)
    assert store.size() == 0


@pytest.mark.parametrize(
    "options",
    [
        {"prefix": ""},
        {"prefix": "fsk"},
        {"prefix": "f_"},
        {"prefix": "1sk_"},
        {"prefix": "fs-k_"},
        {"prefix": "a" * 16 + "_"},
        {"pepper": "short"},
        {"pepper": b"\x00" * 31},
        {"issuer": ""},
        {"last_used_interval": -1},
        {"last_used_interval": float("nan")},
    ],
)
def test_unsafe_configuration_is_refused(store: CountingStore, options: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        APIKeyManager(store, **options)  # type: ignore[arg-type]


def test_the_store_must_be_a_store() -> None:
    with pytest.raises(ConfigurationError):
        APIKeyManager(object())  # type: ignore[arg-type]


def test_repr_names_no_secret(store: CountingStore) -> None:
    manager = APIKeyManager(store, pepper=PEPPER)
    assert PEPPER not in repr(manager)
    assert repr(manager) == "APIKeyManager(prefix='fsk_', pepper=yes)"


async def test_a_custom_prefix_is_used(store: CountingStore) -> None:
    manager = APIKeyManager(store, prefix="acme_")
    created = await manager.create("alice", name="ci")
    assert re.fullmatch(r"acme_[0-9A-Za-z]{12}_[0-9A-Za-z]{43}", created.key)
    await manager.verify(created.key)


async def test_id_collisions_are_retried_then_fail_closed(
    fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = MemoryAPIKeyStore()
    manager = APIKeyManager(store, clock=fake_clock)
    monkeypatch.setattr(secrets, "choice", lambda alphabet: alphabet[0])
    await manager.create("alice", name="first")
    with pytest.raises(StoreUnavailableError):
        await manager.create("alice", name="second")
    assert store.size() == 1


# --- the owner's current grant ------------------------------------------------------


async def test_a_grant_loader_caps_roles_and_refuses_a_gone_owner(
    store: CountingStore, fake_clock: FakeClock
) -> None:
    current: dict[str, Grant | None] = {"alice": Grant(roles=["admin", "editor"])}
    seen: list[str] = []

    async def load(record: APIKey) -> Grant | None:
        seen.append(record.id)
        return current.get(record.subject)

    manager = APIKeyManager(store, grant_loader=load, clock=fake_clock)
    created = await manager.create("alice", name="ci", roles=["admin", "editor"])
    assert (await manager.authenticate(created.key)).roles == ("admin", "editor")
    current["alice"] = Grant(roles=["editor", "viewer"])  # demoted
    assert (await manager.authenticate(created.key)).roles == ("editor",)
    current["alice"] = None  # disabled
    with pytest.raises(InvalidAPIKeyError) as caught:
        await manager.authenticate(created.key)
    assert caught.value.reason == "the key's owner is gone or disabled"
    assert seen == [created.record.id] * 3


async def test_a_grant_loader_must_return_a_grant(
    store: CountingStore, fake_clock: FakeClock
) -> None:
    async def load(record: APIKey) -> Grant | None:
        return ["admin"]  # type: ignore[return-value]

    manager = APIKeyManager(store, grant_loader=load, clock=fake_clock)
    created = await manager.create("alice", name="ci")
    with pytest.raises(ConfigurationError):
        await manager.authenticate(created.key)


def test_a_grant_loader_must_be_callable(store: CountingStore) -> None:
    with pytest.raises(ConfigurationError):
        APIKeyManager(store, grant_loader="load")  # type: ignore[arg-type]
