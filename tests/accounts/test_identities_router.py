"""identities_router over memory stores: list, unlink, never the last way in; OpenAPI."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from fastapi_secure.accounts.identities import AccountIdentityLinker, MemoryIdentityStore
from fastapi_secure.accounts.routers import identities_router
from fastapi_secure.accounts.users import MemoryUserStore
from fastapi_secure.auth.bearer import BearerAuth
from fastapi_secure.oidc.linking import OIDCIdentity
from fastapi_secure.oidc.login import OIDCProvider, oidc_router
from fastapi_secure.testing import FakeClock
from tests.support.auth import make_issuer

pytestmark = pytest.mark.anyio


def identity(subject: str, issuer: str = "https://idp.example") -> OIDCIdentity:
    return OIDCIdentity(
        provider="idp", issuer=issuer, subject=subject, email="a@example.test", email_verified=True
    )


async def test_identities_are_listed_and_unlinked_but_never_the_last_way_in(
    fake_clock: FakeClock,
) -> None:
    issuer = make_issuer(fake_clock)
    linker = AccountIdentityLinker(
        MemoryUserStore(clock=fake_clock), MemoryIdentityStore(clock=fake_clock)
    )
    app = FastAPI()
    app.include_router(identities_router(linker, BearerAuth(issuer)))
    user, first = await linker.sign_in(identity("a"))
    fake_clock.advance(5)
    second = await linker.link(user.id, identity("b", "https://other.example"))
    pair = await issuer.issue(user.id)
    auth = {"Authorization": f"Bearer {pair.access_token}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        assert (await client.get("/users/me/identities")).status_code == 401
        listed = await client.get("/users/me/identities", headers=auth)
        assert listed.status_code == 200
        assert [item["id"] for item in listed.json()] == [first.linked.id, second.id]
        assert set(listed.json()[0]) == {"id", "provider", "issuer", "email", "linked_at"}
        path = "/users/me/identities/"
        assert (await client.delete(path + first.linked.id, headers=auth)).status_code == 204
        assert (await client.delete(path + first.linked.id, headers=auth)).status_code == 404
        last = await client.delete(path + second.id, headers=auth)
        assert last.status_code == 409
        assert last.json()["detail"]["code"] == "conflict"
        for bad in ("a" * 65, "a.b", "%00"):
            assert (await client.delete(path + bad, headers=auth)).status_code == 422
    assert [link.id for link in await linker.list_identities(user.id)] == [second.id]


def test_openapi_lists_every_status() -> None:
    issuer = make_issuer(FakeClock(0))
    linker = AccountIdentityLinker(MemoryUserStore(), MemoryIdentityStore())
    provider = OIDCProvider(
        name="idp", issuer="https://idp.example", client_id="a", redirect_uri="https://a.test/cb"
    )

    async def on_identity(found: OIDCIdentity, request: object) -> None:
        return None

    app = FastAPI()
    app.include_router(identities_router(linker, BearerAuth(issuer)))
    app.include_router(
        oidc_router([provider], on_identity=on_identity, state_secret="s" * 32), prefix="/oidc"
    )
    paths = app.openapi()["paths"]
    expected = {
        ("/users/me/identities", "get"): {"200", "401", "503"},
        ("/users/me/identities/{identity_id}", "delete"): {"204", "401", "404", "409", "422"},
        ("/oidc/{provider}/login", "get"): {"302", "400", "503"},
        ("/oidc/{provider}/callback", "get"): {"200", "303", "400", "403", "409", "503"},
    }
    for (path, method), codes in expected.items():
        assert codes <= set(paths[path][method]["responses"]), (path, method)
    conflict = paths["/users/me/identities/{identity_id}"]["delete"]["responses"]["409"]
    assert "last way in" in conflict["description"]
