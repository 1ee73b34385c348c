"""ProviderTokenVerifier and IntrospectionVerifier against crafted providers on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
from fastapi import Depends, FastAPI, Security
from hypothesis import given, settings
from hypothesis import strategies as st

from fastapi_secure.auth import BearerAuth, RoleChecker
from fastapi_secure.errors import ConfigurationError, ExpiredTokenError, InvalidTokenError
from fastapi_secure.http_errors import status_of
from fastapi_secure.oidc import (
    IntrospectionVerifier,
    MappedClaims,
    ProviderTokenVerifier,
    RemoteKeySet,
    TrustedIssuer,
    auth0_claims,
    entra_claims,
    keycloak_claims,
    standard_claims,
)
from fastapi_secure.oidc.errors import ProviderUnavailableError
from fastapi_secure.testing import FakeClock
from fastapi_secure.tokens.claims import AccessClaims
from fastapi_secure.tokens.keys import Key, KeySet
from tests.support.oidc_servers import CraftedProvider, Route, crafted_provider

pytestmark = pytest.mark.anyio

AUDIENCE = "https://api.example.test"
NOW = 1_800_000_000


@pytest.fixture
def provider() -> Iterator[CraftedProvider]:
    with crafted_provider() as crafted:
        crafted.serve_discovery()
        crafted.serve_jwks()
        yield crafted


def trusted(provider: CraftedProvider, clock: FakeClock, **options: Any) -> TrustedIssuer:
    keys = RemoteKeySet(provider.issuer, allow_insecure_loopback=True, clock=clock)
    options.setdefault("audience", AUDIENCE)
    return TrustedIssuer(keys, **options)


def claims_of(provider: CraftedProvider, **overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": provider.issuer,
        "sub": "alice",
        "aud": AUDIENCE,
        "iat": NOW,
        "exp": NOW + 300,
        "jti": "token-1",
        "client_id": "spa",
        "scope": "orders:read profile",
        "roles": ["reader"],
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


async def test_a_good_token_gives_access_claims(
    provider: CraftedProvider, fake_clock: FakeClock
) -> None:
    verifier = ProviderTokenVerifier(trusted(provider, fake_clock), clock=fake_clock)
    claims = await verifier.verify_access(provider.sign(claims_of(provider, sid="s-1")))
    assert isinstance(claims, AccessClaims)
    assert (claims.sub, claims.iss, claims.jti, claims.sid) == (
        "alice",
        provider.issuer,
        "token-1",
        "s-1",
    )
    assert claims.roles == ("reader",)
    assert claims.scopes == {"orders:read", "profile"}
    assert claims.auth_time == NOW
    assert not claims.fresh
    assert claims.extra_claims["client_id"] == "spa"
    assert claims.extra_claims["provider_claims"]["scope"] == "orders:read profile"
    assert verifier.issuers == (provider.issuer,)
    assert provider.issuer in repr(verifier)


async def test_missing_ids_fall_back_to_uti_or_a_digest(
    provider: CraftedProvider, fake_clock: FakeClock
) -> None:
    verifier = ProviderTokenVerifier(trusted(provider, fake_clock), clock=fake_clock)
    entra = await verifier.verify_access(provider.sign(claims_of(provider, jti=None, uti="u-9")))
    assert (entra.jti, entra.sid) == ("u-9", "u-9")
    token = provider.sign(claims_of(provider, jti=None, auth_time=NOW - 50))
    anonymous = await verifier.verify_access(token)
    assert len(anonymous.jti) == 64
    assert anonymous.auth_time == NOW - 50
    assert anonymous.cnf is None


async def test_a_dpop_binding_is_kept_and_other_bindings_are_refused(
    provider: CraftedProvider, fake_clock: FakeClock
) -> None:
    verifier = ProviderTokenVerifier(trusted(provider, fake_clock), clock=fake_clock)
    jkt = "A" * 43
    bound = await verifier.verify_access(provider.sign(claims_of(provider, cnf={"jkt": jkt})))
    assert bound.cnf is not None
    assert bound.cnf.jkt == jkt
    with pytest.raises(InvalidTokenError):
        await verifier.verify_access(provider.sign(claims_of(provider, cnf={"x5t#S256": jkt})))
    with pytest.raises(InvalidTokenError):
        await verifier.verify_access(provider.sign(claims_of(provider, cnf=jkt)))


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"aud": "https://other.example"}, "another audience"),
        ({"aud": None}, "aud"),
        ({"aud": [AUDIENCE, 5]}, "aud"),
        ({"aud": [""]}, "aud"),
        ({"aud": {"x": AUDIENCE}}, "aud"),
        ({"exp": None}, "missing exp"),
        ({"exp": True}, "not a number"),
        ({"exp": "1900000000"}, "not a number"),
        ({"nbf": NOW + 120}, "nbf"),
        ({"iat": NOW + 120}, "future"),
        ({"sub": None}, "sub"),
        ({"sub": ""}, "sub"),
        ({"iss": "https://evil.example"}, "not trusted"),
    ],
)
async def test_bad_claims_are_refused(
    provider: CraftedProvider, fake_clock: FakeClock, overrides: dict[str, Any], reason: str
) -> None:
    verifier = ProviderTokenVerifier(trusted(provider, fake_clock), clock=fake_clock)
    fake_clock.set(NOW)
    with pytest.raises(InvalidTokenError) as caught:
        await verifier.verify_access(provider.sign(claims_of(provider, **overrides)))
    assert reason in (caught.value.reason or "")
    assert status_of(caught.value) == 401


async def test_expiry_allows_the_leeway_and_no_more(
    provider: CraftedProvider, fake_clock: FakeClock
) -> None:
    verifier = ProviderTokenVerifier(trusted(provider, fake_clock, leeway=30), clock=fake_clock)
    token = provider.sign(claims_of(provider))
    fake_clock.set(NOW + 300 + 29)
    await verifier.verify_access(token)
    fake_clock.set(NOW + 300 + 30)
    with pytest.raises(ExpiredTokenError):
        await verifier.verify_access(token)


async def test_an_audience_list_needs_one_match(
    provider: CraftedProvider, fake_clock: FakeClock
) -> None:
    verifier = ProviderTokenVerifier(
        trusted(provider, fake_clock, audience=["api-a", AUDIENCE]), clock=fake_clock
    )
    claims = await verifier.verify_access(
        provider.sign(claims_of(provider, aud=["other", AUDIENCE]))
    )
    assert claims.aud == ["other", AUDIENCE]


async def test_rfc9068_mode_requires_the_access_token_type_and_claims(
    provider: CraftedProvider, fake_clock: FakeClock
) -> None:
    verifier = ProviderTokenVerifier(trusted(provider, fake_clock, rfc9068=True), clock=fake_clock)
    await verifier.verify_access(provider.sign(claims_of(provider)))
    await verifier.verify_access(provider.sign(claims_of(provider), typ="application/AT+JWT"))
    for token, reason in (
        (provider.sign(claims_of(provider), typ="JWT"), "typ"),
        (provider.sign(claims_of(provider, client_id=None)), "client_id"),
        (provider.sign(claims_of(provider, jti=None)), "jti"),
        (provider.sign(claims_of(provider, iat=None)), "iat"),
    ):
        with pytest.raises(InvalidTokenError) as caught:
            await verifier.verify_access(token)
        assert reason in (caught.value.reason or "")
    relaxed = ProviderTokenVerifier(trusted(provider, fake_clock), clock=fake_clock)
    await relaxed.verify_access(provider.sign(claims_of(provider), typ="JWT"))


async def test_several_providers_each_with_their_own_keys(fake_clock: FakeClock) -> None:
    with crafted_provider() as first, crafted_provider() as second:
        for crafted in (first, second):
            crafted.serve_discovery()
            crafted.serve_jwks()
        second.signing = KeySet(Key.generate("ES256", kid="good-1"))  # same kid, other key
        second.serve_jwks()
        verifier = ProviderTokenVerifier(
            trusted(first, fake_clock), trusted(second, fake_clock), clock=fake_clock
        )
        assert (await verifier.verify_access(first.sign(claims_of(first)))).iss == first.issuer
        assert (await verifier.verify_access(second.sign(claims_of(second)))).iss == second.issuer
        # Tenant A's claims signed with tenant B's key: checked with A's keys only.
        swapped = second.sign(claims_of(first))
        with pytest.raises(InvalidTokenError, match="invalid"):
            await verifier.verify_access(swapped)


async def test_an_unknown_issuer_is_refused_without_any_fetch(
    provider: CraftedProvider, fake_clock: FakeClock
) -> None:
    verifier = ProviderTokenVerifier(trusted(provider, fake_clock), clock=fake_clock)
    with pytest.raises(InvalidTokenError):
        await verifier.verify_access(provider.sign(claims_of(provider, iss="https://x.test")))
    assert provider.hits["/jwks"] == 0


async def test_a_mapper_that_raises_refuses_the_token(
    provider: CraftedProvider, fake_clock: FakeClock
) -> None:
    def broken(claims: Any) -> MappedClaims:
        raise KeyError("roles")

    verifier = ProviderTokenVerifier(trusted(provider, fake_clock, claims=broken), clock=fake_clock)
    with pytest.raises(InvalidTokenError, match="invalid"):
        await verifier.verify_access(provider.sign(claims_of(provider)))


@settings(max_examples=200, deadline=None)
@given(
    st.text(max_size=300)
    | st.from_regex(r"[A-Za-z0-9_-]{2,40}\.[A-Za-z0-9_-]{2,80}\.[A-Za-z0-9_-]{0,40}")
)
def test_arbitrary_input_only_ever_raises_invalid_token(text: str) -> None:
    keys = RemoteKeySet("https://idp.example.test")
    verifier = ProviderTokenVerifier(TrustedIssuer(keys, audience=AUDIENCE))
    with pytest.raises(InvalidTokenError):
        anyio.run(verifier.verify_access, text)


@pytest.mark.parametrize(
    "options",
    [
        {"leeway": 301},
        {"leeway": -1},
        {"audience": ""},
        {"audience": []},
        {"claims": "roles"},
    ],
)
def test_unsafe_issuer_settings_are_refused(options: dict[str, Any]) -> None:
    keys = RemoteKeySet("https://idp.example.test")
    options.setdefault("audience", AUDIENCE)
    with pytest.raises(ConfigurationError):
        TrustedIssuer(keys, **options)


def test_a_verifier_needs_distinct_trusted_issuers() -> None:
    keys = RemoteKeySet("https://idp.example.test")
    with pytest.raises(ConfigurationError):
        ProviderTokenVerifier()
    with pytest.raises(ConfigurationError):
        ProviderTokenVerifier(TrustedIssuer(keys, audience="a"), TrustedIssuer(keys, audience="b"))
    with pytest.raises(ConfigurationError):
        ProviderTokenVerifier("https://idp.example.test")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        TrustedIssuer("https://idp.example.test", audience="a")  # type: ignore[arg-type]


# -- claims mappers (documented provider shapes) ------------------------------------


def test_standard_claims_reads_roles_scope_and_scp() -> None:
    mapped = standard_claims({"roles": ["a", 3, "a", ""], "scope": "x y", "scp": ["z"]})
    assert mapped == MappedClaims(roles=("a",), scopes=frozenset({"x", "y", "z"}))
    assert standard_claims({"roles": "admin"}) == MappedClaims()


def test_keycloak_claims_takes_realm_roles_and_only_its_own_client_roles() -> None:
    token = {
        "realm_access": {"roles": ["offline_access", "reader"]},
        "resource_access": {
            "orders-api": {"roles": ["orders-admin"]},
            "billing": {"roles": ["billing-admin"]},
        },
        "scope": "openid email",
    }
    mapped = keycloak_claims(client_id="orders-api")(token)
    assert mapped.roles == ("offline_access", "reader", "orders-admin")
    assert mapped.scopes == {"openid", "email"}
    assert keycloak_claims()(token).roles == ("offline_access", "reader")
    assert keycloak_claims(client_id="x")({"realm_access": "admin"}) == MappedClaims()


def test_entra_claims_reads_app_roles_and_delegated_scp() -> None:
    mapped = entra_claims()({"roles": ["Orders.Admin"], "scp": "Orders.Read User.Read"})
    assert mapped == MappedClaims(
        roles=("Orders.Admin",), scopes=frozenset({"Orders.Read", "User.Read"})
    )


def test_auth0_claims_turns_permissions_into_scopes() -> None:
    token = {
        "scope": "openid",
        "permissions": ["read:orders", "write:orders"],
        "https://example.com/roles": ["admin"],
    }
    assert auth0_claims()(token) == MappedClaims(
        scopes=frozenset({"openid", "read:orders", "write:orders"})
    )
    assert auth0_claims(roles_claim="https://example.com/roles")(token).roles == ("admin",)


# -- through BearerAuth, RoleChecker and scopes --------------------------------------


async def test_bearer_auth_role_checker_and_scopes_apply_unchanged(
    provider: CraftedProvider, fake_clock: FakeClock
) -> None:
    fake_clock.set(NOW)
    verifier = ProviderTokenVerifier(
        trusted(provider, fake_clock, claims=keycloak_claims(client_id="orders-api")),
        clock=fake_clock,
    )
    bearer = BearerAuth(verifier)
    app = FastAPI()

    @app.get("/orders")
    async def orders(
        claims: AccessClaims = Security(bearer, scopes=["orders:read"]),  # noqa: B008
    ) -> dict[str, str]:
        return {"sub": claims.sub}

    @app.get("/admin", dependencies=[Depends(RoleChecker(["orders-admin"], auth=bearer))])
    async def admin() -> dict[str, bool]:
        return {"ok": True}

    reader = provider.sign(claims_of(provider, roles=None, realm_access={"roles": ["reader"]}))
    admin_token = provider.sign(
        claims_of(provider, resource_access={"orders-api": {"roles": ["orders-admin"]}})
    )
    no_scope = provider.sign(claims_of(provider, scope="profile"))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://testserver"
    ) as client:

        def auth(token: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {token}"}

        assert (await client.get("/orders", headers=auth(reader))).json() == {"sub": "alice"}
        assert (await client.get("/orders", headers=auth(no_scope))).status_code == 403
        assert (await client.get("/admin", headers=auth(reader))).status_code == 403
        assert (await client.get("/admin", headers=auth(admin_token))).status_code == 200
        # A DPoP-bound provider token is refused without its proof, as our own would be.
        bound = provider.sign(claims_of(provider, cnf={"jkt": "A" * 43}))
        assert (await client.get("/orders", headers=auth(bound))).status_code == 401
        forged = admin_token[:-4] + ("AAAA" if not admin_token.endswith("AAAA") else "BBBB")
        refused = await client.get("/admin", headers=auth(forged))
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == 'Bearer error="invalid_token"'
        provider.routes["/jwks"] = Route(status=503, body={})
        fresh_app_verifier = ProviderTokenVerifier(trusted(provider, fake_clock), clock=fake_clock)
        app.dependency_overrides[bearer] = BearerAuth(fresh_app_verifier)
        down = await client.get("/orders", headers=auth(reader))
        assert down.status_code == 503
        assert "retry-after" in down.headers


# -- RFC 7662 introspection --------------------------------------------------------


def introspection(
    provider: CraftedProvider, clock: FakeClock, **options: Any
) -> IntrospectionVerifier:
    options.setdefault("audience", AUDIENCE)
    return IntrospectionVerifier(
        f"{provider.url}/introspect",
        client_id="orders-api",
        client_secret="orders-api-secret",
        issuer=provider.issuer,
        allow_insecure_loopback=True,
        clock=clock,
        **options,
    )


async def test_introspection_accepts_an_active_token_and_caches_briefly(
    provider: CraftedProvider, fake_clock: FakeClock
) -> None:
    fake_clock.set(NOW)
    provider.routes["/introspect"] = Route(
        body={"active": True, **claims_of(provider, jti=None), "exp": NOW + 100}
    )
    verifier = introspection(provider, fake_clock, cache_ttl=30)
    claims = await verifier.verify_access("opaque-token-1")
    await verifier.verify_access("opaque-token-1")
    assert (claims.sub, claims.scopes) == ("alice", frozenset({"orders:read", "profile"}))
    assert verifier.request_count == 1
    method, path, body = provider.requests[-1]
    assert (method, path) == ("POST", "/introspect")
    assert b"token=opaque-token-1" in body
    fake_clock.advance(31)
    await verifier.verify_access("opaque-token-1")
    assert verifier.request_count == 2
    assert "orders-api-secret" not in repr(verifier)
    await verifier.aclose()


@pytest.mark.parametrize(
    "answer",
    [
        {"active": False},
        {"active": "true", "sub": "alice", "aud": AUDIENCE},
        {"active": True, "sub": "alice"},
        {"active": True, "sub": "alice", "aud": "other"},
        {"active": True, "sub": "alice", "aud": AUDIENCE, "iss": "https://evil.example"},
        {"active": True, "sub": "alice", "aud": AUDIENCE, "exp": NOW - 100},
        {"active": True, "aud": AUDIENCE},
    ],
)
async def test_introspection_refusals_are_401_and_cached_briefly(
    provider: CraftedProvider, fake_clock: FakeClock, answer: dict[str, Any]
) -> None:
    fake_clock.set(NOW)
    provider.routes["/introspect"] = Route(body=answer)
    verifier = introspection(provider, fake_clock, negative_ttl=5)
    for _ in range(2):
        with pytest.raises(InvalidTokenError):
            await verifier.verify_access("opaque")
    assert verifier.request_count == 1
    fake_clock.advance(6)
    with pytest.raises(InvalidTokenError):
        await verifier.verify_access("opaque")
    assert verifier.request_count == 2


async def test_introspection_endpoint_down_is_a_503_and_the_cache_is_bounded(
    provider: CraftedProvider, fake_clock: FakeClock
) -> None:
    provider.routes["/introspect"] = Route(status=500, body={})
    verifier = introspection(provider, fake_clock, max_cached=2)
    with pytest.raises(ProviderUnavailableError):
        await verifier.verify_access("opaque")
    provider.routes["/introspect"] = Route(body={"active": False})
    for name in ("a", "b", "c"):
        with pytest.raises(InvalidTokenError):
            await verifier.verify_access(name)
    assert len(verifier._cache) == 2
    with pytest.raises(InvalidTokenError):
        await verifier.verify_access("x" * 9000)


@pytest.mark.parametrize(
    "options",
    [
        {"client_secret": ""},
        {"cache_ttl": 301},
        {"negative_ttl": 60, "cache_ttl": 30},
        {"max_cached": 0},
    ],
)
def test_unsafe_introspection_settings_are_refused(options: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {
        "client_id": "api",
        "client_secret": "secret",
        "issuer": "https://idp.example.test",
        "audience": AUDIENCE,
    }
    arguments.update(options)
    with pytest.raises(ConfigurationError):
        IntrospectionVerifier("https://idp.example.test/introspect", **arguments)


async def test_fetchers_close_only_the_http_client_they_created(
    provider: CraftedProvider, fake_clock: FakeClock
) -> None:
    async with introspection(provider, fake_clock) as verifier:
        created = verifier.http_client
        assert verifier.http_client is created
    assert created.is_closed
    given = httpx.AsyncClient()
    async with RemoteKeySet(
        provider.issuer, allow_insecure_loopback=True, http_client=given
    ) as keys:
        assert keys.http_client is given
    assert not given.is_closed
    await given.aclose()
