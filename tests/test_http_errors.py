"""The HTTP meaning of the core errors: status, challenge, body; answers with and
without the handlers installed."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi import Depends, FastAPI, HTTPException, WebSocket
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.websockets import WebSocketDisconnect

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
from fastapi_secure.headers import SecureHeadersMiddleware
from fastapi_secure.http_errors import (
    http_exception,
    install_error_handlers,
    status_of,
    www_authenticate,
)
from fastapi_secure.passwords import StrongPassword


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
            InsufficientScopeError(scopes=["read", 'bad scope"']),
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
    assert isinstance(answer, StarletteHTTPException)
    assert isinstance(answer, type(exc)), "the twin is still the core class"
    assert answer.status_code == status == status_of(exc)
    detail: Any = answer.detail
    assert detail == {"code": code, "message": exc.message}
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
    weak_detail: Any = weak.detail
    assert weak_detail["problems"] == ["too short"]
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


# --- error handlers -------------------------------------------------------------------------


class Signup(BaseModel):
    username: str = Field(min_length=3)
    password: str = Field(min_length=12)
    age: int

    @field_validator("password")
    @classmethod
    def not_common(cls, value: str) -> str:
        if value.startswith("hunter2"):
            # A careless validator that echoes the value in its message.
            raise ValueError(f"{value} is a well-known password")
        return value


def errors_app(**options: Any) -> FastAPI:
    app = FastAPI()

    @app.post("/signup")
    async def signup(body: Signup) -> dict[str, str]:
        return {"username": body.username}

    @app.get("/conflict")
    async def conflict() -> None:
        raise HTTPException(409, "already exists")

    @app.get("/teapot")
    async def teapot() -> None:
        raise HTTPException(418, detail=["structured", "detail"])

    @app.get("/token")
    async def token() -> None:
        raise InvalidTokenError(reason="signature mismatch for kid=abc")

    @app.get("/odd")
    async def odd() -> None:
        raise HTTPException(599, detail="nonstandard")

    @app.get("/empty")
    async def empty() -> None:
        raise HTTPException(304)

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("postgres://admin:s3cret@db/prod is down")

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, room: int) -> None:
        await websocket.accept()

    install_error_handlers(app, **options)
    app.add_middleware(SecureHeadersMiddleware)
    return app


def test_404_and_405_have_codes() -> None:
    client = TestClient(errors_app())
    missing = client.get("/nope")
    assert missing.json() == {"detail": {"code": "not_found", "message": "Not Found"}}
    wrong = client.delete("/signup")
    assert wrong.status_code == 405
    assert wrong.json()["detail"]["code"] == "method_not_allowed"
    assert wrong.headers["allow"] == "POST"


def test_http_exceptions_get_a_code_from_their_status() -> None:
    client = TestClient(errors_app())
    assert client.get("/conflict").json() == {
        "detail": {"code": "conflict", "message": "already exists"}
    }
    assert client.get("/teapot").json() == {
        "detail": {
            "code": "i_m_a_teapot",
            "message": "I'm a Teapot",
            "data": ["structured", "detail"],
        }
    }
    assert client.get("/odd").json() == {"detail": {"code": "http_error", "message": "nonstandard"}}
    assert client.get("/empty").status_code == 304


def test_library_errors_keep_their_body_headers_and_hide_the_reason() -> None:
    response = TestClient(errors_app()).get("/token")
    assert response.status_code == 401
    assert response.json() == {
        "detail": {"code": "invalid_token", "message": "invalid or expired token"}
    }
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert "signature" not in response.text


def test_422_keeps_locations_and_never_echoes_input() -> None:
    response = TestClient(errors_app()).post(
        "/signup",
        json={"username": "zz-secret-username", "password": "short-pw", "age": "old-age-value"},
    )
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail["code"] == "validation_failed"
    assert {tuple(e["loc"]) for e in detail["errors"]} == {("body", "password"), ("body", "age")}
    for leaked in ("short-pw", "old-age-value"):
        assert leaked not in response.text
    for error in detail["errors"]:
        assert set(error) == {"loc", "type", "msg"}


def test_a_secret_field_message_is_generic_even_when_the_validator_echoes_it() -> None:
    response = TestClient(errors_app()).post(
        "/signup", json={"username": "alice", "password": "hunter2hunter2", "age": 3}
    )
    assert response.status_code == 422
    assert "hunter2" not in response.text
    (error,) = response.json()["detail"]["errors"]
    assert error == {"loc": ["body", "password"], "type": "value_error", "msg": "invalid value"}


def test_malformed_json_is_a_400_in_the_same_shape() -> None:
    response = TestClient(errors_app()).post(
        "/signup",
        content=b'{"password": "pw-in-broken-json',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert detail["code"] == "malformed_body"
    assert detail["errors"][0]["type"] == "json_invalid"
    assert "pw-in-broken-json" not in response.text


def test_an_unhandled_exception_is_an_opaque_500_with_a_logged_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = TestClient(errors_app(), raise_server_exceptions=False)
    with caplog.at_level(logging.ERROR, logger="fastapi_secure.errors"):
        response = client.get("/crash")
    assert response.status_code == 500
    detail = response.json()["detail"]
    assert set(detail) == {"code", "message", "error_id"}
    assert detail["code"] == "internal_error"
    for leaked in ("s3cret", "postgres", "Traceback", "RuntimeError"):
        assert leaked not in response.text
    (record,) = caplog.records
    assert detail["error_id"] in record.getMessage()
    assert "s3cret" not in record.getMessage()
    assert record.exc_info is not None
    assert response.headers["x-frame-options"] == "DENY"
    assert (
        response.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    )


def test_error_ids_differ() -> None:
    client = TestClient(errors_app(), raise_server_exceptions=False)
    ids = {client.get("/crash").json()["detail"]["error_id"] for _ in range(5)}
    assert len(ids) == 5


def test_internal_errors_exposed_only_when_asked() -> None:
    client = TestClient(errors_app(expose_internal_errors=True), raise_server_exceptions=False)
    assert "RuntimeError: postgres://" in client.get("/crash").json()["detail"]["exception"]


def test_websocket_validation_errors_do_not_echo_input() -> None:
    client = TestClient(errors_app())
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        client.websocket_connect("/ws?room=leaked-value"),
    ):
        pass
    assert closed.value.code == 1008
    assert closed.value.reason == "validation failed"


class Register(BaseModel):
    password: StrongPassword


def test_a_weak_password_gets_its_reasons_and_never_itself() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/register")
    def register(body: Register) -> dict[str, str]:
        return {}

    weak = "password123"
    response = TestClient(app).post("/register", json={"password": weak})
    assert response.status_code == 422
    (error,) = response.json()["detail"]["errors"]
    assert error["type"] == "weak_password"
    assert error["problems"], "the reasons are listed"
    assert all(weak not in problem for problem in error["problems"])
    assert weak not in response.text
