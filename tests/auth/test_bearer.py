"""BearerAuth and require_fresh, mostly from the attacker's side, over a real TokenIssuer."""

# No `from __future__ import annotations`: FastAPI resolves string annotations in the
# module globals, and these endpoints close over per-test dependencies.

import logging
import re
import socket
from typing import Annotated

import pytest
from fastapi import Depends, FastAPI, Security
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastapi_secure.auth import BearerAuth, require_fresh
from fastapi_secure.auth.bearer import bearer_token
from fastapi_secure.errors import (
    ConfigurationError,
    InvalidTokenError,
)
from fastapi_secure.http_errors import status_of
from fastapi_secure.testing import FakeClock
from fastapi_secure.tokens.claims import AccessClaims
from fastapi_secure.tokens.issuer import TokenIssuer
from tests.support.auth import (
    ACCESS_TTL,
    LEEWAY,
    access_token,
    bearer,
    client,
    make_issuer,
    subject_of,
)

INVALID = 'Bearer error="invalid_token"'
GENERIC_INVALID = {"detail": {"code": "invalid_token", "message": "invalid or expired token"}}


@pytest.fixture
def issuer(fake_clock: FakeClock) -> TokenIssuer:
    return make_issuer(fake_clock)


def make_app(auth: BearerAuth) -> FastAPI:
    app = FastAPI()

    @app.get("/me")
    async def me(claims: Annotated[AccessClaims, Depends(auth)]) -> dict[str, str]:
        return {"sub": claims.sub}

    @app.post("/posts")
    async def write(
        claims: Annotated[AccessClaims, Security(auth, scopes=["posts:write"])],
    ) -> dict[str, str]:
        return {"sub": claims.sub}

    return app


@pytest.fixture
def auth(issuer: TokenIssuer) -> BearerAuth:
    return BearerAuth(issuer, scopes={"posts:read": "Read posts", "posts:write": "Write posts"})


pytestmark = pytest.mark.anyio


async def test_valid_token_gives_its_claims(issuer: TokenIssuer, auth: BearerAuth) -> None:
    token = await access_token(issuer, "alice")
    async with client(make_app(auth)) as http:
        response = await http.get("/me", headers=bearer(token))
    assert response.status_code == 200
    assert response.json() == {"sub": "alice"}


async def test_scheme_name_is_case_insensitive(issuer: TokenIssuer, auth: BearerAuth) -> None:
    token = await access_token(issuer)
    async with client(make_app(auth)) as http:
        response = await http.get("/me", headers={"Authorization": f"bEaReR {token}"})
    assert response.status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Basic YWxpY2U6c2VjcmV0"},
        {"Authorization": "Token abc"},
    ],
    ids=["missing", "empty", "basic", "other-scheme"],
)
async def test_no_bearer_credentials_is_a_plain_challenge(
    auth: BearerAuth, headers: dict[str, str]
) -> None:
    async with client(make_app(auth)) as http:
        response = await http.get("/me", headers=headers)
    assert response.status_code == 401
    # RFC 6750 3.1: no error code when the client sent no Bearer credentials.
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["detail"]["code"] == "not_authenticated"


@pytest.mark.parametrize(
    "value",
    [
        "Bearer",
        "Bearer ",
        "Bearer a b",
        "Bearer a.b.c d.e.f",
        "Bearer !!!",
        'Bearer "quoted"',
        "Bearer a,b",
        "Bearer ey\u00e9J",
        "Bearer not-a-jwt",
        "Bearer a.b.c",
        "Bearer ====",
    ],
)
async def test_malformed_bearer_credentials_are_invalid_token(auth: BearerAuth, value: str) -> None:
    async with client(make_app(auth)) as http:
        response = await http.get("/me", headers=[(b"Authorization", value.encode("latin-1"))])
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == INVALID
    assert response.json() == GENERIC_INVALID


async def test_two_authorization_headers_are_refused(issuer: TokenIssuer, auth: BearerAuth) -> None:
    token = await access_token(issuer)
    async with client(make_app(auth)) as http:
        response = await http.get(
            "/me",
            headers=[("Authorization", f"Bearer {token}"), ("Authorization", "Bearer x.y.z")],
        )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == INVALID


async def test_oversized_token_is_refused_before_verification(issuer: TokenIssuer) -> None:
    calls: list[str] = []

    class Recording:
        async def verify_access(self, token: str) -> AccessClaims:
            calls.append(token)
            return await issuer.verify_access(token)

    auth = BearerAuth(Recording(), max_token_length=4096)
    async with client(make_app(auth)) as http:
        response = await http.get("/me", headers=bearer("a" * 4097))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == INVALID
    assert calls == []


async def test_refresh_token_is_not_an_access_token(issuer: TokenIssuer, auth: BearerAuth) -> None:
    pair = await issuer.issue("alice")
    async with client(make_app(auth)) as http:
        response = await http.get("/me", headers=bearer(pair.refresh_token))
    assert response.status_code == 401
    assert response.json() == GENERIC_INVALID
    assert response.headers["www-authenticate"] == INVALID


async def test_expired_token_is_refused_with_the_generic_answer(
    issuer: TokenIssuer, auth: BearerAuth, fake_clock: FakeClock
) -> None:
    token = await access_token(issuer)
    async with client(make_app(auth)) as http:
        fake_clock.advance(ACCESS_TTL + LEEWAY - 1)
        assert (await http.get("/me", headers=bearer(token))).status_code == 200
        fake_clock.advance(2)
        response = await http.get("/me", headers=bearer(token))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == INVALID
    assert response.json() == GENERIC_INVALID


async def test_revoked_token_and_revoked_subject_are_refused(
    issuer: TokenIssuer, auth: BearerAuth, fake_clock: FakeClock
) -> None:
    revoked = await access_token(issuer, "alice")
    other = await access_token(issuer, "bob")
    await issuer.revoke(revoked)
    async with client(make_app(auth)) as http:
        response = await http.get("/me", headers=bearer(revoked))
        assert response.status_code == 401
        assert response.json() == GENERIC_INVALID
        assert (await http.get("/me", headers=bearer(other))).status_code == 200
        fake_clock.advance(1)
        await issuer.revoke_subject("bob")
        assert (await http.get("/me", headers=bearer(other))).status_code == 401


async def test_token_of_another_issuer_is_refused(fake_clock: FakeClock, auth: BearerAuth) -> None:
    foreign = make_issuer(fake_clock, issuer="https://evil.example.test")
    token = await access_token(foreign)
    async with client(make_app(auth)) as http:
        response = await http.get("/me", headers=bearer(token))
    assert response.status_code == 401


async def test_missing_scope_is_403_insufficient_scope(
    issuer: TokenIssuer, auth: BearerAuth
) -> None:
    reader = await access_token(issuer, scopes=["posts:read"])
    writer = await access_token(issuer, scopes=["posts:read", "posts:write"])
    async with client(make_app(auth)) as http:
        refused = await http.post("/posts", headers=bearer(reader))
        allowed = await http.post("/posts", headers=bearer(writer))
    assert refused.status_code == 403
    assert refused.json()["detail"]["code"] == "insufficient_scope"
    assert (
        refused.headers["www-authenticate"]
        == 'Bearer error="insufficient_scope", scope="posts:write"'
    )
    assert allowed.status_code == 200


async def test_scopes_unfit_for_a_header_are_enforced_but_not_echoed(
    issuer: TokenIssuer,
) -> None:
    auth = BearerAuth(issuer)
    app = FastAPI()

    @app.get("/odd")
    async def odd(
        claims: Annotated[AccessClaims, Security(auth, scopes=['say"hi'])],
    ) -> None:
        return None

    async with client(app) as http:
        response = await http.get("/odd", headers=bearer(await access_token(issuer)))
    assert response.status_code == 403
    assert response.headers["www-authenticate"] == 'Bearer error="insufficient_scope"'


async def test_auto_error_false_allows_anonymous_but_not_bad_tokens(
    issuer: TokenIssuer,
) -> None:
    optional = BearerAuth(issuer, auto_error=False)
    app = FastAPI()

    @app.get("/maybe")
    async def maybe(
        claims: Annotated[AccessClaims | None, Depends(optional)],
    ) -> dict[str, str | None]:
        return {"sub": subject_of(claims)}

    token = await access_token(issuer, "alice")
    async with client(app) as http:
        anonymous = await http.get("/maybe")
        other_scheme = await http.get("/maybe", headers={"Authorization": "Basic eDp5"})
        known = await http.get("/maybe", headers=bearer(token))
        garbage = await http.get("/maybe", headers=bearer("not.a.token"))
    assert anonymous.json() == {"sub": None}
    assert other_scheme.json() == {"sub": None}
    assert known.json() == {"sub": "alice"}
    # A presented but invalid token must not silently downgrade to anonymous.
    assert garbage.status_code == 401
    assert garbage.headers["www-authenticate"] == INVALID


async def test_an_unexpected_verifier_error_is_401_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken:
        async def verify_access(self, token: str) -> AccessClaims:
            raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad byte")

    caplog.set_level(logging.DEBUG)
    async with client(make_app(BearerAuth(Broken()))) as http:
        response = await http.get("/me", headers=bearer("a.b.c"))
    assert response.status_code == 401
    assert response.json() == GENERIC_INVALID
    assert [r.levelno for r in caplog.records if r.name == "fastapi_secure.auth"] == [logging.ERROR]
    assert "UnicodeDecodeError" in caplog.text
    assert "a.b.c" not in caplog.text


async def test_one_verification_per_request_and_token(issuer: TokenIssuer) -> None:
    calls: list[str] = []

    class Recording:
        async def verify_access(self, token: str) -> AccessClaims:
            calls.append("verify")
            return await issuer.verify_access(token)

    auth = BearerAuth(Recording())
    app = FastAPI(dependencies=[Depends(auth)])

    @app.get("/twice")
    async def twice(
        a: Annotated[AccessClaims, Depends(auth)],
        b: Annotated[AccessClaims, Security(auth, scopes=["x"])],
    ) -> dict[str, bool]:
        return {"same": a == b}

    token = await access_token(issuer, scopes=["x"])
    async with client(app) as http:
        response = await http.get("/twice", headers=bearer(token))
        assert response.json() == {"same": True}
        assert calls == ["verify"]
        await http.get("/twice", headers=bearer(token))
    assert calls == ["verify", "verify"]


async def test_no_token_in_logs(
    issuer: TokenIssuer, auth: BearerAuth, caplog: pytest.LogCaptureFixture, fake_clock: FakeClock
) -> None:
    pair = await issuer.issue("alice", scopes=("posts:read",))
    caplog.set_level(logging.DEBUG)
    async with client(make_app(auth)) as http:
        await http.get("/me", headers=bearer(pair.refresh_token))
        await http.get("/me", headers=bearer(pair.access_token + "x"))
        await http.post("/posts", headers=bearer(pair.access_token))
        fake_clock.advance(ACCESS_TTL * 2)
        await http.get("/me", headers=bearer(pair.access_token))
    auth_records = [r for r in caplog.records if r.name == "fastapi_secure.auth"]
    assert len(auth_records) >= 4  # each refusal leaves a reason at DEBUG
    assert all(r.levelno == logging.DEBUG for r in auth_records)
    for token in (pair.access_token, pair.refresh_token):
        for part in token.split("."):
            assert part not in caplog.text


def test_openapi_lists_the_password_flow_and_per_route_scopes(auth: BearerAuth) -> None:
    schema = TestClient(make_app(auth)).get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["BearerAuth"] == {
        "type": "oauth2",
        "flows": {
            "password": {
                "tokenUrl": "/auth/login",
                "scopes": {"posts:read": "Read posts", "posts:write": "Write posts"},
            }
        },
    }
    assert schema["paths"]["/me"]["get"]["security"] == [{"BearerAuth": []}]
    assert schema["paths"]["/posts"]["post"]["security"] == [{"BearerAuth": ["posts:write"]}]


def test_openapi_scheme_options(issuer: TokenIssuer) -> None:
    auth = BearerAuth(
        issuer,
        token_url="/login",
        refresh_url="/refresh",
        scheme_name="jwt",
        description="Access token from /login",
    )
    schema = TestClient(make_app(auth)).get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["jwt"] == {
        "type": "oauth2",
        "description": "Access token from /login",
        "flows": {"password": {"tokenUrl": "/login", "refreshUrl": "/refresh", "scopes": {}}},
    }


@pytest.mark.parametrize(
    "kwargs",
    [
        {"scopes": {"bad scope": "x"}},
        {"scopes": {'q"uote': "x"}},
        {"max_token_length": 10},
        {"token_url": ""},
    ],
)
def test_configuration_mistakes_are_refused(issuer: TokenIssuer, kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        BearerAuth(issuer, **kwargs)  # type: ignore[arg-type]


def test_issuer_must_verify_access_tokens() -> None:
    with pytest.raises(ConfigurationError):
        BearerAuth(object())  # type: ignore[arg-type]


# --- untrusted header content -------------------------------------------------


@given(st.lists(st.text(alphabet=st.characters(max_codepoint=255)), max_size=3))
def test_header_parser_returns_a_token_none_or_invalid_token(values: list[str]) -> None:
    outcome: str | InvalidTokenError | None
    try:
        outcome = bearer_token(values, 8192)
    except InvalidTokenError as exc:
        outcome = exc
    if isinstance(outcome, InvalidTokenError):
        assert status_of(outcome) == 401
        assert outcome.reason
    elif outcome is not None:
        assert len(values) == 1
        assert values[0].strip(" ").lower().startswith("bearer ")
        assert values[0].strip(" ").endswith(outcome)
        assert re.fullmatch(r"[A-Za-z0-9\-._~+/]+=*", outcome)


_header_bytes = st.binary(max_size=300).filter(lambda b: b"\r" not in b and b"\n" not in b)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=_header_bytes | _header_bytes.map(lambda b: b"Bearer " + b))
def test_no_authorization_header_causes_a_500(auth: BearerAuth, value: bytes) -> None:
    with TestClient(make_app(auth), raise_server_exceptions=False) as http:
        response = http.get("/me", headers=[(b"Authorization", value)])
    assert response.status_code == 401
    assert response.headers["www-authenticate"] in ("Bearer", INVALID)


# --- require_fresh ------------------------------------------------------------


def fresh_app(auth: BearerAuth, clock: FakeClock, max_age: float | None = None) -> FastAPI:
    app = FastAPI()
    fresh = require_fresh(auth, max_age=max_age, clock=clock)

    @app.post("/password")
    async def change_password(claims: Annotated[AccessClaims, Depends(fresh)]) -> dict[str, str]:
        return {"sub": claims.sub}

    return app


async def test_require_fresh_passes_a_login_token_and_refuses_a_rotated_one(
    issuer: TokenIssuer, auth: BearerAuth, fake_clock: FakeClock
) -> None:
    pair = await issuer.issue("alice", fresh=True)
    rotated = await issuer.rotate(pair.refresh_token)
    async with client(fresh_app(auth, fake_clock)) as http:
        ok = await http.post("/password", headers=bearer(pair.access_token))
        refused = await http.post("/password", headers=bearer(rotated.access_token))
        anonymous = await http.post("/password")
    assert ok.status_code == 200
    assert refused.status_code == 401
    assert refused.json()["detail"]["code"] == "fresh_token_required"
    assert refused.headers["www-authenticate"] == 'Bearer error="insufficient_user_authentication"'
    assert anonymous.status_code == 401
    assert anonymous.json()["detail"]["code"] == "not_authenticated"


async def test_require_fresh_max_age_uses_auth_time(
    issuer: TokenIssuer, auth: BearerAuth, fake_clock: FakeClock
) -> None:
    token = await access_token(issuer, fresh=True)
    async with client(fresh_app(auth, fake_clock, max_age=300)) as http:
        fake_clock.advance(300)
        assert (await http.post("/password", headers=bearer(token))).status_code == 200
        fake_clock.advance(1)
        refused = await http.post("/password", headers=bearer(token))
    assert refused.status_code == 401
    assert refused.json()["detail"]["code"] == "fresh_token_required"
    assert (
        refused.headers["www-authenticate"]
        == 'Bearer error="insufficient_user_authentication", max_age="300"'
    )


async def test_require_fresh_still_rejects_invalid_tokens(
    auth: BearerAuth, fake_clock: FakeClock
) -> None:
    async with client(fresh_app(auth, fake_clock)) as http:
        response = await http.post("/password", headers=bearer("x.y.z"))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == INVALID


async def test_require_fresh_over_optional_auth_still_needs_credentials(
    issuer: TokenIssuer, fake_clock: FakeClock
) -> None:
    optional = BearerAuth(issuer, auto_error=False)
    async with client(fresh_app(optional, fake_clock)) as http:
        response = await http.post("/password")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_require_fresh_configuration(auth: BearerAuth) -> None:
    with pytest.raises(ConfigurationError):
        require_fresh(auth, max_age=0)
    with pytest.raises(ConfigurationError):
        require_fresh(object())  # type: ignore[arg-type]


def test_require_fresh_shows_the_auth_scheme_in_openapi(
    auth: BearerAuth, fake_clock: FakeClock
) -> None:
    schema = TestClient(fresh_app(auth, fake_clock)).get("/openapi.json").json()
    assert schema["paths"]["/password"]["post"]["security"] == [{"BearerAuth": []}]
    assert "BearerAuth" in schema["components"]["securitySchemes"]


# --- store outage -------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_token_store_outage_is_503_not_500(fake_clock: FakeClock) -> None:
    from fastapi_secure.tokens.stores.redis import RedisTokenStore

    store = RedisTokenStore.from_url(
        f"redis://127.0.0.1:{_closed_port()}/0", socket_connect_timeout=0.5, socket_timeout=0.5
    )
    try:
        token = await access_token(make_issuer(fake_clock), "alice")  # same keys, memory store
        auth = BearerAuth(make_issuer(fake_clock, store=store))
        async with client(make_app(auth)) as http:
            response = await http.get("/me", headers=bearer(token))
    finally:
        await store.aclose()
    assert response.status_code == 503
    assert response.json()["detail"]["code"] == "store_unavailable"
