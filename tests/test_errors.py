from __future__ import annotations

from fastapi_secure import errors
from fastapi_secure.errors import (
    ConfigurationError,
    ErrorCode,
    InvalidTokenError,
    PasswordTooLongError,
    RateLimitExceededError,
    SecurityError,
    StoreUnavailableError,
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


def test_value_errors_for_python_callers() -> None:
    assert issubclass(ConfigurationError, ValueError)
    too_long = PasswordTooLongError(1024, "characters")
    assert "1024 characters" in str(too_long)
    weak = WeakPasswordError(["too short", "too common"])
    assert weak.problems == ["too short", "too common"]
    assert str(WeakPasswordError([])) == "password refused by policy"


def test_refusals_carry_code_message_and_a_reason_for_logs_only() -> None:
    exc = InvalidTokenError(reason="signature mismatch for kid=k1")
    assert exc.code is ErrorCode.INVALID_TOKEN
    assert exc.message == "invalid or expired token"
    assert "kid=k1" not in str(exc)
    assert "kid=k1" not in repr(exc)
    assert str(exc) == "invalid_token: invalid or expired token"


def test_service_unavailable_always_says_when_to_retry() -> None:
    assert StoreUnavailableError().retry_after == 5
    assert StoreUnavailableError(retry_after=30).retry_after == 30
    assert RateLimitExceededError(retry_after=3).retry_after == 3
