"""RoleChecker, PermissionChecker, RoleHierarchy and the wildcard permission matcher."""

# No `from __future__ import annotations`: FastAPI resolves string annotations in the
# module globals, and these endpoints close over per-test dependencies.
import re
import sys
from collections.abc import Iterable
from typing import Annotated

import pytest
from fastapi import APIRouter, Depends, FastAPI, Security
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from fastapi_secure.auth import (
    BearerAuth,
    require_fresh,
)
from fastapi_secure.auth.guards import (
    PermissionChecker,
    RoleChecker,
)
from fastapi_secure.auth.roles import (
    RoleHierarchy,
    RolePermissions,
    permission_matches,
)
from fastapi_secure.errors import ConfigurationError
from fastapi_secure.testing import FakeClock
from fastapi_secure.tokens.claims import (
    AccessClaims,
    RefreshClaims,
)
from fastapi_secure.tokens.issuer import (
    Grant,
    TokenIssuer,
)
from tests.support.auth import access_token, bearer, client, make_issuer

HIERARCHY = RoleHierarchy({"admin": ["editor"], "editor": ["viewer"]})


@pytest.fixture
def issuer(fake_clock: FakeClock) -> TokenIssuer:
    return make_issuer(fake_clock)


@pytest.fixture
def auth(issuer: TokenIssuer) -> BearerAuth:
    return BearerAuth(issuer, scopes={"posts:write": "Write posts"})


async def token(issuer: TokenIssuer, *roles: str, scopes: Iterable[str] = ()) -> dict[str, str]:
    return bearer(await access_token(issuer, "alice", roles=roles, scopes=scopes))


# --- hierarchy ----------------------------------------------------------------


def test_hierarchy_is_transitive() -> None:
    assert HIERARCHY.implied("admin") == {"admin", "editor", "viewer"}
    assert HIERARCHY.implied("editor") == {"editor", "viewer"}
    assert HIERARCHY.implied("viewer") == {"viewer"}
    assert HIERARCHY.implied("stranger") == {"stranger"}
    assert HIERARCHY.expand(["editor", "auditor"]) == {"editor", "viewer", "auditor"}
    assert "'admin': ['admin', 'editor', 'viewer']" in repr(HIERARCHY)


@pytest.mark.parametrize(
    "graph",
    [
        {"a": ["a"]},
        {"a": ["b"], "b": ["a"]},
        {"a": ["b"], "b": ["c"], "c": ["d"], "d": ["b"]},
        {"x": ["y"], "a": ["b", "c"], "c": ["a"]},
    ],
)
def test_cycles_are_refused(graph: dict[str, list[str]]) -> None:
    with pytest.raises(ConfigurationError, match="cycle"):
        RoleHierarchy(graph)


@pytest.mark.parametrize(
    "graph", [{"admin": "editor"}, {"": ["x"]}, {"admin": ["has space"]}, {"admin": [3]}]
)
def test_malformed_hierarchies_are_refused(graph: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        RoleHierarchy(graph)  # type: ignore[arg-type]


def test_deep_hierarchy_needs_no_recursion() -> None:
    depth = sys.getrecursionlimit() + 200
    chain = {f"r{i}": [f"r{i + 1}"] for i in range(depth)}
    assert len(RoleHierarchy(chain).implied("r0")) == depth + 1


def _reference_reach(edges: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for child in edges.get(todo.pop(), set()):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


_names = st.sampled_from([f"r{i}" for i in range(7)])
_graphs = st.dictionaries(_names, st.sets(_names, max_size=4), max_size=7)


@given(_graphs)
def test_hierarchy_matches_a_reference_closure(graph: dict[str, set[str]]) -> None:
    cyclic = any(
        node in set().union(*(_reference_reach(graph, c) for c in graph.get(node, ())))
        for node in graph
    )
    if cyclic:
        with pytest.raises(ConfigurationError):
            RoleHierarchy(graph)
        return
    hierarchy = RoleHierarchy(graph)
    for node in [f"r{i}" for i in range(7)]:
        assert hierarchy.implied(node) == _reference_reach(graph, node)


# --- permissions --------------------------------------------------------------

_segment = st.sampled_from(["posts", "users", "read", "write", "own", "a", "b"])
_permission = st.lists(_segment, min_size=1, max_size=4).map(":".join)
_pattern = st.lists(_segment | st.just("*"), min_size=1, max_size=4).map(":".join)


def _reference_match(pattern: str, permission: str) -> bool:
    parts = pattern.split(":")
    regex = ":".join(
        (".+" if i == len(parts) - 1 else "[^:]+") if part == "*" else re.escape(part)
        for i, part in enumerate(parts)
    )
    return re.fullmatch(regex, permission) is not None


@given(_pattern, _permission)
def test_matcher_agrees_with_a_regex_model(pattern: str, permission: str) -> None:
    assert permission_matches(pattern, permission) == _reference_match(pattern, permission)


@given(_pattern, st.data())
def test_a_pattern_matches_its_instantiations(pattern: str, data: st.DataObject) -> None:
    parts = pattern.split(":")
    filled = [data.draw(_segment) if part == "*" else part for part in parts]
    if parts[-1] == "*":
        filled += data.draw(st.lists(_segment, max_size=2))
    assert permission_matches(pattern, ":".join(filled))


@given(_permission)
def test_star_matches_everything_and_literals_only_themselves(permission: str) -> None:
    assert permission_matches("*", permission)
    assert permission_matches(permission, permission)
    assert not permission_matches(permission, permission + ":more")
    assert not permission_matches(permission + ":*", permission)


@given(st.text(max_size=30), st.text(max_size=30))
def test_matcher_never_raises(pattern: str, permission: str) -> None:
    assert permission_matches(pattern, permission) in (True, False)


@pytest.mark.parametrize(
    ("pattern", "permission", "expected"),
    [
        ("posts:*", "posts:read", True),
        ("posts:*", "posts:read:own", True),
        ("posts:*", "posts", False),
        ("*:read", "posts:read", True),
        ("*:read", "posts:read:own", False),
        ("posts:read", "posts:write", False),
        ("post*", "posts", False),
        ("posts:*", "posts:*", False),
        ("", "", False),
    ],
)
def test_matcher_examples(pattern: str, permission: str, expected: bool) -> None:
    assert permission_matches(pattern, permission) is expected


GRANTS = RolePermissions(
    {"viewer": ["posts:read"], "editor": ["posts:*"], "admin": ["*"]}, hierarchy=HIERARCHY
)


def test_role_permissions_follow_the_hierarchy() -> None:
    assert GRANTS.allows(["viewer"], "posts:read")
    assert not GRANTS.allows(["viewer"], "posts:write")
    assert GRANTS.allows(["editor"], "posts:write")
    assert GRANTS.allows(["admin"], "users:delete")
    assert not GRANTS.allows([], "posts:read")
    assert not GRANTS.allows(["editor"], "posts:*")  # a required permission is literal
    assert GRANTS.permissions_of(["editor"]) == {"posts:*", "posts:read"}


@pytest.mark.parametrize("grants", [{"r": "posts:read"}, {"r": ["posts::read"]}, {"r": ["p*"]}])
def test_malformed_grants_are_refused(grants: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        RolePermissions(grants)  # type: ignore[arg-type]


# --- the dependencies over HTTP -----------------------------------------------


def role_app(checker: RoleChecker | PermissionChecker) -> FastAPI:
    app = FastAPI()

    @app.get("/admin")
    async def admin(claims: Annotated[AccessClaims, Depends(checker)]) -> dict[str, str]:
        return {"sub": claims.sub}

    return app


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("roles", "mode", "expected"),
    [
        (("admin",), "any", 200),
        (("viewer",), "any", 200),
        (("auditor",), "any", 403),
        ((), "any", 403),
        (("admin",), "all", 403),
        (("admin", "viewer"), "all", 200),
    ],
)
async def test_role_checker_modes(
    issuer: TokenIssuer, auth: BearerAuth, roles: tuple[str, ...], mode: str, expected: int
) -> None:
    checker = RoleChecker(["admin", "viewer"], auth=auth, mode=mode)  # type: ignore[arg-type]
    async with client(role_app(checker)) as http:
        response = await http.get("/admin", headers=await token(issuer, *roles))
    assert response.status_code == expected
    if expected == 403:
        assert response.json() == {
            "detail": {"code": "permission_denied", "message": "not allowed"}
        }
    else:
        assert response.json() == {"sub": "alice"}


@pytest.mark.anyio
async def test_hierarchy_lets_higher_roles_in(issuer: TokenIssuer, auth: BearerAuth) -> None:
    flat = RoleChecker(["viewer"], auth=auth)
    ranked = RoleChecker(["viewer"], auth=auth, hierarchy=HIERARCHY)
    admin = await token(issuer, "admin")
    async with client(role_app(flat)) as http:
        assert (await http.get("/admin", headers=admin)).status_code == 403
    async with client(role_app(ranked)) as http:
        assert (await http.get("/admin", headers=admin)).status_code == 200
    async with client(role_app(RoleChecker(["admin"], auth=auth, hierarchy=HIERARCHY))) as http:
        viewer = await token(issuer, "viewer")
        assert (await http.get("/admin", headers=viewer)).status_code == 403


@pytest.mark.anyio
async def test_unauthenticated_is_401_not_403(issuer: TokenIssuer, auth: BearerAuth) -> None:
    optional = BearerAuth(issuer, auto_error=False)
    async with client(role_app(RoleChecker(["admin"], auth=optional))) as http:
        missing = await http.get("/admin")
        invalid = await http.get("/admin", headers=bearer("x.y.z"))
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert invalid.status_code == 401
    assert invalid.json()["detail"]["code"] == "invalid_token"


@pytest.mark.anyio
async def test_permission_checker(issuer: TokenIssuer, auth: BearerAuth) -> None:
    checker = PermissionChecker(["posts:write", "posts:read"], auth=auth, grants=GRANTS)
    either = PermissionChecker(["users:delete", "posts:read"], auth=auth, grants=GRANTS, mode="any")
    async with client(role_app(checker)) as http:
        assert (await http.get("/admin", headers=await token(issuer, "editor"))).status_code == 200
        assert (await http.get("/admin", headers=await token(issuer, "admin"))).status_code == 200
        refused = await http.get("/admin", headers=await token(issuer, "viewer"))
        assert refused.status_code == 403
        assert refused.json()["detail"]["code"] == "permission_denied"
    async with client(role_app(either)) as http:
        assert (await http.get("/admin", headers=await token(issuer, "viewer"))).status_code == 200
        assert (await http.get("/admin", headers=await token(issuer, "guest"))).status_code == 403


@pytest.mark.anyio
async def test_on_a_router_and_app_wide(issuer: TokenIssuer, auth: BearerAuth) -> None:
    admins = RoleChecker(["admin"], auth=auth)
    router = APIRouter(prefix="/admin", dependencies=[Depends(admins)])

    @router.get("/users")
    async def users() -> list[str]:
        return ["alice"]

    app = FastAPI()
    app.include_router(router)

    @app.get("/public")
    async def public() -> str:
        return "ok"

    whole = FastAPI(dependencies=[Depends(admins)])

    @whole.get("/anything")
    async def anything() -> str:
        return "ok"

    admin, viewer = await token(issuer, "admin"), await token(issuer, "viewer")
    async with client(app) as http:
        assert (await http.get("/admin/users", headers=admin)).status_code == 200
        assert (await http.get("/admin/users", headers=viewer)).status_code == 403
        assert (await http.get("/admin/users")).status_code == 401
        assert (await http.get("/public")).status_code == 200
    async with client(whole) as http:
        assert (await http.get("/anything", headers=admin)).status_code == 200
        assert (await http.get("/anything", headers=viewer)).status_code == 403
        assert (await http.get("/anything")).status_code == 401
        assert (await http.get("/openapi.json")).status_code == 200  # docs are not API routes


@pytest.mark.anyio
async def test_scopes_through_security_are_enforced_and_documented(
    issuer: TokenIssuer, auth: BearerAuth
) -> None:
    editors = RoleChecker(["editor"], auth=auth, hierarchy=HIERARCHY)
    app = FastAPI()

    @app.post("/posts")
    async def write(
        claims: Annotated[AccessClaims, Security(editors, scopes=["posts:write"])],
    ) -> dict[str, str]:
        return {"sub": claims.sub}

    async with client(app) as http:
        ok = await http.post("/posts", headers=await token(issuer, "admin", scopes=["posts:write"]))
        no_scope = await http.post("/posts", headers=await token(issuer, "admin"))
        no_role = await http.post(
            "/posts", headers=await token(issuer, "viewer", scopes=["posts:write"])
        )
        schema = (await http.get("/openapi.json")).json()
    assert ok.status_code == 200
    assert no_scope.status_code == 403
    assert no_scope.json()["detail"]["code"] == "insufficient_scope"
    assert no_role.status_code == 403
    assert no_role.json()["detail"]["code"] == "permission_denied"
    assert schema["paths"]["/posts"]["post"]["security"] == [{"BearerAuth": ["posts:write"]}]
    assert schema["components"]["securitySchemes"]["BearerAuth"]["type"] == "oauth2"


async def still_admin(claims: RefreshClaims) -> Grant:
    return Grant(roles=("admin",))


@pytest.mark.anyio
async def test_checkers_compose_with_require_fresh(
    issuer: TokenIssuer, auth: BearerAuth, fake_clock: FakeClock
) -> None:
    fresh_admin = RoleChecker(["admin"], auth=require_fresh(auth, clock=fake_clock))
    admin_then_fresh = require_fresh(RoleChecker(["admin"], auth=auth), clock=fake_clock)
    pair = await issuer.issue("alice", roles=("admin",))
    rotated = await issuer.rotate(pair.refresh_token, grant_loader=still_admin)
    stale = bearer(rotated.access_token)
    viewer = await token(issuer, "viewer")
    for checker in (fresh_admin, admin_then_fresh):
        async with client(role_app(checker)) as http:  # type: ignore[arg-type]
            assert (
                await http.get("/admin", headers=await token(issuer, "admin"))
            ).status_code == 200
            refused = await http.get("/admin", headers=stale)
            assert refused.json()["detail"]["code"] == "fresh_token_required"
            assert (await http.get("/admin", headers=viewer)).status_code == 403


@pytest.mark.parametrize(
    "kwargs",
    [
        {"roles": []},
        {"roles": "admin"},
        {"roles": [""]},
        {"roles": ["admin"], "mode": "some"},
        {"roles": ["admin"], "auth": object()},
    ],
)
def test_role_checker_configuration(auth: BearerAuth, kwargs: dict[str, object]) -> None:
    options: dict[str, object] = {"auth": auth}
    options.update(kwargs)
    with pytest.raises(ConfigurationError):
        RoleChecker(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"permissions": []},
        {"permissions": "posts:read"},
        {"permissions": ["posts:*"]},
        {"permissions": ["posts read"]},
        {"permissions": ["posts:read"], "grants": {"admin": ["*"]}},
    ],
)
def test_permission_checker_configuration(auth: BearerAuth, kwargs: dict[str, object]) -> None:
    options: dict[str, object] = {"auth": auth, "grants": GRANTS}
    options.update(kwargs)
    with pytest.raises(ConfigurationError):
        PermissionChecker(**options)  # type: ignore[arg-type]


def test_checker_shows_the_auth_scheme_in_openapi(auth: BearerAuth) -> None:
    schema = TestClient(role_app(RoleChecker(["admin"], auth=auth))).get("/openapi.json").json()
    assert schema["paths"]["/admin"]["get"]["security"] == [{"BearerAuth": []}]
    assert (
        schema["components"]["securitySchemes"]["BearerAuth"]["flows"]["password"]["tokenUrl"]
        == "/auth/login"
    )
