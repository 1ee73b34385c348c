"""install_secure_defaults: every piece in one call."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from fastapi_secure.clientip import TrustedProxies
from fastapi_secure.defaults import install_secure_defaults
from fastapi_secure.errors import (
    ConfigurationError,
)
from fastapi_secure.settings import SecuritySettings
from tests.support.asgi import call, http_scope, response_headers

APP_ORIGIN = "https://app.example.com"
EVIL_ORIGIN = "https://evil.example.net"


# --- one call ---------------------------------------------------------------------------------


def full_app(**options: Any) -> FastAPI:
    app = FastAPI()

    @app.get("/items")
    async def items() -> dict[str, int]:
        return {"count": 1}

    @app.post("/items")
    async def create(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("internal detail")

    install_secure_defaults(app, **options)
    return app


def test_install_secure_defaults_installs_every_piece() -> None:
    settings = SecuritySettings(
        cors_allow_origins=[APP_ORIGIN], cors_allow_credentials=True, trusted_proxies=["10.0.0.0/8"]
    )
    app = full_app(settings=settings, max_body_bytes=100)
    client = TestClient(app, raise_server_exceptions=False)
    api = client.get("/items", headers={"Origin": APP_ORIGIN})
    assert api.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert api.headers["access-control-allow-origin"] == APP_ORIGIN
    assert api.headers["access-control-allow-credentials"] == "true"
    assert (
        "access-control-allow-origin"
        not in client.get("/items", headers={"Origin": EVIL_ORIGIN}).headers
    )
    too_big = client.post("/items", content=b"x" * 101, headers={"Origin": APP_ORIGIN})
    assert too_big.status_code == 413
    assert too_big.headers["access-control-allow-origin"] == APP_ORIGIN
    assert too_big.headers["x-frame-options"] == "DENY"
    crash = client.get("/crash")
    assert crash.json()["detail"]["code"] == "internal_error"
    assert crash.headers["x-frame-options"] == "DENY"
    docs = client.get("/docs")
    assert "'nonce-" in docs.headers["content-security-policy"]
    assert '<script nonce="' in docs.text


@pytest.mark.anyio
async def test_install_secure_defaults_uses_the_settings_trusted_proxies_for_hsts() -> None:
    app = full_app(settings=SecuritySettings(trusted_proxies=["10.0.0.0/8"]))
    scope = http_scope("/items", client=("10.0.0.5", 1), headers=[(b"x-forwarded-proto", b"https")])
    assert "strict-transport-security" in dict(response_headers(await call(app, scope)))


def test_settings_with_docs_disabled_take_docs_and_schema_off() -> None:
    client = TestClient(full_app(settings=SecuritySettings(docs_enabled=False)))
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect", "/openapi.json"):
        assert client.get(path).status_code == 404, path
    assert client.get("/items").status_code == 200


def test_install_secure_defaults_with_allowed_hosts() -> None:
    app = full_app(allowed_hosts=["api.example.com"], trusted_proxies=TrustedProxies())
    assert TestClient(app, base_url="https://api.example.com").get("/items").status_code == 200
    assert TestClient(app, base_url="https://evil.example").get("/items").status_code == 400


def test_install_secure_defaults_rejects_bad_header_options_at_once() -> None:
    with pytest.raises(ConfigurationError):
        full_app(secure_headers={"frame_options": "DENY\r\nX: y"})
