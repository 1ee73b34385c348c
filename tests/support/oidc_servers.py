"""A crafted identity provider: a real HTTP server on 127.0.0.1 serving chosen documents.

Attacker-side tests need a provider that misbehaves on purpose (another
issuer in discovery, an HMAC key in its JWKS, an endpoint that hangs or
streams 50 MB). This is a real ``ThreadingHTTPServer`` on loopback, not a
mock transport: the code under test does real HTTP through httpx.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from fastapi_secure.tokens.keys import Key, KeySet

Behaviour = Callable[[BaseHTTPRequestHandler], None]


@dataclass
class Route:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    behaviour: Behaviour | None = None


class CraftedProvider:
    """Routes set by the test; every request counted by path."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: Counter[str] = Counter()
        self.release = threading.Event()  # set at shutdown to free hanging handlers
        self.requests: list[tuple[str, str, bytes]] = []
        self.bytes_sent = 0
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _serve(self) -> None:
                path = self.path.split("?", 1)[0]
                provider.hits[path] += 1
                length = int(self.headers.get("content-length") or 0)
                provider.requests.append((self.command, path, self.rfile.read(length)))
                route = provider.routes.get(path)
                if route is None:
                    self.send_error(404)
                    return
                if route.behaviour is not None:
                    route.behaviour(self)
                    return
                data = (
                    route.body if isinstance(route.body, bytes) else json.dumps(route.body).encode()
                )
                self.send_response(route.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in route.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = _serve  # noqa: N815
            do_POST = _serve  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.signing = KeySet(Key.generate("ES256", kid="good-1"))

    @property
    def issuer(self) -> str:
        return self.url

    def serve_discovery(self, **overrides: Any) -> None:
        document = {
            "issuer": self.issuer,
            "jwks_uri": f"{self.url}/jwks",
            "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token",
            "userinfo_endpoint": f"{self.url}/userinfo",
            "introspection_endpoint": f"{self.url}/introspect",
        }
        document.update(overrides)
        self.routes["/.well-known/openid-configuration"] = Route(body=document)

    def serve_jwks(self, jwks: Any = None, *, headers: dict[str, str] | None = None) -> None:
        self.routes["/jwks"] = Route(
            body=self.signing.jwks() if jwks is None else jwks, headers=headers or {}
        )

    def sign(
        self, claims: dict[str, Any], *, typ: str = "at+jwt", keys: KeySet | None = None
    ) -> str:
        return (keys or self.signing).sign(claims, typ=typ)

    def start(self) -> None:
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def crafted_provider() -> Iterator[CraftedProvider]:
    provider = CraftedProvider()
    provider.start()
    try:
        yield provider
    finally:
        provider.stop()


def hang(provider: CraftedProvider) -> Behaviour:
    """Accept the request, then say nothing until the test ends."""

    def behaviour(handler: BaseHTTPRequestHandler) -> None:
        provider.release.wait(30)

    return behaviour


def drip(provider: CraftedProvider, *, interval: float = 0.2) -> Behaviour:
    """Send headers, then one byte per ``interval`` forever: a read timeout never fires."""

    def behaviour(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.end_headers()
        try:
            handler.wfile.write(b'{"keys":[')
            while not provider.release.wait(interval):
                handler.wfile.write(b" ")
                handler.wfile.flush()
        except OSError:
            return

    return behaviour


def flood(
    provider: CraftedProvider, total: int = 50 * 1024 * 1024, *, declare_length: bool = False
) -> Behaviour:
    """Stream ``total`` bytes of JSON whitespace until the client hangs up; count what was sent."""

    def behaviour(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        if declare_length:
            handler.send_header("Content-Length", str(total))
        handler.end_headers()
        chunk = b" " * 65536
        sent = 0
        started = time.monotonic()
        try:
            while sent < total and time.monotonic() - started < 30:
                handler.wfile.write(chunk)
                sent += len(chunk)
        except OSError:
            return
        finally:
            provider.bytes_sent += sent

    return behaviour
