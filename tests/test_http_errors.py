"""The HTTP meaning of the core errors: status, challenge, body; answers with and
without the handlers installed."""

from __future__ import annotations

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from starlette.exceptions import HTTPException

from fastapi_secure.errors import (
    AuthenticationError,
    ErrorCode,
    InsufficientScopeError,
    InvalidTokenError,
    RateLimitExceededError,
    RequestRefusedError,
    SecurityError,
    StepUpRequiredError,
    StoreUnavailableError,
    TokenReuseError,
    WeakPasswordError,
)
from fastapi_secure.http_errors import (
    http_exception,
    install_error_handlers,
    status_of,
    www_authenticate,
)


@pytest.mark.parametrize(
    ("exc", "status", "code", "challenge"),
    [
        (AuthenticationError(), 401, "not_authenticated", "Bearer"),
        (InvalidTokenError(), 401, "invalid_token", 'Bearer error="invalid_token"'),
        (TokenReuseError(), 401, "invalid_token", 'Bearer error="invalid_token"'),
        (
            StepUpRequiredError(max_age=300),
            401,
            "fresh_token_required",
            'Bearer error="insufficient_user_authentication", max_age="300"',
        ),
        (
            InsufficientScopeError(scopes=["read", "bad scope\""]),
            403,
            "insufficient_scope",
            'Bearer error="insufficient_scope", scope="read"',
        ),
        (RateLimitExceededError(retry_after=3), 429, "rate_limited", None),
        (StoreUnavailableError(), 503, "store_unavailable", None),
    ],
)
def test_http_exception_carries_status_code_and_headers(
    exc: RequestRefusedError, status: int, code: str, challenge: str | None
) -> None:
    answer = http_exception(exc)
    assert isinstance(answer, HTTPException)
    assert isinstance(answer, type(exc)), "the twin is still the core class"
    assert answer.status_code == status == status_of(exc)
    assert answer.detail == {"code": code, "message": exc.message}
    assert www_authenticate(exc) == challenge
    if challenge is not None:
        assert answer.headers is not None
        assert answer.headers["WWW-Authenticate"] == challenge
    assert code in str(answer)
    assert code in repr(answer)


def test_dpop_scheme_in_the_challenge() -> None:
    exc = InvalidTokenError(scheme="DPoP", challenge_error="invalid_dpop_proof")
    assert www_authenticate(exc) == 'DPoP error="invalid_dpop_proof"'


def test_retry_after_on_every_503_and_429() -> None:
    assert http_exception(StoreUnavailableError()).headers == {"Retry-After": "5"}
    assert http_exception(StoreUnavailableError(retry_after=30)).headers == {"Retry-After": "30"}
    assert http_exception(RateLimitExceededError(retry_after=3)).headers == {"Retry-After": "3"}
    assert http_exception(RateLimitExceededError()).headers is None


def test_extra_headers_win_and_an_http_exception_passes_through() -> None:
    answer = http_exception(StoreUnavailableError(), headers={"Retry-After": "9", "X-A": "1"})
    assert answer.headers == {"Retry-After": "9", "X-A": "1"}
    assert http_exception(answer) is answer


def test_non_refusal_errors_never_leak() -> None:
    weak = http_exception(WeakPasswordError(["too short"]))
    assert weak.status_code == 422
    assert weak.detail["problems"] == ["too short"]
    internal = http_exception(SecurityError("secret internals"))
    assert internal.status_code == 500
    assert "secret" not in str(internal.detail)


def test_twin_answers_without_handlers_and_hides_the_reason() -> None:
    app = FastAPI()

    def deny() -> None:
        raise http_exception(InvalidTokenError(reason="signature mismatch for kid=k1 token=eyJ..."))

    @app.get("/", dependencies=[Depends(deny)])
    def index() -> dict[str, str]:
        return {}

    response = TestClient(app).get("/")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert response.json() == {
        "detail": {"code": ErrorCode.INVALID_TOKEN.value, "message": "invalid or expired token"}
    }
    assert "eyJ" not in response.text


def test_core_error_escaping_a_route_is_answered_by_the_handlers() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/")
    def index() -> dict[str, str]:
        raise TokenReuseError(reason="refresh token reused; token=eyJ...")

    response = TestClient(app).get("/")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert response.json()["detail"]["code"] == "invalid_token"
    assert "eyJ" not in response.text
