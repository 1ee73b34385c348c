"""DPoP proofs whose claims an attacker chose: text and numbers that once escaped
the checks as Python errors (a 500) instead of a refusal.

The attacker signs the proof with a key of their own, so every claim of it is
theirs to pick; the answer must still be a 401 with the DPoP challenge.
"""

import math
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import Depends, FastAPI, Request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastapi_secure.dpop import (
    DPoPAuth,
    DPoPNonceError,
    DPoPNonces,
    DPoPVerifier,
    InvalidDPoPProofError,
)
from fastapi_secure.testing import FakeClock
from fastapi_secure.tokens.claims import AccessClaims, RefreshClaims
from fastapi_secure.tokens.issuer import Grant, TokenIssuer
from fastapi_secure.tokens.keys import KeySet
from fastapi_secure.tokens.stores.memory import MemoryTokenStore
from tests.support.dpop import DPoPClient

pytestmark = pytest.mark.anyio

BASE = "https://testserver"
URL = "https://api.example.test/orders"
NONCE_SECRET = b"n" * 32


async def _grant(claims: RefreshClaims) -> Grant:
    return Grant()


class World:
    """A DPoP-protected app with server nonces, over ASGI (app errors raise in the test)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.issuer = TokenIssuer(
            KeySet.from_secret("h" * 64, kid="k1"),
            MemoryTokenStore(clock=clock),
            issuer="https://auth.example.test",
            audience="https://api.example.test",
            clock=clock,
            grant_loader=_grant,
        )
        self.nonces = DPoPNonces(NONCE_SECRET, clock=clock)
        self.auth = DPoPAuth(self.issuer, DPoPVerifier(clock=clock, nonces=self.nonces))
        app = FastAPI()
        auth = self.auth

        @app.get("/me")
        async def me(claims: Annotated[AccessClaims, Depends(auth)]) -> dict[str, str]:
            return {"sub": claims.sub}

        @app.post("/login")
        async def login(request: Request) -> dict[str, Any]:
            jkt = await auth.check_login_proof(request, required=True)
            return (await self.issuer.issue("alice", dpop_jkt=jkt)).model_dump()

        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)
        self.client = DPoPClient()


@pytest.fixture
async def world(fake_clock: FakeClock) -> AsyncIterator[World]:
    w = World(fake_clock)
    async with w.http:
        yield w


def assert_proof_refused(response: httpx.Response, error: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith(f'DPoP error="{error}"')


NON_ASCII_NONCES = ["é", "nonce-\u00ff", "\u2603", "\U0001f600"]


@pytest.mark.parametrize("nonce", NON_ASCII_NONCES)
async def test_a_non_ascii_nonce_gets_use_dpop_nonce_not_a_500(world: World, nonce: str) -> None:
    # hmac.compare_digest raises TypeError for non-ASCII text: the nonce check
    # must say "not current" before comparing.
    proof = world.client.proof("POST", f"{BASE}/login", iat=world.clock(), nonce=nonce)
    response = await world.http.post("/login", headers={"DPoP": proof})
    assert_proof_refused(response, "use_dpop_nonce")
    assert response.headers["dpop-nonce"] == world.nonces.current()


async def test_a_non_ascii_nonce_on_a_resource_request_is_refused(world: World) -> None:
    login_proof = world.client.proof(
        "POST", f"{BASE}/login", iat=world.clock(), nonce=world.nonces.current()
    )
    pair = (await world.http.post("/login", headers={"DPoP": login_proof})).json()
    token = pair["access_token"]
    proof = world.client.proof(
        "GET", f"{BASE}/me", iat=world.clock(), access_token=token, nonce="n\u00f8nce"
    )
    response = await world.http.get(
        "/me", headers={"Authorization": f"DPoP {token}", "DPoP": proof}
    )
    assert_proof_refused(response, "use_dpop_nonce")


@given(nonce=st.text(max_size=80))
def test_is_current_answers_a_bool_for_any_text(nonce: str) -> None:
    nonces = DPoPNonces(NONCE_SECRET, clock=FakeClock(1_700_000_000))
    assert nonces.is_current(nonce) is (nonce == nonces.current())


HUGE_TIMES = [10**400, -(10**400), 2**53 + 1, -(2**53) - 1, 10**20]


@pytest.mark.parametrize("iat", HUGE_TIMES, ids=lambda v: f"{len(str(v))}-digits")
async def test_an_iat_beyond_any_time_is_refused_not_a_500(world: World, iat: int) -> None:
    # math.isfinite(10**400) raises OverflowError: the bound is checked on the int.
    proof = world.client.proof("POST", f"{BASE}/login", iat=iat, nonce=world.nonces.current())
    response = await world.http.post("/login", headers={"DPoP": proof})
    assert_proof_refused(response, "invalid_dpop_proof")


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    iat=st.integers()
    | st.integers(min_value=10**300, max_value=10**500)
    | st.floats()
    | st.booleans()
)
async def test_any_number_as_iat_is_checked_or_refused_with_a_typed_error(
    fake_clock: FakeClock, iat: Any
) -> None:
    client = DPoPClient()
    verifier = DPoPVerifier(clock=fake_clock)
    try:
        proof = client.proof("GET", URL, iat=iat)
    except ValueError:  # NaN / infinity: PyJWT itself refuses to encode them
        return
    accepted = fake_clock() - verifier.max_age <= iat <= fake_clock() + verifier.leeway
    if accepted and not isinstance(iat, bool):
        await verifier.verify(proof, method="GET", uri=URL)
    else:
        with pytest.raises(InvalidDPoPProofError) as caught:
            await verifier.verify(proof, method="GET", uri=URL)
        assert not isinstance(caught.value, DPoPNonceError)


def rsa_key_with_exponent(e: int) -> rsa.RSAPrivateKey:
    """A genuine 2048-bit RSA private key whose public exponent is ``e``."""
    while True:
        base = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        numbers = base.private_numbers()
        p, q = numbers.p, numbers.q
        totient = math.lcm(p - 1, q - 1)
        if math.gcd(e, totient) == 1:
            break
    d = pow(e, -1, totient)
    private = rsa.RSAPrivateNumbers(
        p=p,
        q=q,
        d=d,
        dmp1=rsa.rsa_crt_dmp1(d, p),
        dmq1=rsa.rsa_crt_dmq1(d, q),
        iqmp=rsa.rsa_crt_iqmp(p, q),
        public_numbers=rsa.RSAPublicNumbers(e, p * q),
    )
    return private.private_key()


@pytest.mark.parametrize(
    "exponent",
    [3, 65535 - 2, 2**256 + 1, (1 << 2000) + 1],  # below FIPS 186-5, and an expensive one
    ids=["3", "below-2^16", "just-over-2^256", "2000-bits"],
)
async def test_a_genuine_proof_from_an_rsa_key_with_an_odd_exponent_is_refused(
    fake_clock: FakeClock, exponent: int
) -> None:
    # A 2000-bit exponent makes each check ~30 times dearer than e = 65537, and the
    # login runs the proof check before any credential: refused before verifying.
    client = DPoPClient("RS256")
    client.private_key = rsa_key_with_exponent(exponent)
    client.public_jwk = dict(
        jwt.get_algorithm_by_name("RS256").to_jwk(client.private_key.public_key(), as_dict=True)
    )
    verifier = DPoPVerifier(clock=fake_clock)
    proof = client.proof("GET", URL, iat=fake_clock())
    with pytest.raises(InvalidDPoPProofError) as caught:
        await verifier.verify(proof, method="GET", uri=URL)
    assert caught.value.reason == "RSA public exponent outside (2**16, 2**256)"


async def test_an_rsa_key_with_the_usual_exponent_still_verifies(fake_clock: FakeClock) -> None:
    client = DPoPClient("RS256")
    checked = await DPoPVerifier(clock=fake_clock).verify(
        client.proof("GET", URL, iat=fake_clock()), method="GET", uri=URL
    )
    assert checked.jkt == client.jkt
