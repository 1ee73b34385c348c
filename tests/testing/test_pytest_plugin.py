"""The opt-in pytest plugin: its fixtures, run in an inner pytest session."""

from __future__ import annotations

import importlib.util
import textwrap

import pytest

pytest_plugins = ["pytester"]

HOST_TESTS = """
from typing import Annotated

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from fastapi_secure import (
    AccessClaims, BearerAuth, KeySet, MemoryTokenStore, RateLimiter, TokenIssuer,
)
from fastapi_secure.tokens.issuer import keep_login_grant

pytest_plugins = ["fastapi_secure.testing.pytest_plugin"]

ISSUER = TokenIssuer(
    KeySet.generate("EdDSA"),
    MemoryTokenStore(),
    issuer="https://api.test",
    audience="api",
    grant_loader=keep_login_grant,
)
LIMITER = RateLimiter()
bearer = BearerAuth(ISSUER)
app = FastAPI()


@app.get("/me", dependencies=[Depends(LIMITER.limit("1/hour"))])
async def me(claims: Annotated[AccessClaims, Depends(bearer)]) -> dict[str, str]:
    return {"sub": claims.sub}


@pytest.fixture
def token_issuer() -> TokenIssuer:
    return ISSUER


def test_token_factory_and_reset(token_factory, reset_rate_limits) -> None:
    with TestClient(app) as client:
        headers = token_factory.headers_sync("ann")
        assert client.get("/me", headers=headers).json() == {"sub": "ann"}
        assert client.get("/me", headers=headers).status_code == 429
        client.portal.call(reset_rate_limits, LIMITER)
        assert client.get("/me", headers=headers).status_code == 200


def test_fake_clock(fake_clock) -> None:
    start = fake_clock()
    assert fake_clock.advance(5) == start + 5


def test_outbox(outbox) -> None:
    import anyio

    from fastapi_secure.accounts.mail import MailMessage
    from fastapi_secure.testing import action_token

    link = "https://app.test/reset?token=t0k3n&x=1"
    anyio.run(outbox.send, MailMessage("Ann@Example.com", "Reset", "text", link))
    assert action_token(outbox.to("ann@example.com")[-1]) == "t0k3n"
    with pytest.raises(ValueError, match="no action link"):
        action_token(MailMessage("ann@example.com", "Hi", "no link"))


def test_totp_code(totp_code) -> None:
    pytest.importorskip("pyotp")
    assert totp_code("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", at=59, digits=8) == "94287082"
"""


def test_fixtures_work_in_a_host_apps_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_host=textwrap.dedent(HOST_TESTS))
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    has_pyotp = importlib.util.find_spec("pyotp") is not None
    result.assert_outcomes(passed=4 if has_pyotp else 3, skipped=0 if has_pyotp else 1)


def test_the_plugin_is_not_loaded_unless_asked(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_bare="def test_nothing() -> None: ...")
    bare = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--fixtures")
    bare.stdout.no_fnmatch_line("token_factory*")
    opted_in = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "-p", "fastapi_secure.testing.pytest_plugin", "--fixtures"
    )
    opted_in.stdout.fnmatch_lines(["token_factory*"])
