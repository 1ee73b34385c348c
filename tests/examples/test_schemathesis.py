"""schemathesis fuzzes the reference API against its own OpenAPI schema.

The app runs in-process (schemathesis' ASGI transport, which also runs its
lifespan) on a fresh SQLite file with memory stores. Every case carries a valid
admin bearer token, so fuzzing reaches the handlers behind authentication, and
every built-in check runs on every answer: not_a_server_error,
status_code_conformance, content_type_conformance,
response_schema_conformance, response_headers_conformance,
positive_data_acceptance, negative_data_rejection, missing_required_header,
unsupported_method, allow_header_conformance, ignored_auth (the same request
without the token must be refused), plus the stateful ones where they apply.
Only expected-status lists are widened, each with its reason next to CONFIG.

Rate limits stay on, raised through the settings so fuzzing is not answered
with 429 alone; 429 stays a documented answer of every limited route.

Operations that revoke the token they are called with (logout, logout-all,
password change) or can deactivate the caller (user 1, the admin, is a valid
generated id) would kill a shared token mid-run, and every later case would
only see 401. They run in a second test that re-activates the admin and logs
in afresh for each case; the first test keeps one token for all its cases and
logs in again only if a revoking case ran in between (test order).

Bounded and reproducible: MAX_EXAMPLES derandomized examples per operation
(hypothesis derives the seed from the test's source), no deadline, no example
database.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from examples.reference_api.main import create_app
from examples.reference_api.migrate import upgrade_to_head
from examples.reference_api.schemas import ValidationErrorOut
from examples.reference_api.settings import AppSettings
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from pydantic import SecretStr
from schemathesis.python import asgi
from schemathesis.python.asgi import Receive, Scope, Send

from fastapi_secure.tokens.keys import Key

ADMIN_PASSWORD = "admin-Passphrase-for-tests-4821"
GENEROUS = "100000/minute"
MAX_EXAMPLES = 20
# Operations that end the session whose token calls them (or can deactivate its user).
REVOKING = {
    "POST /auth/logout",
    "POST /auth/logout-all",
    "PATCH /users/me/password",
    "POST /admin/users/{user_id}/deactivate",
}


@dataclass
class Served:
    app: FastAPI
    database: Path
    shared: str | None = None

    def token(self) -> str:
        """The one token of the shared run, logged in again only after a revoking case."""
        if self.shared is None:
            self.shared = _login()
        return self.shared

    def fresh_token(self) -> str:
        # A revoking case may end every admin session, the shared one too (logout-all), or
        # deactivate user 1, the admin: both are the operations working, not state to inherit.
        self.shared = None
        with sqlite3.connect(self.database) as connection:
            connection.execute("UPDATE users SET is_active = 1 WHERE username = 'admin'")
        return _login()


def _login() -> str:
    with asgi.get_client(APP) as client:
        response = client.post(
            "/auth/login", data={"username": "admin", "password": ADMIN_PASSWORD}
        )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def _settings(database_url: str) -> AppSettings:
    return AppSettings(
        database_url=SecretStr(database_url),
        redis_url=None,
        password_hash_profile="test_only_fast",
        signing_key_pem=SecretStr(Key.generate("EdDSA").private_pem().decode()),
        admin_email="admin@example.com",
        admin_password=SecretStr(ADMIN_PASSWORD),
        auth_limits_per_ip=GENEROUS,
        account_limits_per_ip=GENEROUS,
        password_change_limits_per_user=GENEROUS,
    )


# A password that fits the JSON schema (length) can still fail the PasswordPolicy (common,
# guessable, built from the email or username), a string can fit it and be no email address,
# and a token can fit it and be unknown (400): rules no JSON schema can state. For these
# operations the positive_data_acceptance check therefore also accepts 400 and 422;
# response_schema_conformance still holds those answers to their documented bodies.
POLICY_OPERATIONS = [
    "POST /auth/register",
    "PATCH /users/me/password",
    "POST /auth/verify/request",
    "POST /auth/verify/confirm",
    "POST /auth/password-reset/request",
    "POST /auth/password-reset/confirm",
    # Scopes the app does not grant, an overlap over the maximum: 422 (api_keys_router).
    "POST /users/me/api-keys",
    "POST /users/me/api-keys/{key_id}/rotate",
]
# Known gap of the library's api_keys_router: GET and POST share one path, and Starlette's
# 405 then names only one route's methods in Allow (sessions_router avoids it with its own
# paths). Until the router is reshaped, the Allow check is off for that path alone.
ALLOW_HEADER_GAP = ["GET /users/me/api-keys", "POST /users/me/api-keys"]
#
# A body over MAX_BODY_BYTES is refused with 413 before it is parsed: a documented rejection
# of invalid data that negative_data_rejection does not list by default.
NEGATIVE_DATA_REJECTED = [
    "400",
    "401",
    "403",
    "404",
    "405",
    "406",
    "409",
    "413",
    "415",
    "422",
    "428",
    "429",
    "5xx",
]
CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {"negative_data_rejection": {"expected-statuses": NEGATIVE_DATA_REJECTED}},
        "operations": [
            {
                "include-name": POLICY_OPERATIONS,
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": [
                            *["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"],  # default
                            "400",
                            "422",
                        ]
                    }
                },
            },
            {
                "include-name": ALLOW_HEADER_GAP,
                "checks": {"allow_header_conformance": {"enabled": False}},
            },
        ],
    }
)


class DeferredApp:
    """The ASGI app schemathesis calls; the ``served`` fixture plugs the real one in.

    schemathesis' lazy ``from_fixture`` schema does not work with pytest 9 (it
    writes ``request.node._nodeid``), so the schema is loaded at import time
    and the app, which needs a migrated database file, is built by a fixture.
    """

    def __init__(self) -> None:
        self.app: FastAPI | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.app is not None, "the served fixture provides the app"
        app: Any = self.app  # schemathesis' ASGI aliases are narrower than Starlette's
        await app(scope, receive, send)


APP = DeferredApp()
# Building the app touches no database: only its routes are needed for the document.
schema = schemathesis.openapi.from_dict(
    create_app(_settings("sqlite+aiosqlite://")).openapi(), config=CONFIG
)
schema.app = APP


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    database = tmp_path_factory.mktemp("schemathesis") / "api.db"
    url = f"sqlite+aiosqlite:///{database}"
    upgrade_to_head(url)
    app = create_app(_settings(url))
    assert app.openapi() == schema.raw_schema, "the fuzzed document is the served app's"
    APP.app = app
    try:
        yield Served(app, database)
    finally:
        # schemathesis keeps an ASGI app's lifespan running until the interpreter exits;
        # end it here so the database engine is disposed before the file is removed.
        asgi.shutdown_lifespans()
        APP.app = None


HYPOTHESIS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@schema.exclude(name=sorted(REVOKING)).parametrize()
@HYPOTHESIS
def test_api_conforms_with_a_shared_token(case: schemathesis.Case[Any], served: Served) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {served.token()}"})


@schema.include(name=sorted(REVOKING)).parametrize()
@HYPOTHESIS
def test_revoking_operations_conform_with_a_fresh_token_each(
    case: schemathesis.Case[Any], served: Served
) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {served.fresh_token()}"})


def test_validation_errors_are_sent_as_documented(served: Served) -> None:
    """FastAPI documents 422 as ``{"detail": [...]}``; install_error_handlers sends an object."""
    documented = schema.raw_schema["paths"]["/auth/register"]["post"]["responses"]["422"]
    reference = documented["content"]["application/json"]["schema"]["$ref"]
    assert reference == "#/components/schemas/ValidationErrorOut"
    with asgi.get_client(APP) as client:
        response = client.post("/auth/register", json={"email": "not-an-email"})
    assert response.status_code == 422
    body = ValidationErrorOut.model_validate(response.json())
    assert body.detail.code == "validation_failed"
    assert {tuple(error.loc) for error in body.detail.errors} >= {("body", "email")}
    assert "not-an-email" not in response.text


def test_out_of_range_user_id_is_refused_not_a_server_error(served: Served) -> None:
    """users.id is a 32-bit column: 2**63 used to reach the driver and overflow (500)."""
    headers = {"Authorization": f"Bearer {served.fresh_token()}"}
    with asgi.get_client(APP) as client:
        for path in (f"/admin/users/{2**63}/deactivate", f"/admin/users/{2**31}/roles"):
            response = client.post(path, headers=headers, json={"roles": ["editor"]})
            assert response.status_code == 422, (path, response.text)
            assert response.json()["detail"]["errors"][0]["loc"] == ["path", "user_id"]
        largest = client.post(f"/admin/users/{2**31 - 1}/deactivate", headers=headers)
    assert largest.status_code == 404


@pytest.mark.parametrize(
    "password",
    [
        # 7 code points that NFKC makes 8 ("\u00a8" -> " \u0308"): the policy counts the NFKC form.
        "\u00c3\u0088\u00a8w\u00d2\u0089C",
        # 142 code points that NFKC composes to 82 (and 142 > the policy's 128).
        "violet-kettle-harbour-" + "e\u0301" * 60,
    ],
)
def test_a_password_the_schema_allows_and_the_policy_refuses_is_a_422(
    served: Served, password: str
) -> None:
    """The accounts router's schema bounds what is read (1..1024); the policy decides
    the rest with a documented 422, never a 500, and never echoes the password."""
    documented = schema.raw_schema["components"]["schemas"]["RegisterIn"]["properties"]["password"]
    assert documented["minLength"] <= len(password) <= documented["maxLength"]
    body = {"email": "len@example.com", "username": "lengthy", "password": password}
    with asgi.get_client(APP) as client:
        response = client.post("/auth/register", json=body)
    assert response.status_code == 422, response.text
    detail = ValidationErrorOut.model_validate(response.json()).detail
    assert detail.code == "validation_failed"
    assert detail.problems
    assert password not in response.text
