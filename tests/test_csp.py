"""ContentSecurityPolicy builder, per-request nonces, and the docs pages' policy."""

from __future__ import annotations

import base64
import re
from typing import Any

import anyio
import pytest
from fastapi import Depends, FastAPI
from fastapi.responses import HTMLResponse
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.requests import Request

from fastapi_secure.apidocs import DEFAULT_DOCS_CSP, DocsAssets, install_secure_docs
from fastapi_secure.csp import CSP_NONCE, STRICT_API_CSP, ContentSecurityPolicy
from fastapi_secure.defaults import install_secure_defaults
from fastapi_secure.errors import ConfigurationError
from fastapi_secure.headers import SecureHeadersMiddleware, csp_nonce
from tests.support.asgi import call, http_scope, response_headers

NONCE_IN_HEADER = re.compile(r"'nonce-([A-Za-z0-9_-]+)'")
NONCE_ATTRIBUTE = re.compile(r'nonce="([^"]*)"')

# --- builder ------------------------------------------------------------------------------


def test_renders_directives_in_order() -> None:
    policy = ContentSecurityPolicy(
        {
            "default-src": ["'self'"],
            "img-src": ["'self'", "data:", "https://img.example.com"],
            "upgrade-insecure-requests": [],
        }
    )
    assert policy.header_value() == (
        "default-src 'self'; img-src 'self' data: https://img.example.com; "
        "upgrade-insecure-requests"
    )


def test_strict_api_policy() -> None:
    assert STRICT_API_CSP.header_value() == "default-src 'none'; frame-ancestors 'none'"
    assert not STRICT_API_CSP.uses_nonce


def test_with_and_without_directive_return_new_policies() -> None:
    policy = STRICT_API_CSP.with_directive("img-src", "'self'")
    assert policy.header_value() == "default-src 'none'; frame-ancestors 'none'; img-src 'self'"
    assert policy.without_directive("img-src") == STRICT_API_CSP
    assert STRICT_API_CSP.directives == {
        "default-src": ("'none'",),
        "frame-ancestors": ("'none'",),
    }
    assert hash(policy.without_directive("img-src")) == hash(STRICT_API_CSP)


def test_policies_compare_by_directives_and_show_them() -> None:
    assert STRICT_API_CSP != "default-src 'none'; frame-ancestors 'none'"
    policy = ContentSecurityPolicy({"script-src": [CSP_NONCE]})
    assert repr(policy) == "ContentSecurityPolicy(\"script-src 'nonce'\")"


def test_nonce_placeholder_is_rendered_per_call() -> None:
    policy = ContentSecurityPolicy({"script-src": [CSP_NONCE, "'strict-dynamic'"]})
    assert policy.uses_nonce
    assert policy.header_value("abc123") == "script-src 'nonce-abc123' 'strict-dynamic'"
    assert policy.header_value("xyz") == "script-src 'nonce-xyz' 'strict-dynamic'"


@pytest.mark.parametrize("nonce", [None, "", "a b", "x'; script-src *", "abc\r\n"])
def test_a_nonce_policy_needs_a_well_formed_nonce(nonce: str | None) -> None:
    policy = ContentSecurityPolicy({"script-src": [CSP_NONCE]})
    with pytest.raises(ConfigurationError):
        policy.header_value(nonce)


@pytest.mark.parametrize(
    ("directives", "problem"),
    [
        ({"script-src": ["https://ok.example; script-src *"]}, "semicolon"),
        ({"script-src": ["https://ok.example\r\nSet-Cookie: a=b"]}, "CRLF"),
        ({"script-src": ["https://ok.example\n"]}, "LF"),
        ({"script-src": ["https://a.example, script-src *"]}, "comma starts a policy"),
        ({"script-src": ["https://a.example https://b.example"]}, "two sources in one"),
        ({"script-src": ["self"]}, "unquoted keyword"),
        ({"script-src": ["unsafe-inline"]}, "unquoted keyword"),
        ({"script-src": ["'nonce-fixed'"]}, "fixed nonce"),
        ({"script-src": ["'self"]}, "stray quote"),
        ({"script-src": ["'none'", "'self'"]}, "none with others"),
        ({"script-src": "'self'"}, "a string, not a list"),
        ({"Script-Src": ["'self'"]}, "directive name"),
        ({"script src": ["'self'"]}, "directive name"),
        ({"script-src;": ["'self'"]}, "directive name"),
        ({}, "empty policy"),
        ({"script-src": ["caf\u00e9.example"]}, "non-ASCII"),
    ],
)
def test_builder_refuses_injection_and_mistakes(directives: Any, problem: str) -> None:
    with pytest.raises(ConfigurationError):
        ContentSecurityPolicy(directives)


@settings(max_examples=300, deadline=None)
@given(sources=st.lists(st.text(max_size=20), max_size=4))
def test_any_source_is_refused_or_rendered_as_one_token(sources: list[str]) -> None:
    try:
        policy = ContentSecurityPolicy({"img-src": sources})
    except ConfigurationError:
        return
    value = policy.header_value("n0nce")
    expected = ["'nonce-n0nce'" if source == CSP_NONCE else source for source in sources]
    assert value.split(" ") == ["img-src", *expected]
    assert not set(value) & {"\r", "\n", ";", ",", "\x00"}


@settings(max_examples=200, deadline=None)
@given(
    prefix=st.text(max_size=8),
    separator=st.sampled_from(["\r", "\n", ";", ",", " ", "\t"]),
    suffix=st.text(max_size=8),
)
def test_separators_are_always_refused(prefix: str, separator: str, suffix: str) -> None:
    with pytest.raises(ConfigurationError):
        ContentSecurityPolicy({"script-src": [f"https://a.example{prefix}{separator}{suffix}"]})


# --- nonces --------------------------------------------------------------------------------


def nonce_app(**options: Any) -> FastAPI:
    app = FastAPI()

    @app.get("/page")
    async def page(nonce: str = Depends(csp_nonce)) -> HTMLResponse:
        return HTMLResponse(f'<script nonce="{nonce}">1</script>')

    @app.get("/api")
    async def api() -> dict[str, int]:
        return {"n": 1}

    app.add_middleware(SecureHeadersMiddleware, **options)
    return app


PAGE_CSP = ContentSecurityPolicy(
    {"default-src": ["'none'"], "script-src": [CSP_NONCE], "frame-ancestors": ["'none'"]}
)


def test_the_endpoint_gets_the_nonce_of_its_header() -> None:
    response = TestClient(nonce_app(csp=PAGE_CSP)).get("/page")
    header_nonce = NONCE_IN_HEADER.findall(response.headers["content-security-policy"])
    assert header_nonce == NONCE_ATTRIBUTE.findall(response.text)
    assert len(header_nonce) == 1


def test_nonces_are_fresh_and_have_at_least_128_bits() -> None:
    client = TestClient(nonce_app(csp=PAGE_CSP))
    nonces = [
        NONCE_IN_HEADER.findall(client.get("/page").headers["content-security-policy"])[0]
        for _ in range(50)
    ]
    assert len(set(nonces)) == len(nonces)
    for nonce in nonces:
        raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        assert len(raw) * 8 >= 128
    # 50 random 144-bit values: every base64url character class shows up.
    joined = "".join(nonces)
    assert re.search("[a-z]", joined)
    assert re.search("[A-Z]", joined)
    assert re.search("[0-9]", joined)


def test_report_only_policy_is_sent_beside_the_enforced_one_with_the_same_nonce() -> None:
    trial = ContentSecurityPolicy({"script-src": [CSP_NONCE], "report-uri": ["/csp-reports"]})
    response = TestClient(nonce_app(csp=PAGE_CSP, csp_report_only=trial)).get("/page")
    enforced = NONCE_IN_HEADER.findall(response.headers["content-security-policy"])
    report_only = response.headers["content-security-policy-report-only"]
    assert NONCE_IN_HEADER.findall(report_only) == enforced
    assert report_only.endswith("; report-uri /csp-reports")


def test_no_nonce_on_strict_paths() -> None:
    app = nonce_app()
    response = TestClient(app, raise_server_exceptions=False).get("/page")
    assert response.status_code == 500
    assert "nonce" not in TestClient(app).get("/api").headers["content-security-policy"]


def test_csp_nonce_without_the_middleware_is_a_configuration_error() -> None:
    request = Request(http_scope("/"))
    with pytest.raises(ConfigurationError):
        csp_nonce(request)


# --- docs pages ------------------------------------------------------------------------------


def docs_app(title: str = "Shop API", wrap: bool = True, **app_options: Any) -> FastAPI:
    app = FastAPI(title=title, **app_options)

    @app.get("/api/items")
    async def items() -> dict[str, int]:
        return {"count": 1}

    install_secure_docs(app)
    if wrap:
        app.add_middleware(SecureHeadersMiddleware)
    return app


def assert_every_script_carries_the_header_nonce(response: Any) -> str:
    header = response.headers["content-security-policy"]
    header_nonces = NONCE_IN_HEADER.findall(header)
    assert len(header_nonces) == 1
    scripts = re.findall(r"<script[^>]*>", response.text)
    assert scripts
    for tag in scripts:
        assert NONCE_ATTRIBUTE.findall(tag) == header_nonces, tag
    return str(header_nonces[0])


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/docs/oauth2-redirect"])
def test_docs_pages_carry_their_nonce_in_header_and_html(path: str) -> None:
    response = TestClient(docs_app()).get(path)
    assert response.status_code == 200
    assert_every_script_carries_the_header_nonce(response)
    assert response.headers["content-security-policy"] == DEFAULT_DOCS_CSP.header_value(
        NONCE_IN_HEADER.findall(response.headers["content-security-policy"])[0]
    )


def test_docs_policy_allows_the_assets_and_api_routes_stay_strict() -> None:
    client = TestClient(docs_app())
    docs = client.get("/docs")
    assert "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js" in docs.text
    policy = docs.headers["content-security-policy"]
    assert "script-src 'nonce-" in policy
    assert "https://cdn.jsdelivr.net" in policy
    assert "'unsafe-inline'" not in policy.split("script-src", 1)[1].split(";", 1)[0]
    assert "'unsafe-eval'" not in policy
    assert "frame-ancestors 'none'" in policy
    api = client.get("/api/items")
    assert api.headers["content-security-policy"] == STRICT_API_CSP.header_value()
    assert client.get("/openapi.json").headers["content-security-policy"] == (
        STRICT_API_CSP.header_value()
    )


def test_docs_pages_let_the_oauth2_popup_report_back() -> None:
    client = TestClient(docs_app())
    assert client.get("/docs").headers["cross-origin-opener-policy"] == ("same-origin-allow-popups")
    assert "cross-origin-opener-policy" not in client.get("/docs/oauth2-redirect").headers
    assert client.get("/api/items").headers["cross-origin-opener-policy"] == "same-origin"


def test_installer_knows_a_moved_oauth2_redirect_page() -> None:
    app = FastAPI(swagger_ui_oauth2_redirect_url="/auth/callback")
    install_secure_defaults(app)
    client = TestClient(app)
    callback = client.get("/auth/callback")
    assert_every_script_carries_the_header_nonce(callback)
    assert "cross-origin-opener-policy" not in callback.headers


def test_each_docs_request_gets_a_new_nonce() -> None:
    client = TestClient(docs_app())
    first = assert_every_script_carries_the_header_nonce(client.get("/docs"))
    second = assert_every_script_carries_the_header_nonce(client.get("/docs"))
    assert first != second


def test_docs_pages_bring_their_own_policy_without_the_middleware() -> None:
    response = TestClient(docs_app(wrap=False)).get("/redoc")
    assert_every_script_carries_the_header_nonce(response)


def test_a_hostile_title_cannot_add_a_script_that_gets_the_nonce() -> None:
    app = docs_app(title="</title><script>alert(document.cookie)</script>")
    text = TestClient(app).get("/docs").text
    assert "<script>alert" not in text
    assert "&lt;script&gt;alert" in text


def test_a_hostile_root_path_is_percent_encoded() -> None:
    app = docs_app()
    root_path = "/x';alert(1)//"
    scope = http_scope(root_path + "/docs", root_path=root_path)
    messages = anyio.run(call, app, scope)
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    assert b"';alert" not in body
    assert b"/x%27;alert(1)/openapi.json" in body
    assert any(name == "content-security-policy" for name, _ in response_headers(messages))


def test_docs_turned_off_on_the_app_stay_off() -> None:
    app = docs_app(docs_url=None, redoc_url=None)
    client = TestClient(app)
    assert client.get("/docs").status_code == 404
    assert client.get("/redoc").status_code == 404
    assert install_secure_docs(FastAPI(openapi_url=None)) == ()


def test_install_secure_docs_returns_the_paths_and_replaces_fastapis_routes() -> None:
    app = FastAPI(docs_url="/api-docs", redoc_url=None, swagger_ui_oauth2_redirect_url="/cb")
    paths = install_secure_docs(app)
    assert paths == ("/api-docs", "/cb")
    assert [getattr(r, "path", None) for r in app.routes].count("/api-docs") == 1
    response = TestClient(app).get("/api-docs")
    assert "window.location.origin + '/cb'" in response.text
    assert_every_script_carries_the_header_nonce(response)


def test_swagger_parameters_and_init_oauth_are_kept() -> None:
    app = FastAPI(
        swagger_ui_parameters={"deepLinking": False},
        swagger_ui_init_oauth={"clientId": "docs-client"},
    )
    install_secure_docs(app)
    text = TestClient(app).get("/docs").text
    assert '"deepLinking": false' in text
    assert "docs-client" in text


def test_self_hosted_assets_give_a_self_only_policy() -> None:
    assets = DocsAssets(
        swagger_js_url="/static/swagger-ui-bundle.js",
        swagger_css_url="/static/swagger-ui.css",
        redoc_js_url="/static/redoc.standalone.js",
        favicon_url="/static/favicon.png",
        google_fonts=False,
    )
    policy = assets.csp().header_value("n0nce")
    assert "https://" not in policy
    assert "script-src 'nonce-n0nce' 'self';" in policy
    app = FastAPI()
    install_secure_docs(app, assets=assets)
    app.add_middleware(SecureHeadersMiddleware, docs_csp=assets.csp())
    client = TestClient(app)
    docs = client.get("/docs")
    assert '<script nonce="' in docs.text
    assert 'src="/static/swagger-ui-bundle.js"' in docs.text
    assert "fonts.googleapis.com" not in client.get("/redoc").text


def img_sources(policy: ContentSecurityPolicy) -> tuple[str, ...]:
    return policy.directives["img-src"]


def test_redocs_own_logo_is_allowed_when_redoc_comes_from_a_cdn() -> None:
    # ReDoc's bundle always loads its footer logo from cdn.redoc.ly (seen blocked in
    # Chromium): the CDN policy, which already trusts a third party for ReDoc, allows it.
    assert "https://cdn.redoc.ly" in img_sources(DEFAULT_DOCS_CSP)
    assert "https://cdn.redoc.ly" not in DEFAULT_DOCS_CSP.directives["script-src"]
    assert "https://cdn.redoc.ly" not in img_sources(DocsAssets(redoc_logo=False).csp())


def test_self_hosted_redoc_loads_its_logo_only_when_asked() -> None:
    local = "/static/redoc.standalone.js"
    default = DocsAssets(redoc_js_url=local, google_fonts=False).csp()
    assert "https://cdn.redoc.ly" not in img_sources(default)
    allowed = DocsAssets(redoc_js_url=local, google_fonts=False, redoc_logo=True).csp()
    assert img_sources(allowed)[-1] == "https://cdn.redoc.ly"
    assert allowed.header_value("n0nce").count("cdn.redoc.ly") == 1


@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", 'https://cdn.example/x.js"onload="x', "ftp://cdn.example/x.js"]
)
def test_unsafe_asset_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigurationError):
        DocsAssets(swagger_js_url=url)


def test_unsafe_docs_paths_are_refused() -> None:
    with pytest.raises(ConfigurationError):
        install_secure_docs(FastAPI(docs_url="/docs'"))


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_the_middleware_alone_never_blanks_fastapis_own_docs(path: str) -> None:
    # FastAPI's stock pages bootstrap with an inline script that has no nonce: a
    # nonce policy would block it (CSP3 ignores 'unsafe-inline' beside a nonce).
    app = FastAPI()
    app.add_middleware(SecureHeadersMiddleware)
    response = TestClient(app).get(path)
    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    assert "nonce-" not in policy
    script_src = next(d for d in policy.split(";") if d.strip().startswith("script-src"))
    assert "'unsafe-inline'" in script_src
    assert "nonce=" not in response.text  # the stock page indeed has no nonce
    if path == "/docs":
        assert re.search(r"<script>\s*\S", response.text), "an inline bootstrap script runs"
    # API routes keep the strict policy.
    assert TestClient(app).get("/openapi.json").headers["content-security-policy"] == (
        STRICT_API_CSP.header_value()
    )


def test_nonce_pages_keep_the_nonce_policy_beside_the_middleware() -> None:
    response = TestClient(docs_app()).get("/docs")
    assert "'unsafe-inline'" not in next(
        d for d in response.headers["content-security-policy"].split(";") if "script-src" in d
    )


def test_docs_assets_served_by_the_app_work_offline() -> None:
    from fastapi_secure.apidocs import serve_docs_assets

    app = FastAPI()
    install_secure_defaults(app, docs_assets=serve_docs_assets(app))
    client = TestClient(app)
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert 'src="/docs-assets/swagger-ui-bundle.js"' in docs.text
    assert "cdn.jsdelivr.net" not in docs.text
    policy = docs.headers["content-security-policy"]
    assert "cdn.jsdelivr.net" not in policy
    assert "fonts.googleapis.com" not in policy
    script_src = next(d for d in policy.split(";") if "script-src" in d)
    assert "'self'" in script_src
    assert "'unsafe-inline'" not in script_src
    redoc = client.get("/redoc")
    assert 'src="/docs-assets/redoc.standalone.js"' in redoc.text
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png"):
        asset = client.get(f"/docs-assets/{name}")
        assert asset.status_code == 200, name
        assert len(asset.content) > 1000, name


def test_docs_assets_path_is_checked() -> None:
    from fastapi_secure.apidocs import serve_docs_assets

    for bad in ("/", "no-slash", "/x'y"):
        with pytest.raises(ConfigurationError):
            serve_docs_assets(FastAPI(), path=bad)
