"""A tiny FastAPI app over fastapi_secure.mfa.Passkeys, for the real-browser ceremony test.

One page (``GET /``) with ``register(user)`` and ``login([user])`` in a
script; JSON routes for the two ceremonies. ``login()`` is passwordless,
``login(user)`` the second step after a password. The credential table is a
dict. Refusals answer 401 through ``install_error_handlers``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, FastAPI
from fastapi.responses import HTMLResponse

from fastapi_secure.http_errors import install_error_handlers
from fastapi_secure.mfa import PasskeyCredential, Passkeys

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>passkeys</title>
<script>
async function post(path, body) {
  const answer = await fetch(path, {
    method: "POST",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify(body),
  });
  return {status: answer.status, body: await answer.json()};
}
async function register(user) {
  const options = await post("/register/options", {user});
  const credential = await navigator.credentials.create(
    {publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options.body)});
  return post("/register/verify", {user, credential: credential.toJSON()});
}
async function login(user = null) {
  const options = await post("/login/options", {user});
  const credential = await navigator.credentials.get(
    {publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options.body)});
  return post("/login/verify", {user, credential: credential.toJSON()});
}
window.ready = true;
</script>
<p>passkey test page</p>
"""


class CredentialTable:
    """The app's passkey table."""

    def __init__(self) -> None:
        self.by_id: dict[bytes, PasskeyCredential] = {}

    async def find(self, credential_id: bytes) -> PasskeyCredential | None:
        return self.by_id.get(credential_id)


def build_app(passkeys: Passkeys, table: CredentialTable) -> FastAPI:
    app = FastAPI()

    install_error_handlers(app)  # a refused passkey is a JSON 401, never a 500

    @app.get("/")
    async def page() -> HTMLResponse:
        return HTMLResponse(PAGE)

    @app.post("/register/options")
    async def register_options(user: Annotated[str, Body(embed=True)]) -> dict[str, Any]:
        existing = [c for c in table.by_id.values() if c.user_id == user]
        options = await passkeys.registration_options(user, user, existing=existing)
        return options.public_key

    @app.post("/register/verify")
    async def register_verify(
        user: Annotated[str, Body()], credential: Annotated[dict[str, Any], Body()]
    ) -> dict[str, Any]:
        record = await passkeys.verify_registration(user, credential, find_credential=table.find)
        table.by_id[record.id] = record
        return {"id": record.id_b64, "sign_count": record.sign_count}

    @app.post("/login/options")
    async def login_options(user: Annotated[str | None, Body(embed=True)] = None) -> dict[str, Any]:
        # With a user: the second step after a password; without: passwordless.
        mine = [c for c in table.by_id.values() if c.user_id == user]
        return (await passkeys.authentication_options(user, mine)).public_key

    @app.post("/login/verify")
    async def login_verify(
        credential: Annotated[dict[str, Any], Body()],
        user: Annotated[str | None, Body()] = None,
    ) -> dict[str, Any]:
        assertion = await passkeys.verify_authentication(
            credential, find_credential=table.find, user_id=user
        )
        table.by_id[assertion.credential.id] = assertion.credential
        return {
            "user_id": assertion.user_id,
            "sign_count": assertion.credential.sign_count,
            "user_verified": assertion.user_verified,
        }

    return app
