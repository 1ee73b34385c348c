"""TokenIssuer binding a session to a DPoP key (RFC 9449, section 6 and 5).

The binding travels as a signed ``cnf.jkt`` claim in both tokens of a pair, so
a refresh token names the key its session is bound to without the store.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from fastapi_secure.dpop.proofs import InvalidDPoPProofError
from fastapi_secure.errors import InvalidTokenError, TokenReuseError
from fastapi_secure.testing import FakeClock
from fastapi_secure.tokens.claims import RefreshClaims
from fastapi_secure.tokens.issuer import Grant, TokenIssuer
from fastapi_secure.tokens.keys import KeySet
from fastapi_secure.tokens.stores.memory import MemoryTokenStore

pytestmark = pytest.mark.anyio

JKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"  # RFC 9449, section 6.1
OTHER_JKT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"  # RFC 7638, section 3.1


async def _grant(claims: RefreshClaims) -> Grant:
    return Grant(roles=("user",))


@pytest.fixture
def keys() -> KeySet:
    return KeySet.from_secret("k" * 64, kid="k1")


@pytest.fixture
def issuer(keys: KeySet, fake_clock: FakeClock) -> TokenIssuer:
    return TokenIssuer(
        keys,
        MemoryTokenStore(clock=fake_clock),
        issuer="https://auth.example.test",
        audience="https://api.example.test",
        clock=fake_clock,
        grant_loader=_grant,
    )


def payload_of(keys: KeySet, token: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(keys.verify(token).payload)
    return payload


async def test_unbound_pairs_stay_bearer_without_cnf(issuer: TokenIssuer, keys: KeySet) -> None:
    pair = await issuer.issue("alice")
    assert pair.token_type == "bearer"
    assert "cnf" not in payload_of(keys, pair.access_token)
    assert "cnf" not in payload_of(keys, pair.refresh_token)
    assert (await issuer.verify_access(pair.access_token)).cnf is None


async def test_a_bound_pair_carries_cnf_jkt_in_both_tokens(
    issuer: TokenIssuer, keys: KeySet
) -> None:
    pair = await issuer.issue("alice", dpop_jkt=JKT)
    assert pair.token_type == "DPoP"
    assert json.loads(pair.model_dump_json())["token_type"] == "DPoP"
    assert payload_of(keys, pair.access_token)["cnf"] == {"jkt": JKT}
    assert payload_of(keys, pair.refresh_token)["cnf"] == {"jkt": JKT}
    claims = await issuer.verify_access(pair.access_token)
    assert claims.cnf is not None
    assert claims.cnf.jkt == JKT
    refresh = await issuer.verify_refresh(pair.refresh_token)
    assert refresh.cnf is not None
    assert refresh.cnf.jkt == JKT


@pytest.mark.parametrize(
    "bad", ["", "short", JKT + "A", "0ZcOCORZNYy+DWpqq30jZyJGHTN0d2HglBV3uiguA4I"]
)
async def test_a_jkt_that_is_no_sha256_thumbprint_is_refused(issuer: TokenIssuer, bad: str) -> None:
    with pytest.raises(ValueError, match="dpop_jkt"):
        await issuer.issue("alice", dpop_jkt=bad)
    pair = await issuer.issue("alice", dpop_jkt=JKT)
    with pytest.raises(ValueError, match="dpop_jkt"):
        await issuer.rotate(pair.refresh_token, dpop_jkt=bad)


async def test_a_bound_session_refreshes_with_a_proof_of_its_key(issuer: TokenIssuer) -> None:
    pair = await issuer.issue("alice", dpop_jkt=JKT)
    renewed = await issuer.rotate(pair.refresh_token, dpop_jkt=JKT)
    assert renewed.token_type == "DPoP"
    claims = await issuer.verify_access(renewed.access_token)
    assert claims.cnf is not None
    assert claims.cnf.jkt == JKT
    again = await issuer.rotate(renewed.refresh_token, dpop_jkt=JKT)
    assert again.token_type == "DPoP"


async def test_a_bound_session_refused_without_proof_and_the_token_not_burned(
    issuer: TokenIssuer,
) -> None:
    pair = await issuer.issue("alice", dpop_jkt=JKT)
    with pytest.raises(InvalidTokenError) as caught:
        await issuer.rotate(pair.refresh_token)
    assert caught.value.reason is not None
    assert "DPoP" in caught.value.reason
    # RFC 9449, section 5: answered invalid_dpop_proof with the DPoP challenge.
    assert isinstance(caught.value, InvalidDPoPProofError)
    assert (caught.value.scheme, caught.value.challenge_error) == ("DPoP", "invalid_dpop_proof")
    # The thief without the key consumed nothing: the owner still refreshes.
    renewed = await issuer.rotate(pair.refresh_token, dpop_jkt=JKT)
    assert renewed.token_type == "DPoP"


async def test_a_bound_session_refused_with_another_key(issuer: TokenIssuer) -> None:
    pair = await issuer.issue("alice", dpop_jkt=JKT)
    with pytest.raises(InvalidTokenError) as caught:
        await issuer.rotate(pair.refresh_token, dpop_jkt=OTHER_JKT)
    assert not isinstance(caught.value, TokenReuseError)
    assert isinstance(caught.value, InvalidDPoPProofError)
    renewed = await issuer.rotate(pair.refresh_token, dpop_jkt=JKT)
    assert (await issuer.verify_access(renewed.access_token)).cnf is not None


async def test_an_unbound_session_refreshed_with_a_proof_becomes_bound(
    issuer: TokenIssuer,
) -> None:
    pair = await issuer.issue("alice")
    renewed = await issuer.rotate(pair.refresh_token, dpop_jkt=JKT)
    assert renewed.token_type == "DPoP"
    # From now on the session needs that key.
    with pytest.raises(InvalidTokenError):
        await issuer.rotate(renewed.refresh_token)
    with pytest.raises(InvalidTokenError):
        await issuer.rotate(renewed.refresh_token, dpop_jkt=OTHER_JKT)
    await issuer.rotate(renewed.refresh_token, dpop_jkt=JKT)


async def test_an_unbound_session_refreshes_as_before(issuer: TokenIssuer) -> None:
    pair = await issuer.issue("alice")
    renewed = await issuer.rotate(pair.refresh_token)
    assert renewed.token_type == "bearer"


async def test_a_forged_cnf_cannot_be_stripped_or_swapped(
    issuer: TokenIssuer, keys: KeySet
) -> None:
    # Editing the claim breaks the signature; only the issuer's key can sign one.
    pair = await issuer.issue("alice", dpop_jkt=JKT)
    header, _payload, signature = pair.refresh_token.split(".")
    claims = payload_of(keys, pair.refresh_token)
    del claims["cnf"]
    stripped = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(InvalidTokenError):
        await issuer.rotate(f"{header}.{stripped}.{signature}")
