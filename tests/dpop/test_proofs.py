"""DPoP proofs: RFC vectors, then each check from the attacker's side.

Proofs come from :class:`tests.support.dpop.DPoPClient` (PyJWT + cryptography);
each attack changes exactly one thing about an otherwise honest proof.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastapi_secure.dpop import (
    DEFAULT_ALGORITHMS,
    DPoPNonceError,
    DPoPNonces,
    DPoPVerifier,
    InvalidDPoPProofError,
    InvalidJWKError,
    MemoryDPoPReplayCache,
    access_token_hash,
    jwk_thumbprint,
    normalize_htu,
    refuse_if_bound,
)
from fastapi_secure.errors import ConfigurationError, InvalidTokenError, StoreUnavailableError
from fastapi_secure.http_errors import http_exception, status_of, www_authenticate
from fastapi_secure.testing import FakeClock
from fastapi_secure.tokens.claims import AccessClaims
from tests.support.dpop import (
    RFC7638_JWK,
    RFC7638_THUMBPRINT,
    RFC9449_ACCESS_TOKEN,
    RFC9449_ATH,
    RFC9449_JKT,
    RFC9449_JWK,
    RFC9449_RESOURCE_PROOF,
    RFC9449_RESOURCE_PROOF_IAT,
    RFC9449_TOKEN_PROOF,
    RFC9449_TOKEN_PROOF_IAT,
    DPoPClient,
    b64url,
    independent_ath,
    independent_thumbprint,
)

pytestmark = pytest.mark.anyio

URL = "https://api.example.test/orders"
TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"


@pytest.fixture(scope="module")
def client() -> DPoPClient:
    return DPoPClient()


@pytest.fixture(scope="module")
def other() -> DPoPClient:
    return DPoPClient()


@pytest.fixture
def verifier(fake_clock: FakeClock) -> DPoPVerifier:
    return DPoPVerifier(clock=fake_clock)


async def refused(verifier: DPoPVerifier, proof: str, **request: Any) -> InvalidDPoPProofError:
    options: dict[str, Any] = {"method": "GET", "uri": URL, **request}
    with pytest.raises(InvalidDPoPProofError) as caught:
        await verifier.verify(proof, **options)
    err = caught.value
    answer = http_exception(err)
    assert answer.status_code == 401
    assert answer.headers is not None
    assert answer.headers["WWW-Authenticate"].startswith("DPoP error=")
    assert err.message == (
        "a fresh DPoP nonce is required"
        if isinstance(err, DPoPNonceError)
        else "invalid DPoP proof"
    )
    return err


# -- RFC vectors ------------------------------------------------------------------


def test_rfc7638_thumbprint_example() -> None:
    assert jwk_thumbprint(RFC7638_JWK) == RFC7638_THUMBPRINT


def test_rfc9449_key_thumbprint_and_token_hash() -> None:
    assert jwk_thumbprint(RFC9449_JWK) == RFC9449_JKT
    assert access_token_hash(RFC9449_ACCESS_TOKEN) == RFC9449_ATH


def test_thumbprint_ignores_optional_members_and_order() -> None:
    shuffled = dict(reversed(list(RFC7638_JWK.items())))
    assert jwk_thumbprint({**shuffled, "use": "sig", "x5t": "zz"}) == RFC7638_THUMBPRINT


@pytest.mark.parametrize(
    "jwk",
    [
        {},
        {"kty": "XX"},
        {"kty": "EC", "crv": "P-256", "x": "a"},
        {"kty": "RSA", "n": 1, "e": "AQAB"},
    ],
)
def test_thumbprint_of_an_incomplete_jwk_is_a_typed_error(jwk: dict[str, Any]) -> None:
    with pytest.raises(InvalidJWKError):
        jwk_thumbprint(jwk)


def test_thumbprint_of_a_non_mapping_is_a_typed_error() -> None:
    with pytest.raises(InvalidJWKError):
        jwk_thumbprint("not a jwk")  # type: ignore[arg-type]


async def test_rfc9449_token_request_proof_verifies(fake_clock: FakeClock) -> None:
    fake_clock.set(RFC9449_TOKEN_PROOF_IAT)
    proof = await DPoPVerifier(clock=fake_clock).verify(
        RFC9449_TOKEN_PROOF, method="POST", uri="https://server.example.com/token"
    )
    assert proof.jkt == RFC9449_JKT
    assert proof.jti == "-BwC3ESc6acc2lTc"
    assert proof.algorithm == "ES256"


async def test_rfc9449_resource_proof_verifies_with_ath_and_jkt(fake_clock: FakeClock) -> None:
    fake_clock.set(RFC9449_RESOURCE_PROOF_IAT)
    verifier = DPoPVerifier(clock=fake_clock)
    proof = await verifier.verify(
        RFC9449_RESOURCE_PROOF,
        method="GET",
        uri="https://resource.example.org/protectedresource",
        access_token=RFC9449_ACCESS_TOKEN,
        jkt=RFC9449_JKT,
    )
    assert proof.ath == RFC9449_ATH
    # The same proof with another token or for another key: refused.
    fake_clock.set(RFC9449_RESOURCE_PROOF_IAT)
    fresh = DPoPVerifier(clock=fake_clock)
    uri = "https://resource.example.org/protectedresource"
    await refused(fresh, RFC9449_RESOURCE_PROOF, uri=uri, access_token="other")
    await refused(fresh, RFC9449_RESOURCE_PROOF, uri=uri, jkt=RFC7638_THUMBPRINT)


# -- honest proofs -----------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["ES256", "ES384", "EdDSA", "RS256", "PS256"])
async def test_honest_proofs_of_each_key_type_verify(fake_clock: FakeClock, algorithm: str) -> None:
    holder = DPoPClient(algorithm)
    verifier = DPoPVerifier(clock=fake_clock)
    proof = holder.proof("POST", URL, iat=fake_clock(), access_token=TOKEN)
    checked = await verifier.verify(
        proof, method="POST", uri=URL, access_token=TOKEN, jkt=holder.jkt
    )
    assert checked.jkt == holder.jkt == independent_thumbprint(holder.public_jwk)
    assert checked.htm == "POST"
    assert checked.algorithm == algorithm
    assert "public_jwk" not in repr(checked)


async def test_htu_is_compared_normalized(
    verifier: DPoPVerifier, client: DPoPClient, fake_clock: FakeClock
) -> None:
    proof = client.proof(
        "GET", "HTTPS://API.Example.TEST:443/./a/../orders?x=1#f", iat=fake_clock()
    )
    await verifier.verify(proof, method="GET", uri="https://api.example.test/orders?page=2")


async def test_iat_window_edges(client: DPoPClient, fake_clock: FakeClock) -> None:
    verifier = DPoPVerifier(clock=fake_clock, max_age=60, leeway=5)
    now = fake_clock()
    await verifier.verify(client.proof("GET", URL, iat=now - 60), method="GET", uri=URL)
    await verifier.verify(client.proof("GET", URL, iat=now + 5), method="GET", uri=URL)
    await verifier.verify(client.proof("GET", URL, iat=now + 0.5), method="GET", uri=URL)


# -- attacks -------------------------------------------------------------------------


async def test_a_replayed_proof_is_refused(
    verifier: DPoPVerifier, client: DPoPClient, fake_clock: FakeClock
) -> None:
    proof = client.proof("GET", URL, iat=fake_clock())
    await verifier.verify(proof, method="GET", uri=URL)
    err = await refused(verifier, proof)
    assert err.reason == "jti replayed"
    # Still refused until the proof would be too old anyway.
    fake_clock.advance(verifier.max_age)
    await refused(verifier, proof)


async def test_a_jti_reused_in_a_new_proof_is_refused(
    verifier: DPoPVerifier, client: DPoPClient, fake_clock: FakeClock
) -> None:
    await verifier.verify(
        client.proof("GET", URL, iat=fake_clock(), jti="j1"), method="GET", uri=URL
    )
    err = await refused(verifier, client.proof("GET", URL, iat=fake_clock() + 1, jti="j1"))
    assert err.reason == "jti replayed"


async def test_the_same_jti_from_two_keys_does_not_collide(
    verifier: DPoPVerifier, client: DPoPClient, other: DPoPClient, fake_clock: FakeClock
) -> None:
    await verifier.verify(
        client.proof("GET", URL, iat=fake_clock(), jti="j"), method="GET", uri=URL
    )
    await verifier.verify(other.proof("GET", URL, iat=fake_clock(), jti="j"), method="GET", uri=URL)


async def test_a_refused_proof_burns_no_jti(
    verifier: DPoPVerifier, client: DPoPClient, fake_clock: FakeClock
) -> None:
    await refused(verifier, client.proof("POST", URL, iat=fake_clock(), jti="keep"))
    await verifier.verify(
        client.proof("GET", URL, iat=fake_clock(), jti="keep"), method="GET", uri=URL
    )


@pytest.mark.parametrize(
    ("htm", "htu"),
    [
        ("POST", URL),
        ("get", URL),
        ("GET", "https://api.example.test/orders/1"),
        ("GET", "http://api.example.test/orders"),
        ("GET", "https://api.example.test:8443/orders"),
        ("GET", "https://evil.example.test/orders"),
        ("GET", "https://api.example.test/Orders"),
        ("GET", "https://api.example.test/orders/"),
        ("GET", "https://user@api.example.test/orders"),
        ("GET", "ftp://api.example.test/orders"),
        ("GET", "/orders"),
    ],
)
async def test_wrong_htm_or_htu_is_refused(
    verifier: DPoPVerifier, client: DPoPClient, fake_clock: FakeClock, htm: str, htu: str
) -> None:
    err = await refused(verifier, client.proof(htm, htu, iat=fake_clock()))
    assert err.reason is not None
    assert "htm" in err.reason or "htu" in err.reason


@pytest.mark.parametrize("offset", [-61, -3600, 6, 3600])
async def test_stale_or_future_iat_is_refused(
    client: DPoPClient, fake_clock: FakeClock, offset: int
) -> None:
    verifier = DPoPVerifier(clock=fake_clock, max_age=60, leeway=5)
    err = await refused(verifier, client.proof("GET", URL, iat=fake_clock() + offset))
    assert err.reason in {"iat too old", "iat in the future"}


@pytest.mark.parametrize("iat", ["1800000000", None, True, 1e400])
async def test_a_non_numeric_iat_is_refused(
    verifier: DPoPVerifier, client: DPoPClient, iat: Any
) -> None:
    proof = client.proof("GET", URL, iat=0, claims={"iat": iat})
    await refused(verifier, proof)


@pytest.mark.parametrize("missing", ["jti", "htm", "htu", "iat"])
async def test_a_proof_missing_a_required_claim_is_refused(
    verifier: DPoPVerifier, client: DPoPClient, fake_clock: FakeClock, missing: str
) -> None:
    await refused(verifier, client.proof("GET", URL, iat=fake_clock(), omit=(missing,)))


@pytest.mark.parametrize(
    "claims",
    [
        {"jti": ""},
        {"jti": 7},
        {"jti": "j" * 257},
        {"htm": 1},
        {"htu": ["x"]},
        {"nonce": 1},
        {"ath": 2},
    ],
)
async def test_ill_typed_claims_are_refused(
    verifier: DPoPVerifier, client: DPoPClient, fake_clock: FakeClock, claims: dict[str, Any]
) -> None:
    await refused(verifier, client.proof("GET", URL, iat=fake_clock(), claims=claims))


async def test_wrong_or_missing_ath_is_refused(
    verifier: DPoPVerifier, client: DPoPClient, fake_clock: FakeClock
) -> None:
    err = await refused(
        verifier,
        client.proof("GET", URL, iat=fake_clock(), access_token="another-token"),
        access_token=TOKEN,
    )
    assert err.reason == "ath is not the hash of the access token"
    err = await refused(verifier, client.proof("GET", URL, iat=fake_clock()), access_token=TOKEN)
    assert err.reason == "ath missing"
    err = await refused(
        verifier,
        client.proof("GET", URL, iat=fake_clock(), access_token=TOKEN),
        access_token="tøken",
    )
    assert err.reason == "access token is not ASCII"


async def test_a_proof_from_another_key_than_cnf_jkt_is_refused(
    verifier: DPoPVerifier, client: DPoPClient, other: DPoPClient, fake_clock: FakeClock
) -> None:
    proof = other.proof("GET", URL, iat=fake_clock(), access_token=TOKEN)
    err = await refused(verifier, proof, access_token=TOKEN, jkt=client.jkt)
    assert err.reason == "proof key is not the token's cnf.jkt"


async def test_a_proof_signed_by_another_key_than_its_jwk_is_refused(
    verifier: DPoPVerifier, client: DPoPClient, other: DPoPClient, fake_clock: FakeClock
) -> None:
    # The victim's public key in the header, the attacker's signature.
    proof = other.proof("GET", URL, iat=fake_clock(), jwk=client.public_jwk)
    err = await refused(verifier, proof, jkt=client.jkt)
    assert err.reason == "signature does not verify with the jwk"


async def test_a_tampered_payload_is_refused(
    verifier: DPoPVerifier, client: DPoPClient, fake_clock: FakeClock
) -> None:
    header, _, signature = client.proof("GET", URL, iat=fake_clock()).split(".")
    payload = b64url(
        json.dumps({"jti": "x", "htm": "DELETE", "htu": URL, "iat": fake_clock()}).encode()
    )
    await refused(verifier, f"{header}.{payload}.{signature}", method="DELETE")


async def test_alg_none_is_refused(
    verifier: DPoPVerifier, client: DPoPClient, fake_clock: FakeClock
) -> None:
    proof = client.proof("GET", URL, iat=fake_clock(), algorithm="none", signing_key=None)
    assert proof.endswith(".")
    err = await refused(verifier, proof)
    assert err.reason == "alg not allowed"


@pytest.mark.parametrize("casing", ["NONE", "None", "nOnE"])
async def test_alg_none_in_any_casing_is_refused(
    verifier: DPoPVerifier, client: DPoPClient, fake_clock: FakeClock, casing: str
) -> None:
    proof = client.proof("GET", URL, iat=fake_clock(), algorithm="none", signing_key=None)
    header = {"typ": "dpop+jwt", "alg": casing, "jwk": client.public_jwk}
    forged = b64url(json.dumps(header).encode()) + "." + proof.split(".", 1)[1]
    await refused(verifier, forged)


async def test_an_hs256_proof_is_refused(
    verifier: DPoPVerifier, client: DPoPClient, fake_clock: FakeClock
) -> None:
    secret = b"s" * 32
    oct_jwk = {"kty": "oct", "k": b64url(secret)}
    for jwk in (oct_jwk, client.public_jwk):
        proof = client.proof(
            "GET", URL, iat=fake_clock(), algorithm="HS256", signing_key=secret, jwk=jwk
        )
        err = await refused(verifier, proof)
        assert err.reason == "alg not allowed"


async def test_hs256_cannot_be_allowed(fake_clock: FakeClock) -> None:
    for algorithms in (["HS256"], ["ES256", "none"], [], "ES256"):
        with pytest.raises(ConfigurationError):
            DPoPVerifier(clock=fake_clock, algorithms=algorithms)


async def test_an_algorithm_outside_a_narrowed_list_is_refused(
    fake_clock: FakeClock,
) -> None:
    verifier = DPoPVerifier(clock=fake_clock, algorithms=["ES256"])
    assert verifier.algorithms == ("ES256",)
    holder = DPoPClient("EdDSA")
    await refused(verifier, holder.proof("GET", URL, iat=fake_clock()))


@pytest.mark.parametrize("member", ["d", "p", "q", "dp", "dq", "qi", "k"])
async def test_a_private_key_in_the_jwk_is_refused(
    verifier: DPoPVerifier, client: DPoPClient, fake_clock: FakeClock, member: str
) -> None:
    jwk = {**client.public_jwk, member: client.private_jwk.get("d", "AAAA")}
    err = await refused(verifier, client.proof("GET", URL, iat=fake_clock(), jwk=jwk))
    assert err.reason == "jwk holds private key material"


async def test_the_full_private_jwk_is_refused(
    verifier: DPoPVerifier, client: DPoPClient, fake_clock: FakeClock
) -> None:
    await refused(verifier, client.proof("GET", URL, iat=fake_clock(), jwk=client.private_jwk))


@pytest.mark.parametrize("typ", [None, "JWT", "at+jwt", "DPOP+JWT", "application/dpop+jwt"])
async def test_missing_or_wrong_typ_is_refused(
    verifier: DPoPVerifier, client: DPoPClient, fake_clock: FakeClock, typ: str | None
) -> None:
    proof = client.proof("GET", URL, iat=fake_clock(), typ=typ)
    if typ is None:
        assert "typ" not in jwt.get_unverified_header(proof)
    err = await refused(verifier, proof)
    assert err.reason == "typ is not dpop+jwt"


async def test_missing_or_non_object_jwk_is_refused(
    verifier: DPoPVerifier, client: DPoPClient, fake_clock: FakeClock
) -> None:
    for jwk in (None, "jwk", [client.public_jwk]):
        err = await refused(verifier, client.proof("GET", URL, iat=fake_clock(), jwk=jwk))
        assert err.reason == "no jwk header"


@pytest.mark.parametrize(
    "change",
    [
        {"kty": "RSA"},
        {"crv": "P-384"},
        {"alg": "ES384"},
        {"x": "AAAA"},
        {"x": 5},
    ],
)
async def test_a_jwk_that_does_not_fit_alg_is_refused(
    verifier: DPoPVerifier, client: DPoPClient, fake_clock: FakeClock, change: dict[str, Any]
) -> None:
    jwk = {**client.public_jwk, **change}
    await refused(verifier, client.proof("GET", URL, iat=fake_clock(), jwk=jwk))


async def test_a_short_rsa_key_is_refused(fake_clock: FakeClock) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    holder = DPoPClient("RS256")
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the attack
    weak_jwk = dict(jwt.get_algorithm_by_name("RS256").to_jwk(weak.public_key(), as_dict=True))
    with pytest.warns(jwt.InsecureKeyLengthWarning):  # PyJWT warns the signer too
        proof = holder.proof("GET", URL, iat=fake_clock(), jwk=weak_jwk, signing_key=weak)
    err = await refused(DPoPVerifier(clock=fake_clock), proof)
    assert err.reason == "RSA key shorter than 2048 bits"


async def test_a_crit_header_is_refused(
    verifier: DPoPVerifier, client: DPoPClient, fake_clock: FakeClock
) -> None:
    # An extension PyJWT knows (b64, true) passes its own check; we take none.
    # Signed by hand: PyJWT's encoder drops "b64": true.
    header: dict[str, Any] = {"typ": "dpop+jwt", "alg": "ES256", "jwk": client.public_jwk}
    header.update(crit=["b64"], b64=True)
    claims = {"jti": "c", "htm": "GET", "htu": URL, "iat": fake_clock()}
    signing_input = ".".join(b64url(json.dumps(part).encode()) for part in (header, claims))
    signature = jwt.get_algorithm_by_name("ES256").sign(signing_input.encode(), client.private_key)
    err = await refused(verifier, f"{signing_input}.{b64url(signature)}")
    assert err.reason == "crit header"
    proof = client.proof("GET", URL, iat=fake_clock(), headers={"crit": ["exp"], "exp": 1})
    await refused(verifier, proof)


async def test_an_oversized_proof_is_refused_before_parsing(
    client: DPoPClient, fake_clock: FakeClock
) -> None:
    verifier = DPoPVerifier(clock=fake_clock, max_proof_bytes=1024)
    proof = client.proof("GET", URL, iat=fake_clock(), claims={"pad": "x" * 2000})
    err = await refused(verifier, proof)
    assert err.reason == "proof too long or not ASCII"


@pytest.mark.parametrize(
    "proof", ["", "a", "a.b", "a.b.c", "....", "é.é.é", "eyJ0eXAiOiJkcG9wK2p3dCJ9.e30.", "x" * 5000]
)
async def test_malformed_proofs_are_refused(verifier: DPoPVerifier, proof: str) -> None:
    await refused(verifier, proof)


async def test_a_non_string_proof_is_refused(verifier: DPoPVerifier) -> None:
    await refused(verifier, None)  # type: ignore[arg-type]


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    proof=st.text(max_size=600)
    | st.from_regex(
        r"[A-Za-z0-9_-]{0,80}\.[A-Za-z0-9_-]{0,80}\.[A-Za-z0-9_-]{0,90}", fullmatch=True
    )
)
def test_arbitrary_text_is_refused_with_a_typed_error(proof: str) -> None:
    verifier = DPoPVerifier(clock=FakeClock())
    with pytest.raises(InvalidDPoPProofError):
        asyncio.run(verifier.verify(proof, method="GET", uri=URL))


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    header=st.dictionaries(
        st.sampled_from(["typ", "alg", "jwk", "kid", "crit", "b64", "x5c"]),
        _json_values,
        max_size=5,
    ),
    jwk=st.dictionaries(
        st.sampled_from(["kty", "crv", "x", "y", "n", "e", "d", "alg"]), _json_values, max_size=6
    ),
    payload=st.dictionaries(
        st.sampled_from(["jti", "htm", "htu", "iat", "ath", "nonce"]), _json_values, max_size=6
    ),
    signature=st.binary(max_size=80),
)
def test_arbitrary_structured_proofs_are_refused_with_a_typed_error(
    header: dict[str, Any], jwk: dict[str, Any], payload: dict[str, Any], signature: bytes
) -> None:
    # Structurally plausible proofs, signed by nobody: never accepted, never a crash.
    header = {"typ": "dpop+jwt", "alg": "ES256", **header, "jwk": {"kty": "EC", **jwk}}
    proof = ".".join(
        b64url(part)
        for part in (json.dumps(header).encode(), json.dumps(payload).encode(), signature)
    )
    verifier = DPoPVerifier(clock=FakeClock())
    with pytest.raises(InvalidDPoPProofError):
        asyncio.run(verifier.verify(proof, method="GET", uri=URL))


# -- htu normalization ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "normalized"),
    [
        ("https://Example.COM/a", "https://example.com/a"),
        ("HTTPS://example.com", "https://example.com/"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("http://example.com:80/a", "http://example.com/a"),
        ("http://example.com:443/a", "http://example.com:443/a"),
        ("https://example.com:8443/a?q=1#frag", "https://example.com:8443/a"),
        ("https://example.com/a/./b/../c", "https://example.com/a/c"),
        ("https://example.com/a/..", "https://example.com/"),
        ("https://example.com/%7euser/%2f%3A", "https://example.com/~user/%2F%3A"),
        ("https://[2001:DB8::1]:443/x", "https://[2001:db8::1]/x"),
        ("https://[::1]:8080/x", "https://[::1]:8080/x"),
    ],
)
def test_normalize_htu(uri: str, normalized: str) -> None:
    assert normalize_htu(uri) == normalized


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "/relative",
        "mailto:a@example.com",
        "https://user:pw@example.com/",
        "https://",
        "https://exa mple.com/",
        "https://example.com/a b",
        "https://example.com/%zz",
        "https://example.com/%4",
        "https://example.com:99999/",
        "https://example.com:port/",
        "https://exämple.com/",
        "https://example.com/<script>",
        "https://[zz::1]/",
        "https://ex%41mple.com/",
        "https://example.com/" + "a" * 3000,
    ],
)
def test_normalize_htu_refuses_what_is_no_http_uri(uri: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - one per malformation, each its own message
        normalize_htu(uri)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=200))
def test_normalize_htu_raises_only_value_error_and_is_idempotent(uri: str) -> None:
    try:
        once = normalize_htu(uri)
    except ValueError:
        return
    assert normalize_htu(once) == once
    assert "?" not in once
    assert "#" not in once


@settings(max_examples=300, deadline=None)
@given(
    path=st.lists(st.sampled_from(["a", "B", ".", "..", "%7e", "%41", "%2F", "x-y"]), max_size=8),
    query=st.text(alphabet="abc=&", max_size=10),
)
def test_normalized_equal_uris_are_the_same_resource(path: list[str], query: str) -> None:
    uri = "https://example.com/" + "/".join(path)
    assert normalize_htu(uri + "?" + query) == normalize_htu(normalize_htu(uri))


# -- nonces ------------------------------------------------------------------------


@pytest.fixture
def nonces(fake_clock: FakeClock) -> DPoPNonces:
    return DPoPNonces("n" * 32, lifetime=300, clock=fake_clock)


async def test_without_the_server_nonce_the_proof_gets_use_dpop_nonce(
    nonces: DPoPNonces, client: DPoPClient, fake_clock: FakeClock
) -> None:
    verifier = DPoPVerifier(clock=fake_clock, nonces=nonces)
    err = await refused(verifier, client.proof("GET", URL, iat=fake_clock(), jti="j"))
    assert isinstance(err, DPoPNonceError)
    assert www_authenticate(err) == 'DPoP error="use_dpop_nonce"'
    assert err.nonce == nonces.current()
    assert err.reason == "nonce missing"
    # Retried with the nonce (same jti: the refused proof burned nothing).
    proof = client.proof("GET", URL, iat=fake_clock(), jti="j", nonce=err.nonce)
    assert (await verifier.verify(proof, method="GET", uri=URL)).nonce == err.nonce


async def test_stale_or_forged_nonces_get_use_dpop_nonce(
    nonces: DPoPNonces, client: DPoPClient, fake_clock: FakeClock
) -> None:
    verifier = DPoPVerifier(clock=fake_clock, nonces=nonces)
    issued = nonces.current()
    fake_clock.advance(300)
    assert nonces.current() != issued
    # The previous window's nonce still passes...
    await verifier.verify(
        client.proof("GET", URL, iat=fake_clock(), nonce=issued), method="GET", uri=URL
    )
    fake_clock.advance(300)
    # ...two windows on, it is stale.
    for nonce in (issued, "forged", "x" * 100, DPoPNonces("m" * 32, clock=fake_clock).current()):
        err = await refused(verifier, client.proof("GET", URL, iat=fake_clock(), nonce=nonce))
        assert isinstance(err, DPoPNonceError)
        assert err.reason == "nonce stale or unknown"


async def test_an_invalid_proof_gets_invalid_dpop_proof_not_a_nonce(
    nonces: DPoPNonces, client: DPoPClient, other: DPoPClient, fake_clock: FakeClock
) -> None:
    verifier = DPoPVerifier(clock=fake_clock, nonces=nonces)
    proof = other.proof("GET", URL, iat=fake_clock(), jwk=client.public_jwk)
    err = await refused(verifier, proof)
    assert not isinstance(err, DPoPNonceError)


def test_two_workers_with_one_secret_share_nonces(fake_clock: FakeClock) -> None:
    first = DPoPNonces("s" * 32, clock=fake_clock)
    second = DPoPNonces("s" * 32, clock=fake_clock)
    assert first.is_current(second.current())
    assert not first.is_current(None)
    assert "s" * 32 not in repr(first)


@pytest.mark.parametrize(
    "options", [{"secret": "short"}, {"lifetime": 1}, {"lifetime": 10_000}, {"lifetime": True}]
)
def test_nonce_configuration_is_bounded(options: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {"secret": "s" * 32, **options}
    with pytest.raises(ConfigurationError):
        DPoPNonces(**arguments)


# -- configuration -------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"max_age": 0},
        {"max_age": 301},
        {"max_age": True},
        {"leeway": -1},
        {"leeway": 61},
        {"max_proof_bytes": 100},
        {"max_proof_bytes": 100_000},
        {"max_proof_bytes": 4096.0},
        {"replay_cache": object()},
        {"nonces": "secret"},
    ],
)
def test_verifier_configuration_is_bounded(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        DPoPVerifier(**options)


def test_verifier_defaults_are_strict() -> None:
    verifier = DPoPVerifier()
    assert verifier.max_age == 60
    assert verifier.leeway == 5
    assert verifier.nonces is None
    assert isinstance(verifier.replay_cache, MemoryDPoPReplayCache)
    assert set(verifier.algorithms) == set(DEFAULT_ALGORITHMS)
    assert not any(alg.startswith("HS") or alg.lower() == "none" for alg in verifier.algorithms)


async def test_a_full_replay_cache_fails_closed(client: DPoPClient, fake_clock: FakeClock) -> None:
    verifier = DPoPVerifier(
        clock=fake_clock, replay_cache=MemoryDPoPReplayCache(clock=fake_clock, max_entries=1)
    )
    await verifier.verify(client.proof("GET", URL, iat=fake_clock()), method="GET", uri=URL)
    with pytest.raises(StoreUnavailableError) as caught:
        await verifier.verify(client.proof("GET", URL, iat=fake_clock()), method="GET", uri=URL)
    assert status_of(caught.value) == 503


# -- bound tokens as bearer ------------------------------------------------------------


def _claims(**extra: Any) -> AccessClaims:
    return AccessClaims.model_validate(
        {
            "iss": "i",
            "sub": "s",
            "aud": "a",
            "exp": 2,
            "iat": 1,
            "jti": "j",
            "sid": "f",
            "auth_time": 1,
            **extra,
        }
    )


def test_refuse_if_bound_refuses_only_bound_claims() -> None:
    refuse_if_bound(_claims())
    with pytest.raises(InvalidTokenError) as caught:
        refuse_if_bound(_claims(cnf={"jkt": RFC9449_JKT}))
    assert caught.value.reason == "DPoP-bound token presented without DPoP"


def test_the_ath_helper_matches_an_independent_computation() -> None:
    assert access_token_hash(TOKEN) == independent_ath(TOKEN)
