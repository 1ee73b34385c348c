"""DPoPAuth and the login/refresh helper, through a real FastAPI app over ASGI.

No ``from __future__ import annotations``: FastAPI resolves the routes' annotations,
which name dependencies local to the app factory.

The attacker holds a stolen token, or a captured proof, or both, but never
the client's private key.
"""

from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Body, Depends, FastAPI, Request, Security
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastapi_secure.dpop import (
    DPoPAuth,
    DPoPNonces,
    DPoPVerifier,
    RedisDPoPReplayCache,
)
from fastapi_secure.errors import ConfigurationError
from fastapi_secure.http_errors import install_error_handlers
from fastapi_secure.testing import FakeClock
from fastapi_secure.tokens.claims import AccessClaims, RefreshClaims
from fastapi_secure.tokens.issuer import Grant, TokenIssuer
from fastapi_secure.tokens.keys import KeySet
from fastapi_secure.tokens.stores.memory import MemoryTokenStore
from tests.support.dpop import DPoPClient

pytestmark = pytest.mark.anyio

BASE = "https://testserver"
ALGS = 'algs="ES256 ES384 ES512 EdDSA PS256 PS384 PS512 RS256 RS384 RS512"'


async def _grant(claims: RefreshClaims) -> Grant:
    return Grant(scopes=("orders",))


def make_issuer(clock: FakeClock) -> TokenIssuer:
    return TokenIssuer(
        KeySet.from_secret("h" * 64, kid="k1"),
        MemoryTokenStore(clock=clock),
        issuer="https://auth.example.test",
        audience="https://api.example.test",
        clock=clock,
        grant_loader=_grant,
    )


def make_app(issuer: TokenIssuer, auth: DPoPAuth, *, login_required: bool = False) -> FastAPI:
    app = FastAPI()
    # issuer.rotate raises core errors in the route: answered, not a 500.
    install_error_handlers(app)
    Claims = Annotated[AccessClaims, Depends(auth)]  # noqa: N806 - a type alias

    @app.get("/me")
    async def me(claims: Claims) -> dict[str, Any]:
        return {"sub": claims.sub}

    @app.post("/orders")
    async def orders(
        claims: Annotated[AccessClaims, Security(auth, scopes=["orders"])],
    ) -> dict[str, str]:
        return {"sub": claims.sub}

    @app.get("/admin")
    async def admin(
        claims: Annotated[AccessClaims, Security(auth, scopes=["admin"])],
    ) -> dict[str, str]:
        return {"sub": claims.sub}

    @app.get("/twice")
    async def twice(
        first: Claims, second: Annotated[AccessClaims, Security(auth, scopes=["orders"])]
    ) -> dict[str, str]:
        return {"sub": second.sub}

    @app.post("/login")
    async def login(request: Request) -> dict[str, Any]:
        jkt = await auth.check_login_proof(request, required=login_required)
        pair = await issuer.issue("alice", scopes=("orders",), dpop_jkt=jkt)
        return pair.model_dump()

    @app.post("/refresh")
    async def refresh(request: Request, refresh_token: Annotated[str, Body(embed=True)]) -> Any:
        jkt = await auth.check_login_proof(request)
        return (await issuer.rotate(refresh_token, dpop_jkt=jkt)).model_dump()

    return app


class World:
    def __init__(self, clock: FakeClock, **auth_options: Any) -> None:
        verifier_options = auth_options.pop("verifier_options", {})
        login_required = auth_options.pop("login_required", False)
        self.clock = clock
        self.issuer = make_issuer(clock)
        self.verifier = DPoPVerifier(clock=clock, **verifier_options)
        self.auth = DPoPAuth(self.issuer, self.verifier, **auth_options)
        self.app = make_app(self.issuer, self.auth, login_required=login_required)
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=BASE)
        self.client = DPoPClient()

    async def login(
        self, client: DPoPClient | None = None, url: str = f"{BASE}/login", **proof: Any
    ) -> dict[str, Any]:
        holder = client or self.client
        headers = {"DPoP": holder.proof("POST", url, iat=self.clock(), **proof)}
        response = await self.http.post("/login", headers=headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def headers(
        self, token: str, method: str = "GET", path: str = "/me", **proof: Any
    ) -> dict[str, str]:
        holder = proof.pop("client", None) or self.client
        url = proof.pop("url", f"{BASE}{path}")
        access = proof.pop("access_token", token)
        return {
            "Authorization": f"DPoP {token}",
            "DPoP": holder.proof(method, url, iat=self.clock(), access_token=access, **proof),
        }


@pytest.fixture
async def world(fake_clock: FakeClock) -> AsyncIterator[World]:
    w = World(fake_clock)
    async with w.http:
        yield w


def assert_refused(response: httpx.Response, error: str, status: int = 401) -> None:
    assert response.status_code == status, response.text
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith(f'DPoP error="{error}"'), challenge
    assert response.json()["detail"]["message"] in {
        "invalid DPoP proof",
        "invalid or expired token",
        "a fresh DPoP nonce is required",
        "insufficient scope",
    }


# -- the honest client ------------------------------------------------------------------


async def test_login_with_a_proof_binds_and_the_token_works_with_proofs(world: World) -> None:
    pair = await world.login()
    assert pair["token_type"] == "DPoP"
    token = pair["access_token"]
    response = await world.http.get("/me", headers=world.headers(token))
    assert response.status_code == 200
    assert response.json() == {"sub": "alice"}
    assert "dpop-nonce" not in response.headers
    # A new proof for each request.
    response = await world.http.post("/orders", headers=world.headers(token, "POST", "/orders"))
    assert response.status_code == 200


async def test_query_strings_are_not_part_of_htu(world: World) -> None:
    token = (await world.login())["access_token"]
    headers = world.headers(token, url=f"{BASE}/me")
    response = await world.http.get("/me?page=2&x=%20", headers=headers)
    assert response.status_code == 200


async def test_login_without_proof_stays_bearer(world: World) -> None:
    response = await world.http.post("/login")
    assert response.json()["token_type"] == "bearer"


async def test_one_proof_serves_several_dependencies_of_one_request(world: World) -> None:
    token = (await world.login())["access_token"]
    response = await world.http.get("/twice", headers=world.headers(token, path="/twice"))
    assert response.status_code == 200


async def test_public_url_names_the_origin_and_prefix_behind_a_proxy(fake_clock: FakeClock) -> None:
    world = World(fake_clock, public_url="HTTPS://API.Example.TEST:443/v1/")
    async with world.http:
        token = (await world.login(url="https://api.example.test/v1/login"))["access_token"]
        headers = world.headers(token, url="https://api.example.test/v1/me")
        assert (await world.http.get("/me", headers=headers)).status_code == 200
        # A proof for the internal address is for another URI.
        assert_refused(
            await world.http.get("/me", headers=world.headers(token)), "invalid_dpop_proof"
        )


async def test_openapi_declares_the_dpop_scheme(world: World) -> None:
    schema = (await world.http.get("/openapi.json")).json()
    assert schema["components"]["securitySchemes"]["DPoPAuth"] == {"type": "http", "scheme": "DPoP"}
    assert schema["paths"]["/orders"]["post"]["security"] == [{"DPoPAuth": ["orders"]}]


# -- missing or misplaced credentials ------------------------------------------------------


async def test_no_credentials_get_the_dpop_challenge(world: World) -> None:
    response = await world.http.get("/me")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == f"DPoP {ALGS}"
    assert response.json()["detail"]["code"] == "not_authenticated"


async def test_a_bound_token_sent_as_bearer_is_refused(world: World) -> None:
    token = (await world.login())["access_token"]
    response = await world.http.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    # RFC 9449, section 7.2: credentials, but of the wrong scheme: invalid_token.
    assert response.headers["www-authenticate"] == 'DPoP error="invalid_token", ' + ALGS
    assert response.json()["detail"]["code"] == "invalid_token"
    # Unbound or garbage: the same answer, nothing verified differently.
    response = await world.http.get("/me", headers={"Authorization": "Bearer abc"})
    assert response.headers["www-authenticate"] == 'DPoP error="invalid_token", ' + ALGS


def _request(method: str, path: str, headers: dict[str, str]) -> Request:
    scope: dict[str, Any] = {
        "type": "http",
        "method": method,
        "scheme": "https",
        "path": path,
        "headers": [(k.encode(), v.encode()) for k, v in {"host": "testserver", **headers}.items()],
        "query_string": b"",
    }
    return Request(scope)


async def test_without_auto_error_bearer_credentials_are_left_to_the_next_scheme(
    fake_clock: FakeClock,
) -> None:
    world = World(fake_clock, auto_error=False)
    async with world.http:
        token = (await world.login())["access_token"]
        claims = await world.auth.authenticate(
            _request("GET", "/me", {"authorization": f"Bearer {token}"})
        )
    assert claims is None


def test_dpop_auth_describes_itself_to_the_audit(fake_clock: FakeClock) -> None:
    from fastapi_secure.audit import audit

    world = World(fake_clock)
    routes = {route.path: route for route in audit(world.app).routes}
    assert routes["/me"].authentication == ("dpop",)
    assert routes["/orders"].scopes == ("orders",)
    lax = World(fake_clock, auto_error=False)
    routes = {route.path: route for route in audit(lax.app).routes}
    assert routes["/me"].optional_authentication == ("dpop",)
    assert not routes["/me"].protected


async def test_first_of_names_the_dpop_challenge(fake_clock: FakeClock) -> None:
    from fastapi_secure.apikeys import APIKeyManager, MemoryAPIKeyStore
    from fastapi_secure.apikeys.auth import APIKeyAuth
    from fastapi_secure.auth import FirstOf

    issuer = make_issuer(fake_clock)
    auth = DPoPAuth(issuer, DPoPVerifier(clock=fake_clock))
    keys = APIKeyManager(MemoryAPIKeyStore(), clock=fake_clock)
    either = FirstOf(auth, APIKeyAuth(keys))
    app = make_app(issuer, auth)

    @app.get("/either")
    async def by_either(claims: Annotated[AccessClaims, Depends(either)]) -> dict[str, str]:
        return {"sub": claims.sub}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        response = await http.get("/either")
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == f'DPoP {ALGS}, APIKey header="X-API-Key"'
        # A token sent as Bearer is DPoP's to refuse: an API key does not rescue it.
        created = await keys.create("bob", name="ci")
        response = await http.get(
            "/either", headers={"Authorization": "Bearer abc", "X-API-Key": created.key}
        )
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith('DPoP error="invalid_token"')
        response = await http.get("/either", headers={"X-API-Key": created.key})
        assert response.json() == {"sub": "bob"}


async def test_with_accept_bearer_a_bound_token_as_bearer_is_still_refused(
    fake_clock: FakeClock,
) -> None:
    world = World(fake_clock, accept_bearer=True)
    async with world.http:
        bound = (await world.login())["access_token"]
        response = await world.http.get("/me", headers={"Authorization": f"Bearer {bound}"})
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'DPoP error="invalid_token", ' + ALGS
        # An unbound token is accepted as a plain bearer token in that mode...
        plain = (await world.http.post("/login")).json()["access_token"]
        headers = {"Authorization": f"Bearer {plain}"}
        assert (await world.http.get("/me", headers=headers)).status_code == 200
        response = await world.http.get("/admin", headers=headers)
        assert response.status_code == 403
        assert response.headers["www-authenticate"].startswith('Bearer error="insufficient_scope"')
        # ...but never a malformed one.
        response = await world.http.get("/me", headers={"Authorization": "Bearer a b"})
        assert response.status_code == 401


async def test_an_unbound_token_with_the_dpop_scheme_is_refused(world: World) -> None:
    plain = (await world.http.post("/login")).json()["access_token"]
    assert_refused(await world.http.get("/me", headers=world.headers(plain)), "invalid_token")


async def test_a_forged_token_with_a_good_proof_is_refused(world: World) -> None:
    token = (await world.login())["access_token"]
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert_refused(await world.http.get("/me", headers=world.headers(forged)), "invalid_token")


async def test_no_proof_or_two_proofs_are_refused(world: World) -> None:
    token = (await world.login())["access_token"]
    response = await world.http.get("/me", headers={"Authorization": f"DPoP {token}"})
    assert_refused(response, "invalid_dpop_proof")
    proof = world.headers(token)["DPoP"]
    response = await world.http.get(
        "/me",
        headers=[("Authorization", f"DPoP {token}"), ("DPoP", proof), ("DPoP", proof)],
    )
    assert_refused(response, "invalid_dpop_proof")


@pytest.mark.parametrize(
    "authorization", ["DPoP", "DPoP ", "DPoP a b", "DPoP tok\u00e9n", "DPoP " + "a" * 9000]
)
async def test_malformed_dpop_credentials_are_refused(world: World, authorization: str) -> None:
    response = await world.http.get(
        "/me", headers={b"Authorization": authorization.encode(), b"DPoP": b"x"}
    )
    assert_refused(response, "invalid_token")


async def test_two_authorization_headers_are_refused(world: World) -> None:
    token = (await world.login())["access_token"]
    headers = world.headers(token)
    response = await world.http.get(
        "/me",
        headers=[
            ("Authorization", headers["Authorization"]),
            ("Authorization", "DPoP other"),
            ("DPoP", headers["DPoP"]),
        ],
    )
    assert_refused(response, "invalid_token")


# -- the attacker's proofs ---------------------------------------------------------------------


async def test_a_replayed_request_is_refused(world: World) -> None:
    token = (await world.login())["access_token"]
    headers = world.headers(token)
    assert (await world.http.get("/me", headers=headers)).status_code == 200
    assert_refused(await world.http.get("/me", headers=headers), "invalid_dpop_proof")


async def test_a_proof_for_another_method_or_uri_is_refused(world: World) -> None:
    token = (await world.login())["access_token"]
    # Captured from a GET /me, replayed against POST /orders.
    response = await world.http.post("/orders", headers=world.headers(token, "GET", "/orders"))
    assert_refused(response, "invalid_dpop_proof")
    response = await world.http.post("/orders", headers=world.headers(token, "POST", "/me"))
    assert_refused(response, "invalid_dpop_proof")
    response = await world.http.post(
        "/orders", headers=world.headers(token, "POST", url="https://evil.example/orders")
    )
    assert_refused(response, "invalid_dpop_proof")


async def test_a_stolen_token_with_the_thiefs_own_key_is_refused(world: World) -> None:
    token = (await world.login())["access_token"]
    thief = DPoPClient()
    assert_refused(
        await world.http.get("/me", headers=world.headers(token, client=thief)),
        "invalid_dpop_proof",
    )


async def test_a_proof_for_another_token_is_refused(world: World) -> None:
    token = (await world.login())["access_token"]
    other = (await world.login())["access_token"]
    headers = world.headers(token, access_token=other)
    assert_refused(await world.http.get("/me", headers=headers), "invalid_dpop_proof")


async def test_stale_proofs_are_refused(world: World) -> None:
    token = (await world.login())["access_token"]
    headers = world.headers(token)
    world.clock.advance(61)
    assert_refused(await world.http.get("/me", headers=headers), "invalid_dpop_proof")


async def test_scopes_are_checked_after_the_proof(world: World) -> None:
    token = (await world.login())["access_token"]
    response = await world.http.get("/admin", headers=world.headers(token, path="/admin"))
    assert_refused(response, "insufficient_scope", status=403)
    assert response.headers["www-authenticate"] == 'DPoP error="insufficient_scope", scope="admin"'


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    proof=st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=300),
    token=st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=80),
)
def test_arbitrary_headers_never_give_500(fake_clock: FakeClock, proof: str, token: str) -> None:
    world = World(fake_clock)
    with TestClient(world.app, base_url=BASE) as http:
        response = http.get("/me", headers={"Authorization": f"DPoP {token}", "DPoP": proof})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("DPoP")


# -- nonces ------------------------------------------------------------------------------------


async def test_the_nonce_dance(fake_clock: FakeClock) -> None:
    nonces = DPoPNonces("n" * 32, lifetime=60, clock=fake_clock)
    world = World(fake_clock, verifier_options={"nonces": nonces})
    async with world.http:
        # The login without a nonce gets one, and the retry with it succeeds.
        proof = world.client.proof("POST", f"{BASE}/login", iat=fake_clock())
        response = await world.http.post("/login", headers={"DPoP": proof})
        assert_refused(response, "use_dpop_nonce")
        nonce = response.headers["dpop-nonce"]
        token = (await world.login(nonce=nonce))["access_token"]
        response = await world.http.get("/me", headers=world.headers(token))
        assert_refused(response, "use_dpop_nonce")
        assert response.headers["dpop-nonce"] == nonce
        response = await world.http.get("/me", headers=world.headers(token, nonce=nonce))
        assert response.status_code == 200
        assert "dpop-nonce" not in response.headers
        # The window turns: the old nonce still passes once more, with the new one offered.
        fake_clock.advance(60)
        response = await world.http.get("/me", headers=world.headers(token, nonce=nonce))
        assert response.status_code == 200
        assert response.headers["dpop-nonce"] == nonces.current() != nonce


# -- login and refresh --------------------------------------------------------------------------


async def test_a_login_with_a_bad_proof_is_refused_not_left_unbound(world: World) -> None:
    proof = world.client.proof("POST", f"{BASE}/elsewhere", iat=world.clock())
    response = await world.http.post("/login", headers={"DPoP": proof})
    assert_refused(response, "invalid_dpop_proof")
    response = await world.http.post("/login", headers=[("DPoP", proof), ("DPoP", proof)])
    assert_refused(response, "invalid_dpop_proof")


async def test_a_login_that_requires_a_proof_refuses_none(fake_clock: FakeClock) -> None:
    world = World(fake_clock, login_required=True)
    async with world.http:
        assert_refused(await world.http.post("/login"), "invalid_dpop_proof")
        assert (await world.login())["token_type"] == "DPoP"


async def test_refresh_of_a_bound_session(world: World) -> None:
    pair = await world.login()
    body = {"refresh_token": pair["refresh_token"]}
    # A thief with the refresh token but not the key: refused, nothing consumed.
    response = await world.http.post("/refresh", json=body)
    assert response.status_code == 401
    thief = DPoPClient()
    proof = thief.proof("POST", f"{BASE}/refresh", iat=world.clock())
    response = await world.http.post("/refresh", json=body, headers={"DPoP": proof})
    assert response.status_code == 401
    # The owner refreshes and the new pair is still bound to the key.
    proof = world.client.proof("POST", f"{BASE}/refresh", iat=world.clock())
    response = await world.http.post("/refresh", json=body, headers={"DPoP": proof})
    assert response.status_code == 200
    renewed = response.json()
    assert renewed["token_type"] == "DPoP"
    headers = world.headers(renewed["access_token"])
    assert (await world.http.get("/me", headers=headers)).status_code == 200


# -- failures and configuration ---------------------------------------------------------------


async def test_a_replay_cache_outage_is_a_503(fake_clock: FakeClock) -> None:
    cache = RedisDPoPReplayCache.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    world = World(fake_clock, verifier_options={"replay_cache": cache})
    try:
        async with world.http:
            token = (await world.http.post("/login")).json()["access_token"]
            pair = await world.issuer.issue("bob", dpop_jkt=world.client.jkt)
            response = await world.http.get("/me", headers=world.headers(pair.access_token))
            assert response.status_code == 503
            assert "retry-after" in response.headers
            assert token
    finally:
        await cache.aclose()


async def test_an_issuer_that_crashes_refuses_rather_than_500(fake_clock: FakeClock) -> None:
    class Broken:
        async def verify_access(self, token: str) -> AccessClaims:
            raise RuntimeError("bug")

    auth = DPoPAuth(Broken(), DPoPVerifier(clock=fake_clock))
    app = make_app(make_issuer(fake_clock), auth)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        response = await http.get("/me", headers={"Authorization": "DPoP abc", "DPoP": "x"})
    assert_refused(response, "invalid_token")


async def test_auto_error_false_gives_none_without_credentials(fake_clock: FakeClock) -> None:
    auth = DPoPAuth(make_issuer(fake_clock), DPoPVerifier(clock=fake_clock), auto_error=False)
    app = FastAPI()

    @app.get("/maybe")
    async def maybe(claims: Annotated[AccessClaims | None, Depends(auth)]) -> dict[str, Any]:
        return {"sub": claims.sub if claims else None}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        assert (await http.get("/maybe")).json() == {"sub": None}
        # Presented but bad credentials are still refused.
        response = await http.get("/maybe", headers={"Authorization": "DPoP abc"})
        assert response.status_code == 401


async def test_a_request_uri_that_cannot_be_normalized_is_refused(world: World) -> None:
    token = (await world.login())["access_token"]
    headers = world.headers(token)
    headers["Host"] = "bad host"
    assert_refused(await world.http.get("/me", headers=headers), "invalid_dpop_proof")


@pytest.mark.parametrize(
    "options",
    [
        {"issuer": object()},
        {"verifier": object()},
        {"public_url": "ftp://x"},
        {"public_url": "https://u@x"},
        {"max_token_length": 10},
        {"max_token_length": True},
    ],
)
def test_configuration_is_checked(fake_clock: FakeClock, options: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {
        "issuer": make_issuer(fake_clock),
        "verifier": DPoPVerifier(clock=fake_clock),
        **options,
    }
    issuer, verifier = arguments.pop("issuer"), arguments.pop("verifier")
    with pytest.raises(ConfigurationError):
        DPoPAuth(issuer, verifier, **arguments)


def test_request_uri_without_raw_path_quotes_the_path(fake_clock: FakeClock) -> None:
    auth = DPoPAuth(make_issuer(fake_clock), DPoPVerifier(clock=fake_clock))
    scope: dict[str, Any] = {
        "type": "http",
        "scheme": "https",
        "path": "/a b",
        "root_path": "/api",
        "headers": [(b"host", b"example.test")],
        "query_string": b"",
        "server": ("example.test", 443),
    }
    assert auth.request_uri(Request(scope)) == "https://example.test/api/a%20b"


async def test_role_checkers_apply_unchanged(fake_clock: FakeClock) -> None:
    from fastapi_secure.auth.guards import RoleChecker

    issuer = make_issuer(fake_clock)
    auth = DPoPAuth(issuer, DPoPVerifier(clock=fake_clock))
    admins = RoleChecker(["admin"], auth=auth)
    app = FastAPI()

    @app.get("/admin")
    async def admin(claims: Annotated[AccessClaims, Depends(admins)]) -> dict[str, str]:
        return {"sub": claims.sub}

    client = DPoPClient()
    boss = await issuer.issue("boss", roles=["admin"], dpop_jkt=client.jkt)
    clerk = await issuer.issue("clerk", roles=["user"], dpop_jkt=client.jkt)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        for pair, status in ((boss, 200), (clerk, 403)):
            token = pair.access_token
            proof = client.proof("GET", f"{BASE}/admin", iat=fake_clock(), access_token=token)
            response = await http.get(
                "/admin", headers={"Authorization": f"DPoP {token}", "DPoP": proof}
            )
            assert response.status_code == status


async def test_bearer_auth_itself_refuses_a_dpop_bound_token(world: World) -> None:
    from fastapi_secure.auth import BearerAuth

    token = (await world.login())["access_token"]
    bearer = BearerAuth(world.issuer)
    app = FastAPI()

    @app.get("/plain")
    async def plain(claims: Annotated[AccessClaims, Depends(bearer)]) -> dict[str, str]:
        return {"sub": claims.sub}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        stolen = await http.get("/plain", headers={"Authorization": f"Bearer {token}"})
    assert stolen.status_code == 401
    assert stolen.headers["www-authenticate"] == 'Bearer error="invalid_token"'


def test_a_checker_over_dpop_on_a_websocket_closes_1008(fake_clock: FakeClock) -> None:
    from fastapi import WebSocket
    from starlette.websockets import WebSocketDisconnect

    from fastapi_secure.auth.guards import RoleChecker

    issuer = make_issuer(fake_clock)
    admins = RoleChecker(["admin"], auth=DPoPAuth(issuer, DPoPVerifier(clock=fake_clock)))
    app = FastAPI()

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, claims: Annotated[AccessClaims, Depends(admins)]) -> None:
        await websocket.accept()  # pragma: no cover - RFC 9449 has no WebSocket binding

    with TestClient(app) as client:
        assert client.portal is not None
        token = client.portal.call(lambda: issuer.issue("alice", roles=("admin",))).access_token
        with (
            pytest.raises(WebSocketDisconnect) as caught,
            client.websocket_connect("/ws", headers={"Authorization": f"DPoP {token}"}),
        ):
            pass  # pragma: no cover
    assert caught.value.code == 1008


def test_dpop_auth_itself_on_a_websocket_closes_1008_not_500(fake_clock: FakeClock) -> None:
    from fastapi import WebSocket
    from starlette.websockets import WebSocketDisconnect

    issuer = make_issuer(fake_clock)
    auth = DPoPAuth(issuer, DPoPVerifier(clock=fake_clock))
    app = FastAPI()

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, claims: Annotated[AccessClaims, Depends(auth)]) -> None:
        await websocket.accept()  # pragma: no cover - RFC 9449 has no WebSocket binding

    with TestClient(app) as client:
        assert client.portal is not None
        token = client.portal.call(lambda: issuer.issue("alice")).access_token
        for headers in ({"Authorization": f"DPoP {token}"}, {}):
            with (
                pytest.raises(WebSocketDisconnect) as caught,
                client.websocket_connect("/ws", headers=headers),
            ):
                pass  # pragma: no cover
            assert caught.value.code == 1008
