from __future__ import annotations

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from fastapi_secure import errors
from fastapi_secure.errors import (
    AuthenticationError,
    ConfigurationError,
    ErrorCode,
    HTTPSecurityError,
    InvalidTokenError,
    PasswordTooLongError,
    RateLimitExceededError,
    SecurityError,
    StoreUnavailableError,
    TokenReuseError,
    WeakPasswordError,
)


def test_every_exception_derives_from_the_base() -> None:
    for name in errors.__all__:
        value = getattr(errors, name)
        if isinstance(value, type) and issubclass(value, BaseException):
            assert issubclass(value, SecurityError), name


def test_tree_in_docstring_names_every_exception() -> None:
    doc = errors.__doc__ or ""
    for name in errors.__all__:
        value = getattr(errors, name)
        if isinstance(value, type) and issubclass(value, BaseException):
            assert name in doc, name


@pytest.mark.parametrize(
    ("exc", "status", "code", "challenge"),
    [
        (AuthenticationError(), 401, "not_authenticated", "Bearer"),
        (InvalidTokenError(), 401, "invalid_token", 'Bearer error="invalid_token"'),
        (TokenReuseError(), 401, "invalid_token", 'Bearer error="invalid_token"'),
        (RateLimitExceededError(headers={"Retry-After": "3"}), 429, "rate_limited", None),
        (StoreUnavailableError(), 503, "store_unavailable", None),
    ],
)
def test_http_errors_carry_status_code_and_headers(
    exc: HTTPSecurityError, status: int, code: str, challenge: str | None
) -> None:
    assert exc.status_code == status
    assert exc.code.value == code
    assert str(exc.code) == code
    detail: object = exc.detail
    assert detail == {"code": code, "message": exc.message}
    if challenge is not None:
        assert exc.headers is not None
        assert exc.headers["WWW-Authenticate"] == challenge
    assert code in str(exc)
    assert code in repr(exc)


def test_reason_stays_out_of_the_response() -> None:
    app = FastAPI()

    def deny() -> None:
        raise InvalidTokenError(reason="signature mismatch for kid=k1 token=eyJ...")

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


def test_value_errors_for_python_callers() -> None:
    assert issubclass(ConfigurationError, ValueError)
    too_long = PasswordTooLongError(1024, "characters")
    assert "1024 characters" in str(too_long)
    weak = WeakPasswordError(["too short", "too common"])
    assert weak.problems == ["too short", "too common"]
    assert str(WeakPasswordError([])) == "password refused by policy"


def test_service_unavailable_always_says_when_to_retry() -> None:
    default = StoreUnavailableError()
    assert default.headers == {"Retry-After": "5"}
    chosen = StoreUnavailableError(headers={"Retry-After": "30"})
    assert chosen.headers == {"Retry-After": "30"}
