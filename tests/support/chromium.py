"""Headless Chromium driven over the DevTools protocol through a pipe (standard library only).

``--remote-debugging-pipe`` speaks NUL-terminated JSON on the child's file
descriptors 3 (commands in) and 4 (answers and events out). A small Python
wrapper process wires them and ``exec``s Chromium, so no ``preexec_fn`` runs
in a process that may have threads (the test's uvicorn server).

``scripts/check-docs-csp.py`` drives Chromium with these classes too (it
subclasses them to answer intercepted requests and watch CSP reports).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest

INSTALL_HINT = "apt-get install -y chromium"

# A platform authenticator (a passkey on this device) that verifies the user by itself.
VIRTUAL_AUTHENTICATOR: dict[str, Any] = {
    "protocol": "ctap2",
    "transport": "internal",
    "hasResidentKey": True,
    "hasUserVerification": True,
    "isUserVerified": True,
    "automaticPresenceSimulation": True,
}


def find_chromium(in_ci: bool) -> str:
    """The Chromium binary; skips (locally) or fails (CI=true) when there is none."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    message = f"Chromium is not installed; install it with: {INSTALL_HINT}"
    if in_ci:
        pytest.fail(f"CI=true: {message}")
    pytest.skip(message)


# Runs in the child: put the pipe ends on fds 3 and 4, then become Chromium.
_WIRE = (
    "import os, sys; r, w = int(sys.argv[1]), int(sys.argv[2]); "
    "os.dup2(r, 3, inheritable=True); os.dup2(w, 4, inheritable=True); "
    "os.execv(sys.argv[3], sys.argv[3:])"
)


def _above_four(fd: int) -> int:
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return moved


class Browser:
    """One headless Chromium; :meth:`call` sends a command and waits for its answer."""

    def __init__(self, binary: str, profile: str, *, host_rules: str, stderr: Any = None) -> None:
        """``stderr``: where Chromium's own log goes (a file), discarded by default."""
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # The child's ends move above 4 first: a redirection onto 3 must not
        # overwrite the other end before it is read (pytest may leave 3 and 4 free).
        to_browser_r = _above_four(to_browser_r)
        from_browser_w = _above_four(from_browser_w)
        command = [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            f"--host-resolver-rules={host_rules}",
            f"--user-data-dir={profile}",
            "--remote-debugging-pipe",
            "about:blank",
        ]
        self.process = subprocess.Popen(
            [sys.executable, "-c", _WIRE, str(to_browser_r), str(from_browser_w), *command],
            pass_fds=(to_browser_r, from_browser_w),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL if stderr is None else stderr,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def _read(self, timeout: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([self._from_browser], [], [], remaining)
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    raise RuntimeError("Chromium closed the DevTools pipe")
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        return message

    def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> int:
        """Send a command without waiting for its answer; its id."""
        self._next_id += 1
        request: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            request["sessionId"] = session
        os.write(self._to_browser, json.dumps(request).encode() + b"\0")
        return self._next_id

    def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session: str | None = None,
        timeout: float = 60.0,
    ) -> dict[str, Any]:
        """Send a command and wait for its answer (its ``result``); events met on the way
        go to :meth:`_event`."""
        request_id = self.send(method, params, session)
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            message = self._read(remaining)
            if message is None:
                break
            if message.get("id") == request_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            self._event(message)
        raise TimeoutError(method)

    def pump(self, seconds: float) -> None:
        """Take in the events that arrive within ``seconds``."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            message = self._read(remaining)
            if message is not None:
                self._event(message)

    def _event(self, message: dict[str, Any]) -> None:
        if "method" in message:  # not the late answer to a command sent with send()
            self.events.append(message)

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):
            self.call("Browser.close", timeout=10)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for fd in (self._to_browser, self._from_browser):
            with contextlib.suppress(OSError):
                os.close(fd)


class Page:
    """A tab attached with a flat session."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.target: str = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session: str = browser.call(
            "Target.attachToTarget", {"targetId": self.target, "flatten": True}
        )["sessionId"]
        self.send("Page.enable")
        self.send("Runtime.enable")

    def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.browser.call(method, params, self.session)

    def evaluate(self, expression: str, *, gesture: bool = True) -> Any:
        """The value of ``expression`` (a promise awaited), run as a user gesture by default."""
        result = self.send(
            "Runtime.evaluate",
            {
                "expression": expression,
                "awaitPromise": True,
                "returnByValue": True,
                "userGesture": gesture,
            },
        )
        if "exceptionDetails" in result:
            raise RuntimeError(json.dumps(result["exceptionDetails"])[:1000])
        return result["result"].get("value")

    def add_authenticator(self) -> str:
        """Turn WebAuthn's virtual authenticators on in this tab and add one
        (:data:`VIRTUAL_AUTHENTICATOR`); its id."""
        self.send("WebAuthn.enable", {"enableUI": False})
        return self._new_authenticator()

    def clone_authenticator(self, authenticator: str) -> dict[str, Any]:
        """Replace ``authenticator`` by a clone: its first credential (the same private
        key) on a new authenticator, the signature counter reset. That credential."""
        credentials = self.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
        original: dict[str, Any] = credentials["credentials"][0]
        self.send("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": authenticator})
        self.send(
            "WebAuthn.addCredential",
            {
                "authenticatorId": self._new_authenticator(),
                "credential": {**original, "signCount": 0},
            },
        )
        return original

    def _new_authenticator(self) -> str:
        options = {"options": VIRTUAL_AUTHENTICATOR}
        authenticator: str = self.send("WebAuthn.addVirtualAuthenticator", options)[
            "authenticatorId"
        ]
        return authenticator

    def goto(self, url: str, timeout: float = 20.0) -> None:
        self.send("Page.navigate", {"url": url})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(RuntimeError):
                if self.evaluate("document.readyState === 'complete' && !!window.ready"):
                    return
            time.sleep(0.1)  # polling a page load, not waiting for an expiry
        raise TimeoutError(f"page {url} did not load")


@contextlib.contextmanager
def headless_chromium(binary: str, *, host_rules: str) -> Iterator[Browser]:
    profile = tempfile.mkdtemp(prefix="fs-chromium-")
    browser = Browser(binary, profile, host_rules=host_rules)
    try:
        yield browser
    finally:
        browser.close()
        shutil.rmtree(profile, ignore_errors=True)
