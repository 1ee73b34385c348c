"""Second factors in the reference API (issue 11), on SQLite + memory stores and on
real PostgreSQL + Redis: enrolment, the login's second step, recovery codes, passkeys,
step-up, and the attacker's side."""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fastapi_secure.testing import FakeClock, totp_code
from tests.conftest import fresh_postgres_database
from tests.support.dpop import DPoPClient
from tests.support.reference_api import ALICE_PASSWORD, Api, bearer, make_settings, serve
from tests.support.webauthn_authenticator import SoftAuthenticator

pytestmark = pytest.mark.anyio

ORIGIN = "http://localhost:8000"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(
    params=[
        "sqlite-memory",
        pytest.param("postgres-redis", marks=[pytest.mark.postgres, pytest.mark.redis]),
    ]
)
async def api(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[Api]:
    if request.param == "sqlite-memory":
        settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'api.db'}")
        async for served in serve(settings, clock=clock):
            yield served
        return
    redis_url: str = request.getfixturevalue("redis_url")
    prefix: str = request.getfixturevalue("redis_prefix")
    async with fresh_postgres_database() as postgres_url:
        settings = make_settings(postgres_url, redis_url, redis_key_prefix=prefix)
        async for served in serve(settings, clock=clock):
            yield served


def claims_of(tokens: dict[str, Any]) -> dict[str, Any]:
    """The access token's payload (already verified by the API that issued it)."""
    payload = tokens["access_token"].split(".")[1]
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return data


async def signed_up(api: Api, name: str) -> dict[str, Any]:
    created = await api.register(f"{name}@example.com", name, ALICE_PASSWORD)
    assert created.status_code == 201, created.text
    return await api.login(name, ALICE_PASSWORD)


async def enrol_totp(api: Api, tokens: dict[str, Any], clock: FakeClock) -> tuple[str, list[str]]:
    started = await api.client.post("/users/me/mfa/totp", headers=bearer(tokens))
    assert started.status_code == 201, started.text
    body = started.json()
    assert body["otpauth_uri"].startswith("otpauth://totp/")
    assert body["qr_svg"].startswith("<svg")
    assert started.headers["cache-control"] == "no-store"
    secret: str = body["secret"]
    confirmed = await api.client.post(
        "/users/me/mfa/totp/confirm",
        json={"code": totp_code(secret, clock=clock)},
        headers=bearer(tokens),
    )
    assert confirmed.status_code == 200, confirmed.text
    codes: list[str] = confirmed.json()["recovery_codes"]
    assert len(codes) == 10
    return secret, codes


async def second_step(api: Api, name: str) -> dict[str, Any]:
    response = await api.client.post(
        "/auth/login", data={"username": name, "password": ALICE_PASSWORD}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["mfa_required"] is True, body
    assert "access_token" not in body
    assert "refresh_token" not in body
    return body


async def verify(api: Api, **body: str) -> httpx.Response:
    return await api.client.post("/auth/mfa/verify", json=body)


async def test_totp_and_recovery_code_journey(api: Api, clock: FakeClock) -> None:
    before = await signed_up(api, "alice")
    secret, codes = await enrol_totp(api, before, clock)
    status = await api.client.get("/users/me/mfa", headers=bearer(before))
    assert status.json()["methods"] == ["totp", "recovery_code"]
    assert status.json()["recovery_codes_remaining"] == 10

    step = await second_step(api, "alice")
    assert step["methods"] == ["totp", "recovery_code"]
    assert step["mfa_token"].startswith("mfa_")
    assert step["expires_in"] == 300
    # The MFA token is no access token.
    assert (
        await api.client.get("/users/me", headers={"Authorization": f"Bearer {step['mfa_token']}"})
    ).status_code == 401

    clock.advance(30)  # the enrolment's code was used: the next step's code
    code = totp_code(secret, clock=clock)
    done = await verify(api, mfa_token=step["mfa_token"], code=code)
    assert done.status_code == 200, done.text
    tokens = done.json()
    assert claims_of(tokens)["amr"] == ["pwd", "otp", "mfa"]
    assert (await api.client.get("/users/me", headers=bearer(tokens))).status_code == 200

    # The MFA token worked once; the code worked once.
    assert (await verify(api, mfa_token=step["mfa_token"], code=code)).status_code == 401
    again = await second_step(api, "alice")
    replay = await verify(api, mfa_token=again["mfa_token"], code=code)
    assert replay.status_code == 401
    assert replay.json()["detail"]["code"] == "invalid_credentials"

    # A recovery code, once (the same MFA token survives one wrong attempt).
    rescued = await verify(api, mfa_token=again["mfa_token"], recovery_code=codes[0].lower())
    assert rescued.status_code == 200, rescued.text
    assert claims_of(rescued.json())["amr"] == ["pwd", "otp", "mfa"]
    third = await second_step(api, "alice")
    assert (
        await verify(api, mfa_token=third["mfa_token"], recovery_code=codes[0])
    ).status_code == 401

    # An MFA token expires after 5 minutes (of the API's clock).
    late = await second_step(api, "alice")
    clock.advance(301)
    fresh_code = totp_code(secret, clock=clock)
    assert (await verify(api, mfa_token=late["mfa_token"], code=fresh_code)).status_code == 401


async def test_step_up_routes_refuse_a_token_without_mfa(api: Api, clock: FakeClock) -> None:
    before = await signed_up(api, "alice")  # amr ["pwd"], fresh
    secret, _ = await enrol_totp(api, before, clock)
    refusals = [
        await api.client.delete("/users/me/mfa/totp", headers=bearer(before)),
        await api.client.post("/users/me/mfa/recovery-codes", headers=bearer(before)),
        await api.client.post("/users/me/passkeys/register/options", headers=bearer(before)),
        await api.client.post(
            "/users/me/api-keys", json={"name": "ci", "scopes": []}, headers=bearer(before)
        ),
        await api.client.patch(
            "/users/me/password",
            json={"current_password": ALICE_PASSWORD, "new_password": "a-brand-new-passphrase-9"},
            headers=bearer(before),
        ),
    ]
    for refused in refusals:
        assert refused.status_code == 401, refused.text
        assert refused.json()["detail"]["code"] == "mfa_required"
        assert "insufficient_user_authentication" in refused.headers["www-authenticate"]

    step = await second_step(api, "alice")
    clock.advance(30)
    tokens = (
        await verify(api, mfa_token=step["mfa_token"], code=totp_code(secret, clock=clock))
    ).json()
    fresh_set = await api.client.post("/users/me/mfa/recovery-codes", headers=bearer(tokens))
    assert fresh_set.status_code == 200
    assert len(fresh_set.json()["recovery_codes"]) == 10
    key = await api.client.post("/users/me/api-keys", json={"name": "ci"}, headers=bearer(tokens))
    assert key.status_code == 201, key.text

    # Too long after the MFA login: step up again.
    clock.advance(301)
    stale = await api.client.delete("/users/me/mfa/totp", headers=bearer(tokens))
    assert stale.status_code == 401
    assert stale.json()["detail"]["code"] == "mfa_required"

    step = await second_step(api, "alice")
    clock.advance(30)
    tokens = (
        await verify(api, mfa_token=step["mfa_token"], code=totp_code(secret, clock=clock))
    ).json()
    removed = await api.client.delete("/users/me/mfa/totp", headers=bearer(tokens))
    assert removed.status_code == 204
    assert (
        await api.client.delete("/users/me/mfa/totp", headers=bearer(tokens))
    ).status_code == 404
    # Without a factor: a plain login again, and the recovery codes are void.
    plain = await api.login("alice", ALICE_PASSWORD)
    assert claims_of(plain)["amr"] == ["pwd"]
    status = (await api.client.get("/users/me/mfa", headers=bearer(plain))).json()
    assert status == {
        "methods": [],
        "totp": False,
        "totp_pending": False,
        "totp_last_used_at": None,
        "passkeys": 0,
        "recovery_codes_remaining": 0,
    }


async def test_enrolment_edges(api: Api, clock: FakeClock) -> None:
    tokens = await signed_up(api, "alice")
    no_pending = await api.client.post(
        "/users/me/mfa/totp/confirm", json={"code": "123456"}, headers=bearer(tokens)
    )
    assert no_pending.status_code == 409
    assert (
        await api.client.post("/users/me/mfa/recovery-codes", headers=bearer(tokens))
    ).status_code == 409
    first = (await api.client.post("/users/me/mfa/totp", headers=bearer(tokens))).json()
    second = (await api.client.post("/users/me/mfa/totp", headers=bearer(tokens))).json()
    assert first["secret"] != second["secret"]
    # Only the latest enrolment counts; a wrong code is a 400 for a signed-in caller.
    stale = await api.client.post(
        "/users/me/mfa/totp/confirm",
        json={"code": totp_code(first["secret"], clock=clock)},
        headers=bearer(tokens),
    )
    assert stale.status_code == 400
    assert (await api.login("alice", ALICE_PASSWORD)).get("access_token")  # still no MFA
    ok = await api.client.post(
        "/users/me/mfa/totp/confirm",
        json={"code": totp_code(second["secret"], clock=clock)},
        headers=bearer(tokens),
    )
    assert ok.status_code == 200
    step = await second_step(api, "alice")
    clock.advance(30)
    tokens = (
        await verify(
            api, mfa_token=step["mfa_token"], code=totp_code(second["secret"], clock=clock)
        )
    ).json()
    assert (await api.client.post("/users/me/mfa/totp", headers=bearer(tokens))).status_code == 409


async def test_another_accounts_codes_are_refused(api: Api, clock: FakeClock) -> None:
    alice = await signed_up(api, "alice")
    bob = await signed_up(api, "bob")
    await enrol_totp(api, alice, clock)
    bob_secret, bob_codes = await enrol_totp(api, bob, clock)
    step = await second_step(api, "alice")
    clock.advance(30)
    code = await verify(api, mfa_token=step["mfa_token"], code=totp_code(bob_secret, clock=clock))
    assert code.status_code == 401
    recovery = await verify(api, mfa_token=step["mfa_token"], recovery_code=bob_codes[0])
    assert recovery.status_code == 401
    # Bob's code and recovery code still work for bob.
    bob_step = await second_step(api, "bob")
    assert (
        await verify(api, mfa_token=bob_step["mfa_token"], recovery_code=bob_codes[0])
    ).status_code == 200


async def test_second_factor_failures_count_in_the_lockout(api: Api, clock: FakeClock) -> None:
    tokens = await signed_up(api, "alice")
    await enrol_totp(api, tokens, clock)
    answers = []
    for _ in range(5):
        step = await second_step(api, "alice")
        answers.append((await verify(api, mfa_token=step["mfa_token"], code="000000")).status_code)
    assert answers == [401] * 5
    locked = await api.client.post(
        "/auth/login", data={"username": "alice", "password": ALICE_PASSWORD}
    )
    assert locked.status_code == 429
    assert int(locked.headers["retry-after"]) > 0


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"mfa_token": "mfa_x"},
        {"code": "123456"},
        {"mfa_token": "mfa_x", "code": "123456", "recovery_code": "AAAA-BBBB-CCCC"},
        {"mfa_token": "mfa_" + "a" * 300, "code": "123456"},
        {"mfa_token": "mfa_x", "code": "1" * 500},
        {"mfa_token": 5, "code": 123456},
        {"mfa_token": "mfa_x", "code": "123456", "extra": True},
        [],
        "text",
    ],
)
async def test_malformed_second_steps_are_4xx(api: Api, body: Any) -> None:
    response = await api.client.post("/auth/mfa/verify", json=body)
    assert response.status_code == 422, response.text


@pytest.mark.parametrize(
    "body",
    [
        {"mfa_token": "not-an-mfa-token", "code": "123456"},
        {"mfa_token": "mfa_unknown", "code": "123456"},
        {"mfa_token": "mfa_unknown", "recovery_code": "garbage"},
    ],
)
async def test_unknown_mfa_tokens_are_401(api: Api, body: dict[str, str]) -> None:
    response = await api.client.post("/auth/mfa/verify", json=body)
    assert response.status_code == 401
    assert response.json()["detail"]["code"] == "invalid_token"


async def test_an_access_token_is_no_mfa_token(api: Api) -> None:
    tokens = await signed_up(api, "alice")
    refused = await verify(api, mfa_token=tokens["access_token"][:128], code="123456")
    assert refused.status_code == 401


async def test_passkey_journey(api: Api, clock: FakeClock) -> None:
    before = await signed_up(api, "alice")
    device = SoftAuthenticator(origin=ORIGIN)
    options = await api.client.post("/users/me/passkeys/register/options", headers=bearer(before))
    assert options.status_code == 200, options.text
    public_key = options.json()["publicKey"]
    assert public_key["rp"]["id"] == "localhost"
    created = await api.client.post(
        "/users/me/passkeys/register/verify",
        json={"credential": device.create(public_key), "name": "laptop"},
        headers=bearer(before),
    )
    assert created.status_code == 201, created.text
    assert len(created.json()["recovery_codes"]) == 10  # the first factor brings codes
    listed = (await api.client.get("/users/me/passkeys", headers=bearer(before))).json()
    assert [p["name"] for p in listed] == ["laptop"]
    credential_id = listed[0]["id"]

    # As a second factor after the password.
    step = await second_step(api, "alice")
    assert step["methods"] == ["passkey", "recovery_code"]
    second = await api.client.post("/auth/passkey/options", json={"mfa_token": step["mfa_token"]})
    assert second.status_code == 200, second.text
    allowed = second.json()["publicKey"]["allowCredentials"]
    assert [c["id"] for c in allowed] == [credential_id]
    signed = await api.client.post(
        "/auth/passkey/verify",
        json={"credential": device.get(second.json()["publicKey"]), "mfa_token": step["mfa_token"]},
    )
    assert signed.status_code == 200, signed.text
    amr = claims_of(signed.json())["amr"]
    assert amr[0] == "pwd"
    assert amr[-1] == "mfa"
    assert amr[1] in ("hwk", "swk")

    # Passwordless.
    options = await api.client.post("/auth/passkey/options")
    assert options.status_code == 200
    assert options.json()["publicKey"]["userVerification"] == "required"
    passwordless = await api.client.post(
        "/auth/passkey/verify", json={"credential": device.get(options.json()["publicKey"])}
    )
    assert passwordless.status_code == 200, passwordless.text
    tokens = passwordless.json()
    assert "pwd" not in claims_of(tokens)["amr"]
    assert "mfa" in claims_of(tokens)["amr"]

    # A clone (the same key with an old counter) is refused.
    clone = device.clone()
    clone.sign_count = 0
    options = await api.client.post("/auth/passkey/options")
    cloned = await api.client.post(
        "/auth/passkey/verify", json={"credential": clone.get(options.json()["publicKey"])}
    )
    assert cloned.status_code == 401

    # The passwordless login counts as MFA: it may remove the passkey.
    assert (
        await api.client.delete("/users/me/passkeys/AAAA", headers=bearer(tokens))
    ).status_code == 404
    removed = await api.client.delete(f"/users/me/passkeys/{credential_id}", headers=bearer(tokens))
    assert removed.status_code == 204, removed.text
    assert (await api.client.get("/users/me/passkeys", headers=bearer(tokens))).json() == []
    assert "access_token" in await api.login("alice", ALICE_PASSWORD)


@pytest.mark.parametrize(
    "body",
    [
        {"credential": {}},
        {"credential": {"id": "x", "rawId": "x", "type": "public-key", "response": {}}},
        {"credential": {"response": {"clientDataJSON": "!!!"}}},
        {"credential": {}, "mfa_token": "mfa_unknown"},
    ],
)
async def test_junk_passkey_assertions_are_401(api: Api, body: dict[str, Any]) -> None:
    response = await api.client.post("/auth/passkey/verify", json=body)
    assert response.status_code == 401, response.text


async def test_passkey_options_for_an_unknown_mfa_token_are_401(api: Api) -> None:
    response = await api.client.post("/auth/passkey/options", json={"mfa_token": "mfa_nope"})
    assert response.status_code == 401


# -- DPOP_REQUIRED: the second step binds the session like the login ------------------------


@pytest.fixture
async def dpop_api(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Api]:
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'api.db'}", dpop_required=True)
    async for served in serve(settings, clock=clock):
        yield served


async def test_the_second_step_is_bound_to_the_clients_dpop_key(
    dpop_api: Api, clock: FakeClock
) -> None:
    api = dpop_api
    key = DPoPClient()
    base = api.settings.public_base_url.rstrip("/")

    def proof(method: str, path: str, token: str | None = None) -> str:
        return key.proof(method, f"{base}{path}", iat=clock(), access_token=token)

    def dpop(token: str, method: str, path: str) -> dict[str, str]:
        return {"Authorization": f"DPoP {token}", "DPoP": proof(method, path, token)}

    created = await api.register("alice@example.com", "alice", ALICE_PASSWORD)
    assert created.status_code == 201
    login = {"username": "alice", "password": ALICE_PASSWORD}
    first = await api.client.post(
        "/auth/login", data=login, headers={"DPoP": proof("POST", "/auth/login")}
    )
    token = first.json()["access_token"]
    started = await api.client.post(
        "/users/me/mfa/totp", headers=dpop(token, "POST", "/users/me/mfa/totp")
    )
    assert started.status_code == 201, started.text
    secret = started.json()["secret"]
    confirmed = await api.client.post(
        "/users/me/mfa/totp/confirm",
        json={"code": totp_code(secret, clock=clock)},
        headers=dpop(token, "POST", "/users/me/mfa/totp/confirm"),
    )
    assert confirmed.status_code == 200, confirmed.text

    step = await api.client.post(
        "/auth/login", data=login, headers={"DPoP": proof("POST", "/auth/login")}
    )
    assert step.json()["mfa_required"] is True
    clock.advance(30)
    body = {"mfa_token": step.json()["mfa_token"], "code": totp_code(secret, clock=clock)}
    unbound = await api.client.post("/auth/mfa/verify", json=body)
    assert unbound.status_code == 401  # no proof: refused before the code is looked at
    done = await api.client.post(
        "/auth/mfa/verify", json=body, headers={"DPoP": proof("POST", "/auth/mfa/verify")}
    )
    assert done.status_code == 200, done.text
    assert done.json()["token_type"] == "DPoP"
    bound = done.json()["access_token"]
    assert claims_of(done.json())["amr"] == ["pwd", "otp", "mfa"]
    status = await api.client.get("/users/me/mfa", headers=dpop(bound, "GET", "/users/me/mfa"))
    assert status.status_code == 200
    as_bearer = await api.client.get("/users/me/mfa", headers={"Authorization": f"Bearer {bound}"})
    assert as_bearer.status_code == 401


def log_text(records: list[logging.LogRecord]) -> str:
    return "\n".join(f"{record.getMessage()} {record.__dict__!r}" for record in records)


async def test_mfa_events_reach_the_security_log_without_a_secret(
    api: Api, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    before = await signed_up(api, "alice")
    secret, codes = await enrol_totp(api, before, clock)
    step = await second_step(api, "alice")
    clock.advance(30)
    code = totp_code(secret, clock=clock)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    assert (await verify(api, mfa_token=step["mfa_token"], code=wrong)).status_code == 401
    done = await verify(api, mfa_token=step["mfa_token"], code=code)
    assert done.status_code == 200, done.text
    assert (await verify(api, mfa_token=step["mfa_token"], code=code)).status_code == 401
    rescue = await second_step(api, "alice")
    assert (
        await verify(api, mfa_token=rescue["mfa_token"], recovery_code=codes[0])
    ).status_code == 200
    status = (await api.client.get("/users/me/mfa", headers=bearer(done.json()))).json()
    assert status["totp_last_used_at"] is not None

    events = [
        record.__dict__["security_event"]
        for record in caplog.records
        if record.name == "fastapi_secure.events"
    ]
    mfa = [event for event in events if event["type"].startswith(("mfa_", "recovery_"))]
    assert [event["type"] for event in mfa] == [
        "mfa_added",
        "mfa_failed",
        "mfa_succeeded",
        "mfa_token_refused",
        "mfa_succeeded",
        "recovery_code_used",
    ]
    me = (await api.client.get("/users/me", headers=bearer(done.json()))).json()
    assert {event["subject"] for event in mfa} == {str(me["id"])}
    assert mfa[1]["client"] == "203.0.113.0/24"  # the address cut to its network
    assert mfa[5]["extra"] == {"remaining": 9}
    text = log_text(caplog.records)
    for secret_value in (
        secret,
        code,
        wrong,
        *codes,
        step["mfa_token"],
        rescue["mfa_token"],
        done.json()["access_token"],
        done.json()["refresh_token"],
    ):
        assert not re.search(rf"(?<![0-9A-Za-z]){re.escape(secret_value)}(?![0-9A-Za-z])", text)


async def test_a_passkey_is_renamed_and_another_account_cannot(api: Api) -> None:
    alice = await signed_up(api, "alice")
    device = SoftAuthenticator(origin=ORIGIN)
    options = await api.client.post("/users/me/passkeys/register/options", headers=bearer(alice))
    created = await api.client.post(
        "/users/me/passkeys/register/verify",
        json={"credential": device.create(options.json()["publicKey"]), "name": "laptop"},
        headers=bearer(alice),
    )
    assert created.status_code == 201, created.text
    url = f"/users/me/passkeys/{created.json()['passkey']['id']}"
    renamed = await api.client.patch(url, json={"name": " phone "}, headers=bearer(alice))
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "phone"

    mallory = await signed_up(api, "mallory")
    stolen = await api.client.patch(url, json={"name": "mine"}, headers=bearer(mallory))
    assert stolen.status_code == 404
    assert (
        stolen.json()
        == (
            await api.client.patch(
                "/users/me/passkeys/AAAA", json={"name": "mine"}, headers=bearer(mallory)
            )
        ).json()
    )
    bad = await api.client.patch(url, json={"name": "a\u202eb"}, headers=bearer(alice))
    assert bad.status_code == 422
    listed = (await api.client.get("/users/me/passkeys", headers=bearer(alice))).json()
    assert [p["name"] for p in listed] == ["phone"]
    document = (await api.client.get("/openapi.json")).json()
    patch = document["paths"]["/users/me/passkeys/{credential_id}"]["patch"]
    assert set(patch["responses"]) >= {"200", "401", "404", "413", "422", "503"}
