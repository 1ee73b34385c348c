"""Serving the reference API in-process for tests: settings, a client, helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from examples.reference_api.deps import build_components
from examples.reference_api.main import create_app
from examples.reference_api.migrate import aupgrade_to_head
from examples.reference_api.settings import AppSettings
from pydantic import SecretStr

from fastapi_secure.clock import Clock

ADMIN_PASSWORD = "admin-Passphrase-for-tests-4821"
ALICE_PASSWORD = "violet-kettle-harbour-17"


@dataclass
class Api:
    client: httpx.AsyncClient
    settings: AppSettings

    async def login(self, username: str, password: str) -> dict[str, Any]:
        response = await self.client.post(
            "/auth/login", data={"username": username, "password": password}
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def register(self, email: str, username: str, password: str) -> httpx.Response:
        return await self.client.post(
            "/auth/register", json={"email": email, "username": username, "password": password}
        )


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def make_settings(database_url: str, redis_url: str | None = None, **extra: Any) -> AppSettings:
    values: dict[str, Any] = {
        "database_url": SecretStr(database_url),
        "redis_url": SecretStr(redis_url) if redis_url else None,
        "password_hash_profile": "test_only_fast",
        "admin_email": "admin@example.com",
        "admin_password": SecretStr(ADMIN_PASSWORD),
        "cookie_secure": False,
    }
    values.update(extra)
    return AppSettings(**values)


async def serve(settings: AppSettings, *, clock: Clock | None = None) -> AsyncIterator[Api]:
    database_url = settings.database_url.get_secret_value() if settings.database_url else ""
    await aupgrade_to_head(database_url)
    components = build_components(settings, clock=clock) if clock is not None else None
    app = create_app(settings, components=components)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Api(client, settings)
