"""Run panva's oidc-provider (tests/oidc/provider/server.mjs) on loopback for the tests.

The provider is a real, certified OpenID Provider from npm; the lock file is
committed and ``node_modules`` is installed with ``npm ci`` when missing.
Without Node.js the tests that need it skip locally (with the install
command) and fail under ``CI=true``.
"""

from __future__ import annotations

import html
import json
import os
import queue
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NoReturn

import httpx
import pytest

PROVIDER_DIR = Path(__file__).resolve().parent.parent / "oidc" / "provider"
INSTALL_HINT = f"install Node.js >= 20 and npm, then run: npm ci --prefix {PROVIDER_DIR}"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

CLIENT_ID = "test-app"
CLIENT_SECRET = "test-app-secret-that-is-long-enough-0123456789"
REDIRECT_URI = "https://testserver/auth/oidc/local/callback"
RESOURCE = "https://api.test"


def _unavailable(message: str) -> NoReturn:
    if IN_CI:
        pytest.fail(f"CI=true: {message}")
    pytest.skip(message)


def ensure_installed() -> str:
    """The node binary, after ``npm ci`` when node_modules is missing."""
    node = shutil.which("node")
    npm = shutil.which("npm")
    if node is None or npm is None:
        _unavailable(f"Node.js is not installed; {INSTALL_HINT}")
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=PROVIDER_DIR,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            _unavailable(f"npm ci failed ({done.stderr.strip()[-300:]}); {INSTALL_HINT}")
    return node


@dataclass
class LocalProvider:
    """A running oidc-provider and its test controls."""

    issuer: str
    process: subprocess.Popen[bytes]

    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    redirect_uri: str = REDIRECT_URI
    resource: str = RESOURCE

    def _control(self, method: str, path: str) -> dict[str, Any]:
        response = httpx.request(method, f"{self.issuer}/__test/{path}", timeout=10)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def jwks_requests(self) -> int:
        """Requests the provider served at its jwks_uri since the last reset."""
        return int(self._control("GET", "stats")["jwks"])

    def reset_counts(self) -> None:
        self._control("POST", "reset")

    def rotate(self) -> list[str]:
        """New signing keys (new kids) first; the old ones stay published."""
        kids: list[str] = self._control("POST", "rotate")["kids"]
        return kids

    def jwks_down(self, down: bool = True) -> None:
        self._control("POST", "jwks-down" if down else "jwks-up")

    def client_credentials_token(self, scope: str = "read") -> str:
        """A JWT access token (RFC 9068) for :data:`RESOURCE`, from the token endpoint."""
        response = httpx.post(
            f"{self.issuer}/token",
            data={"grant_type": "client_credentials", "resource": self.resource, "scope": scope},
            auth=(self.client_id, self.client_secret),
            timeout=10,
        )
        response.raise_for_status()
        token: str = response.json()["access_token"]
        return token


def _first_json_line(stream: IO[bytes], timeout: float) -> dict[str, Any]:
    lines: queue.Queue[bytes] = queue.Queue()

    def pump() -> None:
        for line in iter(stream.readline, b""):
            lines.put(line)
        lines.put(b"")

    threading.Thread(target=pump, daemon=True).start()
    while True:
        line = lines.get(timeout=timeout)
        if not line:
            raise RuntimeError("oidc-provider exited before it was ready")
        if line.startswith(b"{"):
            result: dict[str, Any] = json.loads(line)
            return result


@contextmanager
def running_provider(log_path: Path) -> Iterator[LocalProvider]:
    node = ensure_installed()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [node, "server.mjs", "--redirect-uri", REDIRECT_URI],
            cwd=PROVIDER_DIR,
            stdout=subprocess.PIPE,
            stderr=log,
        )
        try:
            assert process.stdout is not None
            try:
                ready = _first_json_line(process.stdout, timeout=60)
            except (queue.Empty, RuntimeError) as exc:
                _unavailable(f"oidc-provider did not start ({exc}); see {log_path}")
            yield LocalProvider(issuer=ready["issuer"], process=process)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            if process.stdout is not None:
                process.stdout.close()


_FORM_ACTION = re.compile(r'<form[^>]*action="([^"]+)"')
_PROMPT = re.compile(r'name="prompt" value="([a-z]+)"')


async def sign_in_at_provider(
    browser: httpx.AsyncClient, url: str, redirect_uri: str, *, login: str = "alice"
) -> str:
    """Play the user at the provider: follow redirects, post the dev login and consent
    forms, and return the URL the provider finally sends the browser to (the callback).
    """
    for _ in range(20):
        if url.startswith(redirect_uri):
            return url
        response = await browser.get(url)
        if response.is_redirect:
            url = str(response.url.join(response.headers["location"]))
            continue
        action = _FORM_ACTION.search(response.text)
        prompt = _PROMPT.search(response.text)
        if response.status_code != 200 or action is None or prompt is None:
            raise AssertionError(f"unexpected page at the provider: {response.status_code}")
        form = {"prompt": prompt.group(1)}
        if form["prompt"] == "login":
            form.update(login=login, password="any password")
        posted = await browser.post(
            str(response.url.join(html.unescape(action.group(1)))), data=form
        )
        if not posted.is_redirect:
            raise AssertionError(f"the provider refused the {form['prompt']} form")
        url = str(posted.url.join(posted.headers["location"]))
    raise AssertionError("too many steps at the provider")
