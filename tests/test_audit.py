"""audit(app): routes, dependency trees, middleware, findings, the test helper and the CLI."""

# No `from __future__ import annotations`: FastAPI resolves the endpoints' annotations.

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import pytest
from examples.reference_api.main import create_app
from examples.reference_api.settings import AppSettings
from fastapi import Depends, FastAPI, WebSocket
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from fastapi_secure import (
    BearerAuth,
    CookieAuth,
    KeySet,
    MemoryTokenStore,
    PermissionChecker,
    RolePermissions,
    SecureHeadersMiddleware,
    TokenIssuer,
    install_error_handlers,
    install_secure_defaults,
)
from fastapi_secure.audit import (
    AUDIT_ATTRIBUTE,
    Auditable,
    AuditInfo,
    FindingCode,
    Public,
    assert_all_routes_protected,
    audit,
    mark_public,
    public,
)
from fastapi_secure.cli import main
from fastapi_secure.headers import HSTS
from fastapi_secure.tokens.claims import AccessClaims
from fastapi_secure.tokens.issuer import keep_login_grant
from tests.support.audit_apps import build

ROOT = Path(__file__).resolve().parent.parent


def issuer() -> TokenIssuer:
    return TokenIssuer(
        KeySet.generate("EdDSA"),
        MemoryTokenStore(),
        issuer="https://issuer.example.test",
        audience="https://api.example.test",
        grant_loader=keep_login_grant,
    )


def codes(app: Any, **kwargs: Any) -> list[str]:
    return [finding.code.value for finding in audit(app, **kwargs).findings]


def hardened(app: FastAPI) -> FastAPI:
    install_secure_defaults(app)
    return app


# --- routes ---------------------------------------------------------------------------------


def test_a_fully_protected_app_passes() -> None:
    report = audit(build())
    assert report.ok
    assert report.unprotected() == ()
    by_path = {route.path: route for route in report.routes}
    assert by_path["/items"].authentication == ("bearer",)
    assert by_path["/items"].scopes == ("items:read",)
    assert by_path["/me/password"].fresh
    assert by_path["/admin/users"].roles == ("admin",)
    assert by_path["/ws"].kind == "websocket"
    assert by_path["/reports/report"].protected
    assert by_path["/auth/login"].public
    assert by_path["/auth/login"].rate_limits == ("5 per 1 minute by ip",)
    assert by_path["/.well-known/jwks.json"].public_reason == "public keys (RFC 7517)"
    assert by_path["/docs"].docs
    assert_all_routes_protected(build())


def test_one_forgotten_dependency_fails() -> None:
    report = audit(build(forget=True))
    [finding] = report.findings
    assert finding.code is FindingCode.UNPROTECTED_ROUTE
    assert finding.severity == "high"
    assert finding.path == "/items/{item_id}"
    assert finding.methods == ("GET",)
    with pytest.raises(AssertionError, match=r"1 route\(s\).*\n  GET /items/\{item_id\}$"):
        assert_all_routes_protected(build(forget=True))
    assert_all_routes_protected(build(forget=True), allow=["/items/{item_id}"])


def test_optional_authentication_does_not_protect() -> None:
    optional = BearerAuth(issuer(), auto_error=False)
    app = hardened(FastAPI())

    @app.get("/maybe")
    async def maybe(claims: Annotated[AccessClaims | None, Depends(optional)]) -> None:
        return None

    [finding] = audit(app).findings
    assert "only optional authentication: bearer" in finding.message
    [route] = [r for r in audit(app).routes if r.path == "/maybe"]
    assert route.optional_authentication == ("bearer",)
    assert "optional: bearer" in route.protection()


def test_guards_are_followed_to_their_auth() -> None:
    bearer = BearerAuth(issuer())
    grants = RolePermissions({"editor": ["posts:*"]})
    writer = PermissionChecker(["posts:write"], auth=bearer, grants=grants)
    app = hardened(FastAPI())

    @app.post("/posts", dependencies=[Depends(writer)])
    async def create() -> None:
        return None

    [route] = [r for r in audit(app).routes if r.path == "/posts"]
    assert route.authentication == ("bearer",)
    assert route.permissions == ("posts:write",)


def test_cookie_auth_flags_are_reported_and_insecure_cookies_fail_in_production() -> None:
    cookie = CookieAuth(
        issuer(),
        csrf_secret="csrf-secret-of-at-least-thirty-two-bytes",
        allowed_origins=["https://app.example.test"],
        secure=False,
    )
    app = hardened(FastAPI(docs_url=None, redoc_url=None, openapi_url=None))

    @app.post("/act")
    async def act(claims: Annotated[AccessClaims, Depends(cookie)]) -> None:
        return None

    report = audit(app)
    assert report.ok
    assert report.app.cookies == (
        {
            "scheme": "CookieAuth",
            "secure": "false",
            "samesite": "lax",
            "access_cookie": "access_token",
            "refresh_cookie": "refresh_token",
            "csrf_cookie": "csrf_token",
        },
    )
    assert codes(app, production=True) == ["cookie_not_secure"]


class ApiKeyAuth:
    """Another block's dependency, speaking the Auditable protocol."""

    async def __call__(self) -> str:
        return "key-owner"

    def audit_info(self) -> AuditInfo:
        return AuditInfo(authentication="api_key", scopes=frozenset({"reports:read"}))


def test_other_blocks_plug_in_through_the_protocol() -> None:
    api_key = ApiKeyAuth()
    assert isinstance(api_key, Auditable)

    async def dpop_bound() -> None:
        return None

    setattr(dpop_bound, AUDIT_ATTRIBUTE, AuditInfo(authentication="dpop"))

    class Confused:
        def audit_info(self) -> str:
            return "not an AuditInfo"

        async def __call__(self) -> None:
            return None

    app = hardened(FastAPI())

    @app.get("/reports", dependencies=[Depends(api_key)])
    async def reports() -> None:
        return None

    @app.get("/bound", dependencies=[Depends(dpop_bound)])
    async def bound() -> None:
        return None

    @app.get("/confused", dependencies=[Depends(Confused())])
    async def confused() -> None:
        return None

    by_path = {route.path: route for route in audit(app).routes}
    assert by_path["/reports"].authentication == ("api_key",)
    assert by_path["/reports"].scopes == ("reports:read",)
    assert by_path["/bound"].authentication == ("dpop",)
    assert not by_path["/confused"].protected
    assert codes(app) == ["unprotected_route"]


@pytest.mark.anyio
async def test_the_public_marker_costs_nothing_at_request_time() -> None:
    await public()  # a no-op dependency: it must not fail
    assert repr(Public("health")) == "Public('health')"


def test_plain_starlette_routes_mounts_and_wrapped_apps() -> None:
    async def home(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hi")

    async def secret(request: Request) -> PlainTextResponse:
        return PlainTextResponse("secret")

    inner = Starlette(
        routes=[
            Route("/", mark_public(home, "landing page")),
            Route("/secret", secret),
            Mount("/static", app=mark_public(StaticFiles(directory=ROOT / "docs"), "assets")),
            Mount("/files", app=StaticFiles(directory=ROOT / "docs")),
        ]
    )
    wrapped = SecureHeadersMiddleware(inner)
    report = audit(wrapped)
    by_path = {route.path: route for route in report.routes}
    assert by_path["/"].public_reason == "landing page"
    assert by_path["/static"].public
    assert by_path["/files"].kind == "mount"
    assert [f.path for f in report.findings if f.code is FindingCode.UNPROTECTED_ROUTE] == [
        "/secret",
        "/files",
    ]
    assert report.app.middleware == ("SecureHeadersMiddleware",)
    assert report.app.secure_headers
    assert "mounted app * /files" in report.findings[1].message


def test_websocket_routes_without_auth_are_found() -> None:
    app = hardened(FastAPI())

    @app.websocket("/feed")
    async def feed(websocket: WebSocket) -> None:
        await websocket.close()

    [finding] = audit(app).findings
    assert finding.message.startswith("WebSocket route WS /feed")


# --- app-wide checks ---------------------------------------------------------------------------


def test_a_bare_app_lacks_headers_body_limit_and_error_handlers() -> None:
    app = FastAPI()
    assert codes(app) == ["no_secure_headers", "no_body_limit", "error_handlers_missing"]
    assert codes(app, production=True) == [
        "no_secure_headers",
        "no_body_limit",
        "error_handlers_missing",
        "docs_exposed_in_production",
    ]
    table = audit(app).format_table()
    assert "secure headers: no" in table
    assert "error handlers: FastAPI defaults" in table


def test_debug_in_production_is_high() -> None:
    app = hardened(FastAPI(debug=True, docs_url=None, redoc_url=None, openapi_url=None))
    assert codes(app) == []
    assert codes(app, production=True) == ["debug_in_production"]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"hsts": None}, ["hsts_disabled"]),
        ({"hsts": HSTS(max_age=86_400)}, ["hsts_short"]),
        ({"csp": None}, ["csp_disabled"]),
    ],
)
def test_weakened_secure_headers(options: dict[str, Any], expected: list[str]) -> None:
    app = FastAPI()
    install_error_handlers(app)
    install_secure_defaults(app, secure_headers=options)
    assert codes(app) == expected


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"allow_origins": ["*"], "allow_credentials": True}, ["cors_credentials_any_origin"]),
        (
            {"allow_origin_regex": r"https://.*\.example\.com", "allow_credentials": True},
            ["cors_credentials_regex"],
        ),
        ({"allow_origins": ["https://app.example.com"], "allow_credentials": True}, []),
    ],
)
def test_cors_with_credentials(options: dict[str, Any], expected: list[str]) -> None:
    app = hardened(FastAPI())
    app.add_middleware(CORSMiddleware, **options)
    assert codes(app) == expected
    assert audit(app).app.cors_allow_credentials


def test_unlimited_body_is_reported() -> None:
    app = FastAPI()
    install_secure_defaults(app, max_body_bytes=None)
    assert codes(app) == ["no_body_limit"]
    assert "body-size limit: unlimited" in audit(app).format_table()


def test_report_to_dict_is_json() -> None:
    data = audit(build(forget=True)).to_dict()
    text = json.dumps(data)
    assert data["ok"] is False
    assert data["findings"][0]["code"] == "unprotected_route"
    assert {"path": "/items/{item_id}", "protected": False}.items() <= next(
        r for r in data["routes"] if r["path"] == "/items/{item_id}"
    ).items()
    assert "max-age=31536000" in text


# --- the reference API -------------------------------------------------------------------------


@pytest.fixture
def reference_settings(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> AppSettings:
    caplog.set_level(logging.ERROR)
    return AppSettings(
        database_url=SecretStr(f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"),
        password_hash_profile="test_only_fast",
    )


@pytest.mark.parametrize("transport", ["bearer", "cookie", "dpop"])
def test_the_reference_api_passes_its_own_audit(
    reference_settings: AppSettings, transport: str
) -> None:
    update: dict[str, object] = {"auth_transport": transport}
    if transport == "dpop":
        update = {"auth_transport": "bearer", "dpop_required": True}
    settings = reference_settings.model_copy(update=update)
    report = audit(create_app(settings))
    assert report.ok, report.format_table()
    routes = {(route.path, route.methods): route for route in report.routes}
    kind = transport  # how the audit names each way in
    # The blocks describe themselves: no hand-made AuditInfo in the example.
    assert routes["/users/me", ("GET",)].authentication == ("api_key", kind)
    assert routes["/users/me/sessions", ("GET",)].authentication == (kind,)
    assert routes["/auth/logout", ("POST",)].authentication == (kind,)
    public_paths = {route.path for route in report.routes if route.public}
    assert public_paths == {
        "/",
        "/auth/register",
        "/auth/login",
        "/auth/refresh",
        "/auth/verify/request",
        "/auth/verify/confirm",
        "/auth/password-reset/request",
        "/auth/password-reset/confirm",
        "/auth/mfa/verify",
        "/auth/passkey/options",
        "/auth/passkey/verify",
        "/demo/passkeys",
        "/health",
        "/.well-known/jwks.json",
    }


@pytest.mark.parametrize("transport", ["bearer", "cookie"])
def test_the_reference_api_with_oidc_providers_passes_its_own_audit(
    reference_settings: AppSettings, transport: str
) -> None:
    providers = {"corp": {"issuer": "https://sso.example.com", "client_id": "api"}}
    settings = reference_settings.model_copy(
        update={"auth_transport": transport, "oidc_providers": SecretStr(json.dumps(providers))}
    )
    report = audit(create_app(settings))
    assert report.ok, report.format_table()
    public = {route.path for route in report.routes if route.public}
    assert {"/auth/oidc/{provider}/login", "/auth/oidc/{provider}/callback"} <= public
    protected = {route.path for route in report.routes if not route.public}
    assert {"/users/me/identities", "/users/me/identities/{identity_id}"} <= protected


def test_the_reference_api_with_docs_off_passes_in_production(
    reference_settings: AppSettings,
) -> None:
    settings = reference_settings.model_copy(update={"docs_enabled": False})
    assert audit(create_app(settings), production=True).ok


# --- CLI ---------------------------------------------------------------------------------------


def run_cli(*args: str) -> int:
    return main(["audit", "--app-dir", str(ROOT), *args])


def test_cli_exits_0_on_a_protected_app(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("tests.support.audit_apps:protected") == 0
    out = capsys.readouterr().out
    [line] = [line for line in out.splitlines() if line.startswith("/items/{item_id} ")]
    assert line.split() == ["/items/{item_id}", "GET", "bearer"]
    assert out.endswith("no findings\n")


def test_cli_exits_1_on_a_forgotten_dependency(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("tests.support.audit_apps:forgotten") == 1
    assert "HIGH    unprotected_route: route GET /items/{item_id}" in capsys.readouterr().out


def test_cli_json_and_factory(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("tests.support.audit_apps:factory", "--factory", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is True


def test_cli_fail_on_and_production(capsys: pytest.CaptureFixture[str]) -> None:
    # The protected app serves docs: a medium finding in production only.
    assert run_cli("tests.support.audit_apps:protected", "--production") == 1
    assert run_cli("tests.support.audit_apps:protected", "--production", "--fail-on", "high") == 0
    assert run_cli("tests.support.audit_apps:forgotten", "--fail-on", "high") == 1


@pytest.mark.parametrize(
    ("target", "extra", "message"),
    [
        ("tests.support.audit_apps", (), "expected MODULE:APP"),
        ("tests.support.no_such_module:app", (), "cannot import 'tests.support.no_such_module'"),
        ("tests.support.audit_apps:nothing", (), "has no attribute 'nothing'"),
        ("tests.support.audit_apps:protected", ("--factory",), "is not an app factory"),
        ("tests.support.audit_apps:factory", (), "is not an ASGI application"),
    ],
)
def test_cli_mistakes_exit_2(
    target: str, extra: tuple[str, ...], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(target, *extra) == 2
    assert message in capsys.readouterr().err


def test_python_m_fastapi_secure_audit_on_the_reference_api(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
        "PASSWORD_HASH_PROFILE": "test_only_fast",
    }
    command = [sys.executable, "-m", "fastapi_secure", "audit", "--app-dir", str(ROOT)]
    ok = subprocess.run(
        [*command, "--factory", "examples.reference_api.main:create_app"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "/auth/login" in ok.stdout
    forgotten = subprocess.run(
        [*command, "tests.support.audit_apps:forgotten"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert forgotten.returncode == 1


def test_table_shows_cors_and_cookie_flags() -> None:
    cookie = CookieAuth(
        issuer(),
        csrf_secret="csrf-secret-of-at-least-thirty-two-bytes",
        allowed_origins=["https://app.example.test"],
    )
    app = hardened(FastAPI())
    app.add_middleware(
        CORSMiddleware, allow_origins=["https://app.example.test"], allow_credentials=True
    )

    @app.get("/me")
    async def me(claims: Annotated[AccessClaims, Depends(cookie)]) -> None:
        return None

    table = audit(app).format_table()
    assert "CORS: https://app.example.test (with credentials)" in table
    assert "cookie auth: scheme=CookieAuth, secure=true, samesite=lax" in table


class HeaderTokenAuth(BearerAuth):
    """A subclass of the library's auth is still recognized by type."""


def test_token_auth_subclasses_are_recognized() -> None:
    auth = HeaderTokenAuth(issuer())
    app = hardened(FastAPI())

    @app.get("/x", dependencies=[Depends(auth)])
    async def x() -> None:
        return None

    [route] = [r for r in audit(app).routes if r.path == "/x"]
    assert route.authentication == ("bearer",)


def test_middleware_the_audit_cannot_read_is_listed_by_name() -> None:
    def tagging(app: Any) -> Any:
        return app

    class Strict:
        def __init__(self, app: Any, *, level: int) -> None:
            self.app = app

    app = hardened(FastAPI())
    app.add_middleware(tagging)
    # Arguments its class does not accept: the audit lists it and reads nothing.
    odd: Any = Middleware
    app.user_middleware.insert(0, odd(Strict, 1, 2, 3))
    report = audit(app)
    assert report.app.middleware[:2] == ("Strict", "tagging")
    assert report.ok


def test_built_middleware_instances_around_an_app_are_seen() -> None:
    from fastapi_secure.bodylimit import RequestSizeLimitMiddleware

    inner = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    install_error_handlers(inner)
    wrapped = SecureHeadersMiddleware(RequestSizeLimitMiddleware(inner, max_body_bytes=1024))
    report = audit(wrapped)
    assert report.app.body_limit
    assert report.app.max_body_bytes == 1024
    assert report.app.hsts == "max-age=31536000; includeSubDomains"
    assert report.app.hsts_max_age == 31_536_000
    assert report.app.csp == "default-src 'none'; frame-ancestors 'none'"
    assert report.ok
    open_cors = CORSMiddleware(wrapped, allow_origins=["*"], allow_credentials=True)
    assert codes(open_cors) == ["cors_credentials_any_origin"]
    weak = SecureHeadersMiddleware(inner, hsts=HSTS(max_age=60), csp=None)
    assert codes(RequestSizeLimitMiddleware(weak)) == ["csp_disabled", "hsts_short"]


def test_the_module_docstring_example_runs() -> None:
    import re
    import types

    import fastapi_secure.audit as module

    [code] = re.findall(r"```python\n(.*?)```", module.__doc__ or "", re.DOTALL)
    namespace = types.ModuleType("audit_docstring_example")
    sys.modules[namespace.__name__] = namespace
    try:
        exec(compile(code, "audit docstring", "exec"), namespace.__dict__)  # noqa: S102
    finally:
        del sys.modules[namespace.__name__]
    assert namespace.report.routes[0].public


def test_middleware_added_by_class_is_read_from_its_arguments() -> None:
    from fastapi_secure.bodylimit import RequestSizeLimitMiddleware

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    install_error_handlers(app)
    app.add_middleware(RequestSizeLimitMiddleware, max_body_bytes=None)
    app.add_middleware(SecureHeadersMiddleware, hsts=HSTS(max_age=600))
    report = audit(app)
    assert report.app.middleware == ("SecureHeadersMiddleware", "RequestSizeLimitMiddleware")
    assert report.app.hsts == "max-age=600; includeSubDomains"
    assert report.app.csp == "default-src 'none'; frame-ancestors 'none'"
    assert codes(app) == ["no_body_limit", "hsts_short"]


def test_a_nonce_policy_is_shown() -> None:
    from fastapi_secure.csp import CSP_NONCE, ContentSecurityPolicy

    inner = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    policy = ContentSecurityPolicy({"default-src": ["'self'"], "script-src": [CSP_NONCE]})
    report = audit(SecureHeadersMiddleware(inner, csp=policy))
    assert report.app.csp == "default-src 'self'; script-src 'nonce'"


def test_other_guards_are_followed_to_their_auth() -> None:
    from fastapi_secure.auth.guards import ClaimsGuard

    class SecondFactorGuard(ClaimsGuard):
        def check(self, claims: AccessClaims) -> None:
            return None

    class DeclaredGuard(SecondFactorGuard):
        def audit_info(self) -> AuditInfo:
            return AuditInfo(details={"factor": "totp"})

    bearer = BearerAuth(issuer())
    app = hardened(FastAPI())

    @app.get("/mfa", dependencies=[Depends(SecondFactorGuard(bearer))])
    async def mfa() -> None:
        return None

    @app.get("/declared", dependencies=[Depends(DeclaredGuard(bearer))])
    async def declared() -> None:
        return None

    by_path = {route.path: route for route in audit(app).routes}
    assert by_path["/mfa"].authentication == ("bearer",)
    assert by_path["/declared"].authentication == ("bearer",)


def test_offline_docs_assets_count_as_docs() -> None:
    pytest.importorskip("fastapi_offline", reason='pip install "fastapi-secure[offline-docs]"')
    from fastapi_secure.apidocs import serve_docs_assets

    app = FastAPI()
    install_secure_defaults(app, docs_assets=serve_docs_assets(app))
    report = audit(app)
    [assets] = [route for route in report.routes if route.kind == "mount"]
    assert (assets.path, assets.docs) == ("/docs-assets", True)
    assert report.ok
    assert "/docs-assets" in audit(app, production=True).findings[0].message
