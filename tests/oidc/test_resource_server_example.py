"""examples/resource_server.py against the real oidc-provider (shares its session fixture)."""

from __future__ import annotations

import httpx
import pytest
from examples.resource_server import create_app

from tests.support.oidc_provider import LocalProvider

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("shape", ["keycloak", "standard"])
async def test_the_example_accepts_the_providers_tokens(
    oidc_provider: LocalProvider, shape: str
) -> None:
    app = create_app(
        oidc_provider.issuer,
        oidc_provider.resource,
        shape=shape,
        rfc9068=True,
        allow_insecure_loopback=True,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        read = {"Authorization": f"Bearer {oidc_provider.client_credentials_token('read')}"}
        write = {"Authorization": f"Bearer {oidc_provider.client_credentials_token('write')}"}
        assert (await client.get("/orders", headers=read)).json() == {
            "owner": oidc_provider.client_id,
            "orders": [],
        }
        assert (await client.get("/orders", headers=write)).status_code == 403
        assert (await client.get("/orders")).status_code == 401
        assert (await client.delete("/orders/1", headers=read)).status_code == 403
        garbage = {"Authorization": "Bearer not.a.token"}
        assert (await client.get("/orders", headers=garbage)).status_code == 401


def test_the_example_reads_its_settings_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from examples import resource_server

    monkeypatch.setenv("OIDC_ISSUER", "https://sso.example.com/realms/main")
    monkeypatch.setenv("OIDC_AUDIENCE", "orders-api")
    monkeypatch.setenv("OIDC_CLAIMS", "entra")
    app = resource_server.app_from_environment()
    assert app.title == "Orders (resource server)"
    assert resource_server.claims_mapper("auth0", "x")({"permissions": ["read"]}).scopes == {"read"}
