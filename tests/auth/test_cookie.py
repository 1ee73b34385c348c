"""CookieAuth: cookie attributes, CSRF (signed double submit + Origin) from the attacker's side."""

# No `from __future__ import annotations`: FastAPI resolves string annotations in the
# module globals, and these endpoints close over per-test dependencies.

from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI, Request, Response
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastapi_secure.auth import CookieAuth
from fastapi_secure.errors import (
    AuthenticationError,
    ConfigurationError,
)
from fastapi_secure.http_errors import http_exception
from fastapi_secure.testing import FakeClock
from fastapi_secure.tokens.claims import AccessClaims
from fastapi_secure.tokens.issuer import TokenIssuer
from tests.support.auth import SECRET, client, make_issuer

CSRF_SECRET = "csrf-secret-of-at-least-thirty-two-bytes"
ORIGIN = "https://app.example.test"
UNSAFE = ["POST", "PUT", "PATCH", "DELETE"]

pytestmark = pytest.mark.anyio


@pytest.fixture
def issuer(fake_clock: FakeClock) -> TokenIssuer:
    return make_issuer(fake_clock)


def make_auth(issuer: TokenIssuer, **kwargs: object) -> CookieAuth:
    options: dict[str, object] = {"csrf_secret": CSRF_SECRET, "allowed_origins": [ORIGIN]}
    options.update(kwargs)
    return CookieAuth(issuer, **options)  # type: ignore[arg-type]


@pytest.fixture
def auth(issuer: TokenIssuer) -> CookieAuth:
    return make_auth(issuer)


def make_app(auth: CookieAuth, issuer: TokenIssuer) -> FastAPI:
    app = FastAPI()

    @app.post("/auth/login")
    async def login(response: Response, user: str = "alice") -> dict[str, str]:
        pair = await issuer.issue(user)
        return {"csrf_token": auth.set_cookies(response, pair)}

    @app.post("/auth/refresh")
    async def refresh(request: Request, response: Response) -> dict[str, str]:
        auth.check_origin(request)
        token = auth.refresh_token(request)
        if token is None:
            raise http_exception(AuthenticationError(reason="no refresh cookie"))
        pair = await issuer.rotate(token)
        return {"csrf_token": auth.set_cookies(response, pair)}

    @app.post("/auth/logout")
    async def logout(response: Response, claims: Annotated[AccessClaims, Depends(auth)]) -> None:
        auth.clear_cookies(response)

    async def posts(claims: Annotated[AccessClaims, Depends(auth)]) -> dict[str, str]:
        return {"sub": claims.sub}

    for method in ("GET", "HEAD", "OPTIONS", *UNSAFE):
        app.add_api_route("/posts", posts, methods=[method], operation_id=f"posts_{method}")

    return app


@dataclass
class Session:
    access: str
    refresh: str
    csrf: str

    def cookie_header(self, *, csrf: str | None = None) -> str:
        return f"__Host-access_token={self.access}; __Host-csrf_token={csrf or self.csrf}"


def set_cookies(response: httpx.Response) -> dict[str, SimpleCookie]:
    parsed: dict[str, SimpleCookie] = {}
    for line in response.headers.get_list("set-cookie"):
        cookie: SimpleCookie = SimpleCookie()
        cookie.load(line)
        for name in cookie:
            parsed[name] = cookie
    return parsed


async def login(http: httpx.AsyncClient, user: str = "alice") -> Session:
    response = await http.post("/auth/login", params={"user": user})
    assert response.status_code == 200
    cookies = set_cookies(response)
    session = Session(
        access=cookies["__Host-access_token"]["__Host-access_token"].value,
        refresh=cookies["__Host-refresh_token"]["__Host-refresh_token"].value,
        csrf=cookies["__Host-csrf_token"]["__Host-csrf_token"].value,
    )
    assert response.json() == {"csrf_token": session.csrf}
    http.cookies.clear()  # each request below states exactly what it sends
    return session


def unsafe_headers(session: Session, **overrides: str) -> dict[str, str]:
    headers = {
        "Cookie": session.cookie_header(),
        "X-CSRF-Token": session.csrf,
        "Origin": ORIGIN,
    }
    headers.update(overrides)
    return {key: value for key, value in headers.items() if value != "-"}


async def test_login_sets_hardened_cookies(auth: CookieAuth, issuer: TokenIssuer) -> None:
    async with client(make_app(auth, issuer)) as http:
        response = await http.post("/auth/login")
    lines = {line.split("=", 1)[0]: line for line in response.headers.get_list("set-cookie")}
    assert set(lines) == {"__Host-access_token", "__Host-refresh_token", "__Host-csrf_token"}
    cookies = set_cookies(response)
    access = cookies["__Host-access_token"]["__Host-access_token"]
    refresh = cookies["__Host-refresh_token"]["__Host-refresh_token"]
    csrf = cookies["__Host-csrf_token"]["__Host-csrf_token"]
    for morsel in (access, refresh, csrf):
        assert morsel["secure"] is True
        assert morsel["domain"] == ""  # __Host- forbids Domain; host-only cookies
    assert (access["path"], access["httponly"], access["samesite"]) == ("/", True, "lax")
    assert (refresh["path"], refresh["httponly"], refresh["samesite"]) == (
        "/",
        True,
        "strict",
    )
    # The page's JavaScript must read the CSRF token to echo it in the header.
    assert (csrf["path"], csrf["httponly"], csrf["samesite"]) == ("/", "", "lax")
    assert access["max-age"] == "900"
    assert refresh["max-age"] == str(7 * 24 * 3600)


async def test_insecure_mode_drops_prefixes_and_secure(issuer: TokenIssuer) -> None:
    auth = make_auth(
        issuer, secure=False, samesite="strict", allowed_origins=["http://localhost:8000"]
    )
    async with client(make_app(auth, issuer)) as http:
        response = await http.post("/auth/login")
    cookies = set_cookies(response)
    assert set(cookies) == {"access_token", "refresh_token", "csrf_token"}
    for name, cookie in cookies.items():
        assert cookie[name]["secure"] == ""
        assert cookie[name]["samesite"] == "strict"


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
async def test_safe_methods_need_no_csrf_token(
    auth: CookieAuth, issuer: TokenIssuer, method: str
) -> None:
    async with client(make_app(auth, issuer)) as http:
        session = await login(http)
        response = await http.request(
            method,
            "/posts",
            headers={
                "Cookie": f"__Host-access_token={session.access}",
                "Origin": "https://evil.test",
            },
        )
    assert response.status_code == 200


@pytest.mark.parametrize("method", UNSAFE)
async def test_unsafe_method_with_csrf_token_and_origin_passes(
    auth: CookieAuth, issuer: TokenIssuer, method: str
) -> None:
    async with client(make_app(auth, issuer)) as http:
        session = await login(http)
        response = await http.request(method, "/posts", headers=unsafe_headers(session))
    assert response.status_code == 200
    assert response.json() == {"sub": "alice"}


@pytest.mark.parametrize("method", UNSAFE)
@pytest.mark.parametrize(
    "overrides",
    [
        {"X-CSRF-Token": "-"},
        {"X-CSRF-Token": ""},
        {"X-CSRF-Token": "forged.token"},
        {"Origin": "-"},
        {"Origin": "https://evil.test"},
        {"Origin": "null"},
        {"Origin": "https://app.example.test.evil.test"},
        {"Origin": "http://app.example.test"},
        {"Origin": "-", "Referer": "https://evil.test/page"},
        {"Origin": "-", "Referer": "https://[::1/page"},
        {"Origin": "-", "Referer": "https://app.example.test:99999/"},
        {"Origin": "-", "Referer": "/relative/page"},
    ],
    ids=[
        "no-header",
        "empty-header",
        "forged-header",
        "no-origin-no-referer",
        "foreign-origin",
        "null-origin",
        "suffix-origin",
        "http-origin",
        "foreign-referer",
        "broken-referer",
        "bad-port-referer",
        "relative-referer",
    ],
)
async def test_csrf_attacks_are_refused(
    auth: CookieAuth, issuer: TokenIssuer, method: str, overrides: dict[str, str]
) -> None:
    async with client(make_app(auth, issuer)) as http:
        session = await login(http)
        response = await http.request(
            method, "/posts", headers=unsafe_headers(session, **overrides)
        )
    assert response.status_code == 403
    assert response.json()["detail"]["code"] == "csrf_failed"


async def test_header_must_equal_the_csrf_cookie(auth: CookieAuth, issuer: TokenIssuer) -> None:
    async with client(make_app(auth, issuer)) as http:
        session = await login(http)
        # Both tokens are valid for this session, but header and cookie differ.
        second = auth.csrf_token_for((await issuer.verify_access(session.access)).sid)
        response = await http.post(
            "/posts",
            headers=unsafe_headers(session, **{"X-CSRF-Token": second}),
        )
        no_cookie = await http.post(
            "/posts",
            headers=unsafe_headers(session, Cookie=f"__Host-access_token={session.access}"),
        )
    assert response.status_code == 403
    assert no_cookie.status_code == 403


async def test_csrf_token_of_another_session_is_refused(
    auth: CookieAuth, issuer: TokenIssuer
) -> None:
    async with client(make_app(auth, issuer)) as http:
        victim = await login(http, "alice")
        attacker = await login(http, "mallory")
        # The attacker plants their own valid CSRF token as cookie and header.
        response = await http.post(
            "/posts",
            headers={
                "Cookie": victim.cookie_header(csrf=attacker.csrf),
                "X-CSRF-Token": attacker.csrf,
                "Origin": ORIGIN,
            },
        )
    assert response.status_code == 403
    assert response.json()["detail"]["code"] == "csrf_failed"


async def test_csrf_token_from_another_secret_is_refused(issuer: TokenIssuer) -> None:
    other = make_auth(issuer, csrf_secret="another-secret-of-thirty-two-bytes!!")
    auth = make_auth(issuer)
    async with client(make_app(auth, issuer)) as http:
        session = await login(http)
        forged = other.csrf_token_for((await issuer.verify_access(session.access)).sid)
        response = await http.post(
            "/posts",
            headers={
                "Cookie": session.cookie_header(csrf=forged),
                "X-CSRF-Token": forged,
                "Origin": ORIGIN,
            },
        )
    assert response.status_code == 403


async def test_referer_is_the_fallback_when_origin_is_absent(
    auth: CookieAuth, issuer: TokenIssuer
) -> None:
    async with client(make_app(auth, issuer)) as http:
        session = await login(http)
        response = await http.post(
            "/posts",
            headers=unsafe_headers(session, Origin="-", Referer=f"{ORIGIN}/editor?x=1"),
        )
    assert response.status_code == 200


async def test_no_cookie_is_401_even_from_a_foreign_origin(
    auth: CookieAuth, issuer: TokenIssuer
) -> None:
    async with client(make_app(auth, issuer)) as http:
        response = await http.post("/posts", headers={"Origin": "https://evil.test"})
    assert response.status_code == 401
    assert response.json()["detail"]["code"] == "not_authenticated"


@pytest.mark.parametrize("value", ["garbage", "a.b.c", '"quoted"', "x" * 9000])
async def test_bad_access_cookie_is_invalid_token(
    auth: CookieAuth, issuer: TokenIssuer, value: str
) -> None:
    async with client(make_app(auth, issuer)) as http:
        response = await http.get("/posts", headers={"Cookie": f"__Host-access_token={value}"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_refresh_rotates_and_keeps_csrf_working(
    auth: CookieAuth, issuer: TokenIssuer
) -> None:
    async with client(make_app(auth, issuer)) as http:
        session = await login(http)
        refresh_cookie = {"Cookie": f"__Host-refresh_token={session.refresh}"}
        cross_site = await http.post(
            "/auth/refresh", headers={**refresh_cookie, "Origin": "https://evil.test"}
        )
        assert cross_site.status_code == 403
        response = await http.post("/auth/refresh", headers={**refresh_cookie, "Origin": ORIGIN})
        assert response.status_code == 200
        cookies = set_cookies(response)
        rotated = Session(
            access=cookies["__Host-access_token"]["__Host-access_token"].value,
            refresh=cookies["__Host-refresh_token"]["__Host-refresh_token"].value,
            csrf=response.json()["csrf_token"],
        )
        assert (await http.post("/posts", headers=unsafe_headers(rotated))).status_code == 200
        # The old CSRF token still belongs to the same session (family).
        old_csrf = unsafe_headers(rotated, Cookie=rotated.cookie_header(csrf=session.csrf))
        old_csrf["X-CSRF-Token"] = session.csrf
        assert (await http.post("/posts", headers=old_csrf)).status_code == 200
        http.cookies.clear()
        missing = await http.post("/auth/refresh", headers={"Origin": ORIGIN})
    assert missing.status_code == 401


async def test_refresh_cookie_reader_refuses_junk(auth: CookieAuth, issuer: TokenIssuer) -> None:
    async with client(make_app(auth, issuer)) as http:
        response = await http.post(
            "/auth/refresh",
            headers={"Cookie": '__Host-refresh_token="a b"', "Origin": ORIGIN},
        )
    assert response.status_code == 401


async def test_logout_clears_every_cookie(auth: CookieAuth, issuer: TokenIssuer) -> None:
    async with client(make_app(auth, issuer)) as http:
        session = await login(http)
        response = await http.post("/auth/logout", headers=unsafe_headers(session))
    assert response.status_code == 200
    cookies = set_cookies(response)
    assert set(cookies) == {"__Host-access_token", "__Host-refresh_token", "__Host-csrf_token"}
    for name, cookie in cookies.items():
        assert cookie[name].value == ""
        assert cookie[name]["max-age"] == "0"
        assert cookie[name]["secure"] is True
    # __Host- (not __Secure-): a sibling subdomain cannot plant it (cookie tossing).
    assert cookies["__Host-refresh_token"]["__Host-refresh_token"]["path"] == "/"
    assert cookies["__Host-refresh_token"]["__Host-refresh_token"]["samesite"].lower() == "strict"
    assert not cookies["__Host-refresh_token"]["__Host-refresh_token"]["domain"]


def test_openapi_registers_a_cookie_api_key(auth: CookieAuth, issuer: TokenIssuer) -> None:
    schema = TestClient(make_app(auth, issuer)).get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["CookieAuth"] == {
        "type": "apiKey",
        "in": "cookie",
        "name": "__Host-access_token",
    }
    assert schema["paths"]["/posts"]["post"]["security"] == [{"CookieAuth": []}]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"csrf_secret": "short"},
        {"allowed_origins": []},
        {"allowed_origins": ["*"]},
        {"allowed_origins": ["https://app.example.test/path"]},
        {"allowed_origins": ["app.example.test"]},
        {"allowed_origins": ["ftp://app.example.test"]},
        {"samesite": "none"},
        {"access_cookie": "__Host-access"},
        {"csrf_cookie": "bad name"},
        {"csrf_header": "X-CSRF:Token"},
    ],
)
def test_configuration_mistakes_are_refused(issuer: TokenIssuer, kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        make_auth(issuer, **kwargs)


def test_allowed_origins_are_normalized(issuer: TokenIssuer) -> None:
    auth = make_auth(issuer, allowed_origins=["HTTPS://App.Example.Test:443/", "http://[::1]:8000"])
    assert auth.allowed_origins == {"https://app.example.test", "http://[::1]:8000"}


_value = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=120)


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(csrf_header=_value, csrf_cookie=_value, origin=_value)
def test_no_csrf_input_causes_a_500(
    auth: CookieAuth, issuer: TokenIssuer, csrf_header: str, csrf_cookie: str, origin: str
) -> None:
    with TestClient(
        make_app(auth, issuer), base_url="https://testserver", raise_server_exceptions=False
    ) as http:
        pair = http.portal.call(issuer.issue, "alice")
        response = http.post(
            "/posts",
            headers={
                "Cookie": f"__Host-access_token={pair.access_token}; "
                f"__Host-csrf_token={csrf_cookie.replace(';', '')}",
                "X-CSRF-Token": csrf_header,
                "Origin": origin,
            },
        )
    assert response.status_code == 403


def _cookie_app(auth: CookieAuth) -> FastAPI:
    # Defaults, not Annotated: with postponed annotations FastAPI cannot see the local auth.
    app = FastAPI()

    @app.get("/whoami")
    async def whoami(claims: AccessClaims = Depends(auth)) -> dict[str, str]:  # noqa: B008
        return {"sub": claims.sub}

    @app.post("/posts")
    async def posts(claims: AccessClaims = Depends(auth)) -> dict[str, str]:  # noqa: B008
        return {"sub": claims.sub}

    @app.post("/refresh-token")
    async def refresh_token(request: Request) -> dict[str, str | None]:
        return {"token": auth.refresh_token(request)}

    return app


@pytest.mark.anyio
@pytest.mark.parametrize("secure", [True, False])
async def test_duplicate_session_cookies_are_refused(fake_clock: FakeClock, secure: bool) -> None:
    issuer = make_issuer(fake_clock)
    auth = CookieAuth(issuer, csrf_secret=SECRET, allowed_origins=[ORIGIN], secure=secure)
    victim = await issuer.issue("victim", fresh=True)
    attacker = await issuer.issue("attacker", fresh=True)
    a, r, c = auth.access_cookie, auth.refresh_cookie, auth.csrf_cookie
    transport = httpx.ASGITransport(app=_cookie_app(auth))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
        # Starlette's cookie dict would hold the attacker's token: it comes last.
        both = f"{a}={victim.access_token}; {a}={attacker.access_token}"
        whoami = await http.get("/whoami", headers={"Cookie": both})
        assert whoami.status_code == 401, whoami.text
        assert whoami.json()["detail"]["code"] == "invalid_token"
        split = [
            ("Cookie", f"{a}={victim.access_token}"),
            ("Cookie", f"{a}={attacker.access_token}"),
        ]
        assert (await http.get("/whoami", headers=split)).status_code == 401
        single = await http.get("/whoami", headers={"Cookie": f"{a}={victim.access_token}"})
        assert single.json() == {"sub": "victim"}

        refresh = await http.post(
            "/refresh-token",
            headers={"Cookie": f"{r}={victim.refresh_token}; {r}={attacker.refresh_token}"},
        )
        assert refresh.json() == {"token": None}
        one = await http.post("/refresh-token", headers={"Cookie": f"{r}={victim.refresh_token}"})
        assert one.json() == {"token": victim.refresh_token}

        csrf = auth.csrf_token_for((await issuer.verify_access(victim.access_token)).sid)
        cookies = f"{a}={victim.access_token}; {c}={csrf}"
        unsafe = {"Origin": ORIGIN, "X-CSRF-Token": csrf}
        doubled = await http.post("/posts", headers={**unsafe, "Cookie": f"{cookies}; {c}={csrf}"})
        assert doubled.status_code == 403
        assert doubled.json()["detail"]["code"] == "csrf_failed"
        ok = await http.post("/posts", headers={**unsafe, "Cookie": cookies})
        assert ok.status_code == 200, ok.text


def test_cookie_names_that_merely_contain_the_name_are_not_duplicates() -> None:
    from fastapi_secure.auth.cookie import _cookie_count

    def request(header: str) -> Request:
        return Request({"type": "http", "headers": [(b"cookie", header.encode())]})

    name = "__Host-access_token"
    assert _cookie_count(request(f"{name}=a; x{name}=b; {name}x=c; y={name}"), name) == 1
    assert _cookie_count(request(f" {name} =a;{name}=b"), name) == 2
    assert _cookie_count(request("other=1"), name) == 0
