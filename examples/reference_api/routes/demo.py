"""``GET /demo/passkeys``: a small page that registers a passkey and signs in with it.

Served under its own strict Content-Security-Policy: no source but this
origin for ``fetch``, and the one inline script runs only because it carries
this response's nonce (``script-src 'nonce-...'``; no ``'unsafe-inline'``).
The page's Permissions-Policy allows WebAuthn for this origin only (the API's
default policy denies it to every page). Open it at an origin listed in
``WEBAUTHN_ORIGINS`` (``http://localhost:8000`` by default): WebAuthn refuses
IP addresses, so ``http://127.0.0.1:8000`` cannot use passkeys.

The page calls the API as any client would (``/auth/login``, the passkey
routes, ``/users/me``), keeping the session's token in a variable in bearer
mode or the CSRF token in cookie mode; it stores nothing.
"""

from __future__ import annotations

import html
import secrets

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from examples.reference_api.deps import Components
from fastapi_secure.audit import mark_public
from fastapi_secure.csp import CSP_NONCE, NONCE_BYTES, ContentSecurityPolicy
from fastapi_secure.headers import DEFAULT_PERMISSIONS_POLICY

__all__ = ["DEMO_CSP", "router"]

DEMO_CSP = ContentSecurityPolicy(
    {
        "default-src": ["'none'"],
        "script-src": [CSP_NONCE],
        "connect-src": ["'self'"],
        "base-uri": ["'none'"],
        "form-action": ["'none'"],
        "frame-ancestors": ["'none'"],
    }
)
"""The page's policy: its own nonce-bearing script, ``fetch`` to this origin, nothing else."""

PERMISSIONS_POLICY = ", ".join(
    [
        *(
            item
            for item in DEFAULT_PERMISSIONS_POLICY.split(", ")
            if not item.startswith("publickey-credentials-")
        ),
        "publickey-credentials-create=(self)",
        "publickey-credentials-get=(self)",
    ]
)

PAGE = """<!doctype html>
<html lang="en">
<meta charset="utf-8">
<title>Passkeys: {title}</title>
<h1>Passkeys</h1>
<p>Signed in as: <output id="who">nobody</output></p>
<form id="password-form">
  <label>Email or username <input name="username" autocomplete="username webauthn" required></label>
  <label>Password
    <input name="password" type="password" autocomplete="current-password" required></label>
  <button>Sign in with a password</button>
</form>
<p>
  <button id="register" type="button">Register a passkey</button>
  <button id="passkey" type="button">Sign in with a passkey</button>
  <button id="sign-out" type="button">Sign out</button>
</p>
<pre id="log"></pre>
<script nonce="{nonce}">
"use strict";
let session = {{}};  // the header that authenticates this tab: Authorization or X-CSRF-Token

async function call(method, path, body) {{
  const headers = {{...session}};
  let payload;
  if (body instanceof URLSearchParams) {{
    payload = body;
  }} else if (body !== undefined) {{
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }}
  const answer = await fetch(path, {{method, headers, body: payload, credentials: "same-origin"}});
  const text = await answer.text();
  const result = {{status: answer.status, body: text ? JSON.parse(text) : null}};
  document.getElementById("log").textContent = method + " " + path + ": " + answer.status;
  return result;
}}

function keep(tokens) {{
  session = tokens.access_token
    ? {{"Authorization": "Bearer " + tokens.access_token}}
    : {{"X-CSRF-Token": tokens.csrf_token}};
}}

async function me() {{
  const answer = await call("GET", "/users/me");
  document.getElementById("who").textContent = answer.status === 200 ? answer.body.email : "nobody";
  return answer;
}}

async function signIn(username, password) {{
  const answer = await call("POST", "/auth/login", new URLSearchParams({{username, password}}));
  if (answer.status === 200 && !answer.body.mfa_required) {{
    keep(answer.body);
    await me();
  }}
  return answer;
}}

async function registerPasskey(name) {{
  const options = await call("POST", "/users/me/passkeys/register/options");
  if (options.status !== 200) return options;
  const credential = await navigator.credentials.create(
    {{publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options.body.publicKey)}});
  const body = {{credential: credential.toJSON(), name}};
  return call("POST", "/users/me/passkeys/register/verify", body);
}}

async function passkeySignIn() {{
  const options = await call("POST", "/auth/passkey/options", {{}});
  const credential = await navigator.credentials.get(
    {{publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options.body.publicKey)}});
  const answer = await call("POST", "/auth/passkey/verify", {{credential: credential.toJSON()}});
  if (answer.status === 200) {{
    keep(answer.body);
    await me();
  }}
  return answer;
}}

async function signOut() {{
  const answer = await call("POST", "/auth/logout");
  session = {{}};
  document.getElementById("who").textContent = "nobody";
  return answer;
}}

document.getElementById("password-form").addEventListener("submit", (event) => {{
  event.preventDefault();
  const form = new FormData(event.target);
  signIn(form.get("username"), form.get("password"));
}});
document.getElementById("register").addEventListener("click", () => registerPasskey("this device"));
document.getElementById("passkey").addEventListener("click", () => passkeySignIn());
document.getElementById("sign-out").addEventListener("click", () => signOut());
window.demo = {{signIn, registerPasskey, passkeySignIn, signOut, me}};
window.ready = true;
</script>
</html>
"""


def router(c: Components) -> APIRouter:
    """``GET /demo/passkeys`` over the components ``c``."""
    api = APIRouter(tags=["demo"])

    @api.get("/demo/passkeys", response_class=HTMLResponse, include_in_schema=False)
    async def passkeys_demo() -> HTMLResponse:
        nonce = secrets.token_urlsafe(NONCE_BYTES)
        page = PAGE.format(nonce=nonce, title=html.escape(c.settings.webauthn_rp_name))
        return HTMLResponse(
            page,
            headers={
                # Set here, so the secure-headers middleware keeps them for this page.
                "Content-Security-Policy": DEMO_CSP.header_value(nonce),
                "Permissions-Policy": PERMISSIONS_POLICY,
            },
        )

    mark_public(passkeys_demo, "a static page; each of its calls authenticates itself")
    return api
