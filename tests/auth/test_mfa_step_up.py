"""Step-up by amr: require_mfa, and amr / auth_time carried from the login through rotations."""

# No `from __future__ import annotations`: FastAPI resolves the endpoint's
# annotations, and they close over the per-test dependency.

from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI
from hypothesis import given
from hypothesis import strategies as st

from fastapi_secure.auth import BearerAuth, require_mfa
from fastapi_secure.errors import ConfigurationError, StepUpRequiredError
from fastapi_secure.http_errors import www_authenticate
from fastapi_secure.testing import FakeClock
from fastapi_secure.tokens.claims import AccessClaims
from fastapi_secure.tokens.issuer import TokenIssuer
from tests.support.auth import make_issuer

pytestmark = pytest.mark.anyio


def mfa_app(issuer: TokenIssuer, clock: FakeClock, max_age: float | None = None) -> FastAPI:
    bearer = BearerAuth(issuer)
    step_up = require_mfa(bearer, max_age=max_age, clock=clock)
    app = FastAPI()

    @app.delete("/account")
    async def delete_account(claims: Annotated[AccessClaims, Depends(step_up)]) -> dict[str, str]:
        return {"sub": claims.sub, "amr": " ".join(claims.amr)}

    return app


async def call(app: FastAPI, token: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        return await http.delete("/account", headers={"Authorization": f"Bearer {token}"})


async def test_a_password_only_login_is_asked_to_step_up(fake_clock: FakeClock) -> None:
    issuer = make_issuer(fake_clock)
    pair = await issuer.issue("alice", amr=["pwd"])
    refused = await call(mfa_app(issuer, fake_clock), pair.access_token)
    assert refused.status_code == 401
    assert refused.json()["detail"]["code"] == "mfa_required"
    assert refused.headers["www-authenticate"] == (
        'Bearer error="insufficient_user_authentication", '
        'error_description="sign in again with a second factor"'
    )


async def test_an_mfa_login_passes_and_keeps_its_amr_through_rotation(
    fake_clock: FakeClock,
) -> None:
    issuer = make_issuer(fake_clock)
    pair = await issuer.issue("alice", amr=["pwd", "otp", "mfa"])
    app = mfa_app(issuer, fake_clock)
    assert (await call(app, pair.access_token)).json() == {"sub": "alice", "amr": "pwd otp mfa"}
    fake_clock.advance(600)
    rotated = await issuer.rotate(pair.refresh_token)
    claims = await issuer.verify_access(rotated.access_token)
    assert claims.amr == ("pwd", "otp", "mfa")
    assert claims.auth_time == (await issuer.verify_access(pair.access_token)).auth_time
    assert (await call(app, rotated.access_token)).status_code == 200


async def test_max_age_asks_for_a_recent_second_factor(fake_clock: FakeClock) -> None:
    issuer = make_issuer(fake_clock)
    pair = await issuer.issue("alice", amr=["pwd", "hwk", "mfa"])
    app = mfa_app(issuer, fake_clock, max_age=300)
    assert (await call(app, pair.access_token)).status_code == 200
    fake_clock.advance(301)
    rotated = await issuer.rotate(pair.refresh_token)  # a refresh is no new authentication
    stale = await call(app, rotated.access_token)
    assert stale.status_code == 401
    assert stale.headers["www-authenticate"].endswith('max_age="300"')


async def test_amr_cannot_be_forged_through_custom_claims(fake_clock: FakeClock) -> None:
    issuer = make_issuer(fake_clock)
    with pytest.raises(ConfigurationError, match="reserved"):
        await issuer.issue("mallory", claims={"amr": ["mfa"]})
    with pytest.raises(ValueError, match="amr"):
        await issuer.issue("mallory", amr="mfa")
    with pytest.raises(ValueError, match="amr"):
        await issuer.issue("mallory", amr=['mfa" , admin'])


def test_require_mfa_refuses_a_bad_max_age(fake_clock: FakeClock) -> None:
    bearer = BearerAuth(make_issuer(fake_clock))
    with pytest.raises(ConfigurationError):
        require_mfa(bearer, max_age=0)


@given(st.text(max_size=200))
def test_error_description_stays_a_quoted_string(text: str) -> None:
    challenge = www_authenticate(StepUpRequiredError(description=text)) or ""
    assert all(" " <= char <= "~" for char in challenge)
    if "error_description" in challenge:
        inner = challenge.split('error_description="', 1)[1]
        assert inner.count('"') == 1
        assert inner.endswith('"')
