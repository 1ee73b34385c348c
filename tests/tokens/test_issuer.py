"""TokenIssuer: configuration, issuing, the claims matrix, revocation, rotation.

Tokens that the issuer would never produce are crafted with ``KeySet.sign``
(the real signing key), so each test isolates one claim check: the signature
is valid and only the claim under test is wrong.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastapi_secure.errors import (
    ConfigurationError,
    ExpiredTokenError,
    InvalidTokenError,
    RevokedTokenError,
    TokenReuseError,
)
from fastapi_secure.testing import FakeClock
from fastapi_secure.tokens.claims import (
    ACCESS_TOKEN_TYP,
    REFRESH_TOKEN_TYP,
    RESERVED_CLAIMS,
    AccessClaims,
    RefreshClaims,
)
from fastapi_secure.tokens.issuer import (
    Grant,
    TokenIssuer,
    keep_login_grant,
)
from fastapi_secure.tokens.keys import KeySet
from fastapi_secure.tokens.stores.base import new_family_id
from fastapi_secure.tokens.stores.memory import MemoryTokenStore

pytestmark = pytest.mark.anyio

ISSUER = "https://auth.example.test"
AUDIENCE = "https://api.example.test"
SECRET = "x" * 64
ACCESS_TTL = 900
REFRESH_TTL = 7 * 86400
LEEWAY = 30


@pytest.fixture
def keys() -> KeySet:
    return KeySet.from_secret(SECRET, kid="k1")


async def _grant(claims: RefreshClaims) -> Grant:
    return Grant(roles=("user",), scopes=("read",), claims={"tenant": "acme"})


def make_issuer(
    keys: KeySet, clock: FakeClock, store: MemoryTokenStore | None = None, **options: Any
) -> TokenIssuer:
    config: dict[str, Any] = {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "access_ttl": ACCESS_TTL,
        "refresh_ttl": REFRESH_TTL,
        "leeway": LEEWAY,
        "clock": clock,
        "grant_loader": _grant,
    }
    config.update(options)
    return TokenIssuer(keys, store or MemoryTokenStore(clock=clock), **config)


@pytest.fixture
def issuer(keys: KeySet, fake_clock: FakeClock) -> TokenIssuer:
    return make_issuer(keys, fake_clock)


def payload_of(keys: KeySet, token: str) -> dict[str, Any]:
    return keys.verify(token).claims()


def header_of(keys: KeySet, token: str) -> dict[str, Any]:
    return keys.verify(token).header


# -- configuration ---------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"access_ttl": REFRESH_TTL},
        {"access_ttl": REFRESH_TTL + 1},
        {"access_ttl": 0},
        {"access_ttl": 0.5, "leeway": 0},
        {"refresh_ttl": timedelta(0)},
        {"leeway": -1},
        {"leeway": 301},
        {"leeway": timedelta(minutes=10)},
        {"access_ttl": 60, "leeway": 60},
        {"reuse_grace": -1},
        {"reuse_grace": 61},
        {"issuer": ""},
        {"audience": ""},
        {"audience": []},
        {"audience": ["ok", ""]},
        {"audience": 5},
        {"access_ttl": 1.2, "refresh_ttl": 1.7, "leeway": 0},
        {"access_ttl": "900"},
        {"leeway": True},
        {"leeway": float("nan")},
        {"grant_loader": "not callable"},
    ],
)
def test_unsafe_or_inconsistent_configuration_is_refused(
    keys: KeySet, fake_clock: FakeClock, options: dict[str, Any]
) -> None:
    with pytest.raises(ConfigurationError):
        make_issuer(keys, fake_clock, **options)


def test_store_must_be_a_token_store(keys: KeySet) -> None:
    with pytest.raises(ConfigurationError, match="TokenStore"):
        TokenIssuer(
            keys,
            object(),  # type: ignore[arg-type]
            issuer=ISSUER,
            audience=AUDIENCE,
            grant_loader=keep_login_grant,
        )


def test_keys_must_be_a_keyset(fake_clock: FakeClock) -> None:
    with pytest.raises(ConfigurationError, match="KeySet"):
        TokenIssuer(
            SECRET,  # type: ignore[arg-type]
            MemoryTokenStore(),
            issuer=ISSUER,
            audience=AUDIENCE,
            grant_loader=keep_login_grant,
        )


def test_defaults_are_fifteen_minutes_and_seven_days(keys: KeySet) -> None:
    issuer = TokenIssuer(
        keys, MemoryTokenStore(), issuer=ISSUER, audience=AUDIENCE, grant_loader=keep_login_grant
    )
    assert issuer.access_ttl == 900
    assert issuer.refresh_ttl == 7 * 86400
    assert issuer.leeway == 30


def test_from_settings_takes_issuer_audience_ttls_and_leeway(
    keys: KeySet, fake_clock: FakeClock
) -> None:
    from fastapi_secure.settings import SecuritySettings

    settings = SecuritySettings(
        token_issuer="https://id.example",
        token_audience="orders",
        access_ttl_seconds=300,
        refresh_ttl_seconds=3600,
        leeway_seconds=5,
        max_session_age_seconds=86400,
    )
    issuer = TokenIssuer.from_settings(
        settings, keys, MemoryTokenStore(), grant_loader=keep_login_grant, clock=fake_clock
    )
    assert (
        issuer.issuer,
        issuer.access_ttl,
        issuer.refresh_ttl,
        issuer.leeway,
        issuer.max_session_age,
    ) == ("https://id.example", 300, 3600, 5, 86400)
    uncapped = TokenIssuer.from_settings(
        settings,
        keys,
        MemoryTokenStore(),
        grant_loader=keep_login_grant,
        clock=fake_clock,
        max_session_age=None,
    )
    assert uncapped.max_session_age is None


# -- issuing ---------------------------------------------------------------------


async def test_issue_returns_an_oauth2_token_response(issuer: TokenIssuer) -> None:
    pair = await issuer.issue("alice")
    body = json.loads(pair.model_dump_json())
    assert body == {
        "access_token": pair.access_token,
        "refresh_token": pair.refresh_token,
        "token_type": "bearer",
        "expires_in": ACCESS_TTL,
        "refresh_expires_in": REFRESH_TTL,
    }


async def test_issued_tokens_carry_every_claim_and_their_kind_twice(
    issuer: TokenIssuer, keys: KeySet, fake_clock: FakeClock
) -> None:
    now = int(fake_clock())
    pair = await issuer.issue(
        "alice", roles=["admin", "user", "admin"], scopes={"write", "read"}, claims={"org": 7}
    )
    access, refresh = payload_of(keys, pair.access_token), payload_of(keys, pair.refresh_token)
    assert header_of(keys, pair.access_token)["typ"] == ACCESS_TOKEN_TYP == "at+jwt"
    assert header_of(keys, pair.refresh_token)["typ"] == REFRESH_TOKEN_TYP
    assert access.keys() == {
        "iss", "sub", "aud", "exp", "iat", "jti", "sid", "auth_time",
        "token_use", "roles", "scope", "fresh", "org",
    }  # fmt: skip
    assert refresh.keys() == {
        "iss", "sub", "aud", "exp", "iat", "jti", "sid", "auth_time", "token_use",
        "roles", "scope",
    }  # fmt: skip
    assert access["token_use"] == "access"
    assert refresh["token_use"] == "refresh"
    assert access["iss"] == refresh["iss"] == ISSUER
    assert access["aud"] == refresh["aud"] == AUDIENCE
    assert access["sub"] == refresh["sub"] == "alice"
    assert access["iat"] == refresh["iat"] == access["auth_time"] == now
    assert access["exp"] == now + ACCESS_TTL
    assert refresh["exp"] == now + REFRESH_TTL
    assert access["sid"] == refresh["sid"]
    assert access["jti"] != refresh["jti"]
    assert access["roles"] == ["admin", "user"]
    assert access["scope"] == "read write"
    assert access["fresh"] is True
    assert access["org"] == 7


async def test_every_pair_has_its_own_family_and_ids(issuer: TokenIssuer, keys: KeySet) -> None:
    first, second = await issuer.issue("alice"), await issuer.issue("alice")
    a, b = payload_of(keys, first.access_token), payload_of(keys, second.access_token)
    assert a["sid"] != b["sid"]
    assert a["jti"] != b["jti"]


async def test_verified_claims_are_typed(issuer: TokenIssuer) -> None:
    pair = await issuer.issue(
        "alice", roles=["admin"], scopes=["read"], claims={"org": "acme"}, fresh=False, auth_time=5
    )
    claims = await issuer.verify_access(pair.access_token)
    assert isinstance(claims, AccessClaims)
    assert claims.subject == "alice"
    assert claims.roles == ("admin",)
    assert claims.scopes == frozenset({"read"})
    assert claims.fresh is False
    assert claims.auth_time == 5
    assert claims.extra_claims == {"org": "acme"}
    refresh = await issuer.verify_refresh(pair.refresh_token)
    assert isinstance(refresh, RefreshClaims)
    assert refresh.sid == claims.sid


async def test_audience_list_is_issued_and_any_member_accepted(
    keys: KeySet, fake_clock: FakeClock
) -> None:
    issuer = make_issuer(keys, fake_clock, audience=["api", "legacy-api"])
    pair = await issuer.issue("alice")
    assert payload_of(keys, pair.access_token)["aud"] == ["api", "legacy-api"]
    assert (await issuer.verify_access(pair.access_token)).aud == ["api", "legacy-api"]
    single = make_issuer(keys, fake_clock, audience="legacy-api", store=issuer.store)  # type: ignore[arg-type]
    assert (await single.verify_access(pair.access_token)).sub == "alice"


@pytest.mark.parametrize("name", sorted(RESERVED_CLAIMS))
async def test_custom_claims_can_never_set_a_reserved_claim(issuer: TokenIssuer, name: str) -> None:
    with pytest.raises(ConfigurationError, match="reserved"):
        await issuer.issue("alice", claims={name: "attacker-chosen"})


@pytest.mark.parametrize(
    "arguments",
    [
        {"subject": ""},
        {"roles": "admin"},
        {"roles": ["admin", ""]},
        {"scopes": "read write"},
        {"scopes": ["read write"]},
        {"scopes": ['quote"']},
        {"scopes": [""]},
        {"auth_time": "yesterday"},
        {"auth_time": True},
        {"claims": {1: "x"}},
    ],
)
async def test_bad_issue_arguments_raise_value_error(
    issuer: TokenIssuer, arguments: dict[str, Any]
) -> None:
    subject = arguments.pop("subject", "alice")
    with pytest.raises(ValueError):  # noqa: PT011 - several messages, one type
        await issuer.issue(subject, **arguments)


async def test_failed_issue_stores_nothing(keys: KeySet, fake_clock: FakeClock) -> None:
    store = MemoryTokenStore(clock=fake_clock)
    issuer = make_issuer(keys, fake_clock, store=store)
    with pytest.raises(ConfigurationError):
        await issuer.issue("alice", claims={"sub": "root"})
    assert store.size() == 0


# -- the claims matrix -----------------------------------------------------------


def access_payload(fake_clock: FakeClock, **changes: Any) -> dict[str, Any]:
    now = int(fake_clock())
    payload: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "alice",
        "aud": AUDIENCE,
        "exp": now + ACCESS_TTL,
        "iat": now,
        "jti": "at-1",
        "sid": new_family_id("alice"),
        "auth_time": now,
        "token_use": "access",
        "roles": ["user"],
        "scope": "read",
        "fresh": True,
    }
    payload.update(changes)
    return payload


def refresh_payload(fake_clock: FakeClock, **changes: Any) -> dict[str, Any]:
    now = int(fake_clock())
    payload: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "alice",
        "aud": AUDIENCE,
        "exp": now + REFRESH_TTL,
        "iat": now,
        "jti": "rt-1",
        "sid": new_family_id("alice"),
        "auth_time": now,
        "token_use": "refresh",
    }
    payload.update(changes)
    return payload


@pytest.fixture
def unchecked(keys: KeySet, fake_clock: FakeClock) -> TokenIssuer:
    """An issuer that skips the store, so crafted tokens test the claim checks alone."""
    return make_issuer(keys, fake_clock, check_revocation=False)


async def test_crafted_baseline_token_is_accepted(
    unchecked: TokenIssuer, keys: KeySet, fake_clock: FakeClock
) -> None:
    token = keys.sign(access_payload(fake_clock), typ=ACCESS_TOKEN_TYP)
    assert (await unchecked.verify_access(token)).jti == "at-1"


@pytest.mark.parametrize(
    "claim",
    ["iss", "sub", "aud", "exp", "iat", "jti", "sid", "auth_time", "token_use", "roles",
     "scope", "fresh"],
)  # fmt: skip
async def test_access_token_missing_a_required_claim_is_invalid(
    unchecked: TokenIssuer, keys: KeySet, fake_clock: FakeClock, claim: str
) -> None:
    payload = access_payload(fake_clock)
    del payload[claim]
    with pytest.raises(InvalidTokenError):
        await unchecked.verify_access(keys.sign(payload, typ=ACCESS_TOKEN_TYP))


@pytest.mark.parametrize(
    "claim", ["iss", "sub", "aud", "exp", "iat", "jti", "sid", "auth_time", "token_use"]
)
async def test_refresh_token_missing_a_required_claim_is_invalid(
    issuer: TokenIssuer, keys: KeySet, fake_clock: FakeClock, claim: str
) -> None:
    payload = refresh_payload(fake_clock)
    del payload[claim]
    token = keys.sign(payload, typ=REFRESH_TOKEN_TYP)
    with pytest.raises(InvalidTokenError):
        await issuer.verify_refresh(token)
    with pytest.raises(InvalidTokenError):
        await issuer.rotate(token)


@pytest.mark.parametrize(
    "changes",
    [
        {"exp": "1800000900"},
        {"exp": 1800000900.5},
        {"exp": True},
        {"iat": None},
        {"nbf": "0"},
        {"sub": ""},
        {"sub": 42},
        {"jti": ""},
        {"sid": ["a"]},
        {"aud": 5},
        {"aud": [5]},
        {"iss": [ISSUER]},
        {"roles": "admin"},
        {"roles": [1]},
        {"scope": ["read"]},
        {"fresh": "true"},
        {"fresh": 1},
        {"auth_time": "now"},
        {"token_use": "ACCESS"},
    ],
)
async def test_ill_typed_claims_are_invalid_not_a_validation_error(
    unchecked: TokenIssuer, keys: KeySet, fake_clock: FakeClock, changes: dict[str, Any]
) -> None:
    token = keys.sign(access_payload(fake_clock, **changes), typ=ACCESS_TOKEN_TYP)
    with pytest.raises(InvalidTokenError) as caught:
        await unchecked.verify_access(token)
    assert caught.value.__cause__ is None  # the validation error (quoting claims) is dropped


@pytest.mark.parametrize(
    "iss",
    [
        "https://auth.example",  # prefix
        "auth.example.test",  # substring
        "https://auth.example.test/",
        "https://auth.example.test.evil",
        "https://auth.example.test ",
        "HTTPS://AUTH.EXAMPLE.TEST",
        "https://evil.test",
        "",
    ],
)
async def test_issuer_must_match_exactly(
    unchecked: TokenIssuer, keys: KeySet, fake_clock: FakeClock, iss: str
) -> None:
    token = keys.sign(access_payload(fake_clock, iss=iss), typ=ACCESS_TOKEN_TYP)
    with pytest.raises(InvalidTokenError):
        await unchecked.verify_access(token)


@pytest.mark.parametrize(
    "aud",
    [
        "https://api.example",
        "https://api.example.test/",
        "other",
        [],
        ["other", "https://api.example"],
    ],
)
async def test_wrong_audience_is_invalid(
    unchecked: TokenIssuer, keys: KeySet, fake_clock: FakeClock, aud: object
) -> None:
    token = keys.sign(access_payload(fake_clock, aud=aud), typ=ACCESS_TOKEN_TYP)
    with pytest.raises(InvalidTokenError):
        await unchecked.verify_access(token)


async def test_audience_list_containing_ours_is_accepted(
    unchecked: TokenIssuer, keys: KeySet, fake_clock: FakeClock
) -> None:
    token = keys.sign(access_payload(fake_clock, aud=["other", AUDIENCE]), typ=ACCESS_TOKEN_TYP)
    assert (await unchecked.verify_access(token)).aud == ["other", AUDIENCE]


async def test_expiry_edge_is_exp_plus_leeway(
    unchecked: TokenIssuer, keys: KeySet, fake_clock: FakeClock
) -> None:
    exp = int(fake_clock()) + 10
    token = keys.sign(access_payload(fake_clock, exp=exp), typ=ACCESS_TOKEN_TYP)
    fake_clock.set(exp + LEEWAY - 0.001)
    assert (await unchecked.verify_access(token)).exp == exp
    fake_clock.set(exp + LEEWAY)
    with pytest.raises(ExpiredTokenError):
        await unchecked.verify_access(token)


@pytest.mark.parametrize("claim", ["nbf", "iat"])
async def test_a_time_claim_ahead_of_now_is_accepted_up_to_the_leeway(
    unchecked: TokenIssuer, keys: KeySet, fake_clock: FakeClock, claim: str
) -> None:
    """Not yet valid (``nbf``) or issued in the future (``iat``): fine up to now + leeway,
    invalid (and not expired) one second beyond."""
    now = int(fake_clock())
    edge = keys.sign(access_payload(fake_clock, **{claim: now + LEEWAY}), typ=ACCESS_TOKEN_TYP)
    beyond = keys.sign(
        access_payload(fake_clock, **{claim: now + LEEWAY + 1}), typ=ACCESS_TOKEN_TYP
    )
    assert getattr(await unchecked.verify_access(edge), claim) == now + LEEWAY
    with pytest.raises(InvalidTokenError) as caught:
        await unchecked.verify_access(beyond)
    assert not isinstance(caught.value, ExpiredTokenError)


async def test_issued_access_token_expires_after_ttl_and_leeway(
    issuer: TokenIssuer, fake_clock: FakeClock
) -> None:
    pair = await issuer.issue("alice")
    fake_clock.advance(ACCESS_TTL + LEEWAY - 1)
    await issuer.verify_access(pair.access_token)
    fake_clock.advance(1)
    with pytest.raises(ExpiredTokenError):
        await issuer.verify_access(pair.access_token)


async def test_expired_refresh_token_cannot_rotate(
    issuer: TokenIssuer, fake_clock: FakeClock
) -> None:
    pair = await issuer.issue("alice")
    fake_clock.advance(REFRESH_TTL + LEEWAY)
    with pytest.raises(ExpiredTokenError):
        await issuer.rotate(pair.refresh_token)


# kind confusion: (typ header, token_use claim) -> which verifier may accept it
KINDS = [
    (ACCESS_TOKEN_TYP, "access", "access"),
    (REFRESH_TOKEN_TYP, "refresh", "refresh"),
    (ACCESS_TOKEN_TYP, "refresh", None),
    (REFRESH_TOKEN_TYP, "access", None),
    ("JWT", "access", None),
    ("JWT", "refresh", None),
    ("application/at+jwt", "access", None),
    ("AT+JWT", "access", None),
    ("at+jwt ", "access", None),
]


@pytest.mark.parametrize(("typ", "use", "accepted_as"), KINDS)
async def test_token_kind_confusion_matrix(
    unchecked: TokenIssuer,
    keys: KeySet,
    fake_clock: FakeClock,
    typ: str,
    use: str,
    accepted_as: str | None,
) -> None:
    # a payload carrying every claim of both kinds, so only the kind markers differ
    store = unchecked.store
    sid = new_family_id("alice")
    await store.create_family("alice", sid, refresh_jti="rt-1", ttl=REFRESH_TTL)
    payload = access_payload(fake_clock, token_use=use, sid=sid, jti="rt-1")
    if use == "refresh":
        payload = refresh_payload(fake_clock, sid=sid)
    token = keys.sign(payload, typ=typ)
    verifiers: dict[str, Callable[[str], Any]] = {
        "access": unchecked.verify_access,
        "refresh": unchecked.verify_refresh,
        "rotate": unchecked.rotate,
    }
    for name, verify in verifiers.items():
        should_pass = accepted_as == name or (accepted_as == "refresh" and name == "rotate")
        if should_pass:
            await verify(token)
        else:
            with pytest.raises(InvalidTokenError):
                await verify(token)


async def test_typ_header_missing_is_invalid(
    unchecked: TokenIssuer, keys: KeySet, fake_clock: FakeClock
) -> None:
    # KeySet.sign always sets typ; craft the missing-typ case by hand with the same key
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = (
        b64(json.dumps({"alg": "HS256", "kid": "k1"}).encode())
        + "."
        + b64(json.dumps(access_payload(fake_clock)).encode())
    )
    mac = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{b64(mac)}"
    keys.verify(token)  # the signature is genuine
    with pytest.raises(InvalidTokenError):
        await unchecked.verify_access(token)


async def test_token_of_another_key_is_invalid(issuer: TokenIssuer, fake_clock: FakeClock) -> None:
    other = make_issuer(KeySet.from_secret("y" * 64, kid="k1"), fake_clock)
    pair = await other.issue("alice")
    with pytest.raises(InvalidTokenError):
        await issuer.verify_access(pair.access_token)
    with pytest.raises(InvalidTokenError):
        await issuer.rotate(pair.refresh_token)


async def test_refresh_token_with_extra_claims_is_invalid(
    issuer: TokenIssuer, keys: KeySet, fake_clock: FakeClock
) -> None:
    token = keys.sign(refresh_payload(fake_clock, roles=["admin"]), typ=REFRESH_TOKEN_TYP)
    with pytest.raises(InvalidTokenError):
        await issuer.rotate(token)


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(token=st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.hex()))
async def test_any_string_is_an_invalid_token_never_another_error(
    issuer: TokenIssuer, token: str
) -> None:
    for operation in (issuer.verify_access, issuer.verify_refresh, issuer.rotate, issuer.revoke):
        with pytest.raises(InvalidTokenError):
            await operation(token)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=5,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    changes=st.dictionaries(
        st.sampled_from(
            ["iss", "sub", "aud", "exp", "iat", "nbf", "jti", "sid", "auth_time",
             "token_use", "roles", "scope", "fresh", "custom"]
        ),
        JSON_VALUES,
        max_size=4,
    ),
    typ=st.sampled_from([ACCESS_TOKEN_TYP, REFRESH_TOKEN_TYP]),
)  # fmt: skip
async def test_any_signed_claims_verify_or_raise_invalid_token(
    unchecked: TokenIssuer,
    keys: KeySet,
    fake_clock: FakeClock,
    changes: Mapping[str, Any],
    typ: str,
) -> None:
    token = keys.sign(access_payload(fake_clock, **changes), typ=typ)
    for operation in (unchecked.verify_access, unchecked.verify_refresh, unchecked.revoke):
        with contextlib.suppress(InvalidTokenError):
            await operation(token)


# -- revocation ------------------------------------------------------------------


async def test_revoking_an_access_token_denies_only_it(issuer: TokenIssuer) -> None:
    pair = await issuer.issue("alice")
    rotated = await issuer.rotate(pair.refresh_token)
    await issuer.revoke(pair.access_token)
    with pytest.raises(RevokedTokenError):
        await issuer.verify_access(pair.access_token)
    assert (await issuer.verify_access(rotated.access_token)).sub == "alice"
    await issuer.verify_refresh(rotated.refresh_token)


async def test_revoked_access_token_entry_expires_with_the_token(
    keys: KeySet, fake_clock: FakeClock
) -> None:
    store = MemoryTokenStore(clock=fake_clock)
    issuer = make_issuer(keys, fake_clock, store=store)
    pair = await issuer.issue("alice")
    await issuer.revoke(pair.access_token)
    assert store.size() == 2  # the family and the denied jti
    fake_clock.advance(ACCESS_TTL + LEEWAY)
    assert store.prune() == 1


async def test_revoking_an_expired_access_token_is_a_no_op(
    issuer: TokenIssuer, fake_clock: FakeClock
) -> None:
    pair = await issuer.issue("alice")
    fake_clock.advance(ACCESS_TTL + LEEWAY)
    await issuer.revoke(pair.access_token)
    await issuer.verify_refresh(pair.refresh_token)


async def test_revoking_a_refresh_token_revokes_its_family(issuer: TokenIssuer) -> None:
    pair = await issuer.issue("alice")
    other = await issuer.issue("alice")
    await issuer.revoke(pair.refresh_token)
    with pytest.raises(RevokedTokenError):
        await issuer.verify_access(pair.access_token)
    with pytest.raises(RevokedTokenError):
        await issuer.rotate(pair.refresh_token)
    await issuer.verify_access(other.access_token)


async def test_revoke_refuses_foreign_tokens(issuer: TokenIssuer, fake_clock: FakeClock) -> None:
    foreign = make_issuer(KeySet.from_secret("z" * 64, kid="k1"), fake_clock)
    pair = await foreign.issue("alice")
    with pytest.raises(InvalidTokenError):
        await issuer.revoke(pair.access_token)


async def test_revoke_refuses_tokens_of_another_issuer_with_our_key(
    keys: KeySet, fake_clock: FakeClock
) -> None:
    store = MemoryTokenStore(clock=fake_clock)
    ours = make_issuer(keys, fake_clock, store=store)
    theirs = make_issuer(keys, fake_clock, store=store, issuer="https://other.test")
    pair = await theirs.issue("alice")
    with pytest.raises(InvalidTokenError):
        await ours.revoke(pair.refresh_token)
    await theirs.verify_access(pair.access_token)


async def test_revoke_refuses_a_token_of_no_known_kind(
    issuer: TokenIssuer, keys: KeySet, fake_clock: FakeClock
) -> None:
    with pytest.raises(InvalidTokenError):
        await issuer.revoke(keys.sign(access_payload(fake_clock), typ="JWT"))


async def test_revoke_family_by_sid(issuer: TokenIssuer) -> None:
    pair = await issuer.issue("alice")
    claims = await issuer.verify_access(pair.access_token)
    await issuer.revoke_family(claims.sid)
    with pytest.raises(RevokedTokenError):
        await issuer.verify_access(pair.access_token)


async def test_revoke_subject_kills_every_token_of_the_subject(issuer: TokenIssuer) -> None:
    sessions = [await issuer.issue("alice") for _ in range(3)]
    sessions.append(await issuer.rotate(sessions[0].refresh_token))
    bob = await issuer.issue("bob")
    await issuer.revoke_subject("alice")
    for pair in sessions:
        with pytest.raises(RevokedTokenError):
            await issuer.verify_access(pair.access_token)
        with pytest.raises(InvalidTokenError):
            await issuer.rotate(pair.refresh_token)
    await issuer.verify_access(bob.access_token)


async def test_tokens_issued_after_revoke_subject_work_at_the_same_instant(
    issuer: TokenIssuer, fake_clock: FakeClock
) -> None:
    # The clock does not move: ordering, not the timestamp, decides.
    before = await issuer.issue("alice")
    await issuer.revoke_subject("alice")
    after = await issuer.issue("alice")
    with pytest.raises(RevokedTokenError):
        await issuer.verify_access(before.access_token)
    assert (await issuer.verify_access(after.access_token)).sub == "alice"
    rotated = await issuer.rotate(after.refresh_token)
    await issuer.verify_access(rotated.access_token)


async def test_without_revocation_check_a_revoked_access_token_still_verifies(
    keys: KeySet, fake_clock: FakeClock
) -> None:
    store = MemoryTokenStore(clock=fake_clock)
    checked = make_issuer(keys, fake_clock, store=store)
    unchecked = make_issuer(keys, fake_clock, store=store, check_revocation=False)
    pair = await checked.issue("alice")
    await checked.revoke_subject("alice")
    with pytest.raises(RevokedTokenError):
        await checked.verify_access(pair.access_token)
    # the documented trade-off: valid until exp ...
    assert (await unchecked.verify_access(pair.access_token)).sub == "alice"
    # ... but refresh tokens are always checked
    with pytest.raises(RevokedTokenError):
        await unchecked.rotate(pair.refresh_token)


async def test_access_token_of_an_unknown_family_is_invalid(
    keys: KeySet, fake_clock: FakeClock
) -> None:
    # e.g. the store was flushed: fail closed
    issued = make_issuer(keys, fake_clock)
    pair = await issued.issue("alice")
    fresh_store = make_issuer(keys, fake_clock)
    with pytest.raises(InvalidTokenError):
        await fresh_store.verify_access(pair.access_token)


# -- rotation --------------------------------------------------------------------


async def test_rotation_issues_a_successor_in_the_same_family(
    issuer: TokenIssuer, keys: KeySet, fake_clock: FakeClock
) -> None:
    pair = await issuer.issue("alice", roles=["admin"], scopes=["admin"], auth_time=1_799_999_000)
    fake_clock.advance(600)
    rotated = await issuer.rotate(pair.refresh_token)
    old = payload_of(keys, pair.refresh_token)
    new = payload_of(keys, rotated.refresh_token)
    assert new["sid"] == old["sid"]
    assert new["jti"] != old["jti"]
    assert new["exp"] == old["exp"] + 600  # sliding
    claims = await issuer.verify_access(rotated.access_token)
    assert claims.sid == old["sid"]
    assert claims.fresh is False
    assert claims.auth_time == 1_799_999_000
    # roles and scopes come from the grant loader, not the old token
    assert claims.roles == ("user",)
    assert claims.scopes == frozenset({"read"})
    assert claims.extra_claims == {"tenant": "acme"}


async def test_consumed_refresh_token_is_reuse_and_revokes_the_family(
    issuer: TokenIssuer,
) -> None:
    pair = await issuer.issue("alice")
    rotated = await issuer.rotate(pair.refresh_token)
    with pytest.raises(TokenReuseError):
        await issuer.rotate(pair.refresh_token)
    with pytest.raises(RevokedTokenError):
        await issuer.verify_access(rotated.access_token)
    with pytest.raises(RevokedTokenError):
        await issuer.verify_access(pair.access_token)
    with pytest.raises(RevokedTokenError):
        await issuer.rotate(rotated.refresh_token)


async def test_verify_refresh_does_not_consume_or_revoke(issuer: TokenIssuer) -> None:
    pair = await issuer.issue("alice")
    await issuer.verify_refresh(pair.refresh_token)
    rotated = await issuer.rotate(pair.refresh_token)
    with pytest.raises(InvalidTokenError) as caught:
        await issuer.verify_refresh(pair.refresh_token)
    assert not isinstance(caught.value, TokenReuseError)
    await issuer.verify_access(rotated.access_token)  # family still alive


def test_an_issuer_without_a_grant_loader_is_refused_at_construction(
    keys: KeySet, fake_clock: FakeClock
) -> None:
    # 0.1 accepted it and failed at the first refresh, as a 500.
    with pytest.raises(ConfigurationError, match="keep_login_grant"):
        make_issuer(keys, fake_clock, grant_loader=None)


async def test_keep_login_grant_keeps_the_roles_and_scopes_of_the_login(
    keys: KeySet, fake_clock: FakeClock
) -> None:
    issuer = make_issuer(keys, fake_clock, grant_loader=keep_login_grant)
    pair = await issuer.issue("alice", roles=["editor"], scopes={"posts:read"})
    fake_clock.advance(60)
    rotated = await issuer.rotate(pair.refresh_token)
    claims = await issuer.verify_access(rotated.access_token)
    assert claims.roles == ("editor",)
    assert claims.scopes == {"posts:read"}
    assert not claims.fresh
    # The login's grant is signed into the refresh token: a forged one fails.
    with pytest.raises(InvalidTokenError):
        await issuer.rotate(rotated.refresh_token[:-4] + "AAAA")


async def test_grant_loader_of_the_call_wins(issuer: TokenIssuer) -> None:
    seen: list[RefreshClaims] = []

    async def promote(claims: RefreshClaims) -> Grant:
        seen.append(claims)
        return Grant(roles=["admin"])

    pair = await issuer.issue("alice")
    rotated = await issuer.rotate(pair.refresh_token, grant_loader=promote)
    assert [c.sub for c in seen] == ["alice"]
    assert (await issuer.verify_access(rotated.access_token)).roles == ("admin",)


async def test_refused_grant_revokes_the_family(issuer: TokenIssuer) -> None:
    async def gone(claims: RefreshClaims) -> Grant | None:
        return None

    pair = await issuer.issue("alice")
    with pytest.raises(RevokedTokenError):
        await issuer.rotate(pair.refresh_token, grant_loader=gone)
    with pytest.raises(RevokedTokenError):
        await issuer.verify_access(pair.access_token)
    with pytest.raises(RevokedTokenError):
        await issuer.rotate(pair.refresh_token)


async def test_failing_grant_loader_does_not_burn_the_refresh_token(issuer: TokenIssuer) -> None:
    async def broken(claims: RefreshClaims) -> Grant:
        raise RuntimeError("user database down")

    async def wrong_type(claims: RefreshClaims) -> Grant:
        return {"roles": ["admin"]}  # type: ignore[return-value]

    async def bad_claims(claims: RefreshClaims) -> Grant:
        return Grant(claims={"sub": "root"})

    pair = await issuer.issue("alice")
    with pytest.raises(RuntimeError, match="database"):
        await issuer.rotate(pair.refresh_token, grant_loader=broken)
    with pytest.raises(ConfigurationError):
        await issuer.rotate(pair.refresh_token, grant_loader=wrong_type)
    with pytest.raises(ConfigurationError):
        await issuer.rotate(pair.refresh_token, grant_loader=bad_claims)
    await issuer.rotate(pair.refresh_token)


async def test_access_token_presented_to_rotate_is_invalid(issuer: TokenIssuer) -> None:
    pair = await issuer.issue("alice")
    with pytest.raises(InvalidTokenError) as caught:
        await issuer.rotate(pair.access_token)
    assert not isinstance(caught.value, TokenReuseError)
    await issuer.rotate(pair.refresh_token)


# -- the grace window ------------------------------------------------------------


@pytest.fixture
def graceful(keys: KeySet, fake_clock: FakeClock) -> TokenIssuer:
    return make_issuer(keys, fake_clock, reuse_grace=10)


async def test_grace_retry_returns_a_copy_of_the_same_successor(
    graceful: TokenIssuer, keys: KeySet, fake_clock: FakeClock
) -> None:
    pair = await graceful.issue("alice")
    first = await graceful.rotate(pair.refresh_token)  # response "lost"
    fake_clock.advance(10)
    retry = await graceful.rotate(pair.refresh_token)
    assert (
        payload_of(keys, retry.refresh_token)["jti"] == payload_of(keys, first.refresh_token)["jti"]
    )
    assert (
        payload_of(keys, retry.access_token)["jti"] != payload_of(keys, first.access_token)["jti"]
    )
    await graceful.verify_access(first.access_token)
    await graceful.verify_access(retry.access_token)
    # either copy rotates next; the other one is then a consumed token
    nxt = await graceful.rotate(retry.refresh_token)
    fake_clock.advance(11)
    with pytest.raises(TokenReuseError):
        await graceful.rotate(first.refresh_token)
    with pytest.raises(RevokedTokenError):
        await graceful.verify_access(nxt.access_token)


async def test_grace_window_closes(graceful: TokenIssuer, fake_clock: FakeClock) -> None:
    pair = await graceful.issue("alice")
    first = await graceful.rotate(pair.refresh_token)
    fake_clock.advance(10.5)
    with pytest.raises(TokenReuseError):
        await graceful.rotate(pair.refresh_token)
    with pytest.raises(RevokedTokenError):
        await graceful.verify_access(first.access_token)


async def test_grace_is_off_by_default(issuer: TokenIssuer) -> None:
    pair = await issuer.issue("alice")
    await issuer.rotate(pair.refresh_token)
    with pytest.raises(TokenReuseError):
        await issuer.rotate(pair.refresh_token)


# -- absolute session age --------------------------------------------------------


async def test_max_session_age_ends_a_session_however_often_it_refreshes(
    keys: KeySet, fake_clock: FakeClock
) -> None:
    issuer = make_issuer(keys, fake_clock, max_session_age=3 * 86400)
    pair = await issuer.issue("alice")
    for _ in range(3):
        fake_clock.advance(86400 - 60)
        pair = await issuer.rotate(pair.refresh_token)
    fake_clock.advance(86400)
    with pytest.raises(ExpiredTokenError):
        await issuer.rotate(pair.refresh_token)
    # The family is revoked too: its last access token stops working at once.
    with pytest.raises(InvalidTokenError):
        await issuer.verify_access(pair.access_token)


async def test_without_max_session_age_rotation_slides(keys: KeySet, fake_clock: FakeClock) -> None:
    issuer = make_issuer(keys, fake_clock)
    pair = await issuer.issue("alice")
    for _ in range(10):
        fake_clock.advance(86400)
        pair = await issuer.rotate(pair.refresh_token)
    assert (await issuer.verify_access(pair.access_token)).sub == "alice"


@pytest.mark.parametrize("age", [0, ACCESS_TTL, -1, float("nan")])
def test_max_session_age_must_exceed_the_access_ttl(
    keys: KeySet, fake_clock: FakeClock, age: float
) -> None:
    with pytest.raises(ConfigurationError):
        make_issuer(keys, fake_clock, max_session_age=age)
