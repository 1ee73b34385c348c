"""SecureHeadersMiddleware: defaults, overrides, HSTS, error answers, ASGI behaviour."""

from __future__ import annotations

import contextvars
import string
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from fastapi import BackgroundTasks, Depends, FastAPI, HTTPException, WebSocket
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from starlette.types import Message, Receive, Scope, Send

from fastapi_secure.clientip import TrustedProxies
from fastapi_secure.errors import (
    AuthenticationError,
    ConfigurationError,
    PermissionDeniedError,
    RateLimitExceededError,
)
from fastapi_secure.headers import (
    DEFAULT_PERMISSIONS_POLICY,
    HSTS,
    SecureHeadersMiddleware,
    apply_secure_headers,
)
from fastapi_secure.http_errors import http_exception
from tests.support.asgi import body_of, call, http_scope, response_headers, status_of

DEFAULTS = {
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "permissions-policy": DEFAULT_PERMISSIONS_POLICY,
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "x-permitted-cross-domain-policies": "none",
    "cache-control": "no-store",
}


def make_app(**options: Any) -> FastAPI:
    app = FastAPI()

    @app.get("/api/items")
    async def items() -> dict[str, int]:
        return {"count": 1}

    @app.get("/static/app.js")
    async def asset() -> dict[str, int]:
        return {"asset": 1}

    @app.get("/staticfoo")
    async def not_static() -> dict[str, int]:
        return {"asset": 0}

    @app.get("/public/feed")
    async def feed() -> dict[str, int]:
        return {"feed": 1}

    @app.get("/public/cached")
    async def cached() -> JSONResponse:
        return JSONResponse({}, headers={"Cache-Control": "public, max-age=60"})

    @app.get("/own-headers")
    async def own_headers() -> JSONResponse:
        response = JSONResponse({"ok": True})
        response.headers["X-Frame-Options"] = "SAMEORIGIN"
        response.headers["Referrer-Policy"] = "strict-origin"
        response.headers["Server"] = "leaky/1.2.3"
        response.headers.append("Content-Security-Policy", "default-src 'self'")
        response.headers.append("Content-Security-Policy", "img-src *")
        return response

    app.add_middleware(SecureHeadersMiddleware, **options)
    return app


def header_list(response: Any, name: str) -> list[str]:
    return list(response.headers.get_list(name))


@pytest.mark.parametrize(("name", "value"), sorted(DEFAULTS.items()))
def test_each_default_header_is_sent_exactly_once(name: str, value: str) -> None:
    response = TestClient(make_app()).get("/api/items")
    assert response.status_code == 200
    assert header_list(response, name) == [value]


def test_no_hsts_over_plain_http() -> None:
    response = TestClient(make_app()).get("/api/items")
    assert "strict-transport-security" not in response.headers


def test_hsts_over_https_with_subdomains_and_no_preload_by_default() -> None:
    response = TestClient(make_app(), base_url="https://testserver").get("/api/items")
    assert header_list(response, "strict-transport-security") == [
        "max-age=31536000; includeSubDomains"
    ]


def test_hsts_preload_only_when_asked() -> None:
    client = TestClient(make_app(hsts=HSTS(preload=True)), base_url="https://testserver")
    assert client.get("/api/items").headers["strict-transport-security"] == (
        "max-age=31536000; includeSubDomains; preload"
    )


def test_hsts_can_be_turned_off() -> None:
    client = TestClient(make_app(hsts=None), base_url="https://testserver")
    assert "strict-transport-security" not in client.get("/api/items").headers


@pytest.mark.parametrize(
    "options",
    [
        {"max_age": -1},
        {"preload": True, "max_age": 3600},
        {"preload": True, "include_subdomains": False},
    ],
)
def test_hsts_refuses_unsafe_settings(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        HSTS(**options)


async def _ok(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.mark.anyio
async def test_forwarded_proto_from_an_untrusted_peer_does_not_enable_hsts() -> None:
    app = SecureHeadersMiddleware(_ok, trusted_proxies=TrustedProxies(["10.0.0.0/8"]))
    scope = http_scope(
        "/", client=("203.0.113.9", 4000), headers=[(b"x-forwarded-proto", b"https")]
    )
    names = [name for name, _ in response_headers(await call(app, scope))]
    assert "strict-transport-security" not in names


@pytest.mark.anyio
async def test_forwarded_proto_from_a_trusted_proxy_enables_hsts() -> None:
    app = SecureHeadersMiddleware(_ok, trusted_proxies=TrustedProxies(["10.0.0.0/8"]))
    scope = http_scope("/", client=("10.1.2.3", 4000), headers=[(b"x-forwarded-proto", b"https")])
    assert ("strict-transport-security", "max-age=31536000; includeSubDomains") in (
        response_headers(await call(app, scope))
    )


@pytest.mark.anyio
async def test_without_trusted_proxies_forwarded_proto_is_ignored() -> None:
    app = SecureHeadersMiddleware(_ok)
    scope = http_scope("/", client=("10.1.2.3", 4000), headers=[(b"x-forwarded-proto", b"https")])
    names = [name for name, _ in response_headers(await call(app, scope))]
    assert "strict-transport-security" not in names


def test_headers_the_app_set_win_and_are_not_duplicated() -> None:
    response = TestClient(make_app()).get("/own-headers")
    assert header_list(response, "x-frame-options") == ["SAMEORIGIN"]
    assert header_list(response, "referrer-policy") == ["strict-origin"]
    assert header_list(response, "content-security-policy") == ["default-src 'self'", "img-src *"]
    assert header_list(response, "x-content-type-options") == ["nosniff"]


def test_server_header_is_removed_by_default() -> None:
    assert "server" not in TestClient(make_app()).get("/own-headers").headers


def test_server_header_kept_when_asked() -> None:
    response = TestClient(make_app(remove_server_header=False)).get("/own-headers")
    assert header_list(response, "server") == ["leaky/1.2.3"]


def test_override_all_replaces_every_copy_with_one() -> None:
    response = TestClient(make_app(override=True)).get("/own-headers")
    assert header_list(response, "x-frame-options") == ["DENY"]
    assert header_list(response, "referrer-policy") == ["no-referrer"]
    assert header_list(response, "content-security-policy") == [DEFAULTS["content-security-policy"]]


def test_override_by_name_leaves_the_others_to_the_app() -> None:
    response = TestClient(make_app(override=["X-Frame-Options"])).get("/own-headers")
    assert header_list(response, "x-frame-options") == ["DENY"]
    assert header_list(response, "referrer-policy") == ["strict-origin"]


def test_override_only_strips_what_this_path_sends() -> None:
    client = TestClient(make_app(override=True, cache_control_paths={"/public": None}))
    assert client.get("/public/cached").headers.get_list("cache-control") == ["public, max-age=60"]


def test_override_must_be_a_list_of_names() -> None:
    with pytest.raises(ConfigurationError):
        SecureHeadersMiddleware(_ok, override="X-Frame-Options")
    with pytest.raises(ConfigurationError):
        SecureHeadersMiddleware(_ok, override=["X Frame"])


@pytest.mark.parametrize(
    ("option", "header"),
    [
        ("content_type_options", "x-content-type-options"),
        ("frame_options", "x-frame-options"),
        ("referrer_policy", "referrer-policy"),
        ("permissions_policy", "permissions-policy"),
        ("cross_origin_opener_policy", "cross-origin-opener-policy"),
        ("cross_origin_resource_policy", "cross-origin-resource-policy"),
        ("permitted_cross_domain_policies", "x-permitted-cross-domain-policies"),
        ("cache_control", "cache-control"),
        ("csp", "content-security-policy"),
    ],
)
def test_none_leaves_a_header_out(option: str, header: str) -> None:
    response = TestClient(make_app(**{option: None})).get("/api/items")
    assert header not in response.headers
    others = {name: value for name, value in DEFAULTS.items() if name != header}
    assert {name: response.headers.get(name) for name in others} == others


@pytest.mark.parametrize(
    ("option", "header", "value"),
    [
        ("frame_options", "x-frame-options", "SAMEORIGIN"),
        ("referrer_policy", "referrer-policy", "strict-origin-when-cross-origin"),
        ("cross_origin_embedder_policy", "cross-origin-embedder-policy", "require-corp"),
        ("cross_origin_resource_policy", "cross-origin-resource-policy", "cross-origin"),
        ("permissions_policy", "permissions-policy", "geolocation=(self)"),
    ],
)
def test_each_value_can_be_changed(option: str, header: str, value: str) -> None:
    response = TestClient(make_app(**{option: value})).get("/api/items")
    assert header_list(response, header) == [value]


def test_extra_headers_are_added_with_the_same_rules() -> None:
    response = TestClient(make_app(extra_headers={"X-Robots-Tag": "noindex"})).get("/api/items")
    assert header_list(response, "x-robots-tag") == ["noindex"]


@pytest.mark.parametrize(
    "name", ["Content-Security-Policy", "cache-control", "Strict-Transport-Security", "Server"]
)
def test_extra_headers_cannot_duplicate_a_managed_header(name: str) -> None:
    with pytest.raises(ConfigurationError):
        SecureHeadersMiddleware(_ok, extra_headers={name: "x"})


def test_cache_control_per_path_prefix() -> None:
    client = TestClient(
        make_app(cache_control_paths={"/static": "public, max-age=3600", "/public/": None})
    )
    assert client.get("/static/app.js").headers["cache-control"] == "public, max-age=3600"
    assert client.get("/staticfoo").headers["cache-control"] == "no-store"
    public = client.get("/public/feed")
    assert "cache-control" not in public.headers
    assert public.headers["x-frame-options"] == "DENY"
    assert client.get("/api/items").headers["cache-control"] == "no-store"


def test_cache_control_paths_must_be_absolute() -> None:
    with pytest.raises(ConfigurationError):
        SecureHeadersMiddleware(_ok, cache_control_paths={"static": None})


@pytest.mark.parametrize(
    "value",
    ["DENY\r\nSet-Cookie: session=attacker", "DENY\nX: y", "a\x00b", " DENY", "DENY ", "caf\u00e9"],
)
def test_header_values_with_control_or_non_ascii_characters_are_refused(value: str) -> None:
    with pytest.raises(ConfigurationError):
        SecureHeadersMiddleware(_ok, frame_options=value)
    with pytest.raises(ConfigurationError):
        SecureHeadersMiddleware(_ok, extra_headers={"X-Custom": value})


@pytest.mark.parametrize("name", ["X Custom", "X-Custom:", "X-Custom\r\n", ""])
def test_bad_header_names_are_refused(name: str) -> None:
    with pytest.raises(ConfigurationError):
        SecureHeadersMiddleware(_ok, extra_headers={name: "1"})


@settings(max_examples=200, deadline=None)
@given(value=st.text(max_size=40))
def test_any_header_value_is_refused_or_sent_verbatim(value: str) -> None:
    acceptable = value == value.strip() and all(char in string.printable[:-5] for char in value)
    try:
        app = SecureHeadersMiddleware(_ok, extra_headers={"X-Custom": value})
    except ConfigurationError:
        assert not acceptable
        return
    assert acceptable
    messages = anyio.run(call, app, http_scope("/"))
    assert ("x-custom", value) in response_headers(messages)


# --- error answers -------------------------------------------------------------------


class Item(BaseModel):
    quantity: int


def error_app(**options: Any) -> FastAPI:
    app = FastAPI()

    def need_auth() -> None:
        raise http_exception(AuthenticationError())

    @app.get("/401", dependencies=[Depends(need_auth)])
    async def unauthenticated() -> None:
        return None

    @app.get("/403")
    async def forbidden() -> None:
        raise http_exception(PermissionDeniedError())

    @app.get("/429")
    async def limited() -> None:
        raise http_exception(RateLimitExceededError(retry_after=30))

    @app.get("/409")
    async def conflict() -> None:
        raise HTTPException(409, "exists")

    @app.post("/422")
    async def validated(item: Item) -> Item:
        return item

    @app.get("/500")
    async def crash() -> None:
        raise RuntimeError("database password is hunter2")

    app.add_middleware(SecureHeadersMiddleware, **options)
    return app


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/401", 401),
        ("GET", "/403", 403),
        ("GET", "/missing", 404),
        ("DELETE", "/403", 405),
        ("GET", "/409", 409),
        ("POST", "/422", 422),
        ("GET", "/429", 429),
    ],
)
def test_error_answers_carry_the_headers(method: str, path: str, status: int) -> None:
    response = TestClient(error_app()).request(method, path, json={"quantity": "many"})
    assert response.status_code == status
    for name, value in DEFAULTS.items():
        assert header_list(response, name) == [value], name


def test_a_500_from_server_error_middleware_carries_the_headers_when_wrapped_outside() -> None:
    # Starlette answers unhandled exceptions from outside app.add_middleware's stack;
    # wrapping the whole app puts the headers on that answer too.
    api = FastAPI()

    @api.get("/500")
    async def crash() -> None:
        raise RuntimeError("database password is hunter2")

    wrapped = SecureHeadersMiddleware(api)
    response = TestClient(wrapped, raise_server_exceptions=False).get("/500")
    assert response.status_code == 500
    assert "hunter2" not in response.text
    for name, value in DEFAULTS.items():
        assert header_list(response, name) == [value], name


def test_apply_secure_headers_adds_them_to_a_response_built_outside_the_middleware() -> None:
    app = error_app()

    async def on_crash(request: Any, exc: Exception) -> JSONResponse:
        return apply_secure_headers(request, JSONResponse({"error": "oops"}, status_code=500))

    app.add_exception_handler(Exception, on_crash)
    response = TestClient(app, raise_server_exceptions=False).get("/500")
    assert response.status_code == 500
    for name, value in DEFAULTS.items():
        assert header_list(response, name) == [value], name


def test_apply_secure_headers_without_the_middleware_changes_nothing() -> None:
    app = FastAPI()

    async def on_crash(request: Any, exc: Exception) -> JSONResponse:
        response = JSONResponse({"error": "oops"}, status_code=500)
        assert apply_secure_headers(request, response) is response
        return response

    @app.get("/500")
    async def crash() -> None:
        raise RuntimeError("boom")

    app.add_exception_handler(Exception, on_crash)
    response = TestClient(app, raise_server_exceptions=False).get("/500")
    assert response.status_code == 500
    assert "x-frame-options" not in response.headers


# --- ASGI behaviour --------------------------------------------------------------------


@pytest.mark.anyio
async def test_streaming_responses_are_forwarded_chunk_by_chunk() -> None:
    """The second chunk is produced only after the first reached the server."""
    first_chunk_sent = anyio.Event()
    app = FastAPI()

    async def chunks() -> AsyncIterator[bytes]:
        yield b"first,"
        await first_chunk_sent.wait()
        yield b"second,"
        yield b"third"

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        return StreamingResponse(chunks(), media_type="text/plain")

    wrapped = SecureHeadersMiddleware(app)
    bodies: list[bytes] = []
    start: list[Message] = []

    async def receive() -> Message:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            start.append(message)
        elif message["type"] == "http.response.body" and message.get("body"):
            bodies.append(message["body"])
            first_chunk_sent.set()

    with anyio.fail_after(5):
        await wrapped(http_scope("/stream"), receive, send)
    assert bodies == [b"first,", b"second,", b"third"]
    assert (b"x-frame-options", b"DENY") in start[0]["headers"]


@pytest.mark.anyio
@pytest.mark.parametrize("scope_type", ["websocket", "lifespan"])
async def test_non_http_scopes_pass_through_untouched(scope_type: str) -> None:
    seen: list[tuple[Scope, Receive, Send]] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((scope, receive, send))

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        raise AssertionError("nothing is sent")

    scope: dict[str, Any] = {"type": scope_type, "path": "/ws", "headers": []}
    snapshot = dict(scope)
    await SecureHeadersMiddleware(inner)(scope, receive, send)
    assert seen == [(scope, receive, send)]
    assert scope == snapshot


def test_websocket_endpoint_works_behind_the_middleware() -> None:
    app = FastAPI()

    @app.websocket("/ws")
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(await websocket.receive_text())
        await websocket.close()

    app.add_middleware(SecureHeadersMiddleware)
    with TestClient(app).websocket_connect("/ws") as ws:
        ws.send_text("ping")
        assert ws.receive_text() == "ping"


@pytest.mark.anyio
async def test_background_tasks_run_after_the_response_is_complete() -> None:
    events: list[str] = []
    app = FastAPI()

    async def record() -> None:
        events.append("background")

    @app.get("/bg")
    async def with_task(tasks: BackgroundTasks) -> dict[str, bool]:
        tasks.add_task(record)
        return {"ok": True}

    wrapped = SecureHeadersMiddleware(app)

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body"):
            events.append("response complete")

    await wrapped(http_scope("/bg"), receive, send)
    assert events == ["response complete", "background"]


REQUEST_VAR: contextvars.ContextVar[str] = contextvars.ContextVar("request_var", default="unset")


@pytest.mark.anyio
@pytest.mark.parametrize("with_middleware", [False, True])
async def test_context_variables_set_by_the_endpoint_are_seen_outside(
    with_middleware: bool,
) -> None:
    """As without the middleware: no extra task separates the endpoint from the server."""
    app = FastAPI()

    @app.get("/ctx")
    async def endpoint() -> dict[str, str]:
        REQUEST_VAR.set("set by endpoint")
        return {"ok": "yes"}

    asgi = SecureHeadersMiddleware(app) if with_middleware else app
    REQUEST_VAR.set("before")
    await call(asgi, http_scope("/ctx"))
    assert REQUEST_VAR.get() == "set by endpoint"


@pytest.mark.anyio
async def test_the_inner_app_gets_the_same_receive_and_scope() -> None:
    seen: list[tuple[Scope, Receive]] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((scope, receive))
        await _ok(scope, receive, send)

    scope = http_scope("/")

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await SecureHeadersMiddleware(inner)(scope, receive, send)
    assert seen[0][0] is scope
    assert seen[0][1] is receive
    assert status_of(sent) == 200
    assert body_of(sent) == b"ok"


@pytest.mark.anyio
async def test_merging_stays_exact_after_plain_answers_warmed_it_up() -> None:
    """Header names remembered as harmless never hide one that must be kept or dropped."""
    queue: list[list[tuple[bytes, bytes]]] = [
        [(b"content-type", b"text/plain")],
        [(b"content-type", b"text/plain")],
        [(b"content-type", b"text/plain"), (b"Server", b"leaky/1.0")],
        [(b"content-type", b"text/plain"), (b"X-Frame-Options", b"SAMEORIGIN")],
        [(b"content-type", b"text/plain"), (b"server", b"leaky/1.0")],
    ]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = queue.pop(0)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    middleware = SecureHeadersMiddleware(app)
    answers = [response_headers(await call(middleware, http_scope("/"))) for _ in range(5)]
    for answer in answers:
        names = [name for name, _ in answer]
        assert "server" not in names
        assert names.count("x-frame-options") == 1
        assert names.count("content-security-policy") == 1
    # The app's own X-Frame-Options is kept (no override), not doubled.
    assert ("x-frame-options", "SAMEORIGIN") in answers[3]
    assert ("x-frame-options", "DENY") in answers[4]


@pytest.mark.anyio
async def test_a_docs_page_behind_a_root_path_gets_the_docs_policy() -> None:
    """The common path skips route_path only when there is no root_path to strip."""
    middleware = SecureHeadersMiddleware(_ok)

    async def csp(path: str, root_path: str = "") -> str:
        messages = await call(middleware, http_scope(root_path + path, root_path=root_path))
        return dict(response_headers(messages))["content-security-policy"]

    assert await csp("/docs", root_path="/api") == await csp("/docs")
    assert await csp("/docs", root_path="/api") != await csp("/items", root_path="/api")
    assert await csp("/items", root_path="/api") == await csp("/items")
