"""APIKeyAuth and FirstOf over HTTP: claims, 401/403 answers, checkers, OpenAPI."""

# No `from __future__ import annotations`: FastAPI resolves string annotations in the
# module globals, and these endpoints close over per-test dependencies.
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, HTTPException, Security
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastapi_secure.apikeys.auth import APIKeyAuth
from fastapi_secure.apikeys.keys import APIKeyManager, CreatedAPIKey
from fastapi_secure.apikeys.stores.memory import MemoryAPIKeyStore
from fastapi_secure.auth import (
    BearerAuth,
    FirstOf,
    PermissionChecker,
    RoleChecker,
    RolePermissions,
    require_fresh,
)
from fastapi_secure.errors import ConfigurationError
from fastapi_secure.testing import FakeClock
from fastapi_secure.tokens.claims import AccessClaims
from fastapi_secure.tokens.issuer import TokenIssuer
from tests.support.auth import access_token, bearer, client, make_issuer

pytestmark = pytest.mark.anyio

PEPPER = "pepper-for-tests-with-more-than-32-bytes!"
CHALLENGE = 'APIKey header="X-API-Key"'


@pytest.fixture
def manager(fake_clock: FakeClock) -> APIKeyManager:
    return APIKeyManager(MemoryAPIKeyStore(), pepper=PEPPER, clock=fake_clock)


@pytest.fixture
def api_key(manager: APIKeyManager) -> APIKeyAuth:
    return APIKeyAuth(manager)


@pytest.fixture
def issuer(fake_clock: FakeClock) -> TokenIssuer:
    return make_issuer(fake_clock)


def app_for(dependency: Any, *, scopes: list[str] | None = None) -> FastAPI:
    app = FastAPI()
    marker = Security(dependency, scopes=scopes) if scopes else Depends(dependency)

    @app.get("/me")
    async def me(claims: Annotated[AccessClaims | None, marker]) -> dict[str, Any]:
        if claims is None:
            return {"sub": None}
        return {
            "sub": claims.sub,
            "roles": list(claims.roles),
            "amr": list(claims.amr) or None,
        }

    return app


def key_header(created: CreatedAPIKey) -> dict[str, str]:
    return {"X-API-Key": created.key}


async def test_a_valid_key_gives_token_shaped_claims(
    manager: APIKeyManager, api_key: APIKeyAuth
) -> None:
    created = await manager.create("alice", name="ci", roles=["editor"])
    async with client(app_for(api_key)) as http:
        answer = await http.get("/me", headers=key_header(created))
    assert answer.status_code == 200
    assert answer.json() == {"sub": "alice", "roles": ["editor"], "amr": ["apikey"]}


async def test_no_key_is_401_with_a_challenge(api_key: APIKeyAuth) -> None:
    async with client(app_for(api_key)) as http:
        answer = await http.get("/me")
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == CHALLENGE
    assert answer.json()["detail"]["code"] == "not_authenticated"


async def test_without_auto_error_no_key_is_anonymous(manager: APIKeyManager) -> None:
    async with client(app_for(APIKeyAuth(manager, auto_error=False))) as http:
        assert (await http.get("/me")).json() == {"sub": None}
        bad = await http.get("/me", headers={"X-API-Key": "fsk_nope"})
    # A bad key is still refused: it must not turn the request anonymous.
    assert bad.status_code == 401


async def test_bad_revoked_and_expired_keys_get_one_generic_401(
    manager: APIKeyManager, api_key: APIKeyAuth, fake_clock: FakeClock
) -> None:
    revoked = await manager.create("alice", name="revoked")
    await manager.revoke(revoked.record.id, subject="alice")
    expired = await manager.create("alice", name="expired", expires_in=1)
    fake_clock.advance(1)
    good = await manager.create("alice", name="good")
    wrong = good.key[:-1] + ("A" if good.key[-1] != "A" else "B")
    bodies = []
    async with client(app_for(api_key)) as http:
        for key in (revoked.key, expired.key, wrong, "fsk_short", "ghp_" + "x" * 40):
            answer = await http.get("/me", headers={"X-API-Key": key})
            assert answer.status_code == 401
            assert answer.headers["www-authenticate"] == f'{CHALLENGE}, error="invalid_token"'
            bodies.append(answer.json())
    assert all(body == bodies[0] for body in bodies)
    assert bodies[0]["detail"] == {"code": "invalid_token", "message": "invalid API key"}


async def test_revocation_is_effective_on_the_next_request(
    manager: APIKeyManager, api_key: APIKeyAuth
) -> None:
    created = await manager.create("alice", name="ci")
    async with client(app_for(api_key)) as http:
        assert (await http.get("/me", headers=key_header(created))).status_code == 200
        await manager.revoke(created.record.id, subject="alice")
        assert (await http.get("/me", headers=key_header(created))).status_code == 401


@pytest.mark.redis
async def test_two_workers_on_redis_see_a_revocation_at_once(
    redis_url: str, redis_prefix: str, fake_clock: FakeClock
) -> None:
    from fastapi_secure.apikeys.stores.redis import RedisAPIKeyStore

    stores = [RedisAPIKeyStore.from_url(redis_url, prefix=redis_prefix) for _ in range(2)]
    try:
        one, two = (APIKeyManager(store, pepper=PEPPER, clock=fake_clock) for store in stores)
        created = await one.create("alice", name="ci")
        async with client(app_for(APIKeyAuth(two))) as worker_two:
            assert (await worker_two.get("/me", headers=key_header(created))).status_code == 200
            await one.revoke(created.record.id, subject="alice")
            assert (await worker_two.get("/me", headers=key_header(created))).status_code == 401
            another = await one.create("alice", name="next")
            assert (await worker_two.get("/me", headers=key_header(another))).status_code == 200
    finally:
        for store in stores:
            await store.aclose()


async def test_two_key_headers_are_refused(manager: APIKeyManager, api_key: APIKeyAuth) -> None:
    created = await manager.create("alice", name="ci")
    async with client(app_for(api_key)) as http:
        answer = await http.get(
            "/me", headers=[("X-API-Key", created.key), ("X-API-Key", created.key)]
        )
    assert answer.status_code == 401


async def test_the_key_is_never_echoed_or_logged(
    manager: APIKeyManager, api_key: APIKeyAuth, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    created = await manager.create("alice", name="ci")
    wrong = created.key[:-1] + ("A" if created.key[-1] != "A" else "B")
    async with client(app_for(api_key)) as http:
        answer = await http.get("/me", headers={"X-API-Key": wrong})
    assert "wrong API key secret" in caplog.text
    for text in (answer.text, str(answer.headers), caplog.text):
        assert wrong not in text
        assert created.key.split("_")[2][:20] not in text


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=300))
async def test_any_header_value_is_a_401_never_a_500(api_key: APIKeyAuth, value: str) -> None:
    async with client(app_for(api_key)) as http:
        answer = await http.get("/me", headers={"X-API-Key": value})
    assert answer.status_code == 401


async def test_an_oversized_header_is_a_401(api_key: APIKeyAuth) -> None:
    async with client(app_for(api_key)) as http:
        answer = await http.get("/me", headers={"X-API-Key": "fsk_" + "A" * 60_000})
    assert answer.status_code == 401


async def test_a_store_outage_is_a_503(fake_clock: FakeClock) -> None:
    pytest.importorskip("redis")
    from fastapi_secure.apikeys.stores.redis import RedisAPIKeyStore

    # Nothing listens on port 1 of the loopback.
    store = RedisAPIKeyStore.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    manager = APIKeyManager(store, clock=fake_clock)
    try:
        async with client(app_for(APIKeyAuth(manager))) as http:
            answer = await http.get("/me", headers={"X-API-Key": "fsk_AAAAAAAAAAAA_" + "B" * 43})
        assert answer.status_code == 503
        assert answer.json()["detail"]["code"] == "store_unavailable"
    finally:
        await store.aclose()


async def test_an_unexpected_store_failure_is_a_401_not_a_500(fake_clock: FakeClock) -> None:
    class Broken(MemoryAPIKeyStore):
        async def get(self, key_id: str) -> Any:
            raise RuntimeError("driver bug")

    manager = APIKeyManager(Broken(), clock=fake_clock)
    async with client(app_for(APIKeyAuth(manager))) as http:
        answer = await http.get("/me", headers={"X-API-Key": "fsk_AAAAAAAAAAAA_" + "B" * 43})
    assert answer.status_code == 401
    assert "driver bug" not in answer.text


# --- scopes, roles, permissions, freshness --------------------------------------------


async def test_scopes_apply_to_keys(manager: APIKeyManager, api_key: APIKeyAuth) -> None:
    reader = await manager.create("alice", name="r", scopes=["read"])
    writer = await manager.create("alice", name="w", scopes=["read", "write"])
    async with client(app_for(api_key, scopes=["write"])) as http:
        refused = await http.get("/me", headers=key_header(reader))
        allowed = await http.get("/me", headers=key_header(writer))
    assert refused.status_code == 403
    assert refused.json()["detail"]["code"] == "insufficient_scope"
    assert refused.headers["www-authenticate"] == (
        f'{CHALLENGE}, error="insufficient_scope", scope="write"'
    )
    assert allowed.status_code == 200


async def test_a_scope_unfit_for_a_header_is_left_out_of_the_challenge(
    manager: APIKeyManager, api_key: APIKeyAuth
) -> None:
    created = await manager.create("alice", name="r", scopes=["read"])
    async with client(app_for(api_key, scopes=['say"hi'])) as http:
        refused = await http.get("/me", headers=key_header(created))
    assert refused.status_code == 403
    assert refused.headers["www-authenticate"] == f'{CHALLENGE}, error="insufficient_scope"'


async def test_role_checker_takes_an_api_key(manager: APIKeyManager, api_key: APIKeyAuth) -> None:
    admin = await manager.create("alice", name="a", roles=["admin"])
    viewer = await manager.create("bob", name="v", roles=["viewer"])
    checker = RoleChecker(["admin"], auth=api_key)
    async with client(app_for(checker)) as http:
        assert (await http.get("/me", headers=key_header(admin))).status_code == 200
        assert (await http.get("/me", headers=key_header(viewer))).status_code == 403
        assert (await http.get("/me")).status_code == 401


async def test_permission_checker_takes_an_api_key(
    manager: APIKeyManager, api_key: APIKeyAuth
) -> None:
    grants = RolePermissions({"editor": ["posts:*"]})
    editor = await manager.create("alice", name="e", roles=["editor"])
    other = await manager.create("bob", name="o", roles=["viewer"])
    checker = PermissionChecker(["posts:write"], auth=api_key, grants=grants)
    async with client(app_for(checker)) as http:
        assert (await http.get("/me", headers=key_header(editor))).status_code == 200
        assert (await http.get("/me", headers=key_header(other))).status_code == 403


async def test_a_key_never_passes_require_fresh(
    manager: APIKeyManager, api_key: APIKeyAuth
) -> None:
    created = await manager.create("alice", name="ci")
    async with client(app_for(require_fresh(api_key))) as http:
        answer = await http.get("/me", headers=key_header(created))
    assert answer.status_code == 401
    assert answer.json()["detail"]["code"] == "fresh_token_required"


async def test_one_use_is_recorded_per_request_however_many_dependencies(
    manager: APIKeyManager, api_key: APIKeyAuth
) -> None:
    app = FastAPI(dependencies=[Depends(RoleChecker(["bot"], auth=api_key))])
    verified: list[str] = []
    real_verify = manager.verify

    async def counting_verify(key: str, **where: Any) -> Any:
        verified.append(key)
        return await real_verify(key, **where)

    manager.verify = counting_verify  # type: ignore[method-assign]

    @app.get("/me")
    async def me(claims: Annotated[AccessClaims, Depends(api_key)]) -> str:
        return claims.sub

    created = await manager.create("alice", name="bot", roles=["bot"])
    async with client(app) as http:
        assert (await http.get("/me", headers=key_header(created))).json() == "alice"
    assert len(verified) == 1


def test_openapi_shows_an_api_key_scheme(api_key: APIKeyAuth) -> None:
    schema = app_for(api_key).openapi()
    assert schema["components"]["securitySchemes"]["APIKeyAuth"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
    }
    assert schema["paths"]["/me"]["get"]["security"] == [{"APIKeyAuth": []}]


@pytest.mark.parametrize("header", ["", "bad header", "Authorization", "X-Key\n"])
def test_unusable_header_names_are_refused(manager: APIKeyManager, header: str) -> None:
    with pytest.raises(ConfigurationError):
        APIKeyAuth(manager, header_name=header)


def test_api_key_auth_needs_a_manager() -> None:
    with pytest.raises(ConfigurationError):
        APIKeyAuth(object())  # type: ignore[arg-type]


async def test_a_custom_header_name(manager: APIKeyManager) -> None:
    created = await manager.create("alice", name="ci")
    async with client(app_for(APIKeyAuth(manager, header_name="X-Service-Key"))) as http:
        assert (await http.get("/me", headers={"X-Service-Key": created.key})).status_code == 200
        missing = await http.get("/me", headers={"X-API-Key": created.key})
    assert missing.headers["www-authenticate"] == 'APIKey header="X-Service-Key"'


# --- bearer token or API key --------------------------------------------------------


@pytest.fixture
def either(issuer: TokenIssuer, api_key: APIKeyAuth) -> FirstOf:
    return FirstOf(BearerAuth(issuer), api_key)


async def test_a_route_takes_a_bearer_token_or_a_key(
    manager: APIKeyManager, issuer: TokenIssuer, either: FirstOf
) -> None:
    created = await manager.create("bob", name="ci")
    token = await access_token(issuer, "alice")
    async with client(app_for(either)) as http:
        by_token = await http.get("/me", headers=bearer(token))
        by_key = await http.get("/me", headers=key_header(created))
        neither = await http.get("/me")
    assert by_token.json()["sub"] == "alice"
    assert by_token.json()["amr"] is None
    assert by_key.json()["sub"] == "bob"
    assert by_key.json()["amr"] == ["apikey"]
    assert neither.status_code == 401
    assert neither.headers["www-authenticate"] == f"Bearer, {CHALLENGE}"


async def test_a_bad_credential_is_not_rescued_by_a_good_one(
    manager: APIKeyManager, issuer: TokenIssuer, either: FirstOf
) -> None:
    created = await manager.create("bob", name="ci")
    token = await access_token(issuer, "alice")
    async with client(app_for(either)) as http:
        bad_token = await http.get("/me", headers={**bearer(token + "x"), **key_header(created)})
        bad_key = await http.get(
            "/me", headers={**bearer(token), "X-API-Key": created.key[:-1] + "!"}
        )
    assert bad_token.status_code == 401
    # The bearer token comes first and is good: the key is not even read.
    assert bad_key.json()["sub"] == "alice"
    async with client(app_for(FirstOf(APIKeyAuth(manager), BearerAuth(issuer)))) as http:
        key_first = await http.get(
            "/me", headers={**bearer(token), "X-API-Key": created.key[:-1] + "!"}
        )
    assert key_first.status_code == 401


async def test_members_without_auto_error_work_too(
    manager: APIKeyManager, issuer: TokenIssuer
) -> None:
    either = FirstOf(BearerAuth(issuer, auto_error=False), APIKeyAuth(manager, auto_error=False))
    created = await manager.create("bob", name="ci")
    async with client(app_for(either)) as http:
        assert (await http.get("/me", headers=key_header(created))).json()["sub"] == "bob"
        neither = await http.get("/me")
    assert neither.status_code == 401
    assert neither.headers["www-authenticate"] == f"Bearer, {CHALLENGE}"
    anonymous = FirstOf(BearerAuth(issuer), APIKeyAuth(manager), auto_error=False)
    async with client(app_for(anonymous)) as http:
        assert (await http.get("/me")).json() == {"sub": None}


async def test_role_checker_and_scopes_over_either(
    manager: APIKeyManager, issuer: TokenIssuer, either: FirstOf
) -> None:
    admin_key = await manager.create("bob", name="a", roles=["admin"], scopes=["read"])
    viewer_token = await access_token(issuer, "alice", roles=["viewer"], scopes=["read"])
    checker = RoleChecker(["admin"], auth=either)
    async with client(app_for(checker, scopes=["read"])) as http:
        assert (await http.get("/me", headers=key_header(admin_key))).status_code == 200
        assert (await http.get("/me", headers=bearer(viewer_token))).status_code == 403
    async with client(app_for(either, scopes=["write"])) as http:
        assert (await http.get("/me", headers=key_header(admin_key))).status_code == 403


def test_openapi_lists_both_schemes_as_alternatives(either: FirstOf) -> None:
    schema = app_for(either, scopes=["read"]).openapi()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["BearerAuth"]["type"] == "oauth2"
    assert schemes["APIKeyAuth"]["type"] == "apiKey"
    assert schema["paths"]["/me"]["get"]["security"] == [
        {"BearerAuth": ["read"]},
        {"APIKeyAuth": ["read"]},
    ]


async def test_first_of_over_a_checker_names_its_scheme(
    manager: APIKeyManager, issuer: TokenIssuer, api_key: APIKeyAuth
) -> None:
    either = FirstOf(BearerAuth(issuer), RoleChecker(["bot"], auth=api_key))
    bot = await manager.create("bob", name="b", roles=["bot"])
    async with client(app_for(either)) as http:
        assert (await http.get("/me", headers=key_header(bot))).json()["sub"] == "bob"
        neither = await http.get("/me")
    assert neither.headers["www-authenticate"] == f"Bearer, {CHALLENGE}"


class HeaderAuth:
    """A ClaimsDependency of an app's own that answers through HTTPException."""

    scheme_name = "HeaderAuth"

    def __init__(self, manager: APIKeyManager) -> None:
        self.inner = APIKeyAuth(manager, header_name="X-Other-Key")
        self.model = self.inner.model

    async def authenticate(self, request: Any, scopes: Any = ()) -> AccessClaims | None:
        if "x-other-key" not in request.headers:
            raise HTTPException(
                401, detail={"code": "not_authenticated", "message": "not authenticated"}
            )
        if request.headers["x-other-key"] == "teapot":
            raise HTTPException(418, detail={"code": "teapot", "message": "no"})
        return await self.inner.authenticate(request, scopes)


async def test_first_of_reads_absence_from_http_exceptions_too(
    manager: APIKeyManager, api_key: APIKeyAuth
) -> None:
    either = FirstOf(HeaderAuth(manager), api_key)
    created = await manager.create("bob", name="ci")
    async with client(app_for(either)) as http:
        assert (await http.get("/me", headers=key_header(created))).json()["sub"] == "bob"
        assert (await http.get("/me", headers={"X-Other-Key": created.key})).status_code == 200
        assert (await http.get("/me", headers={"X-Other-Key": "teapot"})).status_code == 418
        neither = await http.get("/me")
    assert neither.headers["www-authenticate"] == (f'APIKey header="X-Other-Key", {CHALLENGE}')


def test_first_of_needs_two_auth_dependencies(api_key: APIKeyAuth) -> None:
    with pytest.raises(ConfigurationError):
        FirstOf(api_key)
    with pytest.raises(ConfigurationError):
        FirstOf(api_key, object())  # type: ignore[arg-type]


HEADER_TEXT = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=200)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(authorization=HEADER_TEXT, key=HEADER_TEXT)
async def test_first_of_answers_401_to_any_garbage(
    either: FirstOf, authorization: str, key: str
) -> None:
    async with client(app_for(either)) as http:
        answer = await http.get("/me", headers={"Authorization": authorization, "X-API-Key": key})
    assert answer.status_code == 401


async def test_first_of_never_answers_500(either: FirstOf) -> None:
    async with client(app_for(either)) as http:
        for headers in (
            {"Authorization": "Bearer"},
            {"Authorization": "Basic Zm9vOmJhcg=="},
            {"X-API-Key": ""},
            {"Authorization": "Bearer \x7f"},
        ):
            answer = await http.get("/me", headers=headers)
            assert answer.status_code == 401, headers


# --- what the audit sees -------------------------------------------------------------


def _audited(dependency: Any) -> Any:
    from fastapi_secure.audit import audit

    (route,) = [route for route in audit(app_for(dependency)).routes if route.path == "/me"]
    return route


def test_api_key_auth_describes_itself_to_the_audit(manager: APIKeyManager) -> None:
    route = _audited(APIKeyAuth(manager, header_name="X-Service-Key"))
    assert route.authentication == ("api_key",)
    assert route.protected
    optional = _audited(APIKeyAuth(manager, auto_error=False))
    assert optional.optional_authentication == ("api_key",)
    assert not optional.protected


def test_first_of_describes_its_members_as_alternatives(
    manager: APIKeyManager, issuer: TokenIssuer
) -> None:
    route = _audited(FirstOf(BearerAuth(issuer), APIKeyAuth(manager)))
    assert route.authentication == ("api_key", "bearer")
    assert "bearer or api_key" in route.protection() or "api_key or bearer" in route.protection()
    # FirstOf decides, not its members' auto_error...
    lax_members = FirstOf(
        BearerAuth(issuer, auto_error=False), APIKeyAuth(manager, auto_error=False)
    )
    assert _audited(lax_members).authentication == ("api_key", "bearer")
    # ...and a FirstOf that lets anonymous requests through protects nothing.
    anonymous = _audited(FirstOf(BearerAuth(issuer), APIKeyAuth(manager), auto_error=False))
    assert anonymous.authentication == ()
    assert anonymous.optional_authentication == ("api_key", "bearer")
    # A checker as a member is followed to its own auth.
    checked = _audited(FirstOf(BearerAuth(issuer), RoleChecker(["bot"], auth=APIKeyAuth(manager))))
    assert checked.authentication == ("api_key", "bearer")
    assert checked.roles == ("bot",)
