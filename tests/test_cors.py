"""CORSPolicy: unsafe settings refused; Starlette's CORSMiddleware configured from it."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fastapi_secure.cors import (
    RATE_LIMIT_HEADERS,
    CORSPolicy,
)
from fastapi_secure.errors import (
    ConfigurationError,
    RateLimitExceededError,
)
from fastapi_secure.http_errors import http_exception
from fastapi_secure.settings import SecuritySettings

APP_ORIGIN = "https://app.example.com"
EVIL_ORIGIN = "https://evil.example.net"

# --- CORS ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"allow_origins": ["*"], "allow_credentials": True},
        {"allow_origin_regex": ".*", "allow_credentials": True},
        {
            "allow_origin_regex": "https://.*",
            "allow_credentials": True,
            "trust_origin_regex_with_credentials": True,
        },
        {
            "allow_origin_regex": r"https?://.+",
            "allow_credentials": True,
            "trust_origin_regex_with_credentials": True,
        },
        # Security review: each of these also admits an attacker's domain.
        {"allow_origin_regex": r"https://app\.example\.com.*", "allow_credentials": True},
        {"allow_origin_regex": r"https://.*example\.com", "allow_credentials": True},
        {"allow_origin_regex": r"https://app.example.com", "allow_credentials": True},
        {"allow_origins": ["null"]},
        {"allow_origins": ["https://app.example.com/"]},
        {"allow_origins": ["https://app.example.com/path"]},
        {"allow_origins": ["https://App.Example.com"]},
        {"allow_origins": ["app.example.com"]},
        {"allow_origins": ["*", APP_ORIGIN]},
        {"allow_origins": APP_ORIGIN},
        {"allow_origin_regex": "(unclosed"},
        {"allow_origins": [APP_ORIGIN], "max_age": -1},
    ],
)
def test_cors_policy_refuses_unsafe_or_broken_settings(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        CORSPolicy(**options)


def test_settings_also_refuse_a_wildcard_with_credentials() -> None:
    with pytest.raises(ValueError, match="credentialed"):
        SecuritySettings(cors_allow_origins=["*"], cors_allow_credentials=True)


def cors_app(policy: CORSPolicy) -> TestClient:
    app = FastAPI()

    @app.get("/items")
    async def items() -> dict[str, int]:
        return {"count": 1}

    @app.post("/items")
    async def create() -> dict[str, int]:
        raise http_exception(RateLimitExceededError(retry_after=7))

    policy.install(app)
    return TestClient(app)


def preflight(client: TestClient, origin: str, method: str = "POST") -> Any:
    return client.options(
        "/items",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization",
        },
    )


CREDENTIALED = CORSPolicy(
    allow_origins=[APP_ORIGIN],
    allow_methods=["GET", "POST"],
    allow_headers=["Authorization"],
    allow_credentials=True,
)


def test_an_allowed_origin_passes_preflight_with_credentials() -> None:
    response = preflight(cors_app(CREDENTIALED), APP_ORIGIN)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == APP_ORIGIN
    assert response.headers["access-control-allow-credentials"] == "true"


def test_a_disallowed_origin_fails_preflight_and_gets_no_allow_origin() -> None:
    response = preflight(cors_app(CREDENTIALED), EVIL_ORIGIN)
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


def test_a_simple_request_from_a_disallowed_origin_gets_no_allow_origin() -> None:
    response = cors_app(CREDENTIALED).get("/items", headers={"Origin": EVIL_ORIGIN})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers


def test_a_disallowed_method_fails_preflight() -> None:
    assert preflight(cors_app(CREDENTIALED), APP_ORIGIN, method="DELETE").status_code == 400


def test_deny_by_default() -> None:
    client = cors_app(CORSPolicy())
    assert "access-control-allow-origin" not in preflight(client, APP_ORIGIN).headers
    assert (
        "access-control-allow-origin"
        not in client.get("/items", headers={"Origin": APP_ORIGIN}).headers
    )


def test_rate_limit_headers_are_exposed_so_browsers_can_read_them() -> None:
    client = cors_app(CORSPolicy(allow_origins=[APP_ORIGIN], expose_headers=["X-Request-Id"]))
    response = client.post("/items", headers={"Origin": APP_ORIGIN})
    assert response.status_code == 429
    assert response.headers["access-control-allow-origin"] == APP_ORIGIN
    exposed = {
        h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")
    }
    assert exposed == {h.lower() for h in RATE_LIMIT_HEADERS} | {"x-request-id"}


def test_an_anchored_regex_with_credentials_is_accepted_and_matches_only_its_domain() -> None:
    policy = CORSPolicy(
        allow_origin_regex=r"https://[a-z0-9-]+\.example\.com",
        allow_credentials=True,
        trust_origin_regex_with_credentials=True,
    )
    client = cors_app(policy)
    ok = client.get("/items", headers={"Origin": "https://shop.example.com"})
    assert ok.headers["access-control-allow-origin"] == "https://shop.example.com"
    evil = client.get("/items", headers={"Origin": "https://shop.example.com.evil.net"})
    assert "access-control-allow-origin" not in evil.headers


def test_a_public_wildcard_without_credentials_is_allowed() -> None:
    response = cors_app(CORSPolicy(allow_origins=["*"])).get(
        "/items", headers={"Origin": EVIL_ORIGIN}
    )
    assert response.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in response.headers


def test_cors_policy_from_settings_and_as_middleware_entry() -> None:
    settings = SecuritySettings(cors_allow_origins=[APP_ORIGIN], cors_allow_credentials=True)
    policy = CORSPolicy.from_settings(settings, allow_methods=["GET", "POST"])
    assert policy.allow_origins == (APP_ORIGIN,)
    assert policy.allow_credentials
    app = FastAPI(middleware=[policy.middleware()])

    @app.get("/items")
    async def items() -> dict[str, int]:
        return {"count": 1}

    response = preflight(TestClient(app), APP_ORIGIN)
    assert response.headers["access-control-allow-origin"] == APP_ORIGIN


def test_a_disallowed_method_names_the_setting_to_change() -> None:
    refused = preflight(cors_app(CREDENTIALED), APP_ORIGIN, method="DELETE")
    assert refused.status_code == 400
    assert "Disallowed CORS method" in refused.text
    assert "CORSPolicy(allow_methods=[...])" in refused.text
    assert (
        "access-control-allow-origin" not in refused.headers
        or refused.headers["access-control-allow-origin"] == APP_ORIGIN
    )


def test_an_api_s_own_methods_pass_preflight_by_default() -> None:
    policy = CORSPolicy(
        allow_origins=[APP_ORIGIN], allow_headers=["Authorization"], allow_credentials=True
    )
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        response = preflight(cors_app(policy), APP_ORIGIN, method=method)
        assert response.status_code == 200, method
        assert response.headers["access-control-allow-origin"] == APP_ORIGIN
    # The origin list stays the boundary.
    assert preflight(cors_app(policy), EVIL_ORIGIN).status_code == 400
