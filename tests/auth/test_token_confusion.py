"""Every credential the library hands out, presented through every way in.

One app accepts a bearer access token, an access token cookie, an API key and a
DPoP-bound token, each on its own route; the refresh route takes a refresh
token. The attacker holds one credential of each kind (or one minted for
another audience, or by another key with the same ``kid``) and tries it where
another kind is expected. Exactly the matching pairs pass; every other pair is
a 401 ``invalid_token`` (never a 500, never a 403 that would mean "authenticated").
"""

# No `from __future__ import annotations`: FastAPI resolves the routes' annotations.

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI

from fastapi_secure.apikeys import APIKeyManager
from fastapi_secure.apikeys.auth import APIKeyAuth
from fastapi_secure.apikeys.stores import MemoryAPIKeyStore
from fastapi_secure.auth import BearerAuth, CookieAuth
from fastapi_secure.dpop import DPoPAuth, DPoPVerifier
from fastapi_secure.errors import InvalidTokenError
from fastapi_secure.mfa import MFAChallenges
from fastapi_secure.mfa.stores import MemoryMFAStore
from fastapi_secure.testing import FakeClock
from fastapi_secure.tokens.claims import AccessClaims
from fastapi_secure.tokens.issuer import TokenIssuer
from fastapi_secure.tokens.keys import KeySet
from fastapi_secure.tokens.stores.memory import MemoryTokenStore
from tests.support.auth import AUDIENCE, ISSUER, same_grant
from tests.support.dpop import DPoPClient

pytestmark = pytest.mark.anyio

BASE = "https://testserver"
ORIGIN = "https://testserver"
KINDS = ("access", "refresh", "dpop_access", "api_key", "mfa", "other_audience", "other_key")
WAYS_IN = ("bearer", "cookie", "api_key", "dpop")
ACCEPTED = {("access", "bearer"), ("access", "cookie"), ("api_key", "api_key")}
ACCEPTED |= {("dpop_access", "dpop")}


def make_issuer(clock: FakeClock, keys: KeySet, audience: str = AUDIENCE) -> TokenIssuer:
    return TokenIssuer(
        keys,
        MemoryTokenStore(clock=clock),
        issuer=ISSUER,
        audience=audience,
        clock=clock,
        grant_loader=same_grant,
    )


@dataclass
class World:
    http: httpx.AsyncClient
    issuer: TokenIssuer
    client: DPoPClient
    credentials: dict[str, str]


@pytest.fixture
async def world(fake_clock: FakeClock) -> AsyncIterator[World]:
    keys = KeySet.generate("ES256", kid="k1")
    issuer = make_issuer(fake_clock, keys)
    bearer = BearerAuth(issuer)
    cookie = CookieAuth(issuer, csrf_secret="c" * 32, allowed_origins=[ORIGIN])
    manager = APIKeyManager(MemoryAPIKeyStore(), pepper="p" * 32, clock=fake_clock)
    api_key = APIKeyAuth(manager)
    dpop = DPoPAuth(issuer, DPoPVerifier(clock=fake_clock), public_url=BASE)
    client = DPoPClient()

    app = FastAPI()
    for path, auth in (
        ("/bearer", bearer),
        ("/cookie", cookie),
        ("/api_key", api_key),
        ("/dpop", dpop),
    ):

        def route(
            claims: Annotated[AccessClaims, Depends(auth)],
        ) -> dict[str, str]:
            return {"sub": claims.sub}

        app.get(path)(route)

    pair = await issuer.issue("alice")
    bound = await issuer.issue("alice", dpop_jkt=client.jkt)
    other_audience = await make_issuer(fake_clock, keys, "https://other.example").issue("alice")
    # Another service's key that happens to use the same kid.
    other_key = await make_issuer(fake_clock, KeySet.generate("ES256", kid="k1")).issue("alice")
    mfa = await MFAChallenges(MemoryMFAStore(), clock=fake_clock).start("alice", ["totp"])
    credentials = {
        "access": pair.access_token,
        "refresh": pair.refresh_token,
        "dpop_access": bound.access_token,
        "api_key": (await manager.create("alice", name="ci")).key,
        "mfa": mfa.token,
        "other_audience": other_audience.access_token,
        "other_key": other_key.access_token,
    }
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        yield World(http, issuer, client, credentials)


def request_headers(world: World, way_in: str, credential: str) -> dict[str, str]:
    if way_in == "bearer":
        return {"Authorization": f"Bearer {credential}"}
    if way_in == "cookie":
        return {"Cookie": f"__Host-access_token={credential}"}
    if way_in == "api_key":
        return {"X-API-Key": credential}
    proof = world.client.proof(
        "GET", f"{BASE}/dpop", iat=world.issuer.clock(), access_token=credential
    )
    return {"Authorization": f"DPoP {credential}", "DPoP": proof}


@pytest.mark.parametrize("way_in", WAYS_IN)
@pytest.mark.parametrize("kind", KINDS)
async def test_each_credential_passes_only_its_own_way_in(
    world: World, kind: str, way_in: str
) -> None:
    credential = world.credentials[kind]
    response = await world.http.get(
        f"/{way_in}", headers=request_headers(world, way_in, credential)
    )
    if (kind, way_in) in ACCEPTED:
        assert response.status_code == 200, response.text
        assert response.json() == {"sub": "alice"}
        return
    assert response.status_code == 401, response.text
    assert response.json()["detail"]["code"] == "invalid_token"
    assert credential not in response.text
    assert credential not in response.headers.get("www-authenticate", "")


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "refresh"])
async def test_only_a_refresh_token_rotates(world: World, kind: str) -> None:
    with pytest.raises(InvalidTokenError):
        await world.issuer.rotate(world.credentials[kind])
    # The refresh token itself still rotates: nothing above burned it.
    await world.issuer.rotate(world.credentials["refresh"])
