#!/usr/bin/env python
# A developer tool: it runs npm, Chromium and a local server, and writes under /tmp.
"""Check in headless Chromium that Swagger UI and ReDoc render under the docs CSP.

What it does:

1. Gets the docs assets from the npm registry, once, into ``--assets``
   (default ``/tmp/docs-assets``): ``npm pack swagger-ui-dist@5 redoc@2``,
   unpacked there. Nothing is written into the repository.
2. Starts a small FastAPI app with ``uvicorn`` on 127.0.0.1 (a free port): an
   OAuth2-password-protected route, the assets under ``/static`` (Starlette's
   ``StaticFiles``) and ``install_secure_defaults(app, docs_assets=...)``, in
   two modes: ``self-hosted`` (``DocsAssets`` pointing at ``/static``) and
   ``cdn`` (the default ``DocsAssets()``; Chromium's requests to jsDelivr,
   Google Fonts and the others are answered from the npm packages through
   DevTools, after the page's CSP has let them through).
3. Drives Chromium over the DevTools protocol (``--remote-debugging-pipe``, so
   only the standard library is needed) with every host but 127.0.0.1 mapped
   to nowhere, and opens ``/docs`` (then its "Authorize" dialog, and logs in
   with the OAuth2 password flow), ``/redoc`` (then its search, which runs in
   a ``blob:`` worker) and ``/docs/oauth2-redirect`` (as a popup of
   ``/docs``, the way Swagger UI opens it, and on its own). For each page it
   saves a PNG screenshot in ``--out``/<mode> (default
   ``/tmp/docs-csp-check``) and collects every CSP violation: console
   messages, ``securitypolicyviolation`` events and DevTools issues. It also
   checks that an API route keeps the strict policy.

Needs: ``npm`` (only if the assets are not there yet), Chromium
(``apt-get install -y chromium``) and the project's venv. Run from the
repository root::

    .venv/bin/python scripts/check-docs-csp.py [--mode all|self-hosted|cdn]
        [--out DIR] [--assets DIR] [--chromium PATH]

Exits 0 when every page rendered with no CSP violation (ReDoc's own logo from
cdn.redoc.ly is expected to be blocked when ``DocsAssets.redoc_logo`` is off),
1 otherwise, and writes ``report.json`` next to the screenshots.
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import uvicorn
from fastapi import Depends, FastAPI
from fastapi.security import OAuth2PasswordBearer, OAuth2PasswordRequestForm
from starlette.staticfiles import StaticFiles

from fastapi_secure.apidocs import DocsAssets
from fastapi_secure.defaults import install_secure_defaults

# The Chromium driver is the tests' own: the repository root goes on the path.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.chromium import Browser, Page

PACKAGES = {"swagger": "swagger-ui-dist@5", "redoc": "redoc@2"}
STRICT_API_CSP = "default-src 'none'; frame-ancestors 'none'"


# --- assets -------------------------------------------------------------------


def fetch_assets(assets: Path) -> None:
    for name, spec in PACKAGES.items():
        target = assets / name / "package"
        if target.is_dir():
            continue
        assets.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            ["npm", "pack", spec, "--silent"],
            cwd=assets,
            check=True,
            capture_output=True,
            text=True,
        )
        tarball = assets / result.stdout.strip().splitlines()[-1]
        with tarfile.open(tarball) as archive:
            archive.extractall(assets / name, filter="data")


# --- the app under test ---------------------------------------------------------


SELF_HOSTED = DocsAssets(
    swagger_js_url="/static/swagger/swagger-ui-bundle.js",
    swagger_css_url="/static/swagger/swagger-ui.css",
    redoc_js_url="/static/redoc/redoc.standalone.js",
    favicon_url="/static/swagger/favicon-32x32.png",
    google_fonts=False,
)
MODES = {"self-hosted": SELF_HOSTED, "cdn": DocsAssets()}
# ReDoc's hard-coded footer logo: blocked, by design, when nothing but 'self' is allowed.
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
TINY_SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>'


def cdn_files(assets: Path) -> Callable[[str], tuple[str, bytes] | None]:
    """The CDN URLs of DocsAssets(), answered from the npm packages (no network here)."""
    swagger = assets / "swagger" / "package"
    redoc = assets / "redoc" / "package" / "bundles"
    prefixes = {
        "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/": swagger,
        "https://cdn.jsdelivr.net/npm/redoc@2/bundles/": redoc,
    }
    types = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}

    def answer(url: str) -> tuple[str, bytes] | None:
        for prefix, folder in prefixes.items():
            if url.startswith(prefix):
                file = folder / url[len(prefix) :].split("?")[0]
                return types.get(file.suffix, "application/octet-stream"), file.read_bytes()
        if url == "https://fastapi.tiangolo.com/img/favicon.png":
            return "image/png", (swagger / "favicon-32x32.png").read_bytes()
        if url.startswith("https://fonts.googleapis.com/"):
            return "text/css", b"/* fonts stubbed by check-docs-csp */"
        if url == REDOC_LOGO:
            return "image/svg+xml", TINY_SVG
        return None

    return answer


# At module level: FastAPI resolves the string annotations in this module's namespace.
BEARER = OAuth2PasswordBearer(tokenUrl="token")


def build_app(assets: Path, mode: str = "self-hosted") -> FastAPI:
    app = FastAPI(title="CSP check")

    @app.post("/token")
    async def token(form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> dict[str, str]:
        return {"access_token": "demo", "token_type": "bearer"}

    @app.get("/items/{item_id}")
    async def item(item_id: int, token: Annotated[str, Depends(BEARER)]) -> dict[str, int]:
        return {"item_id": item_id}

    app.mount("/static/swagger", StaticFiles(directory=assets / "swagger" / "package"))
    app.mount("/static/redoc", StaticFiles(directory=assets / "redoc" / "package" / "bundles"))
    install_secure_defaults(app, docs_assets=MODES[mode])
    return app


def serve(assets: Path, mode: str, port: int) -> None:
    uvicorn.run(build_app(assets, mode), host="127.0.0.1", port=port, log_level="warning")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(url: str, server: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


# --- DevTools protocol over a pipe ----------------------------------------------


class DevTools(Browser):
    """The tests' Chromium driver, answering intercepted https:// requests."""

    def __init__(
        self,
        chromium: str,
        profile: str,
        log: Any,
        cdn: Callable[[str], tuple[str, bytes] | None] | None = None,
    ) -> None:
        # Answers the https:// requests that pass the page's CSP (the CDN mode).
        self.cdn = cdn or (lambda url: None)
        # Only the local app is reachable: a CDN load would fail loudly.
        super().__init__(
            chromium, profile, host_rules="MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", stderr=log
        )

    def _event(self, message: dict[str, Any]) -> None:
        super()._event(message)
        if message.get("method") == "Fetch.requestPaused":
            params = message["params"]
            found = self.cdn(params["request"]["url"])
            if found is None:
                reply = {"requestId": params["requestId"], "errorReason": "BlockedByClient"}
                self.send("Fetch.failRequest", reply, message.get("sessionId"))
                return
            content_type, body = found
            reply = {
                "requestId": params["requestId"],
                "responseCode": 200,
                "responseHeaders": [{"name": "Content-Type", "value": content_type}],
                "body": base64.b64encode(body).decode(),
            }
            self.send("Fetch.fulfillRequest", reply, message.get("sessionId"))


# Recorded before any page script runs; DevTools-injected code is not subject to the CSP.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => window.__cspViolations.push(
  `${e.effectiveDirective} blocked ${e.blockedURI || '(inline)'} at ${e.sourceFile}:${e.lineNumber}`
  + (e.sample ? ` sample=${JSON.stringify(e.sample)}` : '')));
"""


class Tab(Page):
    """A tab that records what the browser reports (CSP, console, failed requests)."""

    def __init__(self, tools: DevTools) -> None:
        super().__init__(tools)  # Page and Runtime enabled
        self.tools = tools
        for domain in ("Log", "Network", "Audits"):
            self.send(f"{domain}.enable")
        self.send(
            "Target.setAutoAttach",
            {"autoAttach": True, "waitForDebuggerOnStart": False, "flatten": True},
        )
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False},
        )
        self.send("Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_VIOLATIONS})
        # Every https:// request the CSP lets through is answered by DevTools.cdn.
        self.send("Fetch.enable", {"patterns": [{"urlPattern": "https://*"}]})
        self.mark = len(tools.events)

    def evaluate(self, expression: str, *, gesture: bool = False) -> Any:
        return super().evaluate(expression, gesture=gesture)

    def goto(self, url: str, timeout: float = 20.0) -> None:
        self.send("Page.navigate", {"url": url})
        self.wait("document.readyState === 'complete'", timeout)

    def wait(self, condition: str, timeout: float = 15) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.evaluate(f"Boolean({condition})"):
                    return True
            except RuntimeError:
                pass
            self.tools.pump(0.25)
        return False

    def screenshot(self, path: Path) -> str:
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        path.write_bytes(base64.b64decode(data))
        return str(path)

    def click(self, selector: str) -> None:
        self.evaluate(f"document.querySelector({json.dumps(selector)}).click()", gesture=True)

    def collect(self) -> dict[str, list[str]]:
        """What the browser said since the last call, for this tab and its workers."""
        events = self.tools.events[self.mark :]
        self.mark = len(self.tools.events)
        sessions = {self.session} | {
            event["params"]["sessionId"]
            for event in events
            if event["method"] == "Target.attachedToTarget"
        }
        csp: list[str] = []
        console: list[str] = []
        failed: list[str] = []
        for event in events:
            if event.get("sessionId") not in sessions:
                continue
            method, params = event["method"], event["params"]
            if method == "Log.entryAdded":
                entry = params["entry"]
                text = f"[{entry['level']}] {entry['text']}"
                if entry.get("url"):
                    text += f" ({entry['url']})"
                (csp if "Content Security Policy" in entry["text"] else console).append(text)
            elif method == "Runtime.consoleAPICalled":
                args = " ".join(
                    str(arg.get("value", arg.get("description", ""))) for arg in params["args"]
                )
                (csp if "Content Security Policy" in args else console).append(
                    f"[console.{params['type']}] {args}"
                )
            elif method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                text = details.get("exception", {}).get("description") or details.get("text", "")
                console.append(f"[exception] {text.splitlines()[0] if text else ''}")
            elif method == "Audits.issueAdded":
                issue = params["issue"]
                if issue["code"] == "ContentSecurityPolicyIssue":
                    details = issue["details"]["contentSecurityPolicyIssueDetails"]
                    csp.append(
                        f"[issue] {details.get('violatedDirective')} "
                        f"{details.get('contentSecurityPolicyViolationType')} "
                        f"{details.get('blockedURL', '')}"
                    )
            elif method == "Network.loadingFailed":
                reason = params.get("blockedReason", "")
                failed.append(f"{params.get('type')} {params.get('errorText')} {reason}")
            elif method == "Network.responseReceived":
                response = params["response"]
                if response["status"] >= 400:
                    failed.append(f"{response['status']} {response['url']}")
        try:
            csp += [f"[event] {item}" for item in self.evaluate("window.__cspViolations || []")]
            self.evaluate("window.__cspViolations = []")
        except RuntimeError:
            pass
        workers = [
            f"{event['params']['targetInfo']['type']} {event['params']['targetInfo']['url'][:40]}"
            for event in events
            if event["method"] == "Target.attachedToTarget"
        ]
        return {"csp": csp, "console": console, "failed_requests": failed, "workers": workers}

    def close(self) -> None:
        self.tools.call("Target.closeTarget", {"targetId": self.target})


# --- the checks -----------------------------------------------------------------


def check(base: str, tools: DevTools, out: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}

    def record(name: str, tab: Tab, rendered: bool, **extra: Any) -> None:
        results[name] = {
            "rendered": rendered,
            "screenshot": tab.screenshot(out / f"{name}.png"),
            **tab.collect(),
            **extra,
        }

    docs = Tab(tools)
    docs.goto(f"{base}/docs")
    rendered = docs.wait(
        "document.querySelector('.swagger-ui .opblock')"
        " && document.querySelector('.swagger-ui .info .title')"
    )
    record("docs", docs, rendered)

    docs.click(".swagger-ui .btn.authorize")
    opened = docs.wait("document.querySelector('.swagger-ui .modal-ux input#oauth_username')")
    record("docs-authorize", docs, opened)

    # The password flow: Swagger UI posts the form to /token (connect-src 'self').
    for field, text in (("#oauth_username", "alice"), ("#oauth_password", "secret")):
        docs.evaluate(f"document.querySelector('.swagger-ui .modal-ux {field}').focus()")
        docs.send("Input.insertText", {"text": text})
    docs.click(".swagger-ui .modal-ux .auth-btn-wrapper .authorize")
    logged_in = docs.wait(
        "[...document.querySelectorAll('.swagger-ui .modal-ux button')]"
        ".some((button) => button.textContent.trim() === 'Logout')"
    )
    record("docs-login", docs, logged_in)
    docs.click(".swagger-ui .modal-ux .close-modal")

    # Swagger UI opens the redirect page as a popup and reads the result back
    # through window.opener: this is that round trip, with a fake implicit flow.
    callback = docs.evaluate(
        """new Promise((resolve) => {
          window.swaggerUIRedirectOauth2 = {
            state: 'check-state', redirectUrl: location.origin + '/docs/oauth2-redirect',
            auth: {name: 'check', schema: {get: () => 'implicit'}},
            callback: (r) => resolve({called: true, isValid: r.isValid, token: r.token}),
            errCb: (e) => resolve({called: false, error: e}),
          };
          const popup = window.open('/docs/oauth2-redirect#access_token=demo&state=check-state');
          if (!popup) resolve({called: false, error: 'popup blocked'});
          setTimeout(() => resolve({called: false, error: 'no callback within 10 s'}), 10000);
        })""",
        gesture=True,
    )
    tools.pump(1)
    results["oauth2-redirect-popup"] = {
        "rendered": bool(callback and callback.get("called")),
        "callback": callback,
        **docs.collect(),
    }
    docs.close()

    redirect = Tab(tools)
    redirect.goto(f"{base}/docs/oauth2-redirect")
    tools.pump(0.5)
    # Opened directly, the page has no opener: a TypeError proves its inline script ran.
    record("oauth2-redirect", redirect, True)
    ran = any("swaggerUIRedirectOauth2" in line for line in results["oauth2-redirect"]["console"])
    results["oauth2-redirect"]["rendered"] = ran
    redirect.close()

    redoc = Tab(tools)
    redoc.goto(f"{base}/redoc")
    rendered = redoc.wait(
        "document.querySelector('.api-content h1') && document.querySelector('.menu-content')"
    )
    redoc.tools.pump(1)
    record("redoc", redoc, rendered)
    redoc.evaluate("document.querySelector('input.search-input').focus()")
    redoc.send("Input.insertText", {"text": "item"})
    found = redoc.wait(
        "document.querySelector('[data-role=\"search:results\"]')?.textContent.includes('Item')"
    )
    record("redoc-search", redoc, found)
    redoc.close()

    return results


def api_headers(base: str) -> dict[str, str]:
    request = urllib.request.Request(f"{base}/openapi.json")
    with urllib.request.urlopen(request, timeout=5) as response:
        return {
            "openapi.json": response.headers["content-security-policy"],
        }


def run_mode(args: argparse.Namespace, mode: str) -> dict[str, Any]:
    out = args.out / mode
    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, __file__, "--assets", str(args.assets), "--serve", str(port), mode],
        cwd=Path(__file__).resolve().parent.parent,
    )
    profile = tempfile.mkdtemp(prefix="docs-csp-chromium-")
    tools: DevTools | None = None
    try:
        wait_for(f"{base}/openapi.json", server)
        with (out / "chromium.log").open("wb") as log:
            tools = DevTools(args.chromium, profile, log, cdn_files(args.assets))
            results = check(base, tools, out)
            results["api"] = {"content-security-policy": api_headers(base)}
    finally:
        if tools is not None:
            tools.close()
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(profile, ignore_errors=True)
    (out / "report.json").write_text(json.dumps(results, indent=2))
    return results


def report(mode: str, results: dict[str, Any]) -> bool:
    print(f"== {mode}: DocsAssets policy {MODES[mode].csp().header_value('NONCE')}")
    api_policy: str = results["api"]["content-security-policy"]["openapi.json"]
    ok = api_policy == STRICT_API_CSP
    print(f"{'OK  ' if ok else 'FAIL'} API route /openapi.json CSP: {api_policy}")
    logo_blocked = not MODES[mode].csp().directives["img-src"].count("https://cdn.redoc.ly")
    for name, result in results.items():
        if name == "api":
            continue
        expected = [line for line in result["csp"] if logo_blocked and REDOC_LOGO in line]
        unexpected = [line for line in result["csp"] if line not in expected]
        page_ok = result["rendered"] and not unexpected
        ok = ok and page_ok
        print(f"{'OK  ' if page_ok else 'FAIL'} {name}: rendered={result['rendered']}")
        if "screenshot" in result:
            print(f"     screenshot {result['screenshot']}")
        for line in unexpected:
            print(f"     CSP violation: {line}")
        for line in expected:
            print(f"     expected CSP violation (ReDoc's logo; redoc_logo is off): {line}")
        for key in ("console", "failed_requests", "workers"):
            for line in result[key]:
                print(f"     {key}: {line}")
        if "callback" in result:
            print(f"     callback: {result['callback']}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=Path, default=Path("/tmp/docs-assets"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/docs-csp-check"))
    parser.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    parser.add_argument("--mode", choices=[*MODES, "all"], default="all")
    parser.add_argument("--serve", nargs=2, metavar=("PORT", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.assets, args.serve[1], int(args.serve[0]))
        return 0

    fetch_assets(args.assets)
    ok = True
    for mode in MODES if args.mode == "all" else [args.mode]:
        ok = report(mode, run_mode(args, mode)) and ok
    print(f"reports: {args.out}/<mode>/report.json")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
