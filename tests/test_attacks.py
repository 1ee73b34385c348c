"""Attacks found in the security review, each written from the attacker's side.

Each section holds the attack, which succeeded before its fix, and guards that
the fix still accepts what it should. Findings still open are described in the
review report, not here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.examples.test_reference_api import ALICE_PASSWORD, _serve, make_settings

# --- PasswordPolicy: NFKC of attacker-sized input on the event loop ---------------------

# Loopback port 1: nothing listens, the connection is refused at once.

# --- Reference API in cookie mode: the refresh route acts on a cookie ---------------------


@pytest.mark.anyio
async def test_cookie_refresh_from_a_foreign_origin_is_refused(tmp_path: Path) -> None:
    # CookieAuth's docs: routes that act on cookies without the dependency (the
    # refresh route) must call check_origin. A page on a sibling subdomain is
    # same-site, so even the SameSite=Strict refresh cookie goes with its POST.
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'api.db'}", auth_transport="cookie")
    async for api in _serve(settings):
        registered = await api.register("alice@example.com", "alice", ALICE_PASSWORD)
        assert registered.status_code == 201, registered.text
        await api.login("alice", ALICE_PASSWORD)
        assert "refresh_token" in api.client.cookies

        # Even with the right CSRF header, the foreign Origin alone is refused.
        csrf = api.client.cookies["csrf_token"]
        forged = await api.client.post(
            "/auth/refresh",
            headers={"Origin": "http://evil.127.0.0.1.nip.io", "X-CSRF-Token": csrf},
        )
        assert forged.status_code == 403, forged.text
        assert forged.json()["detail"]["code"] == "csrf_failed"

        own = await api.client.post(
            "/auth/refresh", headers={"Origin": "http://127.0.0.1:8000", "X-CSRF-Token": csrf}
        )
        assert own.status_code == 200, own.text
