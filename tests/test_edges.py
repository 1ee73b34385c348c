"""Strict CORS, safe error answers, request size limits and the one-call installer."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI, HTTPException, Request, WebSocket
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field, field_validator
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect

from fastapi_secure.http_errors import http_exception
from fastapi_secure.bodylimit import RequestSizeLimitMiddleware
from fastapi_secure.clientip import TrustedProxies
from fastapi_secure.cors import (
    RATE_LIMIT_HEADERS,
    CORSPolicy,
)
from fastapi_secure.defaults import install_secure_defaults
from fastapi_secure.errors import (
    ConfigurationError,
    InvalidTokenError,
    RateLimitExceededError,
    RequestTooLargeError,
)
from fastapi_secure.headers import SecureHeadersMiddleware
from fastapi_secure.http_errors import install_error_handlers
from fastapi_secure.settings import SecuritySettings
from tests.asgi_helpers import body_of, call, http_scope, response_headers, status_of

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


# --- request size limits ------------------------------------------------------------------

LIMIT = 1000


def sized_app(seen: list[int], **options: Any) -> FastAPI:
    app = FastAPI()

    @app.post("/upload")
    async def upload(request: Request) -> dict[str, int]:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            seen.append(size)
        return {"size": size}

    @app.post("/swallow")
    async def swallow(request: Request) -> dict[str, str]:
        try:
            await request.body()
        except RequestTooLargeError:
            return {"status": "pretending all is well"}
        return {"status": "ok"}

    install_error_handlers(app)
    app.add_middleware(RequestSizeLimitMiddleware, max_body_bytes=LIMIT, **options)
    return app


def assert_413(response: Any) -> None:
    assert response.status_code == 413
    assert response.json() == {
        "detail": {"code": "request_too_large", "message": "request body too large"}
    }


def test_a_body_at_the_limit_is_accepted() -> None:
    response = TestClient(sized_app([])).post("/upload", content=b"x" * LIMIT)
    assert response.json() == {"size": LIMIT}


def test_a_content_length_over_the_limit_is_refused_before_the_app_runs() -> None:
    seen: list[int] = []
    response = TestClient(sized_app(seen)).post("/upload", content=b"x" * (LIMIT + 1))
    assert_413(response)
    assert response.headers["connection"] == "close"
    assert seen == []


def test_a_chunked_body_growing_over_the_limit_is_refused() -> None:
    seen: list[int] = []

    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b"y" * 300

    # httpx sends an iterator without Content-Length (Transfer-Encoding: chunked).
    response = TestClient(sized_app(seen)).post("/upload", content=chunks())
    assert_413(response)
    assert max(seen, default=0) <= LIMIT


def test_an_app_that_swallows_the_error_still_answers_413() -> None:
    response = TestClient(sized_app([])).post("/swallow", content=iter([b"z" * (LIMIT + 10)]))
    assert_413(response)


@pytest.mark.anyio
async def test_a_body_in_many_messages_is_cut_at_the_message_crossing_the_limit() -> None:
    seen: list[int] = []
    chunks = [b"a" * 400, b"b" * 400, b"c" * 400, b"d" * 400]
    messages = await call(sized_app(seen), http_scope("/upload", method="POST"), chunks)
    assert status_of(messages) == 413
    assert b"request_too_large" in body_of(messages)
    assert seen == [400, 800]


@pytest.mark.anyio
@pytest.mark.parametrize("value", [b"abc", b"-1", b"1e3"])
async def test_a_malformed_content_length_is_refused(value: bytes) -> None:
    scope = http_scope("/upload", method="POST", headers=[(b"content-length", value)])
    messages = await call(sized_app([]), scope)
    assert status_of(messages) == 400


@pytest.mark.anyio
async def test_conflicting_content_lengths_are_refused() -> None:
    scope = http_scope(
        "/upload", method="POST", headers=[(b"content-length", b"5"), (b"content-length", b"6")]
    )
    assert status_of(await call(sized_app([]), scope)) == 400


def test_path_limits_take_the_longest_prefix() -> None:
    client = TestClient(sized_app([], path_limits={"/up": 10, "/upload": 5000}))
    assert client.post("/upload", content=b"x" * 4000).json() == {"size": 4000}
    assert_413(client.post("/swallow", content=b"x" * (LIMIT + 1)))


@pytest.mark.anyio
async def test_path_limits_apply_to_the_path_below_the_root_path() -> None:
    limited = RequestSizeLimitMiddleware(_echo_size, max_body_bytes=None, path_limits={"/up": 5})
    scope = http_scope("/prefix/up", method="POST", root_path="/prefix")
    assert status_of(await call(limited, scope, [b"123456"])) == 413
    other = http_scope("/prefix/other", method="POST", root_path="/prefix")
    assert status_of(await call(limited, other, [b"123456"])) == 200


async def _echo_size(scope: Scope, receive: Receive, send: Send) -> None:
    size = len(await read_all(receive))
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})


def test_a_path_limit_of_none_lifts_the_limit() -> None:
    client = TestClient(sized_app([], path_limits={"/upload": None}))
    assert client.post("/upload", content=b"x" * 5000).json() == {"size": 5000}


def test_oversized_headers_get_431() -> None:
    client = TestClient(sized_app([], max_header_bytes=2048))
    response = client.post("/upload", content=b"", headers={"X-Big": "v" * 3000})
    assert response.status_code == 431
    assert response.json()["detail"]["code"] == "headers_too_large"
    assert client.post("/upload", content=b"", headers={"X-Small": "v"}).status_code == 200


def test_the_413_carries_the_security_headers_when_they_wrap_the_limit() -> None:
    app = sized_app([])
    app.add_middleware(SecureHeadersMiddleware)
    response = TestClient(app).post("/upload", content=b"x" * (LIMIT + 1))
    assert response.status_code == 413
    assert response.headers["x-frame-options"] == "DENY"


async def read_all(receive: Receive) -> bytes:
    body: bytes = b""
    while True:
        message = await receive()
        body += bytes(message.get("body", b""))
        if not message.get("more_body"):
            return body


@pytest.mark.anyio
async def test_a_raw_app_that_lets_the_error_escape_gets_a_413() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await read_all(receive)
        raise AssertionError("never reached: the read over the limit raises")

    limited = RequestSizeLimitMiddleware(app, max_body_bytes=10)
    messages = await call(limited, http_scope("/", method="POST"), [b"a" * 8, b"b" * 8])
    assert status_of(messages) == 413
    assert b"request_too_large" in body_of(messages)


@pytest.mark.anyio
async def test_an_app_that_keeps_reading_or_returns_silently_still_gets_a_413() -> None:
    refused_reads = 0

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal refused_reads
        for _ in range(2):
            try:
                await read_all(receive)
            except RequestTooLargeError:
                refused_reads += 1

    limited = RequestSizeLimitMiddleware(app, max_body_bytes=10)
    messages = await call(limited, http_scope("/", method="POST"), [b"a" * 8, b"b" * 8])
    assert refused_reads == 2
    assert status_of(messages) == 413
    assert len(messages) == 2


@pytest.mark.anyio
async def test_over_the_limit_after_the_response_started_the_error_propagates() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await read_all(receive)

    limited = RequestSizeLimitMiddleware(app, max_body_bytes=10)
    with pytest.raises(RequestTooLargeError):
        await call(limited, http_scope("/", method="POST"), [b"a" * 8, b"b" * 8])


@pytest.mark.parametrize(
    "options",
    [{"max_body_bytes": -1}, {"max_header_bytes": -5}, {"path_limits": {"upload": 5}}],
)
def test_size_limit_refuses_bad_settings(options: dict[str, Any]) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError

    with pytest.raises(ConfigurationError):
        RequestSizeLimitMiddleware(app, **options)


@pytest.mark.anyio
async def test_size_limit_passes_websockets_through() -> None:
    seen: list[Scope] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        raise AssertionError

    scope = {"type": "websocket", "path": "/ws", "headers": [(b"x", b"y" * 100_000)]}
    await RequestSizeLimitMiddleware(inner)(scope, receive, send)
    assert seen == [scope]


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
