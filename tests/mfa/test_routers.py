"""The second-factor routers over the account routers, in bearer and cookie mode."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from fastapi_secure.audit import audit
from fastapi_secure.errors import ConfigurationError
from fastapi_secure.mfa.factors import passkey_name
from fastapi_secure.mfa.routers import (
    MFACodeIn,
    MFARecoveryCodeIn,
    PasskeyRenameIn,
    _credential_id,
    mfa_login_router,
    mfa_router,
    require_step_up,
)
from fastapi_secure.mfa.stores import MemoryMFAStore
from fastapi_secure.testing import FakeClock, totp_code
from tests.support.accounts import ORIGIN, AccountsApp, build_accounts_app
from tests.support.mfa import ORIGIN as PASSKEY_ORIGIN
from tests.support.mfa import make_factors
from tests.support.webauthn_authenticator import SoftAuthenticator

pytestmark = pytest.mark.anyio

PASSWORD = "violet-kettle-harbour-17"


def mounted(world: AccountsApp, clock: FakeClock, *, passkeys: bool = True) -> AccountsApp:
    factors = make_factors(MemoryMFAStore(clock=clock), clock, passkeys=passkeys)
    world.manager.mfa = factors
    world.app.include_router(mfa_router(factors, world.transport, clock=clock))
    world.app.include_router(mfa_login_router(world.manager, world.transport))
    return world


@pytest.fixture(params=["bearer", "cookie"])
async def world(request: pytest.FixtureRequest, fake_clock: FakeClock) -> AccountsApp:
    made = mounted(build_accounts_app(fake_clock, mode=request.param), fake_clock)
    await made.manager.register("ann@x.io", PASSWORD, username="ann")
    return made


class Browser:
    """Bearer tokens or cookies + CSRF header, as the transport answers them."""

    def __init__(self, world: AccountsApp) -> None:
        self.cookie = type(world.transport).__name__ == "CookieAuth"
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=world.app), base_url=ORIGIN
        )
        self.headers: dict[str, str] = {"Origin": ORIGIN}

    def keep(self, body: dict[str, Any]) -> None:
        if self.cookie:
            self.headers = {"Origin": ORIGIN, "X-CSRF-Token": body["csrf_token"]}
        else:
            self.headers = {"Authorization": f"Bearer {body['access_token']}"}

    async def login(self) -> dict[str, Any]:
        response = await self.client.post(
            "/auth/login",
            data={"username": "ann", "password": PASSWORD},
            headers={"Origin": ORIGIN},
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if "mfa_required" not in body:
            self.keep(body)
        return body

    async def call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return await self.client.request(method, url, headers=self.headers, **kwargs)


async def test_enrol_then_login_in_two_steps(world: AccountsApp, fake_clock: FakeClock) -> None:
    browser = Browser(world)
    await browser.login()
    started = await browser.call("POST", "/users/me/mfa/totp")
    assert started.status_code == 201, started.text
    secret = started.json()["secret"]
    confirmed = await browser.call(
        "POST", "/users/me/mfa/totp/confirm", json={"code": totp_code(secret, clock=fake_clock)}
    )
    assert confirmed.status_code == 200
    assert confirmed.headers["cache-control"] == "no-store"

    fresh = Browser(world)
    step = await fresh.login()
    assert step["mfa_required"] is True
    fake_clock.advance(30)
    code = totp_code(secret, clock=fake_clock)
    # A login CSRF from another site's page is refused in cookie mode.
    forged = await fresh.client.post(
        "/auth/mfa/verify",
        json={"mfa_token": step["mfa_token"], "code": code},
        headers={"Origin": "https://evil.example"},
    )
    assert forged.status_code == (403 if fresh.cookie else 200)
    if fresh.cookie:
        done = await fresh.client.post(
            "/auth/mfa/verify",
            json={"mfa_token": step["mfa_token"], "code": code},
            headers={"Origin": ORIGIN},
        )
        assert done.status_code == 200, done.text
        assert "access_token" not in done.json()
        fresh.keep(done.json())
    else:
        fresh.keep(forged.json())
    status = await fresh.call("GET", "/users/me/mfa")
    assert status.json()["methods"] == ["totp", "recovery_code"]
    assert (await fresh.call("POST", "/users/me/mfa/recovery-codes")).status_code == 200


async def test_one_path_two_methods_names_both_in_allow(world: AccountsApp) -> None:
    browser = Browser(world)
    await browser.login()
    response = await browser.call("GET", "/users/me/mfa/totp")
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, POST"
    assert (await Browser(world).client.get("/users/me/mfa/totp")).status_code == 401


async def test_step_up_refuses_without_credentials(world: AccountsApp) -> None:
    response = await Browser(world).client.post("/users/me/mfa/recovery-codes")
    assert response.status_code == 401


async def test_passkey_routes_refuse_junk(world: AccountsApp) -> None:
    browser = Browser(world)
    await browser.login()
    options = await browser.call("POST", "/users/me/passkeys/register/options")
    assert options.status_code == 200
    junk = await browser.call("POST", "/users/me/passkeys/register/verify", json={"credential": {}})
    assert junk.status_code == 401
    assert (await browser.call("DELETE", "/users/me/passkeys/" + "A" * 1500)).status_code == 422
    assert (await browser.call("DELETE", "/users/me/passkeys/A")).status_code == 404
    assert (await browser.call("DELETE", "/users/me/passkeys/AAAA")).status_code == 404
    assert (await browser.call("GET", "/users/me/passkeys")).json() == []


def test_the_login_router_needs_second_factors(fake_clock: FakeClock) -> None:
    plain = build_accounts_app(fake_clock)
    with pytest.raises(ConfigurationError):
        mfa_login_router(plain.manager, plain.transport)


def test_without_passkeys_no_passkey_routes(fake_clock: FakeClock) -> None:
    world = mounted(build_accounts_app(fake_clock), fake_clock, passkeys=False)
    paths = set(world.app.openapi()["paths"])
    assert "/users/me/mfa/totp" in paths
    assert "/auth/mfa/verify" in paths
    assert not any("passkey" in path for path in paths)


async def test_openapi_documents_the_second_step(world: AccountsApp) -> None:
    document = world.app.openapi()
    login_ok = document["paths"]["/auth/login"]["post"]["responses"]["200"]
    schemas = login_ok["content"]["application/json"]["schema"]["anyOf"]
    assert {"$ref": "#/components/schemas/MFARequiredOut"} in schemas
    verify = document["paths"]["/auth/mfa/verify"]["post"]
    assert set(verify["responses"]) >= {"200", "400", "401", "403", "422", "429", "503"}
    delete = document["paths"]["/users/me/mfa/totp"]["delete"]
    assert set(delete["responses"]) >= {"204", "401", "404", "503"}


async def test_the_routes_pass_the_audit(world: AccountsApp) -> None:
    report = audit(world.app)
    public = {route.path for route in report.routes if route.public}
    assert {"/auth/mfa/verify", "/auth/passkey/options", "/auth/passkey/verify"} <= public
    assert not any(path.startswith("/users/me/mfa") for path in public)
    guard = require_step_up(world.transport, world.manager.mfa)  # type: ignore[arg-type]
    assert repr(guard) == "StepUpGuard(max_age=300)"
    assert guard.audit_info().fresh


def test_an_app_without_the_login_router_still_builds(fake_clock: FakeClock) -> None:
    app = FastAPI()
    factors = make_factors(MemoryMFAStore(clock=fake_clock), fake_clock)
    world = build_accounts_app(fake_clock)
    app.include_router(mfa_router(factors, world.transport, prefix="/me"))
    assert "/me/mfa/totp" in app.openapi()["paths"]


@given(
    st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", max_size=1400
    )
)
def test_any_credential_id_in_a_path_decodes_or_is_none(text: str) -> None:
    decoded = _credential_id(text)
    assert decoded is None or isinstance(decoded, bytes)


@given(st.dictionaries(st.sampled_from(["mfa_token", "code", "recovery_code", "x"]), st.text()))
def test_second_step_bodies_parse_into_one_factor_or_are_refused(body: dict[str, str]) -> None:
    adapter = TypeAdapter(MFACodeIn | MFARecoveryCodeIn)
    try:
        parsed = adapter.validate_python(body)
    except ValidationError:
        return
    assert parsed.mfa_token == body["mfa_token"]
    assert ("code" in body) != ("recovery_code" in body)


async def sign_in_as(world: AccountsApp, username: str) -> Browser:
    browser = Browser(world)
    response = await browser.client.post(
        "/auth/login", data={"username": username, "password": PASSWORD}, headers={"Origin": ORIGIN}
    )
    assert response.status_code == 200, response.text
    browser.keep(response.json())
    return browser


async def test_a_passkey_is_renamed_by_its_owner_only(world: AccountsApp) -> None:
    await world.manager.register("bob@x.io", PASSWORD, username="bob")
    ann = await sign_in_as(world, "ann")
    device = SoftAuthenticator(origin=PASSKEY_ORIGIN)
    options = await ann.call("POST", "/users/me/passkeys/register/options")
    created = await ann.call(
        "POST",
        "/users/me/passkeys/register/verify",
        json={"credential": device.create(options.json()["publicKey"]), "name": "laptop"},
    )
    assert created.status_code == 201, created.text
    passkey_id = created.json()["passkey"]["id"]
    url = f"/users/me/passkeys/{passkey_id}"

    renamed = await ann.call("PATCH", url, json={"name": "  work laptop 🔑  "})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "work laptop 🔑"
    assert renamed.json()["id"] == passkey_id
    [listed] = (await ann.call("GET", "/users/me/passkeys")).json()
    assert listed["name"] == "work laptop 🔑"

    # The attacker: another account, knowing the id, gets the same 404 as for no passkey.
    bob = await sign_in_as(world, "bob")
    for target in (url, "/users/me/passkeys/AAAA"):
        stolen = await bob.call("PATCH", target, json={"name": "pwned"})
        assert stolen.status_code == 404
        assert stolen.json()["detail"]["code"] == "not_found"
    assert (await Browser(world).client.patch(url, json={"name": "x"})).status_code == 401
    for junk in (
        {"name": ""},
        {"name": "   "},
        {"name": "a" * 65},
        {"name": "line\nbreak"},
        {"name": "tab\there"},
        {"name": "nul\x00"},
        {"name": "bidi\u202eevil"},
        {"name": "zero\u200bwidth"},
        {"name": 5},
        {},
        {"name": "ok", "extra": 1},
    ):
        refused = await ann.call("PATCH", url, json=junk)
        assert refused.status_code == 422, junk
    assert (
        await ann.call("PATCH", "/users/me/passkeys/" + "A" * 1500, json={"name": "x"})
    ).status_code == 422
    [still] = (await ann.call("GET", "/users/me/passkeys")).json()
    assert still["name"] == "work laptop 🔑"
    wrong_method = await ann.call("GET", url)
    assert (wrong_method.status_code, wrong_method.headers["allow"]) == (405, "DELETE, PATCH")


async def test_the_status_shows_when_totp_was_last_used(
    world: AccountsApp, fake_clock: FakeClock
) -> None:
    browser = await sign_in_as(world, "ann")
    status = (await browser.call("GET", "/users/me/mfa")).json()
    assert (status["totp"], status["totp_last_used_at"]) == (False, None)
    secret = (await browser.call("POST", "/users/me/mfa/totp")).json()["secret"]
    pending = (await browser.call("GET", "/users/me/mfa")).json()
    assert (pending["totp_pending"], pending["totp_last_used_at"]) == (True, None)
    await browser.call(
        "POST", "/users/me/mfa/totp/confirm", json={"code": totp_code(secret, clock=fake_clock)}
    )
    fake_clock.advance(7200)
    fresh = Browser(world)
    step = await fresh.login()
    done = await fresh.client.post(
        "/auth/mfa/verify",
        json={"mfa_token": step["mfa_token"], "code": totp_code(secret, clock=fake_clock)},
        headers={"Origin": ORIGIN},
    )
    assert done.status_code == 200, done.text
    fresh.keep(done.json())
    status = (await fresh.call("GET", "/users/me/mfa")).json()
    assert status["totp"] is True
    assert status["totp_last_used_at"] == datetime.fromtimestamp(
        fake_clock(), tz=timezone.utc
    ).isoformat().replace("+00:00", "Z")
    assert (status["passkeys"], status["recovery_codes_remaining"]) == (0, 10)


@given(st.text(max_size=80))
def test_a_rename_body_is_a_clean_name_or_refused(name: str) -> None:
    try:
        parsed = PasskeyRenameIn(name=name)
    except ValidationError:
        with pytest.raises(ValueError, match="passkey name"):
            passkey_name(name)
        return
    cleaned = passkey_name(parsed.name)
    assert cleaned == name.strip()
    assert 0 < len(cleaned) <= 64
    assert not any(ch in cleaned for ch in "\x00\n\r\t\x7f\u202e\u200b")
