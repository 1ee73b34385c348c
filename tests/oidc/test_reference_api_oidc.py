"""Sign-in with a real OpenID provider through the reference API: the whole journey,
identities listed and unlinked (never the last way in), and refusals that stay 4xx."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from examples.reference_api.main import create_app
from pydantic import SecretStr

from fastapi_secure.accounts.mail import FileOutbox
from tests.support.oidc_provider import LocalProvider, sign_in_at_provider
from tests.support.reference_api import Api, bearer, make_settings, serve

pytestmark = pytest.mark.anyio

BASE_URL = "https://testserver"  # the provider has https://testserver/auth/oidc/local/callback
NEW_PASSWORD = "copper-lantern-meadow-42"


def providers_setting(provider: LocalProvider, **options: Any) -> SecretStr:
    entry = {
        "issuer": provider.issuer,
        "client_id": provider.client_id,
        "client_secret": provider.client_secret,
        "scopes": ["openid", "email"],
        "allow_insecure_loopback": True,  # the test provider listens on http://127.0.0.1
        **options,
    }
    return SecretStr(json.dumps({"local": entry}))


async def served_api(
    tmp_path: Path, provider: LocalProvider, *, transport: str = "bearer", **options: Any
) -> AsyncIterator[Api]:
    settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'api.db'}",
        email_outbox_dir=str(tmp_path / "outbox"),
        public_base_url=BASE_URL,
        auth_transport=transport,
        cors_allow_origins=[BASE_URL],
        oidc_providers=providers_setting(provider, **options),
    )
    async for api in serve(settings):
        yield api


@pytest.fixture
async def api(tmp_path: Path, oidc_provider: LocalProvider) -> AsyncIterator[Api]:
    async for served in served_api(tmp_path, oidc_provider):
        yield served


@pytest.fixture
async def idp() -> AsyncIterator[httpx.AsyncClient]:
    """The browser's side at the provider (its own cookies, real HTTP)."""
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


async def sign_in(
    api: Api, idp: httpx.AsyncClient, provider: LocalProvider, *, login: str = "alice"
) -> httpx.Response:
    """The whole browser journey; the callback's answer."""
    started = await api.client.get("/auth/oidc/local/login", params={"next": "/dashboard"})
    assert started.status_code == 302, started.text
    assert started.headers["location"].startswith(f"{provider.issuer}/")
    landed = await sign_in_at_provider(
        idp, started.headers["location"], provider.redirect_uri, login=login
    )
    parts = urlsplit(landed)
    return await api.client.get(f"{parts.path}?{parts.query}")


def mailed_token(api: Api, to: str) -> str:
    assert api.settings.email_outbox_dir is not None
    messages = [m for m in FileOutbox(api.settings.email_outbox_dir).messages() if m.to == to]
    assert messages, f"no mail to {to}"
    assert messages[-1].link is not None
    return parse_qs(urlsplit(messages[-1].link).query)["token"][0]


async def test_the_sign_in_journey_through_a_real_provider(
    api: Api, idp: httpx.AsyncClient, oidc_provider: LocalProvider
) -> None:
    answer = await sign_in(api, idp, oidc_provider)
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    tokens = answer.json()
    assert tokens["token_type"] == "bearer"
    assert tokens["next"] == "/dashboard"
    me = await api.client.get("/users/me", headers=bearer(tokens))
    assert me.status_code == 200, me.text
    account = me.json()
    assert (account["email"], account["email_verified"]) == ("alice@example.test", True)

    # A second sign-in finds the same account; the identity is listed once.
    again = await sign_in(api, idp, oidc_provider)
    assert again.status_code == 200, again.text
    second = await api.client.get("/users/me", headers=bearer(again.json()))
    assert second.json()["id"] == account["id"]
    listed = await api.client.get("/users/me/identities", headers=bearer(tokens))
    assert listed.status_code == 200, listed.text
    [identity] = listed.json()
    assert (identity["provider"], identity["issuer"], identity["email"]) == (
        "local",
        oidc_provider.issuer,
        "alice@example.test",
    )

    # No password, one identity: unlinking it would lock the account out.
    refused = await api.client.delete(
        f"/users/me/identities/{identity['id']}", headers=bearer(tokens)
    )
    assert refused.status_code == 409, refused.text
    assert refused.json()["detail"]["message"].startswith("this is the only way to sign in")
    assert (
        await api.client.post(
            "/auth/login", data={"username": "alice@example.test", "password": NEW_PASSWORD}
        )
    ).status_code == 401

    # A password through a reset (the mailbox is the provider-verified address) opens the way.
    requested = await api.client.post(
        "/auth/password-reset/request", json={"email": "alice@example.test"}
    )
    assert requested.status_code == 202
    done = await api.client.post(
        "/auth/password-reset/confirm",
        json={"token": mailed_token(api, "alice@example.test"), "new_password": NEW_PASSWORD},
    )
    assert done.status_code == 204, done.text
    login = await api.client.post(
        "/auth/login", data={"username": "alice@example.test", "password": NEW_PASSWORD}
    )
    assert login.status_code == 200, login.text
    unlinked = await api.client.delete(
        f"/users/me/identities/{identity['id']}", headers=bearer(login.json())
    )
    assert unlinked.status_code == 204, unlinked.text
    gone = await api.client.delete(
        f"/users/me/identities/{identity['id']}", headers=bearer(login.json())
    )
    assert gone.status_code == 404
    assert (await api.client.get("/users/me/identities", headers=bearer(login.json()))).json() == []

    # Unlinked, the identity no longer opens the account: its email is taken and
    # linking by email is off for this provider.
    conflict = await sign_in(api, idp, oidc_provider)
    assert conflict.status_code == 409, conflict.text
    assert "sign in with your password" in conflict.json()["detail"]["message"]


async def test_an_email_the_provider_does_not_vouch_for_gets_no_account(
    api: Api, idp: httpx.AsyncClient, oidc_provider: LocalProvider
) -> None:
    answer = await sign_in(api, idp, oidc_provider, login="bob")
    assert answer.status_code == 400, answer.text
    assert "not verified your email" in answer.json()["detail"]["message"]
    # The address stays free for its owner.
    registered = await api.register("bob@example.test", "bob", NEW_PASSWORD)
    assert registered.status_code == 201


async def test_linking_by_a_verified_email_when_the_provider_allows_it(
    tmp_path: Path, idp: httpx.AsyncClient, oidc_provider: LocalProvider
) -> None:
    async for api in served_api(tmp_path, oidc_provider, allow_link_by_email=True):
        registered = await api.register("alice@example.test", "alice", NEW_PASSWORD)
        assert registered.status_code == 201
        # Not verified by the account yet: a registration with someone else's address
        # must not collect their sign-ins (account pre-hijacking).
        assert (await sign_in(api, idp, oidc_provider)).status_code == 409
        verify = mailed_token(api, "alice@example.test")
        assert (await api.client.post("/auth/verify/confirm", json={"token": verify})).is_success
        answer = await sign_in(api, idp, oidc_provider)
        assert answer.status_code == 200, answer.text
        me = (await api.client.get("/users/me", headers=bearer(answer.json()))).json()
        assert me["id"] == registered.json()["id"]


async def test_the_cookie_transport_signs_in_with_cookies(
    tmp_path: Path, idp: httpx.AsyncClient, oidc_provider: LocalProvider
) -> None:
    async for api in served_api(tmp_path, oidc_provider, transport="cookie"):
        answer = await sign_in(api, idp, oidc_provider)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["token_type"] == "cookie"
        assert "access_token" not in body
        me = await api.client.get("/users/me")
        assert me.status_code == 200, me.text
        assert me.json()["email"] == "alice@example.test"


@pytest.mark.parametrize(
    "target", ["https://evil.example/x", "//evil.example", "/\\evil.example", "javascript:x"]
)
async def test_a_next_to_another_host_is_refused(api: Api, target: str) -> None:
    answer = await api.client.get("/auth/oidc/local/login", params={"next": target})
    assert answer.status_code == 400
    assert "set-cookie" not in answer.headers


async def test_wrong_or_missing_state_and_unknown_providers_are_4xx(
    api: Api, idp: httpx.AsyncClient, oidc_provider: LocalProvider
) -> None:
    callback = "/auth/oidc/local/callback"

    async def code_and_state() -> tuple[str, str]:
        started = await api.client.get("/auth/oidc/local/login")
        landed = await sign_in_at_provider(
            idp, started.headers["location"], oidc_provider.redirect_uri
        )
        query = parse_qs(urlsplit(landed).query)
        return query["code"][0], query["state"][0]

    for case in ("forged", "missing", "no-code", "error"):
        code, state = await code_and_state()
        params = {
            "forged": {"code": code, "state": "forged-" + state},
            "missing": {"code": code},
            "no-code": {"state": state},
            "error": {"state": state, "error": "access_denied"},
        }[case]
        answer = await api.client.get(callback, params=params)
        assert answer.status_code == 400, (case, answer.text)
        # The refusal cleared the state cookie: the right state no longer works either.
        late = await api.client.get(callback, params={"code": code, "state": state})
        assert late.status_code == 400, (case, late.text)
    assert (await api.client.get("/auth/oidc/other/login")).status_code == 400
    assert (await api.client.get("/auth/oidc/other/callback")).status_code == 400
    assert (await api.client.get("/users/me/identities")).status_code == 401


async def test_identity_ids_are_validated(
    api: Api, idp: httpx.AsyncClient, oidc_provider: LocalProvider
) -> None:
    tokens = (await sign_in(api, idp, oidc_provider)).json()
    for bad, status in (("x" * 65, 422), ("a.b", 422), ("999999", 404), ("abc", 404)):
        answer = await api.client.delete(f"/users/me/identities/{bad}", headers=bearer(tokens))
        assert answer.status_code == status, (bad, answer.text)


@pytest.mark.parametrize(
    "value",
    [
        "{",
        "[]",
        "{}",
        '{"Bad Name": {"issuer": "https://i", "client_id": "c"}}',
        '{"x": {"issuer": "https://i"}}',
        '{"x": "https://i"}',
        '{"x": {"issuer": "https://i", "client_id": "c", "redirect_uri": "https://evil"}}',
        '{"x": {"issuer": "https://i", "client_id": "c", "allow_link_by_email": "yes"}}',
        '{"x": {"issuer": "https://i", "client_id": "c", "scopes": [1]}}',
        '{"x": {"issuer": "https://i", "client_id": 7}}',
    ],
)
def test_malformed_oidc_providers_settings_are_refused(value: str, tmp_path: Path) -> None:
    # pydantic reports the ConfigurationError (a ValueError) as a ValidationError.
    with pytest.raises(ValueError, match="OIDC"):
        make_settings(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", oidc_providers=SecretStr(value))


def test_oidc_settings_are_parsed_and_plain_http_is_a_production_problem(tmp_path: Path) -> None:
    value = {
        "corp": {
            "issuer": "https://sso.example.com",
            "client_id": "api",
            "client_secret": "s3cret",
            "scopes": "openid email",
            "allow_link_by_email": True,
        },
        "dev": {"issuer": "http://127.0.0.1:9", "client_id": "c", "allow_insecure_loopback": True},
    }
    settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", oidc_providers=SecretStr(json.dumps(value))
    )
    corp, dev = settings.providers()
    assert (corp.name, corp.scopes, corp.allow_link_by_email) == (
        "corp",
        ("openid", "email"),
        True,
    )
    assert "s3cret" not in repr(corp)
    assert dev.scopes == ("openid", "email", "profile")
    assert "OIDC provider 'dev' allows plain http" in settings.production_problems()


async def test_without_oidc_providers_nothing_oidc_is_mounted(tmp_path: Path) -> None:
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    app = create_app(settings)
    paths = {getattr(route, "path", "") for route in app.routes}
    assert not any(path.startswith(("/auth/oidc", "/users/me/identities")) for path in paths)
