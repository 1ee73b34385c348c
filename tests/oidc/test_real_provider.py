"""The resource server half against a real OpenID Provider (panva's oidc-provider).

JWT access tokens (RFC 9068) come from the provider's token endpoint; key
rotation happens at the provider; JWK Set fetches are counted by the
provider itself (its /jwks request counter), not by our code.
"""

from __future__ import annotations

import secrets
import time

import anyio
import httpx
import pytest
from fastapi import FastAPI, Security

from fastapi_secure.auth import BearerAuth
from fastapi_secure.errors import InvalidTokenError
from fastapi_secure.oidc import ProviderTokenVerifier, RemoteKeySet, TrustedIssuer, keycloak_claims
from fastapi_secure.testing import FakeClock
from fastapi_secure.tokens.claims import AccessClaims
from fastapi_secure.tokens.keys import Key, KeySet
from tests.support.oidc_provider import LocalProvider

pytestmark = pytest.mark.anyio


def key_set(provider: LocalProvider, clock: FakeClock) -> RemoteKeySet:
    return RemoteKeySet(
        provider.issuer, allow_insecure_loopback=True, clock=clock, min_refresh_interval=30
    )


def verifier_for(
    provider: LocalProvider, keys: RemoteKeySet, **options: object
) -> ProviderTokenVerifier:
    return ProviderTokenVerifier(
        TrustedIssuer(
            keys,
            audience=str(options.pop("audience", provider.resource)),
            claims=keycloak_claims(),
            rfc9068=True,
        )
    )


async def test_the_providers_jwt_access_tokens_pass_bearer_auth(
    oidc_provider: LocalProvider,
) -> None:
    keys = key_set(oidc_provider, FakeClock(time.time()))
    bearer = BearerAuth(verifier_for(oidc_provider, keys))
    app = FastAPI()

    @app.get("/orders")
    async def orders(
        claims: AccessClaims = Security(bearer, scopes=["read"]),  # noqa: B008
    ) -> dict[str, object]:
        return {
            "sub": claims.sub,
            "roles": list(claims.roles),
            "client": claims.extra_claims["client_id"],
        }

    read_token = oidc_provider.client_credentials_token("read")
    write_token = oidc_provider.client_credentials_token("write")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://testserver"
    ) as client:
        ok = await client.get("/orders", headers={"Authorization": f"Bearer {read_token}"})
        assert ok.status_code == 200
        assert ok.json() == {"sub": "test-app", "roles": ["reader"], "client": "test-app"}
        lacking = await client.get("/orders", headers={"Authorization": f"Bearer {write_token}"})
        assert lacking.status_code == 403
    await keys.aclose()


async def test_a_token_for_another_audience_is_refused(oidc_provider: LocalProvider) -> None:
    async with key_set(oidc_provider, FakeClock(time.time())) as keys:
        verifier = verifier_for(oidc_provider, keys, audience="https://another-api.test")
        with pytest.raises(InvalidTokenError, match="invalid") as caught:
            await verifier.verify_access(oidc_provider.client_credentials_token())
    assert caught.value.reason == "token is for another audience"


async def test_a_token_signed_by_a_key_not_in_the_providers_set_is_refused(
    oidc_provider: LocalProvider,
) -> None:
    genuine = oidc_provider.client_credentials_token()
    async with key_set(oidc_provider, FakeClock(time.time())) as keys:
        claims = (await keys.verify(genuine)).claims()
        impostor = KeySet(Key.generate("ES256", kid=(await keys.verify(genuine)).key.kid))
        forged = impostor.sign(claims, typ="at+jwt")
        with pytest.raises(InvalidTokenError):
            await verifier_for(oidc_provider, keys).verify_access(forged)


async def test_rotation_at_the_provider_is_picked_up_with_one_fetch_and_floods_are_bounded(
    oidc_provider: LocalProvider,
) -> None:
    clock = FakeClock(time.time())
    async with key_set(oidc_provider, clock) as keys:
        verifier = verifier_for(oidc_provider, keys)
        oidc_provider.reset_counts()
        await verifier.verify_access(oidc_provider.client_credentials_token())
        assert oidc_provider.jwks_requests() == 1  # discovery's jwks_uri, fetched once

        kids = oidc_provider.rotate()
        rotated = oidc_provider.client_credentials_token()
        clock.advance(31)
        for _ in range(10):
            claims = await verifier.verify_access(rotated)
        assert claims.sub == "test-app"
        assert oidc_provider.jwks_requests() == 2  # the new kid: exactly one more fetch
        assert kids[1] in {key.kid for key in (await keys.key_set()).keys}

        # A flood of tokens naming random kids, concurrent and then sequential.
        async def unknown_kid() -> None:
            stranger = KeySet(Key.generate("ES256", kid=secrets.token_hex(8)))
            forged = stranger.sign({"iss": oidc_provider.issuer, "sub": "x"}, typ="at+jwt")
            with pytest.raises(InvalidTokenError):
                await verifier.verify_access(forged)

        clock.advance(31)
        async with anyio.create_task_group() as group:
            for _ in range(100):
                group.start_soon(unknown_kid)
        for _ in range(100):
            await unknown_kid()
        assert oidc_provider.jwks_requests() == 3  # 200 unknown kids, one interval: one fetch
        clock.advance(31)
        for _ in range(100):
            await unknown_kid()
        assert oidc_provider.jwks_requests() == 4  # next interval: one more


async def test_the_last_good_set_serves_while_the_providers_jwks_is_down(
    oidc_provider: LocalProvider,
) -> None:
    clock = FakeClock(time.time())
    async with key_set(oidc_provider, clock) as keys:
        verifier = verifier_for(oidc_provider, keys)
        token = oidc_provider.client_credentials_token()
        await verifier.verify_access(token)
        oidc_provider.jwks_down()
        try:
            oidc_provider.reset_counts()
            clock.advance(3600)  # past any TTL
            for _ in range(20):
                await verifier.verify_access(token)
            assert oidc_provider.jwks_requests() == 1  # one failed attempt, then throttled
        finally:
            oidc_provider.jwks_down(False)
