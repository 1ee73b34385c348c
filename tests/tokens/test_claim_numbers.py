"""Time claims spelled as JSON numbers that Python arithmetic chokes on.

Nobody without the signing key can mint these, so this is defence in depth: a
key shared with another service, or a bug in a minting path, must still give a
refusal (``InvalidTokenError``, 401) and never an ``OverflowError`` (a 500, or
a 401 logged as "unexpected") in the issuer or in a guard that does time
arithmetic with the claims (``require_fresh``, ``require_mfa``).

The payloads are written as raw JSON text: ``json.dumps`` would never write
``1e309`` or a 400-digit ``exp``, but a token's signer can.
"""

# No `from __future__ import annotations`: FastAPI resolves the route's annotations.

import base64
import hashlib
import hmac
import json
import logging
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastapi_secure.auth import BearerAuth, require_fresh
from fastapi_secure.errors import InvalidTokenError
from fastapi_secure.testing import FakeClock
from fastapi_secure.tokens.claims import ACCESS_TOKEN_TYP, REFRESH_TOKEN_TYP, AccessClaims
from fastapi_secure.tokens.issuer import TokenIssuer
from fastapi_secure.tokens.stores.base import new_family_id
from tests.support.auth import AUDIENCE, ISSUER, SECRET, client, make_issuer

pytestmark = pytest.mark.anyio

TIME_CLAIMS = ("exp", "iat", "nbf", "auth_time")
HOSTILE_NUMBERS = [
    "9" * 400,  # an int that float() cannot hold: OverflowError in exp + leeway
    "-" + "9" * 400,
    str(2**53 + 1),
    str(-(2**53) - 1),
    "1e309",  # JSON allows it; Python reads inf
    "-1e309",
    "1e400",
    "NaN",  # not JSON at all, but Python's parser takes it
    "Infinity",
    "1800000900.0",
    "1800000900.5",
    "true",
    "false",
    "null",
    '"1800000900"',
    "[1800000900]",
]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(payload_json: str, typ: str = ACCESS_TOKEN_TYP) -> str:
    """A token over exactly ``payload_json``, signed with the issuer's HMAC key."""
    header = json.dumps({"alg": "HS256", "kid": "k1", "typ": typ}, separators=(",", ":"))
    signing_input = b64(header.encode()) + "." + b64(payload_json.encode())
    mac = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def payload_with(clock: FakeClock, claim: str, raw: str, *, refresh: bool = False) -> str:
    now = int(clock())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "alice",
        "aud": AUDIENCE,
        "exp": now + 600,
        "iat": now,
        "nbf": now,
        "jti": "jti-1",
        "sid": new_family_id("alice"),
        "auth_time": now,
        "token_use": "refresh" if refresh else "access",
    }
    if not refresh:
        claims.update(roles=[], scope="", fresh=True)
    claims[claim] = "__RAW__"
    return json.dumps(claims).replace('"__RAW__"', raw)


@pytest.fixture
def issuer(fake_clock: FakeClock) -> TokenIssuer:
    return make_issuer(fake_clock, check_revocation=False)


@pytest.mark.parametrize(
    ("claim", "raw"),
    # nbf is optional: null there means absent (test_nbf_null_means_no_nbf).
    [(c, r) for c in TIME_CLAIMS for r in HOSTILE_NUMBERS if (c, r) != ("nbf", "null")],
)
async def test_a_hostile_time_claim_is_an_invalid_token(
    issuer: TokenIssuer, fake_clock: FakeClock, claim: str, raw: str
) -> None:
    access = signed(payload_with(fake_clock, claim, raw))
    refresh = signed(payload_with(fake_clock, claim, raw, refresh=True), REFRESH_TOKEN_TYP)
    for operation, token in (
        (issuer.verify_access, access),
        (issuer.revoke, access),
        (issuer.verify_refresh, refresh),
        (issuer.rotate, refresh),
        (issuer.revoke, refresh),
    ):
        with pytest.raises(InvalidTokenError) as caught:
            await operation(token)
        assert caught.value.__cause__ is None


async def test_nbf_null_means_no_nbf(issuer: TokenIssuer, fake_clock: FakeClock) -> None:
    claims = await issuer.verify_access(signed(payload_with(fake_clock, "nbf", "null")))
    assert claims.nbf is None


@pytest.mark.parametrize("claim", TIME_CLAIMS)
async def test_the_largest_exact_json_integer_is_still_a_time(
    issuer: TokenIssuer, fake_clock: FakeClock, claim: str
) -> None:
    # 2**53 itself passes the type check; what it means is the usual check's business.
    token = signed(payload_with(fake_clock, claim, str(2**53)))
    if claim in ("exp", "auth_time"):
        claims = await issuer.verify_access(token)
        assert getattr(claims, claim) == 2**53
    else:
        with pytest.raises(InvalidTokenError) as caught:
            await issuer.verify_access(token)
        assert caught.value.reason in ("issued in the future", "not valid yet")


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    claim=st.sampled_from(TIME_CLAIMS),
    value=st.integers(min_value=-(10**500), max_value=10**500)
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False),
)
async def test_any_number_in_a_time_claim_verifies_or_is_an_invalid_token(
    issuer: TokenIssuer, fake_clock: FakeClock, claim: str, value: float
) -> None:
    token = signed(payload_with(fake_clock, claim, json.dumps(value)))
    try:
        claims = await issuer.verify_access(token)
    except InvalidTokenError:
        return
    assert getattr(claims, claim) == value
    assert isinstance(value, int)


async def test_require_fresh_over_a_huge_auth_time_answers_401_not_500(
    fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    issuer = make_issuer(fake_clock, check_revocation=False)
    fresh = require_fresh(BearerAuth(issuer), max_age=300, clock=fake_clock)
    app = FastAPI()

    @app.get("/sensitive")
    async def sensitive(claims: Annotated[AccessClaims, Depends(fresh)]) -> dict[str, str]:
        return {"sub": claims.sub}

    token = signed(payload_with(fake_clock, "auth_time", "-" + "9" * 400))
    with caplog.at_level(logging.DEBUG, logger="fastapi_secure"):
        async with client(app) as http:
            response = await http.get("/sensitive", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json()["detail"]["code"] == "invalid_token"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
