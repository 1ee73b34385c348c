"""The auth dependencies and guards on WebSocket routes (Starlette's TestClient):
same claims as over HTTP, every refusal a 1008 close before accept."""

# No `from __future__ import annotations`: FastAPI resolves the endpoints' annotations.

from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated, Any, TypeVar

import pytest
from fastapi import Depends, FastAPI, Security, WebSocket
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.exceptions import HTTPException
from starlette.websockets import WebSocketDisconnect

from fastapi_secure.apikeys.auth import APIKeyAuth
from fastapi_secure.apikeys.keys import APIKeyManager
from fastapi_secure.apikeys.stores.memory import MemoryAPIKeyStore
from fastapi_secure.auth import (
    BearerAuth,
    CookieAuth,
    FirstOf,
    PermissionChecker,
    RoleChecker,
    RolePermissions,
    require_fresh,
)
from fastapi_secure.auth.bearer import BEARER_SUBPROTOCOL, subprotocol_token
from fastapi_secure.errors import ConfigurationError
from fastapi_secure.testing import FakeClock
from fastapi_secure.tokens.claims import AccessClaims
from fastapi_secure.tokens.issuer import TokenIssuer
from fastapi_secure.websocket import accept
from tests.support.auth import make_issuer

ORIGIN = "https://app.example.test"
CSRF_SECRET = "csrf-secret-with-at-least-32-bytes-of-entropy!!"
PEPPER = "pepper-for-tests-with-more-than-32-bytes!"
_T = TypeVar("_T")


class World:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.issuer: TokenIssuer = make_issuer(self.clock)
        self.keys = APIKeyManager(MemoryAPIKeyStore(), pepper=PEPPER, clock=self.clock)
        self.bearer = BearerAuth(self.issuer)
        self.query = BearerAuth(self.issuer, allow_query_token=True, query_param="token")
        self.cookie = CookieAuth(
            self.issuer, csrf_secret=CSRF_SECRET, allowed_origins=[ORIGIN], secure=False
        )
        self.api_key = APIKeyAuth(self.keys)
        grants = RolePermissions({"editor": ["posts:write"]})
        self.dependencies: dict[str, Any] = {
            "bearer": Depends(self.bearer),
            "query": Depends(self.query),
            "cookie": Depends(self.cookie),
            "key": Depends(self.api_key),
            "either": Depends(FirstOf(self.bearer, self.api_key)),
            "admin": Depends(RoleChecker(["admin"], auth=self.bearer)),
            "writer": Depends(PermissionChecker(["posts:write"], auth=self.bearer, grants=grants)),
            "fresh": Depends(require_fresh(self.bearer)),
            "scoped": Security(self.bearer, scopes=["chat:write"]),
            "admin-key": Depends(RoleChecker(["admin"], auth=FirstOf(self.bearer, self.api_key))),
        }
        self.app = self._app()

    def _app(self) -> FastAPI:
        app = FastAPI()
        for name, marker in self.dependencies.items():
            self._route(app, name, marker)

        @app.get("/http/query")
        async def http_query(
            claims: Annotated[AccessClaims, Depends(self.query)],
        ) -> dict[str, str]:
            return {"sub": claims.sub}  # pragma: no cover - must be refused

        return app

    @staticmethod
    def _route(app: FastAPI, name: str, marker: Any) -> None:
        @app.websocket(f"/ws/{name}")
        async def endpoint(websocket: WebSocket, claims: Annotated[AccessClaims, marker]) -> None:
            await accept(websocket)
            await websocket.send_json({"sub": claims.sub, "roles": sorted(claims.roles)})
            await websocket.close()


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
def tc(world: World) -> Iterator[TestClient]:
    with TestClient(world.app) as running:
        yield running


def on_app_loop(tc: TestClient, function: Callable[[], Awaitable[_T]]) -> _T:
    """Run ``function`` on the app's event loop (its stores belong to that loop)."""
    assert tc.portal is not None
    return tc.portal.call(function)


def token(tc: TestClient, world: World, subject: str = "alice", **options: Any) -> str:
    pair = on_app_loop(tc, lambda: world.issuer.issue(subject, **options))
    return pair.access_token


def admitted(tc: TestClient, path: str, **options: Any) -> dict[str, Any]:
    with tc.websocket_connect(path, **options) as ws:
        answer: dict[str, Any] = ws.receive_json()
        return answer


def refused(tc: TestClient, path: str, **options: Any) -> None:
    with pytest.raises(WebSocketDisconnect) as caught, tc.websocket_connect(path, **options):
        pass  # pragma: no cover - the handshake must fail
    assert caught.value.code == 1008
    assert caught.value.reason == ""


def test_bearer_header_gives_the_same_claims_as_over_http(tc: TestClient, world: World) -> None:
    value = token(tc, world, roles=("admin",))
    answer = admitted(tc, "/ws/bearer", headers={"Authorization": f"Bearer {value}"})
    assert answer == {"sub": "alice", "roles": ["admin"]}


def test_bearer_subprotocol_is_accepted_with_bearer_only(tc: TestClient, world: World) -> None:
    value = token(tc, world)
    with tc.websocket_connect("/ws/bearer", subprotocols=["bearer", value]) as ws:
        assert ws.accepted_subprotocol == BEARER_SUBPROTOCOL
        assert ws.receive_json()["sub"] == "alice"


def test_header_wins_over_subprotocol(tc: TestClient, world: World) -> None:
    alice, bob = token(tc, world, "alice"), token(tc, world, "bob")
    answer = admitted(
        tc,
        "/ws/bearer",
        headers={"Authorization": f"Bearer {alice}"},
        subprotocols=["bearer", bob],
    )
    assert answer["sub"] == "alice"


@pytest.mark.parametrize(
    "protocols",
    [
        "bearer",
        "bearer, ",
        "chat, bearer",
        "bearer, a.b.c, bearer, a.b.c",
        "bearer, " + "x" * 9000,
        "bearer, tok{en}",
        "x" * 20000,
    ],
)
def test_bad_subprotocol_tokens_close_1008(tc: TestClient, protocols: str) -> None:
    refused(tc, "/ws/bearer", headers={"Sec-WebSocket-Protocol": protocols})


def test_no_credentials_close_1008(tc: TestClient, world: World) -> None:
    for name in world.dependencies:
        refused(tc, f"/ws/{name}")


def test_forged_and_expired_tokens_close_1008(tc: TestClient, world: World) -> None:
    value = token(tc, world)
    refused(tc, "/ws/bearer", subprotocols=["bearer", value[:-3] + "AAA"])
    world.clock.advance(3600)
    refused(tc, "/ws/bearer", subprotocols=["bearer", value])


def test_query_token_only_when_switched_on_and_only_on_websockets(
    tc: TestClient, world: World
) -> None:
    value = token(tc, world)
    refused(tc, f"/ws/bearer?access_token={value}")
    assert admitted(tc, f"/ws/query?token={value}")["sub"] == "alice"
    # The switch is for WebSockets: an HTTP request still needs the header.
    assert tc.get(f"/http/query?token={value}").status_code == 401
    refused(tc, f"/ws/query?token={value}&token={value}")
    refused(tc, "/ws/query?token=not%20a%20token")


def test_query_param_must_be_named() -> None:
    with pytest.raises(ConfigurationError):
        BearerAuth(make_issuer(FakeClock()), query_param="")


def test_cookie_needs_an_allowed_origin(tc: TestClient, world: World) -> None:
    value = token(tc, world)
    cookie = {"Cookie": f"access_token={value}"}
    assert admitted(tc, "/ws/cookie", headers={**cookie, "Origin": ORIGIN})["sub"] == "alice"
    refused(tc, "/ws/cookie", headers={**cookie, "Origin": "https://evil.example.test"})
    refused(tc, "/ws/cookie", headers={**cookie, "Origin": "null"})
    refused(tc, "/ws/cookie", headers=cookie)
    # Referer is no substitute on a handshake: browsers always send Origin.
    refused(tc, "/ws/cookie", headers={**cookie, "Referer": f"{ORIGIN}/chat"})


def test_api_key_and_first_of(tc: TestClient, world: World) -> None:
    created = on_app_loop(tc, lambda: world.keys.create("carol", name="bot"))
    header = {"X-API-Key": created.key}
    assert admitted(tc, "/ws/key", headers=header)["sub"] == "carol"
    assert admitted(tc, "/ws/either", headers=header)["sub"] == "carol"
    value = token(tc, world)
    assert admitted(tc, "/ws/either", subprotocols=["bearer", value])["sub"] == "alice"
    refused(tc, "/ws/key", headers={"X-API-Key": created.key[:-2] + "zz"})
    # The first way in that is present decides: a bad token is not rescued by a good key.
    refused(
        tc,
        "/ws/either",
        headers={"X-API-Key": created.key, "Authorization": f"Bearer {value[:-3]}AAA"},
    )
    on_app_loop(tc, lambda: world.keys.revoke(created.record.id, subject="carol"))
    refused(tc, "/ws/key", headers=header)


def test_guards_close_1008_when_not_allowed(tc: TestClient, world: World) -> None:
    user = token(tc, world, "user", roles=("viewer",))
    admin = token(tc, world, "root", roles=("admin",))
    editor = token(tc, world, "ed", roles=("editor",))
    stale = token(tc, world, "old", fresh=False)
    refused(tc, "/ws/admin", subprotocols=["bearer", user])
    assert admitted(tc, "/ws/admin", subprotocols=["bearer", admin])["sub"] == "root"
    refused(tc, "/ws/writer", subprotocols=["bearer", user])
    assert admitted(tc, "/ws/writer", subprotocols=["bearer", editor])["sub"] == "ed"
    refused(tc, "/ws/fresh", subprotocols=["bearer", stale])
    assert admitted(tc, "/ws/fresh", subprotocols=["bearer", user])["sub"] == "user"
    refused(tc, "/ws/admin-key", subprotocols=["bearer", user])


def test_scopes_apply_on_websockets(tc: TestClient, world: World) -> None:
    without = token(tc, world, "a")
    with_scope = token(tc, world, "b", scopes=("chat:write",))
    refused(tc, "/ws/scoped", subprotocols=["bearer", without])
    assert admitted(tc, "/ws/scoped", subprotocols=["bearer", with_scope])["sub"] == "b"


_HEADER_TEXT = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=300,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=_HEADER_TEXT)
def test_any_subprotocol_header_is_accepted_or_closed_never_a_crash(
    tc: TestClient, value: str
) -> None:
    # No valid token can come out of random text: every handshake closes 1008.
    refused(tc, "/ws/bearer", headers={"Sec-WebSocket-Protocol": value.encode("latin-1")})


@given(
    entries=st.lists(
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz.-_~+/=, \t", max_size=40), max_size=6
    )
)
def test_subprotocol_token_returns_a_token_or_refuses(entries: list[str]) -> None:
    header = ", ".join(entries)
    try:
        found = subprotocol_token([header], 8192)
    except HTTPException as exc:
        status = exc.status_code
    else:
        status = 200
        if found is not None:
            # Only ever the entry right after the one "bearer" entry.
            offered = [entry.strip(" \t") for entry in header.split(",") if entry.strip(" \t")]
            assert offered.count(BEARER_SUBPROTOCOL) == 1
            assert offered[offered.index(BEARER_SUBPROTOCOL) + 1] == found
    assert status in (200, 401)
