"""OIDC login: the whole journey through a real oidc-provider, and the attacker's side
against a crafted provider on loopback."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
from fastapi import Depends, FastAPI
from hypothesis import given
from hypothesis import strategies as st
from starlette.requests import Request

from fastapi_secure.auth import BearerAuth
from fastapi_secure.errors import ConfigurationError
from fastapi_secure.oidc.errors import OIDCLoginError
from fastapi_secure.oidc.linking import (
    IdentityConflictError,
    IdentityLinker,
    MemoryIdentityLinker,
    OIDCIdentity,
    link_identity,
)
from fastapi_secure.oidc.login import (
    OIDCLogin,
    OIDCProvider,
    _Flow,
    oidc_router,
    providers_from_json,
    safe_next_path,
)
from fastapi_secure.oidc.remote import RemoteKeySet
from fastapi_secure.testing import FakeClock
from fastapi_secure.tokens.claims import AccessClaims
from fastapi_secure.tokens.keys import Key, KeySet
from tests.support.auth import make_issuer
from tests.support.oidc_provider import LocalProvider, sign_in_at_provider
from tests.support.oidc_servers import CraftedProvider, Route, crafted_provider, hang

pytestmark = pytest.mark.anyio

STATE_SECRET = "state-secret-for-the-tests-0123456789abcdef"
APP = "https://testserver"
NOW = 1_800_000_000


@dataclass
class Site:
    """The app under test, its browser, and what the app saw."""

    app: FastAPI
    browser: httpx.AsyncClient
    login: OIDCLogin
    linker: MemoryIdentityLinker
    identities: list[OIDCIdentity] = field(default_factory=list)


def replace_state_cookie(browser: httpx.AsyncClient, value: str) -> None:
    """Put ``value`` in the browser's state cookie (httpx files "testserver" under .local)."""
    browser.cookies.clear()
    browser.cookies.set("__Host-oidc_state", value, domain="testserver.local")


def build_site(
    provider: OIDCProvider, clock: Any, *, link_by_email: bool = False, **options: Any
) -> Site:
    login = OIDCLogin([provider], state_secret=STATE_SECRET, clock=clock, **options)
    linker = MemoryIdentityLinker()
    issuer = make_issuer(FakeClock(time.time()))
    bearer = BearerAuth(issuer)
    app = FastAPI()
    seen: list[OIDCIdentity] = []

    async def on_identity(identity: OIDCIdentity, request: Request) -> dict[str, Any]:
        seen.append(identity)
        result = await link_identity(linker, identity, link_by_email=link_by_email)
        pair = await issuer.issue(result.user_id, fresh=True)
        return {
            "user": result.user_id,
            "how": result.how,
            "next": request.state.oidc_next,
            **pair.model_dump(),
        }

    app.include_router(oidc_router(login, on_identity=on_identity), prefix="/auth/oidc")

    @app.get("/me")
    async def me(claims: AccessClaims = Depends(bearer)) -> dict[str, str]:  # noqa: B008
        return {"sub": claims.sub}

    browser = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=APP)
    return Site(app, browser, login, linker, seen)


# -- the journey through the real provider -------------------------------------------


@pytest.fixture
async def real(oidc_provider: LocalProvider) -> AsyncIterator[Site]:
    provider = OIDCProvider(
        name="local",
        issuer=oidc_provider.issuer,
        client_id=oidc_provider.client_id,
        client_secret=oidc_provider.client_secret,
        redirect_uri=oidc_provider.redirect_uri,
        scopes=("openid", "email"),
        allow_insecure_loopback=True,
    )
    site = build_site(provider, time.time)
    async with site.browser:
        yield site
    await provider.key_set.aclose()


async def login_through(site: Site, oidc_provider: LocalProvider, idp: httpx.AsyncClient) -> str:
    started = await site.browser.get("/auth/oidc/local/login", params={"next": "/dashboard?x=1"})
    assert started.status_code == 302
    return await sign_in_at_provider(idp, started.headers["location"], oidc_provider.redirect_uri)


async def test_the_whole_login_journey_through_a_real_provider(
    real: Site, oidc_provider: LocalProvider
) -> None:
    async with httpx.AsyncClient(timeout=10) as idp:
        started = await real.browser.get("/auth/oidc/local/login", params={"next": "/dashboard"})
        assert started.status_code == 302
        authorize = urlsplit(started.headers["location"])
        query = parse_qs(authorize.query)
        assert f"{authorize.scheme}://{authorize.netloc}" == oidc_provider.issuer
        assert query["code_challenge_method"] == ["S256"]
        assert query["redirect_uri"] == [oidc_provider.redirect_uri]
        assert len(query["state"][0]) >= 43
        assert len(query["nonce"][0]) >= 43
        cookie = started.headers["set-cookie"]
        for attribute in ("__Host-oidc_state=", "HttpOnly", "Secure", "SameSite=lax", "Path=/"):
            assert attribute in cookie
        assert "domain" not in cookie.lower()

        callback = await sign_in_at_provider(
            idp, started.headers["location"], oidc_provider.redirect_uri
        )
        first = await real.browser.get(callback.removeprefix(APP))
        assert first.status_code == 200, first.text
        body = first.json()
        assert body["how"] == "created"
        assert body["next"] == "/dashboard"
        assert 'oidc_state=""' in first.headers["set-cookie"]  # cleared
        identity = real.identities[0]
        assert (identity.provider, identity.subject) == ("local", "alice")
        # The ID token carried no email (conformIdTokenClaims): it came from userinfo.
        assert (identity.email, identity.email_verified) == ("alice@example.test", True)
        me = await real.browser.get(
            "/me", headers={"Authorization": f"Bearer {body['access_token']}"}
        )
        assert me.json() == {"sub": body["user"]}

        # Second login: the provider remembers the session; the same account is found.
        callback = await login_through(real, oidc_provider, idp)
        second = await real.browser.get(callback.removeprefix(APP))
        assert second.status_code == 200
        assert (second.json()["user"], second.json()["how"]) == (body["user"], "linked")
        assert [i.subject for i in await real.linker.identities(body["user"])] == ["alice"]


async def test_a_replayed_code_is_refused(
    real: Site, oidc_provider: LocalProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="fastapi_secure.oidc")
    async with httpx.AsyncClient(timeout=10) as idp:
        callback = await login_through(real, oidc_provider, idp)
        cookie = real.browser.cookies.get("__Host-oidc_state")
        assert cookie
        assert (await real.browser.get(callback.removeprefix(APP))).status_code == 200
        # Replayed without the cookie (cleared by the first callback) ...
        without = await real.browser.get(callback.removeprefix(APP))
        assert without.status_code == 400
        # ... and with a copy of it: the provider refuses the used code.
        replace_state_cookie(real.browser, cookie)
        replayed = await real.browser.get(callback.removeprefix(APP))
        assert replayed.status_code == 400
        assert replayed.json()["detail"]["code"] == "bad_request"
        assert "code exchange failed: invalid_grant" in caplog.text
    assert len(real.identities) == 1


@pytest.mark.parametrize("tamper", ["other-state", "", None])
async def test_a_wrong_or_missing_state_is_refused(
    real: Site, oidc_provider: LocalProvider, tamper: str | None
) -> None:
    async with httpx.AsyncClient(timeout=10) as idp:
        callback = urlsplit(await login_through(real, oidc_provider, idp))
        params = parse_qs(callback.query)
        if tamper is None:
            del params["state"]
        else:
            params["state"] = [tamper]
        answer = await real.browser.get(callback.path, params={k: v[0] for k, v in params.items()})
    assert answer.status_code == 400
    assert real.identities == []


async def test_a_callback_from_another_browser_is_refused(
    real: Site, oidc_provider: LocalProvider
) -> None:
    async with httpx.AsyncClient(timeout=10) as idp:
        callback = await login_through(real, oidc_provider, idp)
    real.browser.cookies.clear()  # the victim's browser: no state cookie (login CSRF)
    assert (await real.browser.get(callback.removeprefix(APP))).status_code == 400


@pytest.mark.parametrize(
    "target", ["//evil.example", "https://evil.example/", "/\\evil.example", "\\\\evil", "/a\tb"]
)
async def test_next_to_another_host_is_refused(real: Site, target: str) -> None:
    answer = await real.browser.get("/auth/oidc/local/login", params={"next": target})
    assert answer.status_code == 400
    assert "set-cookie" not in answer.headers


async def test_an_unknown_provider_name_is_a_400(real: Site) -> None:
    assert (await real.browser.get("/auth/oidc/nope/login")).status_code == 400
    assert (await real.browser.get("/auth/oidc/nope/callback?state=x&code=y")).status_code == 400


# -- next --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "//evil.example",
        "https://evil.example",
        "http:/evil.example",
        "javascript:alert(1)",
        "\\\\evil.example",
        "/\\evil.example",
        "/ok\r\nSet-Cookie: x=y",
        "/\x00",
        "evil.example",
        "/" + "a" * 2048,
    ],
)
def test_safe_next_path_refuses_other_sites(value: str) -> None:
    with pytest.raises(OIDCLoginError):
        safe_next_path(value)


def test_safe_next_path_keeps_local_paths() -> None:
    assert safe_next_path("/orders/7?tab=items#top") == "/orders/7?tab=items#top"
    assert safe_next_path(None) == "/"
    assert safe_next_path("", default="/home") == "/home"


@given(st.text(max_size=40) | st.from_regex(r"[/\\]{0,3}[a-z:.@%]{0,10}", fullmatch=True))
def test_an_accepted_next_always_stays_on_this_site(value: str) -> None:
    try:
        accepted = safe_next_path(value)
    except OIDCLoginError:
        return
    for base in ("https://app.example/a/b", "https://app.example/"):
        assert urlsplit(urljoin(base, accepted)).netloc == "app.example"
        assert httpx.URL(base).join(accepted).host == "app.example"


# -- the attacker's side: a crafted provider ----------------------------------------


@pytest.fixture
def crafted() -> Iterator[CraftedProvider]:
    with crafted_provider() as provider:
        provider.serve_discovery()
        provider.serve_jwks()
        provider.routes["/userinfo"] = Route(body={"sub": "alice", "email": "a@x.test"})
        yield provider


@pytest.fixture
async def site(crafted: CraftedProvider, fake_clock: FakeClock) -> AsyncIterator[Site]:
    fake_clock.set(NOW)
    provider = OIDCProvider(
        name="crafted",
        issuer=crafted.issuer,
        client_id="app",
        client_secret="app-secret",
        redirect_uri=f"{APP}/auth/oidc/crafted/callback",
        keys=RemoteKeySet(crafted.issuer, allow_insecure_loopback=True, clock=fake_clock),
        allow_insecure_loopback=True,
    )
    built = build_site(provider, fake_clock, timeout=1.0)
    async with built.browser:
        yield built
    await provider.key_set.aclose()


def id_token(
    crafted: CraftedProvider, nonce: str, keys: KeySet | None = None, **claims: Any
) -> str:
    payload = {
        "iss": crafted.issuer,
        "sub": "alice",
        "aud": "app",
        "nonce": nonce,
        "iat": NOW,
        "exp": NOW + 300,
        "email": "alice@example.test",
        "email_verified": True,
    }
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    return (keys or crafted.signing).sign(payload, typ=str(claims.pop("typ", "JWT")))


async def begin(site: Site) -> tuple[str, str]:
    """Start a login; return the state and nonce the provider was given."""
    started = await site.browser.get("/auth/oidc/crafted/login")
    assert started.status_code == 302, started.text
    query = parse_qs(urlsplit(started.headers["location"]).query)
    return query["state"][0], query["nonce"][0]


async def callback(
    site: Site, crafted: CraftedProvider, token_response: Any, state: str
) -> httpx.Response:
    crafted.routes["/token"] = (
        token_response if isinstance(token_response, Route) else Route(body=token_response)
    )
    return await site.browser.get(
        "/auth/oidc/crafted/callback", params={"state": state, "code": "code-1"}
    )


async def test_a_good_crafted_login_passes_and_sends_pkce_and_client_auth(
    site: Site, crafted: CraftedProvider
) -> None:
    state, nonce = await begin(site)
    answer = await callback(
        site,
        crafted,
        {"access_token": "at", "token_type": "Bearer", "id_token": id_token(crafted, nonce)},
        state,
    )
    assert answer.status_code == 200, answer.text
    method, body = token_request(crafted)
    form = parse_qs(body.decode())
    assert method == "POST"
    assert form["grant_type"] == ["authorization_code"]
    assert form["redirect_uri"] == [f"{APP}/auth/oidc/crafted/callback"]
    assert len(form["code_verifier"][0]) >= 43
    assert site.identities[0].email == "alice@example.test"
    assert crafted.hits["/userinfo"] == 0  # the ID token had the email


def token_request(crafted: CraftedProvider) -> tuple[str, bytes]:
    method, _, body = next(r for r in reversed(crafted.requests) if r[1] == "/token")
    return method, body


def _unsigned(claims: dict[str, Any]) -> str:
    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return b64({"alg": "none", "kid": "good-1"}) + "." + b64(claims) + "."


@pytest.mark.parametrize(
    "case",
    [
        "other-nonce",
        "other-aud",
        "other-iss",
        "several-aud-without-azp",
        "other-azp",
        "expired",
        "iat-future",
        "iat-too-old",
        "no-sub",
        "sub-over-255",
        "unknown-key",
        "alg-none",
        "access-token-type",
        "no-id-token",
        "provider-error",
        "malformed-json",
    ],
)
async def test_a_bad_id_token_or_token_answer_is_refused(
    site: Site, crafted: CraftedProvider, case: str
) -> None:
    state, nonce = await begin(site)
    stranger = KeySet(Key.generate("ES256", kid="good-1"))
    tokens: dict[str, Any] = {
        "other-nonce": {"id_token": id_token(crafted, "another-nonce")},
        "other-aud": {"id_token": id_token(crafted, nonce, aud="someone-else")},
        "other-iss": {"id_token": id_token(crafted, nonce, iss="https://evil.example")},
        "several-aud-without-azp": {"id_token": id_token(crafted, nonce, aud=["app", "x"])},
        "other-azp": {"id_token": id_token(crafted, nonce, azp="x")},
        "expired": {"id_token": id_token(crafted, nonce, exp=NOW - 61)},
        "iat-future": {"id_token": id_token(crafted, nonce, iat=NOW + 61)},
        "iat-too-old": {"id_token": id_token(crafted, nonce, iat=NOW - 3600, exp=NOW + 60)},
        "no-sub": {"id_token": id_token(crafted, nonce, sub=None)},
        "sub-over-255": {"id_token": id_token(crafted, nonce, sub="s" * 256)},
        "unknown-key": {"id_token": id_token(crafted, nonce, stranger)},
        "alg-none": {"id_token": _unsigned({"iss": crafted.issuer, "aud": "app", "nonce": nonce})},
        "access-token-type": {"id_token": id_token(crafted, nonce, typ="at+jwt")},
        "no-id-token": {"access_token": "at"},
        "provider-error": Route(status=400, body={"error": "invalid_grant"}),
        "malformed-json": Route(body=b"{not json"),
    }
    token_response = tokens[case]
    if isinstance(token_response, dict):
        token_response = {"access_token": "at", "token_type": "Bearer", **token_response}
    answer = await callback(site, crafted, token_response, state)
    assert answer.status_code == 400, answer.text
    assert answer.json()["detail"] == {
        "code": "bad_request",
        "message": "sign-in with the identity provider failed",
    }
    assert site.identities == []


async def test_several_audiences_pass_with_azp_naming_us(
    site: Site, crafted: CraftedProvider
) -> None:
    state, nonce = await begin(site)
    token = id_token(crafted, nonce, aud=["app", "other"], azp="app")
    answer = await callback(
        site, crafted, {"access_token": "a", "token_type": "Bearer", "id_token": token}, state
    )
    assert answer.status_code == 200


async def test_userinfo_fills_in_the_email_but_must_name_the_same_subject(
    site: Site, crafted: CraftedProvider
) -> None:
    state, nonce = await begin(site)
    token = id_token(crafted, nonce, email=None, email_verified=None)
    answer = await callback(
        site, crafted, {"access_token": "a", "token_type": "Bearer", "id_token": token}, state
    )
    assert answer.status_code == 200
    assert (site.identities[0].email, site.identities[0].email_verified) == ("a@x.test", False)
    crafted.routes["/userinfo"] = Route(body={"sub": "mallory", "email": "m@x.test"})
    state, nonce = await begin(site)
    token = id_token(crafted, nonce, email=None)
    answer = await callback(
        site, crafted, {"access_token": "a", "token_type": "Bearer", "id_token": token}, state
    )
    assert answer.status_code == 400


async def test_a_hanging_token_endpoint_is_a_400_within_the_timeout(
    site: Site, crafted: CraftedProvider
) -> None:
    state, _ = await begin(site)
    answer = await callback(site, crafted, Route(behaviour=hang(crafted)), state)
    assert answer.status_code == 400


async def test_discovery_naming_another_issuer_is_a_503_not_a_500(
    site: Site, crafted: CraftedProvider
) -> None:
    crafted.serve_discovery(issuer="https://evil.example")
    answer = await site.browser.get("/auth/oidc/crafted/login")
    assert answer.status_code == 503
    assert "retry-after" in answer.headers


async def test_a_jwks_trying_hmac_is_a_503_not_a_500(site: Site, crafted: CraftedProvider) -> None:
    state, nonce = await begin(site)
    crafted.serve_jwks({"keys": [{"kty": "oct", "kid": "good-1", "alg": "HS256", "k": "c2VjcmV0"}]})
    answer = await callback(
        site,
        crafted,
        {"access_token": "a", "token_type": "Bearer", "id_token": id_token(crafted, nonce)},
        state,
    )
    assert answer.status_code == 503


async def test_a_plain_http_authorization_endpoint_is_refused(
    site: Site, crafted: CraftedProvider
) -> None:
    crafted.serve_discovery(authorization_endpoint="http://idp.example/authorize")
    assert (await site.browser.get("/auth/oidc/crafted/login")).status_code == 503


async def test_the_provider_error_answer_and_duplicated_parameters_are_refused(
    site: Site,
) -> None:
    state, _ = await begin(site)
    denied = await site.browser.get(
        "/auth/oidc/crafted/callback", params={"state": state, "error": "access_denied"}
    )
    assert denied.status_code == 400
    state, _ = await begin(site)
    doubled = await site.browser.get(
        f"/auth/oidc/crafted/callback?state={state}&state={state}&code=a"
    )
    assert doubled.status_code == 400
    state, _ = await begin(site)
    no_code = await site.browser.get("/auth/oidc/crafted/callback", params={"state": state})
    assert no_code.status_code == 400


async def test_the_state_cookie_is_signed_short_lived_and_per_provider(
    site: Site, crafted: CraftedProvider, fake_clock: FakeClock
) -> None:
    state, nonce = await begin(site)
    cookie = site.browser.cookies["__Host-oidc_state"]
    body, _, mac = cookie.partition(".")
    replace_state_cookie(site.browser, body + "." + mac[::-1])
    good = {"access_token": "a", "token_type": "Bearer", "id_token": id_token(crafted, nonce)}
    assert (await callback(site, crafted, good, state)).status_code == 400
    replace_state_cookie(site.browser, "!!!." + mac)
    assert (await callback(site, crafted, good, state)).status_code == 400
    replace_state_cookie(site.browser, "x" * 5000)
    assert (await callback(site, crafted, good, state)).status_code == 400
    state, nonce = await begin(site)
    fake_clock.advance(601)
    assert (await callback(site, crafted, good, state)).status_code == 400
    assert site.identities == []


async def test_a_state_cookie_of_another_provider_is_refused(fake_clock: FakeClock) -> None:
    providers = [
        OIDCProvider(
            name=name,
            issuer="https://idp.example",
            client_id="app",
            redirect_uri=f"{APP}/auth/oidc/{name}/callback",
        )
        for name in ("one", "two")
    ]
    login = OIDCLogin(providers, state_secret=STATE_SECRET, clock=fake_clock)
    sealed = login._seal(_Flow("one", "s", "n", "v", "/", NOW + 600))  # started at "one"
    fake_clock.set(NOW)
    with pytest.raises(OIDCLoginError) as caught:
        await login.finish("two", {"state": "s", "code": "c"}, sealed)
    assert caught.value.reason == "state cookie is for another provider"


# -- configuration and linking --------------------------------------------------------


def test_providers_from_settings_json() -> None:
    providers = providers_from_json(
        json.dumps(
            [
                {
                    "name": "keycloak",
                    "issuer": "https://sso.example.com/realms/main",
                    "client_id": "web",
                    "client_secret": "s3cret",
                    "redirect_uri": "https://app.example.com/auth/oidc/keycloak/callback",
                    "scopes": "openid email",
                }
            ]
        )
    )
    assert providers[0].scopes == ("openid", "email")
    assert "s3cret" not in repr(providers[0])
    for bad in ("{", "{}", '[{"name": "x", "bogus": 1}]'):
        with pytest.raises(ConfigurationError):
            providers_from_json(bad)


@pytest.mark.parametrize(
    "options",
    [
        {"name": "Bad Name"},
        {"client_id": ""},
        {"scopes": ("email",)},
        {"redirect_uri": "http://app.example/cb"},
        {"redirect_uri": "https://app.example/cb#x"},
        {"keys": RemoteKeySet("https://other.example")},
    ],
)
def test_unsafe_provider_settings_are_refused(options: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {
        "name": "idp",
        "issuer": "https://idp.example",
        "client_id": "app",
        "redirect_uri": "https://app.example/cb",
    }
    arguments.update(options)
    with pytest.raises(ConfigurationError):
        OIDCProvider(**arguments)


def test_unsafe_login_settings_are_refused() -> None:
    provider = OIDCProvider(
        name="idp", issuer="https://idp.example", client_id="a", redirect_uri="https://a.test/cb"
    )
    with pytest.raises(ConfigurationError):
        OIDCLogin([provider], state_secret="short")
    with pytest.raises(ConfigurationError):
        OIDCLogin([], state_secret=STATE_SECRET)
    with pytest.raises(ConfigurationError):
        OIDCLogin([provider, provider], state_secret=STATE_SECRET)
    with pytest.raises(ConfigurationError):
        OIDCLogin([provider], state_secret=STATE_SECRET, leeway=900)
    with pytest.raises(ConfigurationError):
        oidc_router([provider], on_identity=lambda i, r: None)  # type: ignore[arg-type,return-value]
    router = oidc_router([provider], on_identity=_ignore, state_secret=STATE_SECRET)
    assert {route.path for route in router.routes} == {  # type: ignore[attr-defined]
        "/{provider}/login",
        "/{provider}/callback",
    }
    assert repr(OIDCLogin([provider], state_secret=STATE_SECRET)) == "OIDCLogin(providers=['idp'])"


async def _ignore(identity: OIDCIdentity, request: Request) -> None:
    return None


def identity(
    subject: str, email: str | None, verified: bool, issuer: str = "https://idp.example"
) -> OIDCIdentity:
    return OIDCIdentity(
        provider="idp", issuer=issuer, subject=subject, email=email, email_verified=verified
    )


async def test_linking_by_verified_email_only_when_allowed() -> None:
    linker = MemoryIdentityLinker()
    assert isinstance(linker, IdentityLinker)
    owner = linker.add_user("Alice@Example.test")
    with pytest.raises(IdentityConflictError):
        await link_identity(linker, identity("s1", "alice@example.test", False), link_by_email=True)
    with pytest.raises(IdentityConflictError):
        await link_identity(linker, identity("s2", "alice@example.test", True))
    allowed = await link_identity(
        linker, identity("s3", "alice@example.test", True), link_by_email=True
    )
    assert (allowed.user_id, allowed.how) == (owner, "email")
    again = await link_identity(linker, identity("s3", "changed@example.test", False))
    assert (again.user_id, again.how) == (owner, "linked")
    same_sub_other_issuer = await link_identity(
        linker, identity("s3", None, False, issuer="https://other.example")
    )
    assert same_sub_other_issuer.user_id != owner
    assert same_sub_other_issuer.how == "created"


async def test_an_unverified_account_is_never_linked_by_email() -> None:
    linker = MemoryIdentityLinker()
    linker.add_user("alice@example.test", verified=False)
    with pytest.raises(IdentityConflictError):
        await link_identity(linker, identity("s1", "alice@example.test", True), link_by_email=True)


async def test_a_link_raced_by_another_sign_in_answers_with_the_winner() -> None:
    linker = MemoryIdentityLinker()
    first = await link_identity(linker, identity("s1", "a@example.test", True))
    again = await linker.link(linker.add_user("b@example.test"), identity("s1", None, False))
    assert again == first.linked
    assert [linked.subject for linked in await linker.identities(first.user_id)] == ["s1"]


async def test_on_identity_may_answer_with_a_response_or_a_redirect(
    crafted: CraftedProvider, fake_clock: FakeClock
) -> None:
    from starlette.responses import PlainTextResponse

    fake_clock.set(NOW)
    provider = OIDCProvider(
        name="crafted",
        issuer=crafted.issuer,
        client_id="app",
        redirect_uri=f"{APP}/auth/oidc/crafted/callback",
        keys=RemoteKeySet(crafted.issuer, allow_insecure_loopback=True, clock=fake_clock),
        allow_insecure_loopback=True,
    )
    answers: list[Any] = [PlainTextResponse("welcome"), None]

    async def on_identity(identity: OIDCIdentity, request: Request) -> Any:
        return answers.pop(0)

    app = FastAPI()
    app.include_router(
        oidc_router(
            [provider], on_identity=on_identity, state_secret=STATE_SECRET, clock=fake_clock
        ),
        prefix="/auth/oidc",
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=APP) as browser:
        site = Site(
            app, browser, OIDCLogin([provider], state_secret=STATE_SECRET), MemoryIdentityLinker()
        )
        for expected in (200, 303):
            started = await browser.get("/auth/oidc/crafted/login", params={"next": "/after"})
            query = parse_qs(urlsplit(started.headers["location"]).query)
            state, nonce = query["state"][0], query["nonce"][0]
            token = {
                "access_token": "a",
                "token_type": "Bearer",
                "id_token": id_token(crafted, nonce),
            }
            answer = await callback(site, crafted, token, state)
            assert answer.status_code == expected
        assert answer.headers["location"] == "/after"
    # A public client: no client secret, PKCE only.
    assert b"client_secret" not in token_request(crafted)[1]
    await provider.key_set.aclose()


async def test_a_refusal_by_the_app_keeps_its_status_and_clears_the_state_cookie(
    site: Site, crafted: CraftedProvider
) -> None:
    site.linker.add_user("alice@example.test")  # taken; linking by email is off
    state, nonce = await begin(site)
    answer = await callback(
        site,
        crafted,
        {"access_token": "a", "token_type": "Bearer", "id_token": id_token(crafted, nonce)},
        state,
    )
    assert answer.status_code == 409, answer.text
    assert answer.json()["detail"]["code"] == "conflict"
    assert "sign in with your password" in answer.json()["detail"]["message"]
    assert "__Host-oidc_state=" in answer.headers["set-cookie"]
    assert "Max-Age=0" in answer.headers["set-cookie"]
