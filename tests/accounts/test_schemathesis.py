"""schemathesis fuzzes the account routers against their own OpenAPI document.

Every built-in check runs on every answer (no server error, documented status,
content type and schema, headers, positive and negative data, ignored auth).
Each case logs in afresh: many operations end the session they are called with.
Expected-status lists are widened only where a rule cannot be stated in JSON
schema, each with its reason next to CONFIG.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.python import asgi

from fastapi_secure.accounts.lockout import Lockout, LockoutPolicy
from fastapi_secure.http_errors import install_error_handlers
from fastapi_secure.testing import FakeClock
from tests.support.accounts import build_accounts_app

PASSWORD = "correct horse battery staple"
# The fake clock never moves: a lockout started by fuzzed logins would never end.
WORLD = build_accounts_app(
    FakeClock(), lockout=Lockout(account=LockoutPolicy(threshold=10**6), address=None)
)
# As an application would: one JSON error shape for every answer (400 and 422 too).
install_error_handlers(WORLD.app)

# Beyond what JSON schema says: the password policy (common or context-based
# passwords), the email shape, and whether a well-formed token is a live one.
POSITIVE = [*["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"], "400", "422"]
CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {
            "positive_data_acceptance": {"expected-statuses": POSITIVE},
            "negative_data_rejection": {
                "expected-statuses": ["400", "401", "403", "404", "405", "409", "422", "429"]
            },
        }
    }
)
schema = schemathesis.openapi.from_dict(WORLD.app.openapi(), config=CONFIG)
APP: Any = WORLD.app  # schemathesis' ASGI aliases are narrower than Starlette's
schema.app = APP


def _fresh_token() -> str:
    with asgi.get_client(APP) as client:
        client.post("/auth/register", json={"email": "fuzz@example.io", "password": PASSWORD})
        response = client.post(
            "/auth/login", data={"username": "fuzz@example.io", "password": PASSWORD}
        )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_account_routes_conform(case: schemathesis.Case[Any]) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {_fresh_token()}"})
