"""DPoP in the account flows: a login or refresh with a proof binds the session.

The attacker holds a stolen refresh or access token, or a captured proof, but
never the client's private key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from fastapi_secure.accounts.hooks import AccountEvent, HookContext
from fastapi_secure.accounts.routers import auth_router
from fastapi_secure.auth.cookie import CookieAuth
from fastapi_secure.dpop import DPoPAuth, DPoPVerifier, InvalidDPoPProofError
from fastapi_secure.errors import ConfigurationError
from fastapi_secure.testing import FakeClock
from fastapi_secure.tokens.claims import TokenPair
from tests.support.accounts import ORIGIN, AccountsApp, build_accounts_app
from tests.support.dpop import DPoPClient

pytestmark = pytest.mark.anyio

PASSWORD = "correct horse battery staple"


class World:
    def __init__(self, clock: FakeClock, dpop: str) -> None:
        self.clock = clock
        self.accounts: AccountsApp = build_accounts_app(clock, dpop=dpop)
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.accounts.app), base_url=ORIGIN
        )
        self.key = DPoPClient()

    def proof(
        self, method: str, path: str, client: DPoPClient | None = None, **extra: Any
    ) -> dict[str, str]:
        holder = client or self.key
        return {"DPoP": holder.proof(method, f"{ORIGIN}{path}", iat=self.clock(), **extra)}

    async def login(self, headers: dict[str, str] | None = None) -> httpx.Response:
        return await self.http.post(
            "/auth/login",
            data={"username": "alice@example.io", "password": PASSWORD},
            headers=headers,
        )

    async def refresh(self, token: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return await self.http.post("/auth/refresh", json={"refresh_token": token}, headers=headers)

    def dpop_headers(self, token: str, method: str, path: str, **extra: Any) -> dict[str, str]:
        return {
            "Authorization": f"DPoP {token}",
            **self.proof(method, path, access_token=token, **extra),
        }


async def _world(clock: FakeClock, dpop: str) -> World:
    world = World(clock, dpop)
    await world.accounts.manager.register("alice@example.io", PASSWORD)
    return world


@pytest.fixture
async def optional(fake_clock: FakeClock) -> AsyncIterator[World]:
    world = await _world(fake_clock, "optional")
    async with world.http:
        yield world


@pytest.fixture
async def required(fake_clock: FakeClock) -> AsyncIterator[World]:
    world = await _world(fake_clock, "required")
    async with world.http:
        yield world


def assert_dpop_refusal(response: httpx.Response, error: str = "invalid_dpop_proof") -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith(f'DPoP error="{error}"')


# -- the manager ---------------------------------------------------------------------


async def test_manager_login_and_refresh_pass_the_thumbprint(fake_clock: FakeClock) -> None:
    world = await _world(fake_clock, "off")
    manager, key = world.accounts.manager, world.key
    pair = await manager.login("alice@example.io", PASSWORD, dpop_jkt=key.jkt)
    assert isinstance(pair, TokenPair)
    assert pair.token_type == "DPoP"
    claims = await world.accounts.issuer.verify_access(pair.access_token)
    assert claims.cnf is not None
    assert claims.cnf.jkt == key.jkt
    # A thief with the refresh token but without the key gets nothing, burns nothing.
    with pytest.raises(InvalidDPoPProofError):
        await manager.refresh(pair.refresh_token)
    with pytest.raises(InvalidDPoPProofError):
        await manager.refresh(pair.refresh_token, dpop_jkt=DPoPClient().jkt)
    renewed = await manager.refresh(pair.refresh_token, dpop_jkt=key.jkt)
    assert renewed.token_type == "DPoP"


# -- optional: a proof binds, no proof stays bearer ------------------------------------


async def test_login_with_a_proof_gets_a_bound_pair_that_needs_the_key(optional: World) -> None:
    response = await optional.login(optional.proof("POST", "/auth/login"))
    assert response.status_code == 200, response.text
    pair = response.json()
    assert pair["token_type"] == "DPoP"
    access, refresh = pair["access_token"], pair["refresh_token"]

    # The bound access token as a bearer token: refused, the session lives on.
    as_bearer = await optional.http.post(
        "/auth/logout", headers={"Authorization": f"Bearer {access}"}
    )
    assert as_bearer.status_code == 401

    # Refresh: without a proof, or from another key, refused before anything is consumed.
    assert_dpop_refusal(await optional.refresh(refresh))
    stranger = DPoPClient()
    assert_dpop_refusal(
        await optional.refresh(refresh, optional.proof("POST", "/auth/refresh", client=stranger))
    )
    renewed = await optional.refresh(refresh, optional.proof("POST", "/auth/refresh"))
    assert renewed.status_code == 200, renewed.text
    assert renewed.json()["token_type"] == "DPoP"

    # The logout takes DPoP credentials, with a proof of the same key.
    new_access = renewed.json()["access_token"]
    done = await optional.http.post(
        "/auth/logout", headers=optional.dpop_headers(new_access, "POST", "/auth/logout")
    )
    assert done.status_code == 204, done.text


async def test_login_without_a_proof_stays_bearer_and_logs_out_as_bearer(
    optional: World,
) -> None:
    response = await optional.login()
    assert response.json()["token_type"] == "bearer"
    access = response.json()["access_token"]
    done = await optional.http.post("/auth/logout", headers={"Authorization": f"Bearer {access}"})
    assert done.status_code == 204


async def test_an_unbound_session_refreshed_with_a_proof_becomes_bound(optional: World) -> None:
    refresh = (await optional.login()).json()["refresh_token"]
    renewed = await optional.refresh(refresh, optional.proof("POST", "/auth/refresh"))
    assert renewed.json()["token_type"] == "DPoP"
    assert_dpop_refusal(await optional.refresh(renewed.json()["refresh_token"]))


@pytest.mark.parametrize(
    "bad",
    [
        {"method": "GET"},
        {"path": "/auth/refresh"},
        {"typ": "JWT"},
        {"iat_shift": -3600},
        {"algorithm": "HS256"},
    ],
    ids=["wrong-htm", "wrong-htu", "wrong-typ", "stale-iat", "hs256"],
)
async def test_a_bad_proof_at_login_is_refused_before_the_password(
    optional: World, bad: dict[str, Any]
) -> None:
    failures: list[HookContext] = []

    async def count(context: HookContext) -> None:
        failures.append(context)

    optional.accounts.hooks.add(AccountEvent.LOGIN_FAILED, count)
    extra: dict[str, Any] = {}
    if "typ" in bad:
        extra["typ"] = bad["typ"]
    if "algorithm" in bad:
        extra["algorithm"] = "HS256"
        extra["signing_key"] = "k" * 32
    if "iat_shift" in bad:
        extra["iat"] = optional.clock() + bad["iat_shift"]
    headers = {
        "DPoP": optional.key.proof(
            bad.get("method", "POST"),
            f"{ORIGIN}{bad.get('path', '/auth/login')}",
            **{"iat": optional.clock(), **extra},
        )
    }
    response = await optional.http.post(
        "/auth/login", data={"username": "alice@example.io", "password": "wrong"}, headers=headers
    )
    assert_dpop_refusal(response)
    assert failures == []  # the password was never looked at


async def test_a_replayed_login_proof_is_refused(optional: World) -> None:
    headers = optional.proof("POST", "/auth/login")
    assert (await optional.login(headers)).status_code == 200
    assert_dpop_refusal(await optional.login(headers))


async def test_a_replayed_refresh_proof_is_refused(optional: World) -> None:
    pair = (await optional.login(optional.proof("POST", "/auth/login"))).json()
    headers = optional.proof("POST", "/auth/refresh")
    renewed = await optional.refresh(pair["refresh_token"], headers)
    assert renewed.status_code == 200
    assert_dpop_refusal(await optional.refresh(renewed.json()["refresh_token"], headers))


# -- required ------------------------------------------------------------------------


async def test_required_refuses_a_login_and_a_refresh_without_a_proof(required: World) -> None:
    assert_dpop_refusal(await required.login())
    pair = (await required.login(required.proof("POST", "/auth/login"))).json()
    assert pair["token_type"] == "DPoP"
    assert_dpop_refusal(await required.refresh(pair["refresh_token"]))
    renewed = await required.refresh(pair["refresh_token"], required.proof("POST", "/auth/refresh"))
    assert renewed.status_code == 200


async def test_required_refreshes_an_old_unbound_session_only_with_a_proof(
    required: World,
) -> None:
    # A session from before DPoP was required: it must bind to go on.
    old = await required.accounts.manager.login("alice@example.io", PASSWORD)
    assert isinstance(old, TokenPair)
    assert_dpop_refusal(await required.refresh(old.refresh_token))
    renewed = await required.refresh(old.refresh_token, required.proof("POST", "/auth/refresh"))
    assert renewed.json()["token_type"] == "DPoP"


async def test_required_logout_takes_dpop_only(required: World) -> None:
    old = await required.accounts.manager.login("alice@example.io", PASSWORD)
    assert isinstance(old, TokenPair)
    as_bearer = await required.http.post(
        "/auth/logout-all", headers={"Authorization": f"Bearer {old.access_token}"}
    )
    assert as_bearer.status_code == 401
    assert as_bearer.headers["www-authenticate"].startswith("DPoP")
    pair = (await required.login(required.proof("POST", "/auth/login"))).json()
    replay = required.dpop_headers(pair["access_token"], "POST", "/auth/logout-all")
    assert (await required.http.post("/auth/logout-all", headers=replay)).status_code == 204
    assert_dpop_refusal(
        await required.http.post("/auth/logout-all", headers=replay), "invalid_token"
    )


async def test_required_sessions_and_password_change_take_dpop(required: World) -> None:
    old = await required.accounts.manager.login("alice@example.io", PASSWORD)
    assert isinstance(old, TokenPair)
    plain = {"Authorization": f"Bearer {old.access_token}"}
    assert (await required.http.get("/users/me/sessions", headers=plain)).status_code == 401
    body = {"current_password": PASSWORD, "new_password": "a whole new passphrase 42"}
    refused = await required.http.patch("/users/me/password", json=body, headers=plain)
    assert refused.status_code == 401
    pair = (await required.login(required.proof("POST", "/auth/login"))).json()
    access = pair["access_token"]
    listed = await required.http.get(
        "/users/me/sessions", headers=required.dpop_headers(access, "GET", "/users/me/sessions")
    )
    assert listed.status_code == 200, listed.text
    assert [s["current"] for s in listed.json()].count(True) == 1
    changed = await required.http.patch(
        "/users/me/password",
        json=body,
        headers=required.dpop_headers(access, "PATCH", "/users/me/password"),
    )
    assert changed.status_code == 204, changed.text


def test_configuration_mistakes_are_refused(fake_clock: FakeClock) -> None:
    world = build_accounts_app(fake_clock)
    dpop = DPoPAuth(world.issuer, DPoPVerifier(clock=fake_clock))
    with pytest.raises(ConfigurationError, match="dpop_required"):
        auth_router(world.manager, world.transport, dpop_required=True)
    with pytest.raises(ConfigurationError, match="DPoPAuth"):
        auth_router(world.manager, world.transport, dpop=object())  # type: ignore[arg-type]
    cookie = CookieAuth(world.issuer, csrf_secret="s" * 32, allowed_origins=[ORIGIN])
    with pytest.raises(ConfigurationError, match="Authorization header"):
        auth_router(world.manager, cookie, dpop=dpop)


# -- OpenAPI ----------------------------------------------------------------------


def _dpop_parameters(accounts: AccountsApp, path: str) -> list[dict[str, Any]]:
    operation = accounts.app.openapi()["paths"][path]["post"]
    return [p for p in operation.get("parameters", []) if p["name"].lower() == "dpop"]


@pytest.mark.parametrize("dpop", ["off", "optional", "required"])
def test_login_and_refresh_declare_the_dpop_header(fake_clock: FakeClock, dpop: str) -> None:
    accounts = build_accounts_app(fake_clock, dpop=dpop)
    for path in ("/auth/login", "/auth/refresh"):
        declared = _dpop_parameters(accounts, path)
        if dpop == "off":
            assert declared == []
            continue
        assert len(declared) == 1, declared
        (header,) = declared
        assert header["in"] == "header"
        assert header["name"] == "DPoP"
        assert header["required"] is (dpop == "required")
        assert header["schema"] == {"type": "string"}
        assert "RFC 9449" in header["description"]
    # Only where a proof is read: the logout routes take DPoP credentials instead.
    assert _dpop_parameters(accounts, "/auth/logout") == []
