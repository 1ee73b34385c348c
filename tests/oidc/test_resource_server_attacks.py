"""The resource-server half from the attacker's side: tokens and introspection
answers whose numbers, issuer spelling or type try to slip past the checks.

Everything runs against a crafted provider on loopback (real HTTP, real keys).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from fastapi_secure.errors import InvalidTokenError
from fastapi_secure.http_errors import status_of
from fastapi_secure.oidc import (
    IntrospectionVerifier,
    ProviderTokenVerifier,
    RemoteKeySet,
    TrustedIssuer,
)
from fastapi_secure.testing import FakeClock
from tests.support.oidc_servers import CraftedProvider, Route, crafted_provider

pytestmark = pytest.mark.anyio

AUDIENCE = "https://api.example.test"
NOW = 1_800_000_000
HUGE = [10**400, -(10**400), 2**53 + 1, -(2**53) - 1]
TIME_CLAIMS = ("exp", "iat", "nbf", "auth_time")


@pytest.fixture
def provider() -> Iterator[CraftedProvider]:
    with crafted_provider() as crafted:
        crafted.serve_discovery()
        crafted.serve_jwks()
        yield crafted


def verifier_for(
    provider: CraftedProvider, clock: FakeClock, issuer: str | None = None, **options: Any
) -> ProviderTokenVerifier:
    keys = RemoteKeySet(issuer or provider.issuer, allow_insecure_loopback=True, clock=clock)
    options.setdefault("audience", AUDIENCE)
    return ProviderTokenVerifier(TrustedIssuer(keys, **options), clock=clock)


def claims_of(provider: CraftedProvider, **overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": provider.issuer,
        "sub": "alice",
        "aud": AUDIENCE,
        "iat": NOW,
        "exp": NOW + 300,
        "jti": "token-1",
        "client_id": "spa",
    }
    claims.update(overrides)
    return claims


@pytest.mark.parametrize("value", HUGE, ids=lambda v: f"{len(str(v))}-digits")
@pytest.mark.parametrize("claim", TIME_CLAIMS)
async def test_a_time_claim_beyond_any_time_is_an_invalid_token(
    provider: CraftedProvider, fake_clock: FakeClock, claim: str, value: int
) -> None:
    # math.isfinite(10**400) raised OverflowError: a 500 for any direct caller.
    fake_clock.set(NOW)
    verifier = verifier_for(provider, fake_clock)
    token = provider.sign(claims_of(provider, **{claim: value}))
    with pytest.raises(InvalidTokenError) as caught:
        await verifier.verify_access(token)
    assert status_of(caught.value) == 401


@pytest.mark.parametrize("value", HUGE, ids=lambda v: f"{len(str(v))}-digits")
@pytest.mark.parametrize("claim", TIME_CLAIMS)
async def test_an_introspection_answer_beyond_any_time_is_an_invalid_token(
    provider: CraftedProvider, fake_clock: FakeClock, claim: str, value: int
) -> None:
    fake_clock.set(NOW)
    answer = {"active": True, "sub": "alice", "aud": AUDIENCE, "exp": NOW + 100, claim: value}
    provider.routes["/introspect"] = Route(body=answer)
    verifier = IntrospectionVerifier(
        f"{provider.url}/introspect",
        client_id="orders-api",
        client_secret="orders-api-secret",
        issuer=provider.issuer,
        audience=AUDIENCE,
        allow_insecure_loopback=True,
        clock=fake_clock,
    )
    try:
        with pytest.raises(InvalidTokenError):
            await verifier.verify_access("opaque-token")
    finally:
        await verifier.aclose()


@pytest.mark.parametrize(
    "spelling",
    ["{issuer}/", "{issuer}//", "{issuer}/.", "{issuer}?", "{issuer}#", " {issuer}", "{upper}"],
)
async def test_an_issuer_spelled_otherwise_is_not_trusted_and_costs_no_fetch(
    provider: CraftedProvider, fake_clock: FakeClock, spelling: str
) -> None:
    fake_clock.set(NOW)
    verifier = verifier_for(provider, fake_clock)
    iss = spelling.format(issuer=provider.issuer, upper=provider.issuer.upper())
    with pytest.raises(InvalidTokenError) as caught:
        await verifier.verify_access(provider.sign(claims_of(provider, iss=iss)))
    assert caught.value.reason == "token from an issuer that is not trusted"
    assert provider.hits["/jwks"] == 0


async def test_a_trailing_slash_issuer_is_its_own_tenant(
    provider: CraftedProvider, fake_clock: FakeClock
) -> None:
    # Configured with the slash (some providers' iss has one), tokens without it
    # are another tenant: exact comparison both ways, discovery included.
    fake_clock.set(NOW)
    provider.serve_discovery(issuer=provider.issuer + "/")
    slashed = verifier_for(provider, fake_clock, issuer=provider.issuer + "/")
    assert (
        await slashed.verify_access(provider.sign(claims_of(provider, iss=provider.issuer + "/")))
    ).iss == provider.issuer + "/"
    with pytest.raises(InvalidTokenError):
        await slashed.verify_access(provider.sign(claims_of(provider)))


@pytest.mark.parametrize(
    ("typ", "accepted"),
    [
        ("at+jwt", True),
        ("AT+JWT", True),  # media types are case-insensitive (RFC 2045)
        ("application/at+jwt", True),
        ("JWT", False),  # an ID token
        ("jwt", False),
        ("at+jwt ", False),
        (" at+jwt", False),
        ("at+jwt; charset=utf-8", False),
        ("application/jwt", False),
        ("rt+jwt", False),  # our own refresh tokens' type
        ("dpop+jwt", False),  # a DPoP proof
        ("at+jwt\x00", False),
        ("x", False),
    ],
)
async def test_rfc9068_typ_variations(
    provider: CraftedProvider, fake_clock: FakeClock, typ: str, accepted: bool
) -> None:
    fake_clock.set(NOW)
    verifier = verifier_for(provider, fake_clock, rfc9068=True)
    token = provider.sign(claims_of(provider), typ=typ)
    if accepted:
        await verifier.verify_access(token)
    else:
        with pytest.raises(InvalidTokenError) as caught:
            await verifier.verify_access(token)
        assert caught.value.reason == "typ is not at+jwt (RFC 9068)"


async def test_an_id_token_for_this_audience_is_refused_in_rfc9068_mode(
    provider: CraftedProvider, fake_clock: FakeClock
) -> None:
    # The provider's ID token, as a front end would hold it: typ JWT, aud the client,
    # nonce and at_hash, no client_id. Even if the API's audience is that client id,
    # RFC 9068 mode refuses it.
    fake_clock.set(NOW)
    verifier = verifier_for(provider, fake_clock, rfc9068=True, audience="spa")
    id_token = provider.sign(
        {
            "iss": provider.issuer,
            "sub": "alice",
            "aud": "spa",
            "iat": NOW,
            "exp": NOW + 300,
            "nonce": "n-1",
            "at_hash": "x" * 22,
        },
        typ="JWT",
    )
    with pytest.raises(InvalidTokenError):
        await verifier.verify_access(id_token)


@pytest.mark.parametrize(
    "aud",
    [
        ["other", AUDIENCE + "/"],
        [AUDIENCE.upper()],
        [[AUDIENCE]],
        [AUDIENCE, None],
        [{"aud": AUDIENCE}],
        AUDIENCE + " ",
        "",
        [],
    ],
)
async def test_audience_look_alikes_are_refused(
    provider: CraftedProvider, fake_clock: FakeClock, aud: Any
) -> None:
    fake_clock.set(NOW)
    verifier = verifier_for(provider, fake_clock)
    with pytest.raises(InvalidTokenError):
        await verifier.verify_access(provider.sign(claims_of(provider, aud=aud)))


@pytest.mark.parametrize("sub", [5, 0, True, None, ["alice"], {"id": "alice"}, ""])
async def test_a_subject_that_is_not_a_string_is_refused(
    provider: CraftedProvider, fake_clock: FakeClock, sub: Any
) -> None:
    fake_clock.set(NOW)
    verifier = verifier_for(provider, fake_clock)
    with pytest.raises(InvalidTokenError) as caught:
        await verifier.verify_access(provider.sign(claims_of(provider, sub=sub)))
    assert caught.value.reason == "missing sub claim"


@pytest.mark.parametrize(
    "extra",
    [
        {"jwk": "ATTACKER_JWK"},
        {"jku": "https://attacker.invalid/jwks"},
        {"x5u": "https://attacker.invalid/cert.pem"},
        {"x5c": ["MIIB"]},
        {"crit": ["exp"], "exp": 1},
        {"b64": False, "crit": ["b64"]},
    ],
    ids=["jwk", "jku", "x5u", "x5c", "crit", "b64"],
)
async def test_a_token_that_brings_its_own_key_is_refused(
    provider: CraftedProvider, fake_clock: FakeClock, extra: dict[str, Any]
) -> None:
    # Signed with the attacker's key, named like the provider's ("good-1"), with a
    # header pointing at the attacker's key: the provider's keys alone decide.
    fake_clock.set(NOW)
    attacker = ec.generate_private_key(ec.SECP256R1())
    headers: dict[str, Any] = {"kid": "good-1", "typ": "at+jwt", **extra}
    if headers.get("jwk") == "ATTACKER_JWK":
        headers["jwk"] = jwt.get_algorithm_by_name("ES256").to_jwk(
            attacker.public_key(), as_dict=True
        )
    token = jwt.encode(claims_of(provider), attacker, algorithm="ES256", headers=headers)
    verifier = verifier_for(provider, fake_clock)
    with pytest.raises(InvalidTokenError):
        await verifier.verify_access(token)
    # The same header members on a token the provider really signed are refused too:
    # we issue none of them and implement no extension.
    genuine = jwt.encode(
        claims_of(provider),
        provider.signing.signing_key._signing,
        algorithm="ES256",
        headers=headers,
    )
    with pytest.raises(InvalidTokenError) as caught:
        await verifier.verify_access(genuine)
    assert caught.value.reason in (
        "not a JWT",  # PyJWT's own parse, which picks the issuer, refuses crit and b64
        "token references or embeds a key",
        "unsupported critical header",
        "unencoded payload (b64) not supported",
    )
