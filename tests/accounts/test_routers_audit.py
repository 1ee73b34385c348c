"""The account routers tell the audit which of their routes are public, and why."""

from __future__ import annotations

import pytest

from fastapi_secure.audit import assert_all_routes_protected, audit
from fastapi_secure.testing import FakeClock
from tests.support.accounts import build_accounts_app

PUBLIC = {
    "/auth/login": "login form",
    "/auth/refresh": "authenticated by the refresh token",
    "/auth/register": "registration form",
    "/auth/verify/request": "same answer for every address",
    "/auth/verify/confirm": "authenticated by the mailed token",
    "/auth/password-reset/request": "same answer for every address",
    "/auth/password-reset/confirm": "authenticated by the mailed token",
}


@pytest.mark.parametrize("mode", ["bearer", "cookie"])
@pytest.mark.parametrize("reveal_existing", [True, False])
def test_public_routes_mark_themselves_and_the_rest_are_protected(
    fake_clock: FakeClock, mode: str, reveal_existing: bool
) -> None:
    world = build_accounts_app(fake_clock, mode=mode, reveal_existing=reveal_existing)
    report = audit(world.app)
    public = {route.path: route.public_reason for route in report.routes if route.public}
    assert public == PUBLIC
    for route in report.routes:
        assert route.public or route.protected or route.docs, route
    assert_all_routes_protected(world.app)


@pytest.mark.parametrize("dpop", ["optional", "required"])
def test_with_dpop_the_logout_routes_are_protected_by_it(fake_clock: FakeClock, dpop: str) -> None:
    world = build_accounts_app(fake_clock, dpop=dpop)
    routes = {route.path: route for route in audit(world.app).routes}
    for path in ("/auth/logout", "/auth/logout-all"):
        assert "dpop" in routes[path].authentication, routes[path]
    assert_all_routes_protected(world.app)
