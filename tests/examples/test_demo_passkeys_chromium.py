"""The reference API's passkey demo page in a real browser: headless Chromium with a
DevTools virtual authenticator signs up, registers a passkey, signs out, signs in with
it, and a clone of the credential (counter reset) is refused.

Locally the test skips when Chromium is missing (``apt-get install -y chromium``); with
CI=true it must run (``scripts/test`` installs Chromium then).
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from examples.reference_api.main import create_app
from examples.reference_api.migrate import upgrade_to_head

from tests.conftest import IN_CI
from tests.support.chromium import Page, find_chromium, headless_chromium
from tests.support.reference_api import ALICE_PASSWORD, make_settings

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def origin(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    origin = f"http://localhost:{port}"
    url = f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}"
    upgrade_to_head(url)
    settings = make_settings(url, webauthn_origins=[origin])
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)  # waiting for a server to bind, not for an expiry
    try:
        yield origin
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_the_page_runs_under_a_nonce_policy(origin: str) -> None:
    page = httpx.get(f"{origin.replace('localhost', '127.0.0.1')}/demo/passkeys")
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    nonce = re.search(r"'nonce-([A-Za-z0-9_-]+)'", policy)
    assert nonce is not None
    assert f'<script nonce="{nonce.group(1)}">' in page.text
    assert "unsafe-inline" not in policy
    assert "default-src 'none'" in policy
    assert "publickey-credentials-get=(self)" in page.headers["permissions-policy"]
    again = httpx.get(f"{origin.replace('localhost', '127.0.0.1')}/demo/passkeys")
    assert again.headers["content-security-policy"] != policy  # a new nonce each time


def test_register_sign_out_sign_in_and_a_clone_refused(origin: str) -> None:
    binary = find_chromium(IN_CI)
    rules = "MAP localhost 127.0.0.1, MAP * ~NOTFOUND"
    with headless_chromium(binary, host_rules=rules) as browser:
        page = Page(browser)
        authenticator = page.add_authenticator()
        page.goto(f"{origin}/demo/passkeys")

        signed_up = page.evaluate(
            "fetch('/auth/register', {method: 'POST', headers: {'Content-Type': "
            "'application/json'}, body: JSON.stringify({email: 'alice@example.com', "
            f"username: 'alice', password: '{ALICE_PASSWORD}'}})}}).then(r => r.status)"
        )
        assert signed_up == 201
        signed_in = page.evaluate(f"demo.signIn('alice', '{ALICE_PASSWORD}')")
        assert signed_in["status"] == 200, signed_in
        registered = page.evaluate("demo.registerPasskey('laptop')")
        assert registered["status"] == 201, registered
        assert registered["body"]["passkey"]["name"] == "laptop"
        assert len(registered["body"]["recovery_codes"]) == 10

        assert page.evaluate("demo.signOut()")["status"] == 204
        assert page.evaluate("demo.me()")["status"] == 401

        page.goto(f"{origin}/demo/passkeys")  # a new page: nothing kept
        passkey = page.evaluate("demo.passkeySignIn()")
        assert passkey["status"] == 200, passkey
        me = page.evaluate("demo.me()")
        assert me["body"]["email"] == "alice@example.com"
        assert page.evaluate("document.getElementById('who').textContent") == "alice@example.com"

        # A clone: the same private key on another authenticator, its counter reset.
        page.clone_authenticator(authenticator)
        page.goto(f"{origin}/demo/passkeys")
        cloned = page.evaluate("demo.passkeySignIn()")
        assert cloned["status"] == 401, cloned
