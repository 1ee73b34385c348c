"""Passkeys in a real browser: headless Chromium with a DevTools virtual authenticator.

A tiny FastAPI app on uvicorn (127.0.0.1) uses ``fastapi_secure.mfa.Passkeys``;
Chromium registers a passkey, signs out, signs in with it, and a clone of the
credential (same key, counter reset) is refused and reported. Locally the test
skips when Chromium is missing (``apt-get install -y chromium``); with CI=true
it must run (``scripts/test`` installs Chromium then).
"""

from __future__ import annotations

import base64
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from fastapi_secure.mfa import PasskeyCredential, Passkeys
from fastapi_secure.mfa.stores import MemoryMFAStore
from tests.conftest import IN_CI
from tests.support.chromium import Page, find_chromium, headless_chromium
from tests.support.passkey_app import CredentialTable, build_app

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Served:
    def __init__(self, port: int, table: CredentialTable, reports: list[tuple[str, int]]) -> None:
        self.origin = f"http://localhost:{port}"
        self.table = table
        self.reports = reports


@pytest.fixture
def served() -> Iterator[Served]:
    port = _free_port()
    reports: list[tuple[str, int]] = []

    async def on_regression(stored: PasskeyCredential, presented: int) -> None:
        reports.append((stored.user_id, presented))

    # WebAuthn refuses IP addresses as RP IDs: the page is http://localhost (a
    # secure context), which Chromium resolves to the 127.0.0.1 server.
    passkeys = Passkeys(
        rp_id="localhost",
        rp_name="fastapi-secure test",
        origins=[f"http://localhost:{port}"],
        challenges=MemoryMFAStore(),
        on_sign_count_regression=on_regression,
    )
    table = CredentialTable()
    server = uvicorn.Server(
        uvicorn.Config(build_app(passkeys, table), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)  # waiting for a server to bind, not for an expiry
    try:
        yield Served(port, table, reports)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _b64url(data: str) -> bytes:
    return base64.b64decode(data + "=" * (-len(data) % 4))


def test_register_sign_out_sign_in_and_a_clone_refused(served: Served) -> None:
    binary = find_chromium(IN_CI)
    rules = "MAP localhost 127.0.0.1, MAP * ~NOTFOUND"
    with headless_chromium(binary, host_rules=rules) as browser:
        page = Page(browser)
        authenticator = page.add_authenticator()
        page.goto(f"{served.origin}/")

        registered = page.evaluate("register('alice')")
        assert registered["status"] == 200, registered
        stored = next(iter(served.table.by_id.values()))
        assert stored.user_id == "alice"
        assert stored.id_b64 == registered["body"]["id"]
        assert "internal" in stored.transports

        # Sign out (the page keeps no state) and sign in: passwordless, UV required.
        page.goto(f"{served.origin}/")
        first = page.evaluate("login()")
        assert first["status"] == 200, first
        assert first["body"]["user_id"] == "alice"
        assert first["body"]["user_verified"] is True
        second = page.evaluate("login()")
        assert second["status"] == 200, second
        assert second["body"]["sign_count"] > first["body"]["sign_count"]
        # As the second step after alice's password: only her credentials are allowed.
        after_password = page.evaluate("login('alice')")
        assert after_password["status"] == 200, after_password
        assert after_password["body"]["user_id"] == "alice"
        assert after_password["body"]["sign_count"] > second["body"]["sign_count"]

        # A clone: the same private key on another authenticator, its counter reset.
        original = page.clone_authenticator(authenticator)
        assert _b64url(original["credentialId"].replace("-", "+").replace("_", "/")) == stored.id
        cloned = page.evaluate("login()")
        assert cloned["status"] == 401, cloned
        assert cloned["body"]["detail"]["message"] == "passkey verification failed"
        assert served.reports == [("alice", 1)]
